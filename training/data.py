"""Load the annotation files into `datasets.Dataset`s and hash them.

The real pairs (pairs.jsonl) are the only rows ever used for testing. Synthetic rows
(synthetic.jsonl, every row flagged ``synthetic: true``) only ever join a training side;
the challenge set (challenge.jsonl) is only ever predicted, never trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset

from model.labels import label_id

ROOT = Path(__file__).resolve().parents[1]
ANNOTATIONS = ROOT / "data" / "annotations"
PAIRS = ANNOTATIONS / "pairs.jsonl"
SYNTHETIC = ANNOTATIONS / "synthetic.jsonl"
CHALLENGE = ANNOTATIONS / "challenge.jsonl"

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


def load_pairs(path: Path = PAIRS) -> Dataset:
    return to_dataset(read_jsonl(path))


def load_synthetic(path: Path = SYNTHETIC) -> Dataset | None:
    return to_dataset(read_jsonl(path), synthetic=True) if path.exists() else None


def load_challenge(path: Path = CHALLENGE) -> Dataset | None:
    return to_dataset(read_jsonl(path), synthetic=True) if path.exists() else None


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.exists():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
