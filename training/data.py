"""Load the annotation files into `datasets.Dataset`s and hash them.

The real pairs (pairs.jsonl) are the only rows ever used for testing. The written training
sets (synthetic.jsonl, written.jsonl; every row flagged ``synthetic: true``) only ever join
a training side. The development set (dev.jsonl) chooses and calibrates models and the
challenge set (challenge.jsonl) is only predicted: neither is ever trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset

from model.labels import label_id

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ARTICLES = DATA / "articles"
ANNOTATIONS = DATA / "annotations"
# The annotation files, by role (data/annotations/README.md).
FILES = {"pairs": "pairs.jsonl", "synthetic": "synthetic.jsonl", "written": "written.jsonl",
         "dev": "dev.jsonl", "challenge": "challenge.jsonl"}

COLUMNS = ("id", "sentence_id", "article", "sentence", "actor", "mention", "mention_start", "mention_end",
           "stance", "sentiment", "ambiguous")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_dataset(rows: list[dict], synthetic: bool = False) -> Dataset:
    rows = [{**{c: r[c] for c in COLUMNS}, "synthetic": synthetic,
             "stance_id": label_id("stance", r["stance"]), "sentiment_id": label_id("sentiment", r["sentiment"])}
            for r in rows]
    return Dataset.from_list(rows)


@dataclass
class Sets:
    """The annotation sets of one folder; a file that is not there is None (pairs must be)."""

    pairs: Dataset
    synthetic: Dataset | None
    written: Dataset | None
    dev: Dataset | None
    challenge: Dataset | None
    folder: Path

    def training_files(self, config) -> list[Path]:
        names = ["pairs"] + [n for n in ("synthetic", "written") if getattr(config, n) and getattr(self, n) is not None]
        return [self.folder / FILES[n] for n in names]


def load_sets(folder: Path = ANNOTATIONS) -> Sets:
    def load(name):
        path = folder / FILES[name]
        return to_dataset(read_jsonl(path), synthetic=name != "pairs") if path.exists() else None

    if not (folder / FILES["pairs"]).exists():
        raise FileNotFoundError(f"{folder / FILES['pairs']} is missing; it holds the real labelled pairs")
    return Sets(**{name: load(name) for name in FILES}, folder=folder)


def training_set(config, pairs: Dataset, sets: Sets) -> Dataset:
    """``pairs`` (the real pairs, or a fold's share of them) plus the written sets the config asks for."""
    from datasets import concatenate_datasets

    parts = [pairs] + [getattr(sets, n) for n in ("synthetic", "written") if getattr(config, n) and getattr(sets, n) is not None]
    return concatenate_datasets(parts) if len(parts) > 1 else pairs


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.exists():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def first_per_sentence(ds: Dataset) -> np.ndarray:
    """Index of each sentence's first pair: sentiment is one label per sentence, so it is
    scored once per sentence, not once per actor."""
    first: dict[str, int] = {}
    for i, s in enumerate(ds["sentence"]):
        first.setdefault(s, i)
    return np.array(list(first.values()), dtype=int)
