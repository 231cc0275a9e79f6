"""The rows `stance score` writes: the input columns, then the ``ADDED`` ones.

    rows = scored_rows(record, predictor_result)   # one per (sentence, actor) pair
    flatten(rows[0])                               # the _probs objects as one column per label

With --explain, an ``evidence`` column follows the ``ADDED`` ones: per pair, the words that
carried its stance (model/explain.py), as a list of {"text", "start", "end", "weight"}.

The column lists are defined here once; the writers (batch/writers.py), ``score_frame``
(batch/frame.py) and the report (batch/report.py) take them from here.
"""

from __future__ import annotations

from typing import Iterable

from batch.inputs import Record
from model.labels import SENTIMENT, STANCE

# The columns `stance score` adds, in this order, after the input columns.
ADDED = ("source", "sentence_index", "actor", "mention", "affiliation", "stance", "stance_probs",
         "sentiment", "sentiment_probs", "model")
# `stance score --explain` adds this column last (after "model"), so the others keep their places.
EVIDENCE = "evidence"
# In CSV, Parquet and DataFrames each _probs column becomes one column per label, in the fixed label order.
PROB_LABELS = {"stance_probs": STANCE, "sentiment_probs": SENTIMENT}
PROB_COLUMNS = {c: [f"{c.removesuffix('_probs')}_{label}" for label in labels] for c, labels in PROB_LABELS.items()}
# An input column with one of these names is kept, unchanged, as input_<name>.
RESERVED = set(ADDED) | {EVIDENCE} | {c for cols in PROB_COLUMNS.values() for c in cols}


def input_columns(records: Iterable[Record]) -> list[str]:
    """The union of the input columns, in first-seen order."""
    seen: dict = {}
    for r in records:
        seen.update(dict.fromkeys(r.columns))
    return list(seen)


def output_name(column: str) -> str:
    return f"input_{column}" if column in RESERVED else column


def output_columns(records: list[Record], explain: bool = False) -> list[str]:
    """The columns of the output, in order (the _probs ones not yet flattened)."""
    return [output_name(c) for c in input_columns(records)] + list(ADDED) + ([EVIDENCE] if explain else [])


def scored_rows(record: Record, result: dict) -> list[dict]:
    """One row per (sentence, actor) pair, or one with an empty actor for a sentence with none."""
    base = {output_name(k): v for k, v in record.columns.items()}
    common = {"source": record.source, "sentence_index": record.index}
    tail = {"sentiment": result["sentiment"], "sentiment_probs": result["sentiment_probs"], "model": result["model"]}
    no_actor = {"actor": None, "mention": None, "affiliation": None, "stance": None, "stance_probs": None}
    return [{**base, **common, **a, **tail} for a in result["actors"]] or [{**base, **common, **no_actor, **tail}]


def flat_columns(columns: list[str]) -> list[str]:
    out = []
    for c in columns:
        out.extend(PROB_COLUMNS.get(c, [c]))
    return out


def flatten(row: dict) -> dict:
    """The _probs objects as one value per label column (None for a row without an actor)."""
    out = {}
    for k, v in row.items():
        if k in PROB_COLUMNS:
            out.update({c: (v or {}).get(label) for c, label in zip(PROB_COLUMNS[k], PROB_LABELS[k])})
        else:
            out[k] = v
    return out
