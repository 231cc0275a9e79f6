"""Scores from out-of-fold predictions, with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from model.actors import load_registry
from model.labels import TASKS
from training.calibration import expected_calibration_error
from training.data import first_per_sentence


def task_scores(y_true, y_pred, labels: tuple[str, ...], n_boot: int = 1000, seed: int = 0) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    macro = f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)
    rng = np.random.default_rng(seed)
    boots = [f1_score(y_true[i], y_pred[i], labels=ids, average="macro", zero_division=0)
             for i in (rng.integers(0, len(y_true), len(y_true)) for _ in range(n_boot if len(y_true) else 0))]
    return {
        "macro_f1": float(macro),
        "macro_f1_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else None,
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "n": int(len(y_true)),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def sentence_level(ds, probs_or_pred: np.ndarray):
    """Sentiment is one label per sentence: (labels, probabilities, indices) of each
    sentence's first pair."""
    idx = first_per_sentence(ds)
    return np.asarray(ds["sentiment_id"])[idx], probs_or_pred[idx], idx


def summarize(ds, stance_probs: np.ndarray, sent_probs: np.ndarray, n_boot: int = 1000) -> dict:
    """Macro-F1 with CI, per-class figures, without-ambiguous scores, per-affiliation stance
    slices, and the expected calibration error of the probabilities as given."""
    y_st = np.asarray(ds["stance_id"])
    pred_st = stance_probs.argmax(1)
    y_se, p_se, sent_idx = sentence_level(ds, sent_probs)
    pred_se = p_se.argmax(1)
    out = {"stance": task_scores(y_st, pred_st, TASKS["stance"], n_boot),
           "sentiment": task_scores(y_se, pred_se, TASKS["sentiment"], n_boot)}
    clear = ~np.asarray(ds["ambiguous"], dtype=bool)
    out["stance"]["without_ambiguous"] = task_scores(y_st[clear], pred_st[clear], TASKS["stance"], 0)["macro_f1"]
    out["sentiment"]["without_ambiguous"] = task_scores(y_se[clear[sent_idx]], pred_se[clear[sent_idx]], TASKS["sentiment"], 0)["macro_f1"]
    out["stance"]["ece"] = expected_calibration_error(stance_probs, y_st)
    out["sentiment"]["ece"] = expected_calibration_error(p_se, y_se)
    reg = load_registry()
    aff = np.array([reg.actors[a].affiliation if a in reg else "(not in registry)" for a in ds["actor"]])
    out["stance"]["by_affiliation"] = {
        a: {"n": int((aff == a).sum()), "macro_f1": task_scores(y_st[aff == a], pred_st[aff == a], TASKS["stance"], 0)["macro_f1"],
            "accuracy": float((y_st[aff == a] == pred_st[aff == a]).mean())}
        for a in sorted(set(aff)) if (aff == a).sum() >= 5
    }
    return out
