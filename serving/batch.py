"""Readers and writers of the batch-scoring CLI (`stance score`, see serving/cli.py).

Inputs (.txt, .jsonl, .csv, .parquet, or folders of them) become ``Record``s (one
sentence, or one sentence with its actor); ``score_records`` scores a chunk of them with the
one predictor, for both engines (local, and Ray in serving/scale.py). Scored rows are
written to .jsonl, .csv or .parquet through a temp file (or, for Ray's Parquet output, a
temp folder) in the output's folder that replaces the output only once it is complete, so
a failure or Ctrl-C never leaves a half-written output and an existing one stays as it was.

Bad input raises ``BadInput``, whose message names the file and the line::

    scored.jsonl, line 3: malformed JSON (Expecting value at column 1)
"""

from __future__ import annotations

import csv
import datetime
import glob
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from model.labels import SENTIMENT, STANCE
from model.segment import split_sentences

INPUT_FORMATS = (".txt", ".jsonl", ".csv", ".parquet")
OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")

# The columns `stance score` adds, in this order, after the input columns.
ADDED = ("source", "sentence_index", "actor", "mention", "affiliation", "stance", "stance_probs",
         "sentiment", "sentiment_probs", "model")
# In CSV and Parquet each _probs column becomes one column per label, in the fixed label order.
PROB_COLUMNS = {"stance_probs": [f"stance_{label}" for label in STANCE],
                "sentiment_probs": [f"sentiment_{label}" for label in SENTIMENT]}
# An input column with one of these names is kept, unchanged, as input_<name>.
RESERVED = set(ADDED) | {c for cols in PROB_COLUMNS.values() for c in cols}


class BadInput(ValueError):
    """A file or row that cannot be scored. ``str()`` is the one-line message."""

    def __init__(self, path: str, problem: str, line: int | None = None, whole_file: bool = False):
        self.path, self.problem, self.line, self.whole_file = path, problem, line, whole_file
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


@dataclass
class Record:
    """One input sentence (its actors are detected) or one (sentence, actor) pair."""

    source: str
    index: int  # sentence_index: the sentence's position in an article, the record's in a table
    sentence: str
    actor: str | None = None
    mention: str | None = None
    columns: dict = field(default_factory=dict)  # the input columns, values as read


# -- inputs ---------------------------------------------------------------------------------
def expand(inputs: Iterable[str]) -> list[str]:
    """Paths as given, plus the matches of any glob the shell left unexpanded, and the
    input files of any folder, sorted (in order). A folder named *.parquet is one Parquet
    dataset (e.g. what `stance score --engine ray` writes), read as one input."""
    paths: list[str] = []
    for arg in inputs:
        is_glob = any(c in arg for c in "*?[") and not os.path.exists(arg)
        matches = sorted(glob.glob(arg, recursive=True)) if is_glob else [arg]
        if not matches:
            raise BadInput(arg, "no file matches this pattern", whole_file=True)
        for m in matches:
            found = _folder_inputs(m) if os.path.isdir(m) and not m.rstrip("/").lower().endswith(".parquet") else [m]
            paths.extend(f for f in found if f not in paths)
    return paths


def _folder_inputs(folder: str) -> list[str]:
    """The input files directly in a folder (not its subfolders), sorted; hidden ones left out."""
    found = sorted(str(p) for p in Path(folder).iterdir()
                   if p.suffix.lower() in INPUT_FORMATS and not p.name.startswith(".")
                   and (p.is_file() or p.suffix.lower() == ".parquet"))  # a Parquet dataset folder is one input
    if not found:
        raise BadInput(folder, "no .txt, .jsonl, .csv or .parquet file in this folder", whole_file=True)
    return found


def read_records(path: str, on_bad: Callable[[BadInput], None] | None = None) -> list[Record]:
    """All records of one file. With ``on_bad``, a bad row is passed to it and skipped;
    without, it is raised. A file that cannot be read at all is always raised."""
    suffix = Path(path).suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise BadInput(path, f"unsupported input format {suffix or '(none)'!r}; expected .txt, .jsonl, .csv or .parquet",
                       whole_file=True)
    if suffix == ".parquet":
        return _read_parquet(path, on_bad or _raise)
    text = _read_text(path)
    reader = {".txt": _read_txt, ".jsonl": _read_jsonl, ".csv": _read_csv}[suffix]
    return reader(path, text, on_bad or _raise)


def _raise(error: BadInput) -> None:
    raise error


def _read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(path, f"cannot read file ({e.strerror or e})", whole_file=True) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(path, "not UTF-8 text", line=data[: e.start].count(b"\n") + 1, whole_file=True) from None


