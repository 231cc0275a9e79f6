"""Scoring records with the one predictor, chunk by chunk, one row's failure isolated.

    for rows in score_locally(predictor, records, batch_size, tally, on_bad):
        ...                                   # what `stance score --engine local` writes

Both engines cut the records into the same ``chunks`` and score each with
``score_records``, so their outputs are equal (batch/ray_engine.py runs it in Ray actors).
A row whose prediction raises comes back as a ``BadInput`` naming its file and line (the
predictor's ``isolate``): the caller stops there, or skips it and counts it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from batch.inputs import BadInput, Record
from batch.rows import scored_rows

# Records per predictor call: the predictor sorts each call's sentences by length into
# batches of --batch-size, so a call of several batches wastes little on padding, and
# the progress bar still moves every few seconds.
BATCHES_PER_CALL = 16


def chunks(records: list[Record], batch_size: int) -> list[list[Record]]:
    step = batch_size * BATCHES_PER_CALL
    return [records[i : i + step] for i in range(0, len(records), step)]


@dataclass
class Scored:
    """One chunk, scored: its output rows in order, its pairs, its sentences without an
    actor, and the rows that could not be scored."""

    rows: list[dict] = field(default_factory=list)
    pairs: int = 0
    no_actor: int = 0
    failures: list[BadInput] = field(default_factory=list)


def score_records(predictor, records: list[Record], explain: bool = False) -> Scored:
    """With ``explain``, every pair's row gets its evidence (model/explain.py)."""
    from model.items import Item
    from model.predictor import Failure

    items = [Item(r.sentence, r.actor, r.mention) for r in records]
    results = predictor.predict(items, isolate=True)
    if explain:
        from model.explain import Explainer

        results = Explainer(predictor).add_evidence(items, results, isolate=True)
    out = Scored()
    for record, result in zip(records, results):
        if isinstance(result, Failure):
            out.failures.append(BadInput(record.source, f"scoring failed ({result.error})", record.line))
            continue
        out.rows.extend(scored_rows(record, result))
        out.pairs += len(result["actors"])
        out.no_actor += not result["actors"]
    return out


class Tally:
    """The counts of a run, and its progress bar on stderr (sentences, and pairs/s).

    The bar starts (``start``) once the model is loaded, so its estimate of the time left
    leaves loading out; under Ray, once the first chunk is back, which is counted as done
    before the clock starts (``initial``)."""

    def __init__(self, total: int):
        self.total, self.pairs, self.no_actor = total, 0, 0
        self.bar, self.started, self.base = None, 0.0, 0

    def start(self, initial: int = 0) -> None:
        from tqdm import tqdm

        self.started, self.base = time.perf_counter(), self.pairs
        self.bar = tqdm(total=self.total, initial=initial, desc="scoring", unit="sentence", file=sys.stderr,
                        mininterval=0.5)

    def add(self, scored: Scored, sentences: int) -> None:
        """Count a chunk of ``sentences``."""
        self.pairs += scored.pairs
        self.no_actor += scored.no_actor
        if self.bar is not None:
            self.bar.update(sentences)
            rate = (self.pairs - self.base) / max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{rate:.0f} pairs/s", refresh=False)

    def write(self, line: str) -> None:
        """A line on stderr, above the bar if there is one."""
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def score_locally(predictor, records: list[Record], batch_size: int, tally: Tally,
                  on_bad: Callable[[BadInput], None], explain: bool = False) -> Iterator[list[dict]]:
    """The output rows, chunk by chunk, scored in this process; ``on_bad`` gets each row that
    failed (and raises to stop the run)."""
    for chunk in chunks(records, batch_size):
        scored = score_records(predictor, chunk, explain)
        for failure in scored.failures:
            on_bad(failure)
        # The bar moves once per chunk, by the whole chunk: the predictor answers a chunk's
        # items all at once, so moving by one item at its end would make the first estimate
        # the time of a whole chunk per sentence ("1/160 [00:04<11:43]").
        tally.add(scored, len(chunk))
        yield scored.rows
