"""Evidence for a stance: the words of the sentence that carried it, each with a signed weight.

    from model.explain import Explainer
    results = predictor.predict(items)
    Explainer(predictor).add_evidence(items, results)   # every actor of every result gets "evidence"
    python -m training.faithfulness                     # how faithful it is: reports/faithfulness.md

A word's weight is how much the probability of the actor's predicted stance falls when that
word is deleted from the sentence (occlusion). A negative weight means the probability rises
without the word: it pulled against the label. The sentences with a word deleted go through
the predictor itself (its backend, precision and window rule), so the weights explain the very
label the response reports. ``method="gradients"`` attributes with Captum's integrated
gradients instead (model/gradients.py); occlusion is the default because it measured more
faithful on the dev set (reports/faithfulness.md has the figures).

The cost is bounded: at most ``MAX_WORDS`` candidate words per actor, so one explained actor
costs at most ``MAX_WORDS + 1`` rows of forward pass (the sentence intact, then once without
each word), batched like any other rows by ``Predictor.probabilities``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import torch

from model.items import Item, as_item
from model.labels import STANCE

# A word: letters or digits, with inner apostrophes or hyphens ("Kremlin's", "long-term").
# Punctuation alone is never evidence; the actor's own mention is never evidence either (it
# says who, not what stance).
WORD = re.compile(r"\w+(?:['’\-]\w+)*")
# Candidate words per actor, the nearest to its mention: the bound on the cost of one actor.
# 40 is every word of 96% of the articles' sentences (data/annotations/sentences.jsonl) and of
# 85% of the dev pairs; the longer ones keep the 40 words nearest the mention.
MAX_WORDS = 40
# Evidence keeps at most this many words, the strongest either way, joined into phrases
# where they are neighbours with the same sign ...
TOP_WORDS = 4
# ... and only words whose deletion moves the probability by at least this much.
MIN_WEIGHT = 0.01
METHODS = ("occlusion", "gradients")

Row = tuple[str, str, "tuple[int, int] | None"]  # (actor, sentence, mention span), as Predictor.probabilities


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int


def candidate_words(sentence: str, span: tuple[int, int] | None, limit: int = MAX_WORDS) -> list[Word]:
    """The words that may be evidence, in sentence order: every word outside the mention, the
    ``limit`` nearest to it (the first ``limit`` when there is no mention)."""
    words = [Word(m.group(), m.start(), m.end()) for m in WORD.finditer(sentence)
             if span is None or m.end() <= span[0] or m.start() >= span[1]]
    if len(words) <= limit:
        return words
    if span is None:
        return words[:limit]
    centre = (span[0] + span[1]) / 2
    nearest = sorted(words, key=lambda w: abs((w.start + w.end) / 2 - centre))[:limit]
    return sorted(nearest, key=lambda w: w.start)


def delete(sentence: str, span: tuple[int, int] | None, words: Iterable[Word]) -> tuple[str, tuple[int, int] | None]:
    """The sentence without ``words`` (each with the space after it, or before it when none
    follows), and the mention span moved to match."""
    cuts = []
    for w in words:
        a, b = w.start, w.end
        if b < len(sentence) and sentence[b] == " ":
            b += 1
        elif a > 0 and sentence[a - 1] == " ":
            a -= 1
        cuts.append((a, b))
    cuts.sort()
    pieces, last, removed_before = [], 0, 0
    for a, b in cuts:
        a = max(a, last)
        if b <= a:
            continue
        pieces.append(sentence[last:a])
        if span is not None and b <= span[0]:
            removed_before += b - a
        last = b
    pieces.append(sentence[last:])
    moved = None if span is None else (span[0] - removed_before, span[1] - removed_before)
    return "".join(pieces), moved


def evidence(weighted: list[tuple[Word, float]], sentence: str) -> list[dict]:
    """The strongest words (at most ``TOP_WORDS``, each moving the probability by at least
    ``MIN_WEIGHT``), neighbours of one sign joined into a phrase; strongest first."""
    order = {w: i for i, (w, _) in enumerate(weighted)}
    strong = sorted((x for x in weighted if abs(x[1]) >= MIN_WEIGHT), key=lambda x: -abs(x[1]))[:TOP_WORDS]
    strong.sort(key=lambda x: order[x[0]])
    phrases: list[list] = []
    for word, weight in strong:
        last = phrases[-1] if phrases else None
        # Neighbours: next to each other in the sentence, with only spaces between (never
        # across the mention, which is not a candidate, nor across punctuation).
        if last and order[word] == last[3] + 1 and sentence[last[1]:word.start].strip() == "" and (weight > 0) == (last[2] > 0):
            last[1], last[2], last[3] = word.end, last[2] + weight, order[word]
        else:
            phrases.append([word.start, word.end, weight, order[word]])
    phrases.sort(key=lambda p: -abs(p[2]))
    return [{"text": sentence[a:b], "start": a, "end": b, "weight": round(float(w), 4)} for a, b, w, _ in phrases]


class Explainer:
    """Evidence for the results of one predictor. ``method``: occlusion (the default) or
    gradients (Captum's integrated gradients on the embeddings, model/gradients.py)."""

    def __init__(self, predictor, method: str = "occlusion"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self.predictor, self.method = predictor, method
        self._gradients = None

    def weights(self, rows: list[Row], labels: list[str]) -> list[list[tuple[Word, float]]]:
        """Per row, its candidate words with their weight toward ``labels[i]``."""
        if self.method == "gradients":
            if self._gradients is None:
                from model.gradients import Gradients

                self._gradients = Gradients.for_predictor(self.predictor)
            return self._gradients.weights(rows, labels)
        return self.occlusion(rows, labels)

    def occlusion(self, rows: list[Row], labels: list[str]) -> list[list[tuple[Word, float]]]:
        candidates = [candidate_words(sentence, span) for _, sentence, span in rows]
        batch: list[Row] = []
        for (actor, sentence, span), words in zip(rows, candidates):
            batch.append((actor, sentence, span))
            batch.extend((actor, *delete(sentence, span, [w])) for w in words)
        probs = self.stance_probabilities(batch)
        out, k = [], 0
        for words, label in zip(candidates, labels):
            p = probs[k : k + 1 + len(words), STANCE.index(label)]
            out.append([(w, float(p[0] - p[1 + i])) for i, w in enumerate(words)])
            k += 1 + len(words)
        return out

    def stance_probabilities(self, rows: list[Row]) -> torch.Tensor:
        return self.predictor.probabilities(rows, [])[0]

    def add_evidence(self, items: Iterable[Item | str | tuple], results: list, isolate: bool = False) -> list:
        """``results`` (of ``predictor.predict(items)``) with ``"evidence"`` on every actor,
        toward its predicted stance; changes the result dicts in place and returns the list.
        A ``Failure`` among the results is passed over. With ``isolate``, an item whose
        explanation raises becomes a ``Failure`` and the others keep their evidence."""
        from model.predictor import Failure

        items = [as_item(x) for x in items]
        done = [k for k, r in enumerate(results) if not isinstance(r, Failure)]
        try:
            self._add([items[k] for k in done], [results[k] for k in done])
        except Exception:
            if not isolate:
                raise
            for k in done:  # find the item at fault, one at a time
                try:
                    self._add([items[k]], [results[k]])
                except Exception as e:  # noqa: BLE001 - isolated: one item's fault is its own
                    results[k] = Failure(items[k], f"{type(e).__name__}: {e}")
        return results

    def _add(self, items: list[Item], results: list[dict]) -> None:
        rows, labels, actors = [], [], []
        for item, result in zip(items, results):
            for target, actor in zip(self.predictor.targets(item), result["actors"]):
                rows.append((target.actor, item.sentence, target.span))
                labels.append(actor["stance"])
                actors.append(actor)
        for (_, sentence, _), weighted, actor in zip(rows, self.weights(rows, labels), actors):
            actor["evidence"] = evidence(weighted, sentence)
