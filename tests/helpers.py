"""Plain helpers shared by the test modules (fixtures are in conftest.py). pytest puts this
folder on the path (pyproject.toml), so a test module imports them as ``from helpers import …``."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_ROWS = [
    # (sentence, actor, mention, stance, sentiment)
    ("Lavrov praised the talks in Riyadh as useful.", "Sergey Lavrov", "Lavrov", "support", "positive"),
    ("Zelensky rejected any deal made without Ukraine.", "Volodymyr Zelensky", "Zelensky", "oppose", "negative"),
    ("Rubio attended the meeting on Tuesday.", "Marco Rubio", "Rubio", "neutral", "neutral"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Ukraine", "Kyiv", "oppose", "negative"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Russia", "Moscow", "support", "negative"),
    ("The Saudis hosted the delegations at a palace.", "Saudi Arabia", "The Saudis", "neutral", "neutral"),
]


def tiny_rows(articles=("a", "b"), copies: int = 2) -> list[dict]:
    """Annotation rows (data/annotations/README.md) of TINY_ROWS, spread over ``articles``."""
    rows = []
    for k, (sentence, actor, mention, stance, sentiment) in enumerate(TINY_ROWS * copies):
        start = sentence.index(mention)
        art = articles[k % len(articles)]
        rows.append({"id": f"{art}-{k}:{actor}", "sentence_id": f"{art}-{k}", "article": art, "sentence": sentence,
                     "actor": actor, "mention": mention, "mention_start": start, "mention_end": start + len(mention),
                     "stance": stance, "sentiment": sentiment, "ambiguous": False, "note": ""})
    return rows


def tiny_dataset(articles=("a", "b")):
    from training.data import to_dataset

    return to_dataset(tiny_rows(articles))


def tiny_config(**overrides):
    from training.config import load_config

    return load_config(None, **{"encoder": "tiny", "epochs": 2, "batch_size": 4, "max_steps": 4, "head_lr": 1e-2,
                                "workers": 1, "precision": "fp32", **overrides})


def write_annotations(folder: Path) -> Path:
    """A tiny annotations folder: real pairs in three articles, and written, dev and challenge sets."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"pairs.jsonl": tiny_rows(("a", "b", "c")), "written.jsonl": tiny_rows(("written",), 1),
             "dev.jsonl": tiny_rows(("dev",), 1), "challenge.jsonl": tiny_rows(("challenge",), 1)}
    for name, rows in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder
