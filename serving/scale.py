"""The Ray engine of `stance score`: the same scoring, spread over a pool of Ray actors.

    stance score exports/ --out scored.parquet --engine ray             # a local Ray instance, one actor per core
    stance score exports/ --out scored.parquet --engine ray --ray-address auto   # the cluster of `ray start`
    pip install -e '.[scale]'                                            # Ray itself is an optional extra

A run, step by step:

1. The driver (this process) reads and validates every input with
   ``serving.batch.read_records``, exactly as the local engine does: the same messages
   with file and line, the same --skip-bad. Reading is not distributed on purpose: it
   parses tens of thousands of rows a second, the model scores about 100 pairs a second
   per core, so reading is never the bottleneck. The cost is memory: the driver holds every
   record (roughly 1 KB per sentence with its input columns, plus a pickled copy in Ray's
   object store, so a few GB for a few million sentences); split a bigger input into
   several runs.
2. The records go into Ray Data in chunks of --batch-size x BATCHES_PER_CALL records,
   exactly the chunks the local engine hands to the predictor, one chunk per Ray row,
   pickled: input columns may hold any JSON value, which Arrow would coerce into one type.
   Each actor call thus sees the batches the local engine sees, so the two engines' outputs
   are equal, row for row.
3. ``map_batches(ScoreActor, compute=ActorPoolStrategy(size=workers))``: each actor (one
   CPU, one torch thread) builds the one ``Predictor`` once and scores chunks with
   ``serving.batch.score_records``, the code the local engine runs. Ray keeps the input
   order (``preserve_order``), and the driver checks it.
4. The model travels with the job, not through a disk: the driver resolves the tag in the
   BentoML store, reads the model's folder once and ``ray.put``s it once; every actor gets
   that one object, writes it to a temp folder, ``Predictor.load``s it (labels checked as
   always) and deletes the folder. Workers need neither the store nor a shared disk.
5. Output: ``.parquet`` is a folder with one file per chunk, ``part-000000.parquet``, ...
   (name order is input order), written by the actors themselves, in parallel, into a temp
   folder beside --out that is renamed into place once complete; only the counts come back
   to the driver. ``.jsonl`` and ``.csv`` are one file: the rows stream back to the driver
   in order (``iter_batches``) into the local engine's atomic writer, so memory stays
   bounded, but every row passes through the driver; for very large outputs, write Parquet.
   On a cluster, a Parquet --out must be on a file system every node sees (an actor that
   cannot find the temp folder fails the run, rather than writing elsewhere).

Why the actors write Parquet, not Ray's ``write_parquet``: its write tasks need a CPU, and
the actors hold every CPU, so they ran only once scoring had ended, with the whole output
waiting in the object store (measured: all 20 files written in the last 0.3 s of a 14.6 s
run); write tasks with a fraction of a CPU each started a worker process per task (14 on
2 cores) and ran 2.5x slower.
"""

from __future__ import annotations

import logging
import pickle
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from serving.batch import Record, atomic_dir, parquet_schema, parquet_table, score_records, write_rows
from serving.store import get_model

RAY_MISSING = "--engine ray needs Ray: pip install -e '.[scale]'"
# The actors' environment, also on a cluster whose nodes were started without it: no hub
# access, no tokenizer threads on top of the actors, and OpenMP threads that sleep instead
# of spinning (spinning threads made a forward pass 35x slower on a busy host, see serve.py).
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
              "OMP_WAIT_POLICY": "PASSIVE"}


class RayMissing(RuntimeError):
    pass


class RayUnavailable(RuntimeError):
    """Ray could not be started or joined (not an OSError: that would read as a write error)."""


