"""Throughput of `stance score` against the raw forward pass and a Hugging Face pipeline,
side by side in one run, on the same (sentence, actor) pairs.

    make bench-score                                    # stance_classifier:latest in $BENTOML_HOME
    python benchmarks/bench_score.py --min-pairs 1000 --repeats 1   # a quicker run
    python benchmarks/bench_score.py --tiny             # functional check with the tiny test model

Input: the sentences of data/annotations/sentences.jsonl, repeated until the registry finds
at least --min-pairs pairs in them (default 5,000), as a .jsonl with a `sentence` column (so
actors are detected, as for an analyst's export). Each copy after the first gets a " (k)"
suffix, so no sentence repeats: the predictor computes sentiment once per distinct
sentence, and identical copies would flatter the CLI against the raw pass.

1. `stance score` — the real CLI code path, in process: ``serving.cli.app`` called with
   ``["score", input.jsonl, "--out", out.csv, ...]``. Its time is end to end: read, detect
   actors, load the model from the store, predict, write the CSV.
2. raw — the same model's forward passes alone, batched: ``Predictor.stance_probs`` on every
   pair (actor, sentence, span) and ``Predictor.sentiment_probs`` on every sentence, i.e.
   exactly the forward work the CLI needs, with nothing around it; once with the backend
   the CLI uses (ONNX Runtime for a model saved with ``encoder.onnx``) and once with
   PyTorch. Their labels are compared pair by pair.
3. pipeline — ``transformers.pipeline("text-classification")`` on the same encoder and
   inputs: an ``AutoModelForSequenceClassification`` (BERT, num_labels=3) built from the
   saved model's ``encoder/`` config and tokenizer, with the encoder weights copied from its
   ``model.safetensors`` (the classifier layer is untrained: this compares speed, not
   labels). It classifies each pair as the text pair (actor, sentence with the mention
   marked) and each sentence alone, with the same --batch-size.

Each method runs --repeats times (best time kept: the machine may be shared). Ratios:
score / raw on the CLI's backend (goal >= 0.8) and score / pipeline (goal >= 2).

Without a trained model in the store the run uses the pretrained all-MiniLM-L6-v2 encoder
with untrained heads, registered in a temporary store: the same network and size as a
trained model, so the throughput is the same, but its labels mean nothing. --tiny uses the
1-layer test model instead (a functional check only; its figures say nothing about speed).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SENTENCES = ROOT / "data" / "annotations" / "sentences.jsonl"


def store_has(tag: str) -> bool:
    """Checked on disk, before bentoml is imported: bentoml fixes its store path on first use."""
    name, _, version = tag.partition(":")
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    return (home / "models" / name / (version if version and version != "latest" else "latest")).exists()


def register_stand_in(kind: str) -> str:
    """A model in a fresh temporary store: 'minilm' (pretrained encoder, untrained heads) or 'tiny'."""
    home = tempfile.mkdtemp(prefix="bench_score_store_")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["BENTOML_HOME"] = home
    from training.config import load_config
    from training.store import register
    from training.train import build_model, fit, load_tokenizer

    tokenizer = load_tokenizer()
    if kind == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import tiny_config, tiny_dataset

        config = tiny_config()
        model = fit(config, tiny_dataset(), tokenizer)
    else:
        config = load_config(None)
        model = build_model(config, tokenizer)
    return register(model.eval(), tokenizer, config, {}, {"stance": 1.0, "sentiment": 1.0}, 0.0)


def choose_model(tag: str, tiny: bool) -> tuple[str, str]:
    """The model to time, and what it is: the tiny test model, ``tag`` if the store has
    it, else a stand-in of the same size."""
    if tiny:
        return register_stand_in("tiny"), "the tiny 1-layer test model: a FUNCTIONAL CHECK, not a speed figure"
    if store_has(tag):
        return tag, "the trained model in the store"
    print(f"no {tag} in the store at {os.environ.get('BENTOML_HOME', '~/bentoml')}: using all-MiniLM-L6-v2 "
          "with untrained heads in a temporary store (same network, so the same speed; meaningless labels)")
    return register_stand_in("minilm"), "pretrained all-MiniLM-L6-v2 with UNTRAINED heads (throughput only)"


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


def interleaved(methods: dict, repeats: int) -> dict[str, float]:
    """Best time of each method; the repeats go round-robin so a change in the machine's
    load (it may be shared) hits every method alike."""
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def cli_method(tag: str, input_path: Path, out: Path, batch_size: int):
    from serving.cli import app

    def run():
        app(["score", str(input_path), "--out", str(out), "--model", tag, "--batch-size", str(batch_size)],
            standalone_mode=False)

    return run


def raw_method(predictor, rows: list, sentences: list[str], outputs: dict | None = None):
    def run():
        stance, sentiment = predictor.stance_probs(rows), predictor.sentiment_probs(sentences)
        if outputs is not None:
            outputs.update(stance=stance.argmax(-1), sentiment=sentiment.argmax(-1))

    return run


def int8_predictor(predictor):
    """The same weights with every nn.Linear dynamically quantised to int8 (torch.ao)."""
    import copy
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(predictor.model), {torch.nn.Linear}, dtype=torch.qint8)
    return predictor.with_parts(model)  # its own PyTorch encoder: int8 is a torch.ao model


def challenge_quality(predictors: dict) -> str:
    """Macro-F1 of each predictor on the held-out challenge set (data/annotations/challenge.jsonl):
    what int8 costs in quality, not only in agreement."""
    from sklearn.metrics import f1_score

    from training.config import load_config
    from training.data import load_challenge
    from training.metrics import sentence_level
    from training.train import predict_dataset

    ds, lines = load_challenge(), ["challenge set macro-F1 (stance / sentiment):"]
    for name, p in predictors.items():
        stance, sentiment = predict_dataset(p.model, p.tokenizer, ds, load_config())
        y, probs, _ = sentence_level(ds, sentiment)
        lines.append(f"  {name:<16} {f1_score(ds['stance_id'], stance.argmax(1), average='macro'):.3f} / "
                     f"{f1_score(y, probs.argmax(1), average='macro'):.3f}")
    return "\n".join(lines)


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
    parser.add_argument("--model", default="stance_classifier:latest", help="model tag in $BENTOML_HOME")
    parser.add_argument("--tiny", action="store_true", help="use the 1-layer test model (functional check only)")
    parser.add_argument("--min-pairs", type=int, default=5000, help="repeat the annotated sentences up to this many pairs")
    parser.add_argument("--batch-size", type=int, default=32, help="forward batch size, the same for every method")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the methods; each one's best time is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for every method (0 = torch's default)")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the (slow) Hugging Face pipeline")
    parser.add_argument("--int8", action="store_true", help="also time the raw pass with dynamic int8 quantisation, "
                                                            "and its label agreement with the float model")
    args = parser.parse_args(argv)

    tag, what = choose_model(args.model, args.tiny)

    import torch

    from model.onnx_encoder import OnnxEncoder
    from model.predictor import Item
    from serving.store import get_model, load_predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    bento_model = get_model(tag)
    tag = str(bento_model.tag)
    with tempfile.TemporaryDirectory(prefix="bench_score_") as tmp:
        input_path, out = Path(tmp) / "input.jsonl", Path(tmp) / "scored.csv"
        sentences, n_pairs = build_input(input_path, args.min_pairs)
        print(f"model {tag} ({what}); {len(sentences)} sentences, {n_pairs} pairs; batch size {args.batch_size}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}\n")

        start = time.perf_counter()
        predictor = load_predictor(tag, batch_size=args.batch_size)  # what the CLI loads
        load_seconds = time.perf_counter() - start
        backend = "ONNX Runtime" if isinstance(predictor.encoder, OnnxEncoder) else "PyTorch"
        torch_predictor = load_predictor(tag, batch_size=args.batch_size, backend="torch")
        for p in (predictor, torch_predictor):
            p.predict([Item(s) for s in sentences[:64]])  # warm-up
        # The pairs the CLI scores: every registry actor of every sentence (detection not timed here).
        rows = [(t.actor, s, t.span) for s in sentences for t in predictor.targets(Item(s))]
        assert len(rows) == n_pairs, (len(rows), n_pairs)

        outputs = {"torch": {}, "cli": {}, "int8": {}}
        raw_cli = f"raw forward, {backend} (the CLI's)"
        methods = {"stance score (in process, end to end)": cli_method(tag, input_path, out, args.batch_size),
                   raw_cli: raw_method(predictor, rows, sentences, outputs["cli"])}
        if backend != "PyTorch":
            methods["raw forward, PyTorch"] = raw_method(torch_predictor, rows, sentences, outputs["torch"])
        quantised = int8_predictor(torch_predictor) if args.int8 else None
        if quantised:
            methods["raw forward, PyTorch dynamic int8"] = raw_method(quantised, rows, sentences, outputs["int8"])
        if not args.skip_pipeline:
            methods["HF pipeline(text-classification)"] = pipeline_method(
                Path(bento_model.path), rows, sentences, args.batch_size, predictor.max_length)
        times = interleaved(methods, args.repeats)

    print(f"\n{'method':<44}{'seconds':>9}{'pairs/s':>10}")
    for name, seconds in times.items():
        print(f"{name:<44}{seconds:>9.2f}{n_pairs / seconds:>10.1f}")
    print(f"(loading the model from the store, inside the CLI's time: {load_seconds:.2f} s)\n")
    cli, raw = times["stance score (in process, end to end)"], times[raw_cli]
    ok = lambda good: "ok" if good else "MISSED"
    print(f"stance score / raw {backend:<12} = {raw / cli:.2f}   goal >= 0.80  {ok(raw / cli >= 0.8)}")
    if "HF pipeline(text-classification)" in times:
        pipe = times["HF pipeline(text-classification)"]
        print(f"stance score / pipeline          = {pipe / cli:.2f}   goal >= 2.00  {ok(pipe / cli >= 2)}")

    def agreement(other: str) -> str:
        base = outputs["torch"] or outputs["cli"]
        return ", ".join(f"{task} {float((base[task] == outputs[other][task]).float().mean()):.4f}" for task in ("stance", "sentiment"))

    if backend != "PyTorch":
        print(f"stance score / raw PyTorch       = {times['raw forward, PyTorch'] / cli:.2f}; "
              f"{backend} labels equal to PyTorch's: {agreement('cli')}")
    if args.int8:
        torch_time = times.get("raw forward, PyTorch", raw)
        print(f"int8 / float PyTorch raw         = {torch_time / times['raw forward, PyTorch dynamic int8']:.2f}"
              f"; int8 labels equal to float PyTorch's: {agreement('int8')}")
        print(challenge_quality({"float (PyTorch)": torch_predictor, "int8": quantised}))
    if args.tiny:
        print("\n(tiny model: a functional check; these ratios say nothing about the real model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