def _read_txt(path: str, text: str, on_bad) -> list[Record]:
    spans = split_sentences(text)
    if not spans:
        raise BadInput(path, "no sentences in this article", whole_file=True)
    return [Record(path, i, s.text, columns={"sentence": s.text}) for i, s in enumerate(spans)]


def _read_jsonl(path: str, text: str, on_bad) -> list[Record]:
    records = []
    for line_no, line in enumerate(_lines(text), 1):
        try:
            if not line.strip():
                raise BadInput(path, "empty row", line_no)
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(path, f"malformed JSON ({e.msg} at column {e.colno})", line_no) from None
            if not isinstance(row, dict):
                raise BadInput(path, f"expected a JSON object, got {type(row).__name__}", line_no)
            if not row:
                raise BadInput(path, "empty row", line_no)
            records.append(_record(path, line_no - 1, line_no, row, "field"))
        except BadInput as e:
            on_bad(e)
    return records


def _lines(text: str) -> list[str]:
    """Lines split at \\n only: str.splitlines() would also split at U+2028 and other
    separators that a JSON string may legally contain."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def _read_csv(path: str, text: str, on_bad) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise BadInput(path, f"malformed CSV ({e})", 1, whole_file=True) from None
    if not header:
        raise BadInput(path, "empty file, expected a header row with a 'sentence' column", 1, whole_file=True)
    if "sentence" not in header:
        raise BadInput(path, f"no 'sentence' column in the header (found: {', '.join(header)})", 1, whole_file=True)
    records, index, start = [], -1, reader.line_num + 1
    while True:
        line_no = start  # where the record starts: a quoted field may span lines
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            values = BadInput(path, f"malformed CSV ({e})", line_no)
        start, index = reader.line_num + 1, index + 1
        try:
            if isinstance(values, BadInput):
                raise values
            if not any(v.strip() for v in values):
                raise BadInput(path, "empty row", line_no)
            if len(values) != len(header):
                raise BadInput(path, f"expected {len(header)} fields, got {len(values)}", line_no)
            records.append(_record(path, index, line_no, dict(zip(header, values)), "column"))
        except BadInput as e:
            on_bad(e)
    return records


def _read_parquet(path: str, on_bad) -> list[Record]:
    """Rows of a Parquet file (or dataset folder); the "line" of a message is the row number,
    from 1. Values keep their Arrow types, as Python values (int, float, datetime, dict, ...)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if not os.path.isdir(path):
            Path(path).open("rb").close()  # a missing file gets the same message as other formats
        table = pq.read_table(path)
    except OSError as e:
        raise BadInput(path, f"cannot read file ({e.strerror or e})", whole_file=True) from None
    except (pa.ArrowException, ValueError) as e:
        raise BadInput(path, f"not a Parquet file ({e})", whole_file=True) from None
    if "sentence" not in table.column_names:
        raise BadInput(path, f"no 'sentence' column (found: {', '.join(table.column_names)})", whole_file=True)
    records, index = [], 0
    for batch in table.to_batches():
        for row in batch.to_pylist():
            try:
                if row["sentence"] is None:  # a null cell: JSONL's "" or CSV's empty cell
                    raise BadInput(path, "empty sentence", index + 1)
                records.append(_record(path, index, index + 1, row, "column"))
            except BadInput as e:
                on_bad(e)
            index += 1
    return records


def _record(path: str, index: int, line_no: int, row: dict, kind: str) -> Record:
    if "sentence" not in row:
        raise BadInput(path, f"no 'sentence' {kind}", line_no)
    sentence = row["sentence"]
    if not isinstance(sentence, str):
        raise BadInput(path, f"'sentence' is {type(sentence).__name__}, expected text", line_no)
    if not sentence.strip():
        raise BadInput(path, "empty sentence", line_no)
    actor = _text(row.get("actor"))
    # A mention names where the given actor is; without an actor the actors are detected.
    mention = _text(row.get("mention")) if actor else None
    return Record(path, index, sentence, actor, mention, columns=row)


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# -- output rows ----------------------------------------------------------------------------
def input_columns(records: Iterable[Record]) -> list[str]:
    """The union of the input columns, in first-seen order ('sentence' is in every record)."""
    seen: dict = {}
    for r in records:
        seen.update(dict.fromkeys(r.columns))
    return list(seen)


def output_name(column: str) -> str:
    return f"input_{column}" if column in RESERVED else column


