"""Does a lower precision keep fp32's labels on real coverage? The probe check at save time
(model/checks.py) only allows a precision; ``precision="auto"`` also needs this target, met
on the dev and challenge sets when the model is saved. ``make bench-score`` prints the same
figures.

Target: label agreement with fp32 of at least 99% (stance per pair, sentiment per sentence)
and a macro-F1 change of at most 0.005, on each set.
"""

from __future__ import annotations

from model.predictor import Predictor
from training.metrics import summarize
from training.train import pair_rows, sentence_table

MIN_AGREEMENT = 0.99
MAX_F1_CHANGE = 0.005
TASKS = ("stance", "sentiment")


def _per_pair(ds, sentences: list[str], sentiment):
    """Sentiment probabilities per pair, from those per unique sentence."""
    index = {s: i for i, s in enumerate(sentences)}
    return sentiment.numpy()[[index[s] for s in ds["sentence"]]]


def compare(fp32: Predictor, others: dict[str, Predictor], sets: dict) -> dict:
    """{set: {"fp32": macro-F1 per task, precision: {"agreement", "f1_change", "met"}}} for
    every non-empty set in ``sets`` (name -> Dataset)."""
    out = {}
    for name, ds in sets.items():
        if ds is None or len(ds) == 0:
            continue
        sentences = sentence_table(ds)[0]
        rows = pair_rows(ds)

        def scored(predictor):
            probs = predictor.probabilities(rows, sentences)
            f1 = summarize(ds, probs[0].numpy(), _per_pair(ds, sentences, probs[1]), n_boot=0)
            return probs, {t: f1[t]["macro_f1"] for t in TASKS}

        base, base_f1 = scored(fp32)
        out[name] = {"fp32": base_f1}
        for label, other in others.items():
            got, f1 = scored(other)
            agreement = {t: float((a.argmax(-1) == b.argmax(-1)).float().mean()) for t, a, b in zip(TASKS, base, got)}
            change = {t: f1[t] - base_f1[t] for t in TASKS}
            met = all(a >= MIN_AGREEMENT for a in agreement.values()) and all(abs(c) <= MAX_F1_CHANGE for c in change.values())
            out[name][label] = {"agreement": agreement, "f1_change": change, "met": met}
    return out


def met(results: dict, label: str) -> bool:
    """The target met on every set compared (and at least one set compared)."""
    return bool(results) and all(r[label]["met"] for r in results.values())


def lines(results: dict) -> list[str]:
    """The figures as ``make bench-score`` prints them."""
    out = []
    for name, r in results.items():
        out.append(f"{name} set, fp32: macro-F1 stance {r['fp32']['stance']:.3f}, sentiment {r['fp32']['sentiment']:.3f}")
        for label, c in r.items():
            if label == "fp32":
                continue
            a, d = c["agreement"], c["f1_change"]
            out.append(f"  {label:<5} label agreement with fp32: stance {a['stance']:.2%}, sentiment {a['sentiment']:.2%}; "
                       f"macro-F1 change: stance {d['stance']:+.3f}, sentiment {d['sentiment']:+.3f}  "
                       f"(goal >= 99% and within 0.005: {'ok' if c['met'] else 'MISSED'})")
    return out
