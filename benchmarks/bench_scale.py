"""`stance score` on Ray (a local instance on this machine) against the local engine, side by
side on the same input: throughput, Ray's fixed start-up cost, the input size from which Ray
pays off here, and a paper extrapolation to N workers.

    make bench-scale                                        # stance_classifier:latest in $BENTOML_HOME
    python benchmarks/bench_scale.py --min-pairs 2000 --repeats 1   # a quicker run
    python benchmarks/bench_scale.py --tiny --min-pairs 300 --repeats 1   # functional check, tiny model

Input: ``build_input`` of bench_score.py (the annotated sentences, repeated with a suffix
until the registry finds --min-pairs pairs in them), and a small input, its first tenth, to
separate the fixed cost from the per-pair cost. Ray gets work in chunks of --batch-size x 16
sentences, one chunk per actor call (the local engine's predictor calls); an actor pool is
never larger than the number of chunks, so the small input (usually one chunk) runs on one
actor, and a large input of few chunks leaves actors idle in its last round.

Every run is a subprocess, ``python -m batch.cli score INPUT --out OUT [--engine ray]``,
timed from start to exit: Ray's cost is mostly start-up (``ray.init``, worker processes,
each actor importing torch and loading the model), which an in-process run would hide
after the first time or share with the local engine's imports. Each engine's time is fitted
as ``fixed + pairs / rate`` from the small and the large input (best of --repeats, the runs
interleaved so a change in the machine's load hits both engines alike); Ray pays off above
``(fixed_ray - fixed_local) / (1/rate_local - 1/rate_ray)`` pairs, if its rate is higher.

The extrapolation to N single-core workers multiplies the measured per-worker rate, capped
by what the driver does alone, measured here too: reading and validating the input and
pickling it into chunks (every format), and unpickling and writing every row (.jsonl/.csv
only; Parquet is written by the workers).

Without a trained model in the store the runs use all-MiniLM-L6-v2 with untrained heads (the
same network, so the same speed); --tiny uses the 1-layer test model (a functional check:
its figures say nothing about the real model).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import build_input  # noqa: E402
from common import ROOT, choose_model, interleaved  # noqa: E402

WORKERS_ON_PAPER = (2, 8, 32)


def cli_run(input_path: Path, out: Path, tag: str, batch_size: int, engine: str, workers: int, log: dict):
    """A callable that runs one `stance score` subprocess and keeps its last stderr line."""
    command = [sys.executable, "-m", "batch.cli", "score", str(input_path), "--out", str(out), "--model", tag,
               "--batch-size", str(batch_size), "--engine", engine]
    if engine == "ray":
        command += ["--workers", str(workers)]

    def run():
        done = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        log[out.name] = done.stderr.strip().splitlines()[-1]

    return run


def fit(small: tuple[int, float], large: tuple[int, float]) -> tuple[float, float | None]:
    """(fixed seconds, pairs/s) of time = fixed + pairs / rate, through two (pairs, seconds);
    the rate is None if the large run was not slower (noise: a tiny model, a tiny input)."""
    (n1, t1), (n2, t2) = small, large
    if t2 <= t1:
        return t1, None
    rate = (n2 - n1) / (t2 - t1)
    return max(0.0, t1 - n1 / rate), rate


def _num(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.1f}"


def driver_ceilings(input_path: Path, local_out: Path, chunk: int, n_pairs: int) -> dict[str, float]:
    """Pairs/s the driver alone can sustain: reading + pickling the input; unpickling + writing rows."""
    from batch.inputs import read_records
    from batch.rows import input_columns, output_name
    from batch.scored import read_scored
    from batch.writers import output, write_rows

    start = time.perf_counter()
    records = read_records(str(input_path))
    blobs = [pickle.dumps(records[i : i + chunk], protocol=5) for i in range(0, len(records), chunk)]
    read = time.perf_counter() - start

    rows, _ = read_scored(str(local_out))
    columns = [output_name(c) for c in input_columns(records)]
    columns += [c for c in rows[0] if c not in columns]
    blob = pickle.dumps(rows, protocol=5)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_rows(output(str(Path(tmp) / "rows.jsonl")), columns, [pickle.loads(blob)])
        funnel = time.perf_counter() - start
    del blobs
    return {"read": n_pairs / read, "funnel": n_pairs / funnel}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stance_classifier:latest", help="model tag in $BENTOML_HOME")
    parser.add_argument("--tiny", action="store_true", help="use the 1-layer test model (functional check only)")
    parser.add_argument("--min-pairs", type=int, default=5000, help="the large input: annotated sentences repeated "
                                                                    "up to this many pairs")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the runs; each one's best time is kept")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Ray actors, one CPU each "
                                                                                  "(default: this machine's CPUs)")
    parser.add_argument("--batch-size", type=int, default=32, help="forward batch size, the same for both engines")
    parser.add_argument("--format", choices=("parquet", "jsonl", "csv"), default="parquet",
                        help="output format (parquet: Ray's workers write it; jsonl/csv: through the driver)")
    args = parser.parse_args(argv)

    tag, what = choose_model(args.model, args.tiny)

    import ray

    from batch.scoring import BATCHES_PER_CALL
    from model.store import find

    model_path, tag = find(tag)
    model_mb = sum(p.stat().st_size for p in model_path.rglob("*") if p.is_file()) / 2**20
    chunk = args.batch_size * BATCHES_PER_CALL
    log: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        tmp = Path(tmp)
        small_in, large_in = tmp / "small.jsonl", tmp / "large.jsonl"
        large_sentences, large_pairs = build_input(large_in, args.min_pairs)
        small_sentences, small_pairs = _head(large_in, small_in, len(large_sentences) // 10)
        print(f"model {tag} ({what}), {model_mb:.0f} MB; ray {ray.__version__}; {os.cpu_count()} CPUs; "
              f"Ray workers {args.workers}; batch size {args.batch_size} ({chunk} sentences per chunk); "
              f"output .{args.format}; best of {args.repeats}")
        chunks = -(-len(large_sentences) // chunk)
        used = min(args.workers, chunks)
        print(f"inputs: small {len(small_sentences)} sentences / {small_pairs} pairs, "
              f"large {len(large_sentences)} sentences / {large_pairs} pairs, in {chunks} chunk(s) over {used} Ray "
              f"worker(s)\n")

        runs = {(engine, size): cli_run(path, tmp / f"{engine}_{size}.{args.format}", tag, args.batch_size, engine,
                                        args.workers, log)
                for size, path in (("small", small_in), ("large", large_in)) for engine in ("local", "ray")}
        times = {name: min(t) for name, t in interleaved(runs, args.repeats).items()}  # best of the rounds
        ceilings = driver_ceilings(large_in, tmp / f"local_large.{args.format}", chunk, large_pairs)
        equal = _same_output(tmp / f"local_large.{args.format}", tmp / f"ray_large.{args.format}")

    pairs = {"small": small_pairs, "large": large_pairs}
    fits = {e: fit((small_pairs, times[e, "small"]), (large_pairs, times[e, "large"])) for e in ("local", "ray")}
    print(f"{'engine':<22}{'small s':>9}{'large s':>9}{'pairs/s (large)':>17}{'fixed s':>9}{'pairs/s (fit)':>15}")
    for engine, name in (("local", "local engine"), ("ray", f"ray, {used} worker(s)")):
        fixed, rate = fits[engine]
        print(f"{name:<22}{times[engine, 'small']:>9.1f}{times[engine, 'large']:>9.1f}"
              f"{pairs['large'] / times[engine, 'large']:>17.1f}{fixed:>9.1f}{_num(rate, 15)}")
    print("\nthe CLI's own summary lines, large input:\n  " + "\n  ".join(log[f"{e}_large.{args.format}"] for e in ("local", "ray")))
    (f_local, r_local), (f_ray, r_ray) = fits["local"], fits["ray"]
    ray_up = re.search(r"Ray up in ([\d.]+)s", log.get(f"ray_small.{args.format}", ""))
    print(f"\nRay's fixed start-up cost: {f_ray - f_local:.1f} s over the local engine's {f_local:.1f} s"
          + (f" (ray.init {float(ray_up.group(1)):.1f} s; the rest is starting the actors, each importing torch and "
             f"loading the model)" if ray_up else ""))
    if r_local is None or r_ray is None:
        print("break-even: not measurable: the large input's extra pairs took no more time than the noise; "
              "use a larger --min-pairs")
    elif r_ray > r_local:
        print(f"break-even: Ray pays off above {(f_ray - f_local) / (1 / r_local - 1 / r_ray):,.0f} pairs on this machine")
    else:
        print("break-even: never on this machine (Ray's per-pair rate is not higher than the local engine's)")
    print(f"large outputs equal, row for row: {equal}")

    # Without a fitted rate (noise), the end-to-end rate of the large run: pessimistic, start-up included.
    per_worker = (r_ray or pairs["large"] / times["ray", "large"]) / used
    print(f"\nOn paper, N single-core workers at the measured {per_worker:.1f} pairs/s each"
          f"{'' if r_ray else ' (end to end: no fitted rate)'}, for 1 million pairs:")
    print(f"{'N':>4}{'ideal pairs/s':>15}{'.parquet pairs/s':>18}{'.jsonl/.csv pairs/s':>21}{'hours (.parquet)':>18}")
    for n in WORKERS_ON_PAPER:
        ideal = n * per_worker
        parquet = min(ideal, ceilings["read"])  # capped by the driver's reading
        funnel = min(parquet, ceilings["funnel"])  # and by its writing
        print(f"{n:>4}{ideal:>15.0f}{parquet:>18.0f}{funnel:>21.0f}{(f_ray + 1e6 / parquet) / 3600:>18.2f}")
    print(f"""