def scored_rows(record: Record, result: dict) -> list[dict]:
    """One row per (sentence, actor) pair, or one with an empty actor for a sentence with none."""
    base = {output_name(k): v for k, v in record.columns.items()}
    base.setdefault("sentence", record.sentence)
    common = {"source": record.source, "sentence_index": record.index}
    tail = {"sentiment": result["sentiment"], "sentiment_probs": result["sentiment_probs"], "model": result["model"]}
    no_actor = {"actor": None, "mention": None, "affiliation": None, "stance": None, "stance_probs": None}
    return [{**base, **common, **a, **tail} for a in result["actors"]] or [{**base, **common, **no_actor, **tail}]


def score_records(predictor, records: list[Record],
                  progress: Callable[[int], None] | None = None) -> tuple[list[dict], int, int]:
    """Score one chunk of records: (its output rows, in order; its pairs; its sentences without
    an actor). Both engines call this on the same chunks, so their outputs are equal."""
    from model.predictor import Item

    results = predictor.predict([Item(r.sentence, r.actor, r.mention) for r in records], progress=progress)
    rows = [row for r, res in zip(records, results) for row in scored_rows(r, res)]
    return rows, sum(len(res["actors"]) for res in results), sum(not res["actors"] for res in results)


def flat_columns(columns: list[str]) -> list[str]:
    out = []
    for c in columns:
        out.extend(PROB_COLUMNS.get(c, [c]))
    return out


def flatten(row: dict) -> dict:
    """The _probs objects as one value per label column (None for a row without an actor)."""
    out = {}
    for k, v in row.items():
        if k in PROB_COLUMNS:
            labels = STANCE if k == "stance_probs" else SENTIMENT
            out.update({c: (v or {}).get(label) for c, label in zip(PROB_COLUMNS[k], labels)})
        else:
            out[k] = v
    return out


# -- writing --------------------------------------------------------------------------------
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


def write_rows(dest: Path, columns: list[str], chunks: Iterable[list[dict]], parquet_types: dict | None = None) -> int:
    """Write chunks of scored rows (with ``columns``, ADDED included) atomically; return the row count."""
    fmt = dest.suffix.lower()
    with atomic_path(dest) as tmp:
        if fmt == ".jsonl":
            return _write_jsonl(tmp, columns, chunks)
        if fmt == ".csv":
            return _write_csv(tmp, columns, chunks)
        return _write_parquet(tmp, columns, chunks, parquet_types or {})


def _write_jsonl(tmp: Path, columns, chunks) -> int:
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for chunk in chunks:
            for row in chunk:
                f.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False, default=_json_default) + "\n")
                n += 1
    return n


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


def _write_csv(tmp: Path, columns, chunks) -> int:
    n, flat = 0, flat_columns(columns)
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(flat)
        for chunk in chunks:
            for row in chunk:
                row = flatten(row)
                writer.writerow([_csv_value(row.get(c)) for c in flat])
                n += 1
    return n


def parquet_types(records: list[Record]) -> dict:
    """Arrow types of the input columns, inferred over the whole input so every chunk
    shares one schema. A column of mixed types (possible in JSONL) is stored as JSON text."""
    import pyarrow as pa

    types = {}
    for c in input_columns(records):
        values = [r.columns.get(c, r.sentence if c == "sentence" else None) for r in records]
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

    fixed = {"sentence_index": pa.int64(), **{c: pa.float64() for cs in PROB_COLUMNS.values() for c in cs}}
    return pa.schema([(c, (types[c] or pa.string()) if c in types else fixed.get(c, pa.string())) for c in flat_columns(columns)])


def parquet_table(rows: list[dict], schema, types: dict):
    """Scored rows as an Arrow table with ``schema``; a mixed-type column as JSON text."""
    import pyarrow as pa

    as_json = {c for c, t in types.items() if t is None}
    rows = [flatten(r) for r in rows]
    return pa.Table.from_pydict({c: [_json_text(r.get(c)) if c in as_json else r.get(c) for r in rows] for c in schema.names},
                                schema=schema)


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


# -- reading scored files (for `stance report`) ---------------------------------------------
def read_scored(path: str) -> list[dict]:
    """Rows of a file written by `stance score`, in any of its formats."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise BadInput(path, f"unsupported format {suffix or '(none)'!r}; expected .jsonl, .csv or .parquet", whole_file=True)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except OSError as e:
            raise BadInput(path, f"cannot read file ({e})", whole_file=True) from None
    text = _read_text(path)
    if suffix == ".csv":
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text, newline=""))]
    rows = []
    for line_no, line in enumerate(_lines(text), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadInput(path, f"malformed JSON ({e.msg} at column {e.colno})", line_no) from None
    return rows
