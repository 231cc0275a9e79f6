"""Inter-annotator agreement between the two independent passes, and the disagreements.

    python -m training.agreement [--disagreements]

passes/pass1.jsonl and passes/pass2.jsonl hold the two annotators' labels for the same
pairs (pass 2 labelled from GUIDELINES.md alone, blind to pass 1); pairs.jsonl holds the
adjudicated labels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from training.data import ANNOTATIONS

PASSES = ANNOTATIONS / "passes"


def _load(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}


def agreement(a: dict[str, dict], b: dict[str, dict]) -> dict:
    ids = [i for i in a if i in b]
    out = {"pairs": len(ids)}
    out["stance_kappa"] = cohen_kappa_score([a[i]["stance"] for i in ids], [b[i]["stance"] for i in ids])
    # Sentiment is per sentence: count each sentence once.
    first = {}
    for i in ids:
        first.setdefault(i.split(":")[0], i)
    out["sentences"] = len(first)
    out["sentiment_kappa"] = cohen_kappa_score([a[i]["sentiment"] for i in first.values()], [b[i]["sentiment"] for i in first.values()])
    out["stance_disagreements"] = [i for i in ids if a[i]["stance"] != b[i]["stance"]]
    out["sentiment_disagreements"] = [s for s, i in first.items() if a[i]["sentiment"] != b[i]["sentiment"]]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disagreements", action="store_true", help="list the pairs the passes disagree on")
    parser.add_argument("--first", type=Path, default=PASSES / "pass1.jsonl")
    parser.add_argument("--second", type=Path, default=PASSES / "pass2.jsonl")
    args = parser.parse_args(argv)
    r = agreement(_load(args.first), _load(args.second))
    print(f"{r['pairs']} pairs, {r['sentences']} sentences")
    print(f"Cohen's kappa, stance (per pair):        {r['stance_kappa']:.3f}  ({len(r['stance_disagreements'])} disagreements)")
    print(f"Cohen's kappa, sentiment (per sentence): {r['sentiment_kappa']:.3f}  ({len(r['sentiment_disagreements'])} disagreements)")
    if args.disagreements:
        print("stance:", *r["stance_disagreements"], sep="\n  ")
        print("sentiment:", *r["sentiment_disagreements"], sep="\n  ")


if __name__ == "__main__":
    main()