What limits it:
- model load per actor: every actor imports torch and loads its own copy ({model_mb:.0f} MB, shipped once
  through Ray's object store, then copied to each node); start-up stays ~{f_ray:.0f} s (here) as N grows,
  as the actors start in parallel, but each holds the model in memory (plan ~1 GB per worker).
- the driver reads, validates and pickles every input row alone: {ceilings['read']:,.0f} pairs/s here, so
  past ~{ceilings['read'] / per_worker:,.0f} workers reading would be the bottleneck (and the driver holds every record).
- .jsonl/.csv: every row comes back through the driver to one file: {ceilings['funnel']:,.0f} pairs/s here
  (~{ceilings['funnel'] / per_worker:,.0f} workers); Parquet is written by the workers, without that funnel.
- object-store traffic per chunk is small (pickled records in, counts or pickled rows out).""")
    if args.tiny:
        print("\n(tiny model: a functional check; these figures say nothing about the real model)")
    return 0


def _head(source: Path, dest: Path, n: int) -> tuple[list[str], int]:
    """The first ``n`` rows of a build_input file, and their pairs."""
    import json

    from model.actors import load_registry

    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[: max(1, n)]
    dest.write_text("".join(lines), encoding="utf-8")
    sentences = [json.loads(line)["sentence"] for line in lines]
    registry = load_registry()
    return sentences, sum(len(registry.find(s)) for s in sentences)


def _same_output(a: Path, b: Path) -> str:
    from batch.scored import read_scored

    (rows_a, _), (rows_b, _) = read_scored(str(a)), read_scored(str(b))
    same = sum(x == y for x, y in zip(rows_a, rows_b))
    return "yes" if same == len(rows_a) == len(rows_b) else f"NO ({same} of {len(rows_a)} rows equal)"


if __name__ == "__main__":
    sys.exit(main())
