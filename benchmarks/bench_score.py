"""Throughput of `stance score` against the raw forward pass and a Hugging Face pipeline,
side by side in one run, on the same (sentence, actor) pairs; and what each precision costs
in labels.

    make bench-score                                     # stance_classifier:latest in the store
    python benchmarks/bench_score.py --min-pairs 1000 --repeats 3   # a quicker run
    python benchmarks/bench_score.py --tiny              # functional check with a tiny model
    python benchmarks/bench_score.py --precision fp32    # what a CPU without bf16 units runs

Input: the sentences of data/annotations/sentences.jsonl, repeated until the registry finds
at least --min-pairs pairs in them (default 5,000), as a .jsonl with a `sentence` column (so
actors are detected, as for an analyst's export). Each copy after the first gets a " (k)"
suffix, so no sentence repeats (sentiment is computed once per distinct sentence).

Methods, run in turn for --repeats rounds (each round times every method once):
1. `stance score`: the real CLI, in process (``batch.cli.app``), end to end: read, detect
   actors, load the model from the store with --precision (default ``auto``) and the default
   backend (``auto``), predict, write the CSV.
2. raw forward passes alone (``Predictor.probabilities`` on every pair and sentence: the
   forward work the CLI needs, nothing around it): fp32 PyTorch; fp32 ONNX Runtime; bf16
   PyTorch where the CPU has bf16 units (elsewhere it is emulated, slow, and never chosen);
   and, with --int8, dynamic int8 (PyTorch encoders traced, as ``Predictor.load`` runs
   them: model/traced.py).
3. ``transformers.pipeline("text-classification")`` on the same encoder and inputs (a BERT
   sequence classifier built from the saved encoder: a speed yardstick, not a labeller).

It prints the machine (CPU model and the flags that decide ``auto``), what ``auto`` chose,
pairs/s per method as the median and range over the rounds, the two ratios other tooling
reads (``stance score / raw fp32 PyTorch = X.XX`` and ``stance score / pipeline = X.XX``,
the medians of the per-round ratios, with their range), and, for each lower precision, its
label agreement with fp32 and the macro-F1 change on the dev and challenge sets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SENTENCES, choose_model, interleaved, machine, spread  # noqa: E402



def build_input(path: Path, min_pairs: int) -> tuple[list[str], int]:
    from model.actors import load_registry

    base = [json.loads(line)["text"] for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    reg = load_registry()
    sentences, pairs, k = [], 0, 0
    while pairs < min_pairs:
        for s in base:
            s = s if k == 0 else f"{s} ({k})"
            sentences.append(s)
            pairs += len(reg.find(s))
        k += 1
    path.write_text("".join(json.dumps({"sentence": s}, ensure_ascii=False) + "\n" for s in sentences), encoding="utf-8")
    return sentences, pairs


def cli_method(tag: str, input_path: Path, out: Path, batch_size: int, precision: str):
    from batch.cli import app

    def run():
        app(["score", str(input_path), "--out", str(out), "--model", tag, "--batch-size", str(batch_size),
             "--precision", precision], standalone_mode=False)

    return run


def raw_method(predictor, rows: list, sentences: list[str]):
    def run():
        predictor.probabilities(rows, sentences)

    return run


def precision_quality(fp32, others: dict) -> list[str]:
    """Label agreement with fp32 (stance per pair, sentiment per sentence) and the macro-F1
    change of each other predictor, on the dev and challenge sets: the target that
    ``auto`` also needs, checked when the model is saved (training/precision_target.py)."""
    from training import precision_target
    from training.data import load_sets

    sets = load_sets()
    return precision_target.lines(precision_target.compare(fp32, others, {"dev": sets.dev, "challenge": sets.challenge}))


def hf_classifier(model_dir: Path):
    """AutoModelForSequenceClassification on the saved model's encoder (weights copied)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir / "encoder", num_labels=3)
    clf = AutoModelForSequenceClassification.from_config(config)
    state = load_file(str(model_dir / "model.safetensors"))
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    missing, unexpected = getattr(clf, clf.base_model_prefix).load_state_dict(encoder, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise RuntimeError(f"encoder weights do not fit: missing {missing}, unexpected {unexpected}")
    return clf.eval(), AutoTokenizer.from_pretrained(model_dir / "encoder")


def pipeline_method(model_dir: Path, rows: list, sentences: list[str], batch_size: int, max_length: int):
    from transformers import pipeline

    from model.encoding import mark_mention

    clf, tokenizer = hf_classifier(model_dir)
    pipe = pipeline("text-classification", model=clf, tokenizer=tokenizer, device=-1)
    pairs = [{"text": actor, "text_pair": mark_mention(sentence, span)[0]} for actor, sentence, span in rows]
    kwargs = {"batch_size": batch_size, "truncation": True, "max_length": max_length}
    pipe(pairs[:batch_size], **kwargs)  # warm-up

    def run():
        pipe(pairs, **kwargs)
        pipe(sentences, **kwargs)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stance_classifier:latest", help="model tag in the BentoML store")
    parser.add_argument("--tiny", action="store_true", help="use a 1-layer model (functional check only)")
    parser.add_argument("--min-pairs", type=int, default=5000, help="repeat the annotated sentences up to this many pairs")
    parser.add_argument("--batch-size", type=int, default=32, help="forward batch size, the same for every method")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the methods (figures: median and range)")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the (slow) Hugging Face pipeline")
    parser.add_argument("--int8", action="store_true", help="also time dynamic int8 and report its labels")
    parser.add_argument("--precision", choices=("auto", "fp32"), default="auto",
                        help="what `stance score` runs: auto (its default), or fp32, the path of a CPU without "
                             "bf16 units, measurable on any CPU")
    args = parser.parse_args(argv)

    tag, what = choose_model(args.model, args.tiny)

    import torch

    from model import precision as precisions
    from model.items import Item
    from model.onnx_encoder import FILE, OnnxEncoder
    from model.predictor import Predictor
    from model.store import find

    model_path, tag = find(tag)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench_score_") as tmp:
        input_path, out = Path(tmp) / "input.jsonl", Path(tmp) / "scored.csv"
        sentences, n_pairs = build_input(input_path, args.min_pairs)
        auto = Predictor.from_store(tag, batch_size=args.batch_size, precision=args.precision)  # what `stance score` loads
        auto_precision = precisions.resolve(args.precision, precisions.passed_checks(auto.meta), met=precisions.met_targets(auto.meta))[0]
        print(f"model {tag} ({what}); {len(sentences)} sentences, {n_pairs} pairs; batch size {args.batch_size}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.repeats} rounds")
        print(f"stance score's choice: {auto.choice}\n")
        fp32 = Predictor.from_store(tag, batch_size=args.batch_size, precision="fp32", backend="torch")
        bf16 = fp32.with_parts(precisions.convert(fp32.model, "bf16")).traced()
        predictors = {"raw forward, fp32 PyTorch": fp32,
                      "raw forward, fp32 ONNX Runtime": fp32.with_parts(encoder=OnnxEncoder(model_path / FILE))}
        # Without bf16 units the CPU emulates bf16 at a tenth of fp32's speed (AMD EPYC, AVX2
        # only: 7 against 51 pairs/s), auto never picks it, and timing it took most of the run.
        if set(precisions.BF16_FLAGS) & precisions.cpu_flags():
            predictors["raw forward, bf16 PyTorch"] = bf16
        else:
            print("raw forward, bf16 PyTorch: not timed, this CPU has no bf16 matrix units (its labels are compared below)\n")
        if args.int8:
            predictors["raw forward, int8 PyTorch"] = fp32.with_parts(precisions.convert(fp32.model, "int8")).traced()
        # The pairs the CLI scores: every registry actor of every sentence (detection not timed here).
        rows = [(t.actor, s, t.span) for s in sentences for t in fp32.targets(Item(s))]
        assert len(rows) == n_pairs, (len(rows), n_pairs)
        for p in predictors.values():
            p.probabilities(rows[:64], sentences[:64])  # warm-up
        methods = {"stance score (in process, end to end)": cli_method(tag, input_path, out, args.batch_size, args.precision)}
        methods.update({name: raw_method(p, rows, sentences) for name, p in predictors.items()})
        if not args.skip_pipeline:
            methods["HF pipeline(text-classification)"] = pipeline_method(
                model_path, rows, sentences, args.batch_size, fp32.max_length)
        times = interleaved(methods, args.repeats)

    print(f"{'method':<42}{'pairs/s: median (range)':>30}")
    for name, seconds in times.items():
        print(f"{name:<42}{spread([n_pairs / t for t in seconds]):>30}")
    cli = times["stance score (in process, end to end)"]

    def ratio(name: str) -> tuple[float, str]:
        per_round = [t / c for t, c in zip(times[name], cli)]
        return statistics.median(per_round), f"(rounds: {min(per_round):.2f}–{max(per_round):.2f})"

    print()
    r, rounds = ratio("raw forward, fp32 PyTorch")
    print(f"stance score / raw fp32 PyTorch = {r:.2f}   {rounds}")
    if "HF pipeline(text-classification)" in times:
        r, rounds = ratio("HF pipeline(text-classification)")
        print(f"stance score / pipeline = {r:.2f}   {rounds}")
    # The backends `auto` may choose from: fp32 on either engine, and bf16 where the CPU has
    # the units and the model's check passed (int8 is opt-in and kept out of this comparison).
    allowed = [n for n in predictors if "int8" not in n and ("bf16" not in n or auto_precision == "bf16")]
    best = min(allowed, key=lambda n: statistics.median(times[n]))
    print(f"stance score / best raw backend auto may choose ({best}) = "
          f"{statistics.median(times[best]) / statistics.median(cli):.2f}")
    print("\nlower precisions against fp32 (on the dev and challenge sets):")
    others = {"bf16": bf16}
    if args.int8:
        others["int8"] = predictors["raw forward, int8 PyTorch"]
    print("\n".join(precision_quality(fp32, others)))
    if args.tiny:
        print("\n(tiny model: a functional check; these figures say nothing about the real model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
