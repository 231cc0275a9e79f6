"""Training speed: fp32 against bf16 autocast, side by side in one run.

    make bench-train                                 # 30 steps each, 2 rounds
    python benchmarks/bench_train.py --steps 30 --repeats 2

Each run is `training.train.fit` as `make train` runs it (every layer fine-tuned, the
defaults of training/defaults.yaml) on the real training set, stopped after --steps optimiser
steps. A step's time is read inside the loop, between consecutive optimiser updates (forward,
backward and update of one batch; the first step is left out), so the set-up both precisions
share does not dilute the ratio. The rounds alternate the two precisions, so a change in the
machine's load hits both alike. bf16 is fast only on a CPU with bf16 matrix units (the flags
printed on the first line).
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import interleaved, machine, spread


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Time training steps in fp32 and in bf16 autocast.")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the two precisions (default: %(default)s)")
    args = parser.parse_args(argv)

    import torch

    from training.config import load_config
    from training.data import load_sets, training_set
    from training import train

    print(f"machine: {machine()}")
    sets, tokenizer = load_sets(), train.load_tokenizer()
    configs = {p: load_config(None, precision=p, max_steps=args.steps) for p in ("fp32", "bf16")}
    data = training_set(configs["fp32"], sets.pairs, sets)
    print(f"{len(data)} training pairs; {args.steps} steps of batch {configs['fp32'].batch_size}; "
          f"torch {torch.__version__}, {configs['fp32'].threads} threads; {args.repeats} rounds")
    stamps: list[float] = []
    optimise = train._optimise

    def timed(*args, **kwargs):  # the loop's own clock: one stamp per optimiser update
        optimise(*args, **kwargs)
        stamps.append(time.perf_counter())

    train._optimise = timed
    steps: dict[str, list[float]] = {p: [] for p in configs}

    def run(p):
        stamps.clear()
        train.fit(configs[p], data, tokenizer, desc=p)
        steps[p].append(statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])))

    interleaved({p: (lambda p=p: run(p)) for p in configs}, args.repeats)
    for p, seconds in steps.items():
        print(f"{p:<6} seconds per step, median of each run: {spread(seconds)}")
    ratios = [f / b for f, b in zip(steps["fp32"], steps["bf16"])]
    print(f"fp32 / bf16 step time = {statistics.median(ratios):.2f}   (rounds: {min(ratios):.2f}–{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
