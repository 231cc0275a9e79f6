"""Evaluate the model as `make train` builds it, on three sets, next to baselines.

    make evaluate                 # or: python -m training.evaluate [--no-loao] [--seed 1 ...]

- **Leave-one-article-out** (the five real articles): each fold trains on four articles plus
  the written sets, is calibrated on the dev set, and predicts the fifth article; the
  out-of-fold predictions are pooled.
- **dev** (data/annotations/dev.jsonl: wire stories written apart from the training data,
  labelled blind twice) and **challenge** (written in other outlets' voices): predicted by a
  network trained on all five articles plus the written sets, as `make train` trains it.
  Its calibration is fitted on the dev set, so the dev figure is tuned on itself; the
  uncalibrated dev figure is reported next to it.

Writes reports/metrics.json, reports/REPORT.md and PNG plots (reports/ is generated).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from model.labels import SENTIMENT, STANCE
from model.runtime import offline
from training.baselines import baseline_predictions
from training.calibration import Calibration
from training.config import add_config_args, config_from_args
from training.data import ANNOTATIONS, ROOT, Sets, load_sets, training_set
from training.metrics import summarize
from training.report import write_report
from training.train import run_jobs

EXPERIMENTS = Path(__file__).with_name("EXPERIMENTS.md")


def _select(ds, mask: np.ndarray):
    return ds.select(np.flatnonzero(mask))


def evaluate_model(config, sets: Sets, loao: bool = True) -> dict:
    """{set name: (stance probs, sentiment probs)} for "loao" (pooled out of fold), "dev",
    "dev_uncalibrated" and "challenge"."""
    pairs, dev, challenge = sets.pairs, sets.dev, sets.challenge
    art = np.array(pairs["article"])
    articles = sorted(set(art)) if loao else []
    jobs = [(config, training_set(config, _select(pairs, art != a), sets), [_select(pairs, art == a), dev],
             f"fold {k + 1}/{len(articles)} (test {a[:3]})") for k, a in enumerate(articles)]
    jobs.append((config, training_set(config, pairs, sets), [dev, challenge], "all articles"))
    results = run_jobs(jobs, config.workers, config.threads)
    out = {}
    if loao:
        stance, sentiment = np.zeros((len(pairs), len(STANCE))), np.zeros((len(pairs), len(SENTIMENT)))
        for a, ((test_st, test_se), dev_preds) in zip(articles, results):
            cal = Calibration.fit(dev, *dev_preds, prior=config.prior)
            stance[art == a], sentiment[art == a] = cal.apply("stance", test_st), cal.apply("sentiment", test_se)
        out["loao"] = (stance, sentiment)
    dev_preds, challenge_preds = results[-1]
    cal = Calibration.fit(dev, *dev_preds, prior=config.prior)
    out["dev"] = (cal.apply("stance", dev_preds[0]), cal.apply("sentiment", dev_preds[1]))
    out["dev_uncalibrated"] = dev_preds
    out["challenge"] = (cal.apply("stance", challenge_preds[0]), cal.apply("sentiment", challenge_preds[1]))
    out["calibration"] = cal.report(dev, *dev_preds)
    return out


def evaluate_baselines(config, sets: Sets, loao: bool = True) -> dict:
    """{baseline: {set name: (stance, sentiment)}}, trained as the model is: on the training
    side of each fold for LOAO, on everything for dev and challenge."""
    pairs, dev, challenge = sets.pairs, sets.dev, sets.challenge
    art = np.array(pairs["article"])
    out: dict[str, dict] = {}
    shapes = {"stance": len(STANCE), "sentiment": len(SENTIMENT)}

    def put(name, where, preds, mask=None, n=None):
        slot = out.setdefault(name, {}).setdefault(where, {t: np.full((n or len(mask), k), np.nan) for t, k in shapes.items()})
        for task, p in preds.items():
            if mask is None:
                slot[task] = p
            else:
                slot[task][mask] = p

    if loao:
        for a in sorted(set(art)):
            test = _select(pairs, art == a)
            for name, per_set in baseline_predictions(training_set(config, _select(pairs, art != a), sets), [test]).items():
                put(name, "loao", per_set[0], mask=art == a)
            real_only = baseline_predictions(_select(pairs, art != a), [test])["tfidf_logreg"][0]
            put("tfidf_logreg (real pairs only)", "loao", real_only, mask=art == a)
    for name, per_set in baseline_predictions(training_set(config, pairs, sets), [dev, challenge]).items():
        for where, preds in zip(("dev", "challenge"), per_set):
            put(name, where, preds, n=len(dev if where == "dev" else challenge))
    return {name: {where: (v["stance"], v["sentiment"]) for where, v in sets.items()} for name, sets in out.items()}


def score(sets: dict, data: dict, n_boot: int = 1000) -> dict:
    """summarize() for each (stance, sentiment) prediction pair; a task a baseline does not
    predict (all NaN) is left out."""
    out = {}
    for where, (st, se) in sets.items():
        if where not in data:
            continue
        m = summarize(data[where], np.nan_to_num(st), np.nan_to_num(se), n_boot)
        out[where] = {t: m[t] for t, p in (("stance", st), ("sentiment", se)) if not np.isnan(p).all()}
    return out


def main(argv=None) -> dict:
    offline()
    parser = argparse.ArgumentParser(description="Evaluate on leave-one-article-out, dev and challenge sets, with baselines.")
    add_config_args(parser)
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS, help="folder of the annotation files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="report folder (default: %(default)s)")
    parser.add_argument("--no-loao", dest="loao", action="store_false",
                        help="skip leave-one-article-out: train once, score dev and challenge (a quick comparison)")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sets = load_sets(args.annotations)
    pairs, dev, challenge = sets.pairs, sets.dev, sets.challenge
    if dev is None:
        raise SystemExit("error: data/annotations/dev.jsonl is missing; the evaluation needs the development set")
    data = {"loao": pairs, "dev": dev, "dev_uncalibrated": dev, "challenge": challenge}
    model = evaluate_model(config, sets, args.loao)
    m = {"model": score({k: v for k, v in model.items() if k != "calibration"}, data),
         "calibration": model["calibration"], "config": config.to_dict(),
         "n": {"pairs": len(pairs), "dev": len(dev), "challenge": len(challenge) if challenge else 0,
               "written": len(training_set(config, pairs, sets)) - len(pairs)}}
    m["baselines"] = {name: score(sets, data, n_boot=0) for name, sets in
                      evaluate_baselines(config, sets, args.loao).items()}
    m["seconds"] = time.perf_counter() - t0
    (args.out / "metrics.json").write_text(json.dumps(m, indent=2), encoding="utf-8")
    write_report(m, args.out, EXPERIMENTS)
    line = ", ".join(f"{where} {m['model'][where]['stance']['macro_f1']:.3f} / {m['model'][where]['sentiment']['macro_f1']:.3f}"
                     for where in ("loao", "dev", "challenge") if where in m["model"])
    print(f"macro-F1 stance / sentiment: {line}; {args.out / 'REPORT.md'} in {m['seconds']:.0f} s")
    return m


if __name__ == "__main__":
    main()
