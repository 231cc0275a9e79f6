"""The Ray engine of `stance score`: the same scoring, spread over a pool of Ray actors.

    stance score exports/ --out scored.parquet --engine ray             # a local Ray instance, one actor per core
    stance score exports/ --out scored.parquet --engine ray --ray-address auto   # the cluster of `ray start`
    pip install -e '.[scale]'                                            # Ray itself is an optional extra

A run, step by step:

1. The driver (this process) reads and validates every input with batch/inputs.py, exactly
   as the local engine does: the same messages with file and line, the same --skip-bad.
   Reading is not distributed on purpose: it parses tens of thousands of rows a second, the
   model scores about 100 pairs a second per core, so reading is never the bottleneck. The
   cost is memory: the driver holds every record (roughly 1 KB per sentence with its input
   columns, plus a pickled copy in Ray's object store, so a few GB for a few million
   sentences); split a bigger input into several runs.
2. The records go into Ray Data in ``batch.scoring.chunks``, exactly the chunks the local
   engine hands to the predictor, one chunk per Ray row, pickled: input columns may hold any
   JSON value, which Arrow would coerce into one type. Each actor call thus sees the batches
   the local engine sees, so the two engines' outputs are equal, row for row.
3. ``map_batches(ScoreActor, compute=ActorPoolStrategy(size=workers))``: each actor (one
   CPU, one torch thread) builds the one ``Predictor`` once and scores chunks with
   ``batch.scoring.score_records``, the code the local engine runs. A row that fails comes
   back as a ``BadInput``; the driver stops on it, or skips it (--skip-bad). Ray keeps the
   input order (``preserve_order``), and the driver checks it.
4. The model travels with the job, not through a disk: the driver finds the tag in the
   store (model/store.py), reads the model's folder once and ``ray.put``s it once; every
   actor gets that one object, writes it to a temp folder, ``Predictor.load``s it (labels
   checked, --precision and --backend resolved on the actor's own CPU) and deletes the folder. Workers
   need neither the store nor a shared disk.
5. Output: ``.parquet`` is a folder with one file per chunk, ``part-000000.parquet``, ...
   (name order is input order), written by the actors themselves, in parallel, into a temp
   folder beside --out that is renamed into place once complete; only the counts come back
   to the driver. ``.jsonl`` and ``.csv`` (a file, or stdout) stream back to the driver in
   order (``iter_batches``) into the local engine's writer, so memory stays bounded, but
   every row passes through the driver; for very large outputs, write Parquet. On a
   cluster, a Parquet --out must be on a file system every node sees (an actor that cannot
   find the temp folder fails the run, rather than writing elsewhere).

Why the actors write Parquet, not Ray's ``write_parquet``: its write tasks need a CPU, and
the actors hold every CPU, so they ran only once scoring had ended, with the whole output
waiting in the object store (measured: all 20 files written in the last 0.3 s of a 14.6 s
run); write tasks with a fraction of a CPU each started a worker process per task (14 on
2 cores) and ran 2.5x slower.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from batch.inputs import BadInput, Record
from batch.scoring import Scored, Tally, chunks, score_records
from batch.writers import Output, atomic_dir, parquet_schema, parquet_table, write_rows
from model.runtime import ENV, OPENMP

RAY_MISSING = "--engine ray needs Ray: pip install -e '.[scale]'"
# The actors' environment, also on a cluster whose nodes were started without it: no hub
# access, no tokenizer threads on top of the actors, and OpenMP threads that sleep instead
# of spinning between requests (model/runtime.py).
WORKER_ENV = {**ENV, **OPENMP}
RESULT_COLUMNS = ("chunk", "rows", "n_rows", "pairs", "no_actor", "failures", "choice")


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
    from model.artifact import read_meta
    from model.store import find

    root, resolved = find(tag)
    read_meta(root)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return files, resolved


def part_name(chunk: int) -> str:
    """The Parquet file of one chunk: zero-padded, so name order is input order."""
    return f"part-{chunk:06d}.parquet"


class ScoreActor:
    """One actor of the pool: loads the predictor once, then scores chunks of records.

    For each chunk it returns one row of RESULT_COLUMNS: its index; its output rows, pickled
    (for .jsonl/.csv, written by the driver), or nothing, having written them itself to
    ``folder/part-NNNNNN.parquet``; its counts; its failed rows, pickled; its predictor's
    ``choice`` of precision and backend."""

    def __init__(self, model, tag: str, batch_size: int, precision: str, backend: str, parquet: tuple | None = None,
                 explain: bool = False):
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
            self.predictor = Predictor.load(tmp, tag=tag, batch_size=batch_size, precision=precision, backend=backend)
        self.parquet = parquet  # (folder, schema, types) or None
        self.explain = explain

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = {c: [] for c in RESULT_COLUMNS}
        for i, blob in zip(batch["chunk"].to_pylist(), batch["records"].to_pylist()):
            scored = score_records(self.predictor, pickle.loads(blob), self.explain)
            if self.parquet:
                folder, schema, types = self.parquet
                pq.write_table(parquet_table(scored.rows, schema, types), str(Path(folder, part_name(i))))
            values = (i, None if self.parquet else pickle.dumps(scored.rows, protocol=5), len(scored.rows),
                      scored.pairs, scored.no_actor, pickle.dumps(scored.failures, protocol=5), self.predictor.choice)
            for column, value in zip(RESULT_COLUMNS, values):
                out[column].append(value)
        return pa.table({**out, "rows": pa.array(out["rows"], pa.large_binary()),
                         "failures": pa.array(out["failures"], pa.large_binary())})


class RayRun:
    """One `stance score --engine ray` run. Once it has run, ``workers`` is the size of the
    actor pool, ``startup`` the seconds it took to start (or join) Ray and ``choice`` the
    precision and backend of the first actor."""

    def __init__(self, files: dict[str, bytes], tag: str, *, batch_size: int, precision: str = "auto",
                 backend: str = "auto", address: str | None = None, workers: int | None = None, explain: bool = False):
        self.files, self.tag, self.batch_size, self.precision, self.backend = files, tag, batch_size, precision, backend
        self.explain = explain
        self.address, self.wanted = address, workers
        self.workers, self.startup, self.choice = 0, 0.0, ""

    def score(self, records: list[Record], out: Output, columns: list[str], types: dict | None, tally: Tally,
              on_bad: Callable[[BadInput], None]) -> int:
        """Score ``records`` into ``out`` (a file replaced only once complete); return the row count."""
        parts = chunks(records, self.batch_size)
        if out.fmt == ".parquet":
            with atomic_dir(out.path) as tmp:
                with self._session():  # ends (and stops the actors) before a failed run's folder is removed
                    parquet = (str(tmp.resolve()), parquet_schema(columns, types), types)
                    return sum(n for _, n in self._results(self._dataset(parts, parquet), parts, tally, on_bad))
        with self._session():
            results = self._results(self._dataset(parts), parts, tally, on_bad)
            return write_rows(out, columns, (rows for rows, _ in results))

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
        context.enable_progress_bars = False  # ours (batch.scoring.Tally) counts sentences and pairs
        context.enable_auto_log_stats = False
        self.startup = time.perf_counter() - start
        try:
            yield
        finally:
            if own:
                ray.shutdown()

    def _dataset(self, parts: list[list[Record]], parquet: tuple | None = None):
        import pyarrow as pa
        import ray
        import ray.data

        blocks = [pa.table({"chunk": [i], "records": pa.array([pickle.dumps(c, protocol=5)], pa.large_binary())})
                  for i, c in enumerate(parts)]
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # More actors than chunks would each load the model for nothing.
        self.workers = max(1, min(self.wanted or cpus, len(parts)))
        model = ray.put(self.files)  # once; every actor reads this one object
        return ray.data.from_arrow(blocks).map_batches(
            ScoreActor, fn_constructor_args=(model, self.tag, self.batch_size, self.precision, self.backend, parquet,
                                             self.explain),
            batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1)

    def _results(self, ds, parts: list[list[Record]], tally: Tally,
                 on_bad: Callable[[BadInput], None]) -> Iterator[tuple[list[dict] | None, int]]:
        """(rows or None, row count) of each chunk, in input order. The progress bar starts
        with the first chunk back, once the actors have loaded the model."""
        due = 0
        tally.write(f"Ray: starting {self.workers} worker{'s' * (self.workers != 1)}, each loading the model")
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for i, blob, n_rows, pairs, no_actor, failures, choice in zip(
                    *(batch[c].to_pylist() for c in RESULT_COLUMNS)):
                if i != due:  # a guard on preserve_order: rows out of order would be silently wrong
                    raise RuntimeError(f"Ray returned chunk {i} where chunk {due} was due")
                due += 1
                for failure in pickle.loads(failures):
                    on_bad(failure)
                tally.add(Scored(pairs=pairs, no_actor=no_actor), len(parts[i]))
                if tally.bar is None:
                    self.choice = choice
                    tally.write(f"model {self.tag} on Ray: {choice}")
                    tally.start(initial=len(parts[i]))
                yield (None if blob is None else pickle.loads(blob)), n_rows
