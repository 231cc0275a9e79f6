"""Writing scored rows: .jsonl, .csv or .parquet, atomically, or JSONL/CSV to stdout.

    write_rows(output("scored.csv"), columns, chunks)    # a temp file beside it, renamed when complete
    write_rows(output("-", "csv"), columns, chunks)      # streamed, chunk by chunk

A file is written to a temp file (or, for Ray's Parquet output, a temp folder) in the
output's folder that replaces the output only once it is complete, so a failure or Ctrl-C
never leaves a half-written output and an existing one stays as it was. Stdout cannot be
taken back: what was streamed before a failure stays streamed.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from batch.inputs import Record
from batch.rows import EVIDENCE, PROB_COLUMNS, flat_columns, flatten, input_columns, output_name

OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")
STREAM_FORMATS = (".jsonl", ".csv")  # what `--out -` can stream
STDOUT = "-"


class BadOutput(ValueError):
    """An --out (or --out-format) that cannot be written; ``str()`` is the one-line message."""


@dataclass(frozen=True)
class Output:
    path: Path | None  # None: stdout
    fmt: str  # one of OUTPUT_FORMATS

    def __str__(self) -> str:
        return "stdout" if self.path is None else str(self.path)


def output(out: str, out_format: str | None = None) -> Output:
    """The output named by --out: a file, whose extension picks its format, or ``-`` for
    stdout, in ``out_format`` (one of STREAM_FORMATS, without the dot; default jsonl)."""
    if out == STDOUT:
        return Output(None, f".{out_format or 'jsonl'}")
    if out_format is not None:
        raise BadOutput("--out-format is for --out - (stdout); the extension of a file picks its format")
    path = Path(out)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise BadOutput(f"--out {out}: unsupported format {path.suffix or '(none)'!r}; "
                        f"expected {', '.join(OUTPUT_FORMATS[:-1])} or {OUTPUT_FORMATS[-1]}")
    return Output(path, path.suffix.lower())


def check_not_an_input(out: Output, inputs: Iterable[str]) -> None:
    """Refuse an output that is one of the inputs: it would be replaced by its own scores."""
    if out.path is None:
        return
    target = out.path.resolve()
    for path in inputs:
        if Path(path).resolve() == target or (out.path.exists() and os.path.exists(path) and os.path.samefile(path, out.path)):
            raise BadOutput(f"--out {out.path} is also an input; write the output to another file")


# -- atomic files and folders ---------------------------------------------------------------
@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temp path beside ``dest`` that replaces it only if the block completes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """A temp folder beside ``dest`` that takes its place only if the block completes.

    A folder cannot replace another in one rename, so an existing ``dest`` (folder or file)
    is first renamed aside, then the new one renamed in, then the old one removed: at every
    moment ``dest`` is either the old output or the complete new one, never a half folder.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it a normal folder's mode
        old = None
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old")) / "old"
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if old is not None:
                os.rename(old, dest)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old.parent, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# -- rows -----------------------------------------------------------------------------------
def write_rows(out: Output, columns: list[str], chunks: Iterable[list[dict]], parquet_types: dict | None = None) -> int:
    """Write chunks of scored rows (with ``columns``, batch.rows.ADDED included); return the row count."""
    if out.path is None:
        return _TEXT_WRITERS[out.fmt](sys.stdout, columns, chunks)
    with atomic_path(out.path) as tmp:
        if out.fmt == ".parquet":
            return _write_parquet(tmp, columns, chunks, parquet_types or {})
        with tmp.open("w", encoding="utf-8", newline="") as f:
            return _TEXT_WRITERS[out.fmt](f, columns, chunks)


def _write_jsonl(f, columns, chunks) -> int:
    n = 0
    for chunk in chunks:
        for row in chunk:
            f.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False, default=_json_default) + "\n")
        n += len(chunk)
        f.flush()  # on stdout, a reader downstream gets each chunk as it is scored
    return n


def _write_csv(f, columns, chunks) -> int:
    n, flat = 0, flat_columns(columns)
    writer = csv.writer(f)
    writer.writerow(flat)
    for chunk in chunks:
        for row in chunk:
            row = flatten(row)
            writer.writerow([_csv_value(row.get(c)) for c in flat])
        n += len(chunk)
        f.flush()
    return n


_TEXT_WRITERS = {".jsonl": _write_jsonl, ".csv": _write_csv}


def _json_default(v):
    """Values JSON has no type for, from Parquet inputs: dates and times as ISO 8601, the
    rest (Decimal, bytes, ...) as their text."""
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return str(v)


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list, bool)):
        return json.dumps(v, ensure_ascii=False, default=_json_default)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return str(v)


# -- Parquet --------------------------------------------------------------------------------
def parquet_types(records: list[Record]) -> dict:
    """Arrow types of the input columns, inferred over the whole input so every chunk
    shares one schema. A column of mixed types (possible in JSONL) is stored as JSON text."""
    import pyarrow as pa

    types = {}
    for c in input_columns(records):
        values = [r.columns.get(c) for r in records]
        try:
            t = pa.array(values).type
            types[output_name(c)] = pa.string() if pa.types.is_null(t) else t
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            types[output_name(c)] = None  # JSON-encode
    return types


def parquet_schema(columns: list[str], types: dict):
    """The Arrow schema of a Parquet output: ``columns`` (ADDED included) flattened, with
    the input columns' ``types`` (from ``parquet_types``)."""
    import pyarrow as pa

    evidence = pa.list_(pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                                   ("weight", pa.float64())]))
    fixed = {"sentence_index": pa.int64(), EVIDENCE: evidence, **{c: pa.float64() for cs in PROB_COLUMNS.values() for c in cs}}
    return pa.schema([(c, (types[c] or pa.string()) if c in types else fixed.get(c, pa.string()))
                      for c in flat_columns(columns)])


def parquet_table(rows: list[dict], schema, types: dict):
    """Scored rows as an Arrow table with ``schema``; a mixed-type column as JSON text."""
    import pyarrow as pa

    as_json = {c for c, t in types.items() if t is None}
    rows = [flatten(r) for r in rows]
    return pa.Table.from_pydict({c: [_json_text(r.get(c)) if c in as_json else r.get(c) for r in rows]
                                 for c in schema.names}, schema=schema)


def _write_parquet(tmp: Path, columns, chunks, types: dict) -> int:
    import pyarrow.parquet as pq

    schema = parquet_schema(columns, types)
    n = 0
    with pq.ParquetWriter(str(tmp), schema) as writer:
        for chunk in chunks:
            writer.write_table(parquet_table(chunk, schema, types))
            n += len(chunk)
    return n


def _json_text(v):
    return None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=_json_default)
