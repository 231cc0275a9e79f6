"""What the benchmarks share: the project on the path, the machine's description, a model to
time (the store's, or a stand-in of the same size), and timing that is fair on a shared host.
Benchmarks are scripts, not tests: they print figures and never import the test suite."""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The articles' 160 sentences: the load of bench-score and bench-serve.
SENTENCES = ROOT / "data" / "annotations" / "sentences.jsonl"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.runtime import offline  # noqa: E402

offline()


def machine() -> str:
    """One line for every figure: the CPU model, its core count and the flags that decide
    the precision ``auto`` picks (model/precision.py)."""
    from model.precision import BF16_FLAGS, cpu_flags, cpu_model

    flags = cpu_flags()
    units = [f for f in BF16_FLAGS if f in flags] or ["none"]
    return (f"{cpu_model()}, {os.cpu_count()} cores ({platform.machine()}); bf16 matrix flags: {', '.join(units)}; "
            f"avx512f: {'avx512f' in flags}, avx2: {'avx2' in flags}")


def register_stand_in(kind: str) -> str:
    """A model in a fresh temporary store: 'minilm' (the pretrained encoder, untrained heads:
    the shipped network's size and speed, meaningless labels) or 'tiny' (a 1-layer model,
    for a functional check)."""
    home = tempfile.mkdtemp(prefix="bench_store_")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["BENTOML_HOME"] = home
    from training.config import load_config
    from training.store import register
    from training.train import build_model, load_tokenizer

    tokenizer = load_tokenizer()
    config = load_config(None, **({"encoder": "tiny"} if kind == "tiny" else {}))
    return register(build_model(config, tokenizer).eval(), tokenizer, config, {}, 0.0)


def choose_model(tag: str, tiny: bool) -> tuple[str, str]:
    """The model to time, and what it is: ``tag`` if the store has it, else a stand-in."""
    from model import store

    if tiny:
        return register_stand_in("tiny"), "the tiny 1-layer model: a FUNCTIONAL CHECK, not a speed figure"
    try:
        return store.find(tag)[1], "the trained model in the store"
    except store.ModelNotFound:
        print(f"no {tag} in the store at {store.home()}: using all-MiniLM-L6-v2 with untrained heads in a temporary "
              "store (the same network, so the same speed; meaningless labels)")
        return register_stand_in("minilm"), "pretrained all-MiniLM-L6-v2 with UNTRAINED heads (throughput only)"


def interleaved(methods: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each method in each round; the rounds go round-robin over the methods, so a
    change in the machine's load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values: list[float]) -> str:
    """median (min–max) of a list of figures."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"
