"""Readers and writers of the batch-scoring CLI (`stance score`, see serving/cli.py).

Inputs become ``Record``s (one sentence, or one sentence with its actor); scored rows are
written to .jsonl, .csv or .parquet through a temp file in the output's folder that
replaces the output only once it is complete, so a failure or Ctrl-C never leaves a
half-written file and an existing output stays as it was.

Bad input raises ``BadInput``, whose message names the file and the line::

    scored.jsonl, line 3: malformed JSON (Expecting value at column 1)
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from model.labels import SENTIMENT, STANCE
from model.segment import split_sentences

INPUT_FORMATS = (".txt", ".jsonl", ".csv")
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
    """Paths as given, plus the matches of any glob the shell left unexpanded (in order)."""
    paths: list[str] = []
    for arg in inputs:
        is_glob = any(c in arg for c in "*?[") and not os.path.exists(arg)
        matches = sorted(glob.glob(arg, recursive=True)) if is_glob else [arg]
        if not matches:
            raise BadInput(arg, "no file matches this pattern", whole_file=True)
        paths.extend(m for m in matches if m not in paths)
    return paths


def read_records(path: str, on_bad: Callable[[BadInput], None] | None = None) -> list[Record]:
    """All records of one file. With ``on_bad``, a bad row is passed to it and skipped;
    without, it is raised. A file that cannot be read at all is always raised."""
    suffix = Path(path).suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise BadInput(path, f"unsupported input format {suffix or '(none)'!r}; expected .txt, .jsonl or .csv", whole_file=True)
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
                f.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
                n += 1
    return n


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list, bool)):
        return json.dumps(v, ensure_ascii=False)
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


def _write_parquet(tmp: Path, columns, chunks, types: dict) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fixed = {"sentence_index": pa.int64(), **{c: pa.float64() for cs in PROB_COLUMNS.values() for c in cs}}
    flat = flat_columns(columns)
    schema = pa.schema([(c, (types[c] or pa.string()) if c in types else fixed.get(c, pa.string())) for c in flat])
    as_json = {c for c, t in types.items() if t is None}
    n = 0
    with pq.ParquetWriter(str(tmp), schema) as writer:
        for chunk in chunks:
            rows = [flatten(r) for r in chunk]
            data = {c: [_json_text(r.get(c)) if c in as_json else r.get(c) for r in rows] for c in flat}
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            n += len(rows)
    return n


def _json_text(v):
    return None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


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