def require_ray() -> None:
    """Fail with one line naming the extra if Ray (with Ray Data) is not installed."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(RAY_MISSING) from None


def load_model_files(tag: str) -> tuple[dict[str, bytes], str]:
    """The model's folder as {relative path: bytes}, read from the store once, and its full
    tag. The labels are checked here too, so a wrong model fails before Ray starts."""
    from model.predictor import read_meta

    bento_model = get_model(tag)
    root = Path(bento_model.path)
    read_meta(root)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return files, str(bento_model.tag)


def part_name(chunk: int) -> str:
    """The Parquet file of one chunk: zero-padded, so name order is input order."""
    return f"part-{chunk:06d}.parquet"


class ScoreActor:
    """One actor of the pool: loads the predictor once, then scores chunks of records.

    For each chunk it returns one row: its index, its pairs and sentences without an actor,
    its row count, and either its output rows, pickled (for .jsonl/.csv, written by the
    driver), or nothing, having written them itself to ``folder/part-NNNNNN.parquet``."""

    def __init__(self, model, tag: str, batch_size: int, parquet: tuple | None = None):
        import ray
        import torch

        from model.predictor import Predictor

        # torch would start one thread per core of the node; the actor was given num_cpus.
        torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        files = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        with tempfile.TemporaryDirectory(prefix="stance_model_") as tmp:
            for name, data in files.items():
                path = Path(tmp, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            self.predictor = Predictor.load(tmp, tag=tag, batch_size=batch_size)
        self.parquet = parquet  # (folder, schema, types) or None

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = {"chunk": [], "rows": [], "n_rows": [], "pairs": [], "no_actor": []}
        for i, blob in zip(batch["chunk"].to_pylist(), batch["records"].to_pylist()):
            rows, pairs, no_actor = score_records(self.predictor, pickle.loads(blob))
            if self.parquet:
                folder, schema, types = self.parquet
                pq.write_table(parquet_table(rows, schema, types), str(Path(folder, part_name(i))))
            for key, value in (("chunk", i), ("rows", None if self.parquet else pickle.dumps(rows, protocol=5)),
                               ("n_rows", len(rows)), ("pairs", pairs), ("no_actor", no_actor)):
                out[key].append(value)
        return pa.table({**out, "rows": pa.array(out["rows"], pa.large_binary())})


class RayRun:
    """One `stance score --engine ray` run. Once it has run, ``workers`` is the size of the
    actor pool and ``startup`` the seconds it took to start (or join) Ray."""

    def __init__(self, files: dict[str, bytes], tag: str, *, batch_size: int, chunk: int,
                 address: str | None = None, workers: int | None = None):
        self.files, self.tag, self.batch_size, self.chunk = files, tag, batch_size, chunk
        self.address, self.wanted = address, workers
        self.workers, self.startup = 0, 0.0

    def score(self, records: list[Record], out: Path, columns: list[str], types: dict | None, stats: dict) -> int:
        """Score ``records`` into ``out`` (replaced only once complete); return the row count."""
        chunks = [records[i : i + self.chunk] for i in range(0, len(records), self.chunk)]
        if out.suffix.lower() == ".parquet":
            with atomic_dir(out) as tmp:
                with self._session():  # ends (and stops the actors) before a failed run's folder is removed
                    parquet = (str(tmp.resolve()), parquet_schema(columns, types), types)
                    return sum(n for _, n in self._results(self._dataset(chunks, parquet), chunks, stats))
        with self._session():
            return write_rows(out, columns, (rows for rows, _ in self._results(self._dataset(chunks), chunks, stats)), None)

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Ray, quiet: a new local instance sized to this machine, or the cluster at
        ``address``. A Ray already initialised in this process (the tests') is used as it is."""
        import ray
        import ray.data

        own = not ray.is_initialized()
        start = time.perf_counter()
        if own:
            # "local": a new instance, not the last one `ray start` left on this machine.
            options = {"address": self.address} if self.address else {"address": "local", "include_dashboard": False}
            # Ray's INFO lines and the workers' output would bury the progress bar; errors
            # still reach the driver as exceptions, and the logs are in /tmp/ray/session_latest.
            try:
                ray.init(**options, logging_level=logging.ERROR, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"join Ray at {self.address}" if self.address else "start a local Ray instance"
                raise RayUnavailable(f"cannot {where}: {e}") from None
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output rows in input order, like the local engine
        context.enable_progress_bars = False  # ours, below, counts sentences and pairs
        context.enable_auto_log_stats = False
        self.startup = time.perf_counter() - start
        try:
            yield
        finally:
            if own:
                ray.shutdown()

    def _dataset(self, chunks: list[list[Record]], parquet: tuple | None = None):
        import pyarrow as pa
        import ray
        import ray.data

        blocks = [pa.table({"chunk": [i], "records": pa.array([pickle.dumps(c, protocol=5)], pa.large_binary())})
                  for i, c in enumerate(chunks)]
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # More actors than chunks would each load the model for nothing.
        self.workers = max(1, min(self.wanted or cpus, len(chunks)))
        model = ray.put(self.files)  # once; every actor reads this one object
        return ray.data.from_arrow(blocks).map_batches(
            ScoreActor, fn_constructor_args=(model, self.tag, self.batch_size, parquet),
            batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1)

    def _results(self, ds, chunks: list[list[Record]], stats: dict) -> Iterator[tuple[list[dict] | None, int]]:
        """(rows or None, row count) of each chunk, in input order, with a progress bar like
        the local engine's."""
        from tqdm import tqdm

        start, due = time.perf_counter(), 0
        # The bar moves only once a first chunk is scored, after the actors have started.
        print(f"Ray: starting {self.workers} worker{'s' * (self.workers != 1)}, each loading the model", file=sys.stderr)
        # delay: Ray prints a line of its own as the actors start; let it pass before the bar.
        with tqdm(total=sum(map(len, chunks)), desc="scoring", unit="sentence", file=sys.stderr, mininterval=0.5,
                  delay=1) as bar:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                for i, blob, n_rows, pairs, no_actor in zip(*(batch[c].to_pylist() for c in
                                                              ("chunk", "rows", "n_rows", "pairs", "no_actor"))):
                    if i != due:  # a guard on preserve_order: rows out of order would be silently wrong
                        raise RuntimeError(f"Ray returned chunk {i} where chunk {due} was due")
                    due += 1
                    stats["pairs"] += pairs
                    stats["no_actor"] += no_actor
                    bar.update(len(chunks[i]))
                    bar.set_postfix_str(f"{stats['pairs'] / (time.perf_counter() - start):.0f} pairs/s", refresh=False)
                    yield (None if blob is None else pickle.loads(blob)), n_rows
