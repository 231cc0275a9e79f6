"""How faithful the evidence is, measured on the dev set (ERASER's comprehensiveness and
sufficiency), for each method of model/explain.py, against words drawn at random.

    python -m training.faithfulness                           # -> reports/faithfulness.md and .json
    python -m training.faithfulness --limit 100 --methods occlusion --model stance_classifier:latest

For each dev pair (actor, sentence, mention) the model predicts a stance; each method weighs
the sentence's candidate words toward it. Then, for k top words (by weight) and for k words
drawn at random from the same candidates:
- comprehensiveness = p(label | sentence) - p(label | sentence without the k words): higher
  is better; evidence that carried the label must hurt more to lose than any k words;
- sufficiency = p(label | sentence) - p(label | only the k words left, with the actor's
  mention): lower is better; the evidence alone should keep the label.
"served evidence" deletes exactly the positive words of the ``evidence`` a response carries
(model/explain.py: at most TOP_WORDS words, each moving p by MIN_WEIGHT or more).
Every sentence goes through the same predictor, backend and precision as the service.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from training.data import ROOT

KS = (1, 3, 5)
DRAWS = 5  # random draws of k words per pair, averaged


def dev_rows(limit: int | None = None) -> list[tuple[str, str, tuple[int, int]]]:
    """The dev pairs as (actor, sentence, mention span); with ``limit``, that many spread evenly
    over the file (its articles come in order, so the first N would be a few articles only)."""
    from training.data import load_sets

    dev = load_sets().dev
    rows = [(r["actor"], r["sentence"], (r["mention_start"], r["mention_end"])) for r in dev]
    if limit and limit < len(rows):
        rows = [rows[i * len(rows) // limit] for i in range(limit)]
    return rows


def _drop(predictor, rows, labels, full: list[float], deletions) -> list[float]:
    """``full`` (p(label) of each row) minus p(label) of the row with its ``deletions`` (words) deleted."""
    from model.explain import delete
    from model.labels import STANCE

    batch = [(actor, *delete(sentence, span, words)) for (actor, sentence, span), words in zip(rows, deletions)]
    cut = predictor.probabilities(batch, [])[0]
    return [p - float(cut[i, STANCE.index(label)]) for i, (p, label) in enumerate(zip(full, labels))]


def measure(predictor, rows, methods=("occlusion", "gradients"), ks=KS, draws=DRAWS, seed=13, log=print) -> dict:
    from model.explain import Explainer, candidate_words, evidence
    from model.labels import STANCE

    probs = predictor.probabilities(rows, [])[0]
    labels = [STANCE[int(p.argmax())] for p in probs]
    full = [float(p.max()) for p in probs]
    words = [candidate_words(sentence, span) for _, sentence, span in rows]
    rng = random.Random(seed)
    figures: dict = {"rows": len(rows), "model": predictor.tag, "backend": predictor.choice, "ks": list(ks),
                     "draws": draws, "random": {}, "methods": {}}

    def both(chosen: list[list]) -> tuple[float, float]:
        """(comprehensiveness, sufficiency) of deleting ``chosen``, or keeping only it."""
        rest = [[w for w in ws if w not in c] for ws, c in zip(words, map(set, chosen))]
        return (statistics.mean(_drop(predictor, rows, labels, full, chosen)),
                statistics.mean(_drop(predictor, rows, labels, full, rest)))

    for k in ks:
        runs = [both([rng.sample(ws, min(k, len(ws))) for ws in words]) for _ in range(draws)]
        figures["random"][k] = {"comprehensiveness": statistics.mean(r[0] for r in runs),
                                "sufficiency": statistics.mean(r[1] for r in runs)}
        log(f"random k={k}: {figures['random'][k]}")
    for method in methods:
        explainer = Explainer(predictor, method)
        t = time.perf_counter()
        weighted = explainer.weights(rows, labels)
        seconds = time.perf_counter() - t
        ranked = [[w for w, _ in sorted(ws, key=lambda x: -x[1])] for ws in weighted]
        result = {"seconds_per_pair": seconds / len(rows), "top": {}}
        for k in ks:
            comp, suff = both([r[:k] for r in ranked])
            result["top"][k] = {"comprehensiveness": comp, "sufficiency": suff}
            log(f"{method} k={k}: {result['top'][k]}")
        # The evidence as served: its positive words, against as many random words.
        served = []
        for (_, sentence, _), ws in zip(rows, weighted):
            spans = [(e["start"], e["end"]) for e in evidence(ws, sentence) if e["weight"] > 0]
            served.append([w for w, _ in ws if any(a <= w.start < b for a, b in spans)])
        has = [i for i, s in enumerate(served) if s]
        if has:
            sub = ([rows[i] for i in has], [labels[i] for i in has], [full[i] for i in has])
            chosen = statistics.mean(_drop(predictor, *sub, [served[i] for i in has]))
            rand = statistics.mean(statistics.mean(_drop(predictor, *sub, [rng.sample(words[i], len(served[i])) for i in has]))
                                   for _ in range(draws))
            result["served"] = {"pairs_with_evidence": len(has), "mean_words": statistics.mean(len(served[i]) for i in has),
                                "comprehensiveness": chosen, "random_comprehensiveness": rand}
        if method == "gradients" and explainer._gradients is not None:
            gaps = explainer._gradients.gaps
            result["completeness_gap"] = {"mean": statistics.mean(gaps), "max": max(gaps), "steps": explainer._gradients.steps}
            fp32 = explainer._gradients.model is not predictor.model
            result["fp32_model"] = "reloaded from the model folder" if fp32 else "the predictor's own"
        figures["methods"][method] = result
    best = max(figures["methods"], key=lambda m: statistics.mean(
        figures["methods"][m]["top"][k]["comprehensiveness"] - figures["methods"][m]["top"][k]["sufficiency"] for k in ks))
    figures["better"] = best
    return figures


def markdown(f: dict) -> str:
    lines = [
        "# Faithfulness of the evidence",
        "",
        f"Dev set, {f['rows']} of its {f['dev_rows']} (actor, sentence) pairs; model `{f['model']}` ({f['backend']}). "
        "Generated by `python -m training.faithfulness`.",
        "",
        "Comprehensiveness: how much p(predicted label) falls when the k words are deleted (higher is "
        "better). Sufficiency: how much it falls when only those k words are left, with the actor's "
        f"mention (lower is better). Random: k words drawn from the same candidates, mean of {f['draws']} draws.",
        "",
        "| words | k | comprehensiveness | sufficiency |",
        "|---|---:|---:|---:|",
    ]
    for k in f["ks"]:
        for method, m in f["methods"].items():
            top = m["top"][k]
            lines.append(f"| top-k of {method} | {k} | {top['comprehensiveness']:.3f} | {top['sufficiency']:.3f} |")
        r = f["random"][k]
        lines.append(f"| random | {k} | {r['comprehensiveness']:.3f} | {r['sufficiency']:.3f} |")
    lines += ["", "| method | served evidence: comprehensiveness | same number of random words | pairs with evidence | "
              "words per pair | seconds per pair |", "|---|---:|---:|---:|---:|---:|"]
    for method, m in f["methods"].items():
        s = m.get("served")
        cells = (f"{s['comprehensiveness']:.3f} | {s['random_comprehensiveness']:.3f} | {s['pairs_with_evidence']} | "
                 f"{s['mean_words']:.1f}") if s else "– | – | 0 | –"
        lines.append(f"| {method} | {cells} | {m['seconds_per_pair']:.3f} |")
    if "gradients" in f["methods"] and "completeness_gap" in f["methods"]["gradients"]:
        g = f["methods"]["gradients"]
        gap = g["completeness_gap"]
        lines += ["", f"Integrated gradients ran on the fp32 PyTorch model ({g['fp32_model']}), {gap['steps']} steps: "
                  f"|sum of attributions - (p(input) - p(baseline))| is {gap['mean']:.4f} on average, {gap['max']:.4f} at most."]
    lines += ["", f"Kept for the service: **{f['better']}** (the higher mean of comprehensiveness - sufficiency over k).", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Measure the faithfulness of the evidence on the dev set.")
    parser.add_argument("--model", default="stance_classifier:latest", help="model store tag (default: %(default)s)")
    parser.add_argument("--methods", default="occlusion,gradients", help="comma-separated (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="only N dev pairs, spread over the set (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="report folder (default: %(default)s)")
    args = parser.parse_args(argv)
    from model.predictor import Predictor

    predictor = Predictor.from_store(args.model)
    rows = dev_rows(args.limit)
    t = time.perf_counter()
    figures = measure(predictor, rows, [m.strip() for m in args.methods.split(",") if m.strip()],
                      log=lambda text: print(text, file=sys.stderr, flush=True))
    figures.update(dev_rows=len(dev_rows()), seconds=round(time.perf_counter() - t))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faithfulness.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (args.out / "faithfulness.md").write_text(markdown(figures), encoding="utf-8")
    print(f"wrote {args.out / 'faithfulness.md'}; better: {figures['better']}")
    return figures


if __name__ == "__main__":
    main()
