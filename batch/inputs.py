"""The inputs of `stance score` (batch/cli.py): paths expanded, files read into ``Record``s.

    records = read_inputs(expand(["exports/", "more.csv.gz"]), ReadOptions())

Formats, by extension: .txt (an article, split into sentences by model/segment.py), .jsonl,
.csv, .tsv and .parquet (one sentence per row), each also gzipped (.csv.gz, ...); ``-`` is
stdin, whose format is named by ``ReadOptions.stdin_format``. The text column is named by
``Columns`` or found among ``TEXT_COLUMNS`` in any case; so are the actor and the mention.
A text, actor or mention value passes the rule the HTTP API applies (model.items.check_text).

Bad input raises ``BadInput``, whose message names the file and the line::

    rows.jsonl:3: actor must be a string or null, got number
"""

from __future__ import annotations

import bisect
import codecs
import csv
import glob
import gzip
import io
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from model.items import BadText, check_actor, check_text
from model.segment import split_sentences

INPUT_FORMATS = (".txt", ".jsonl", ".csv", ".tsv", ".parquet")
STDIN = "-"
STDIN_NAME = "<stdin>"  # stdin in messages and in the `source` column
# The default names of the columns, tried in this order, in any case ("Sentence", "TEXT").
TEXT_COLUMNS = ("sentence", "text")
ACTOR_COLUMNS = ("actor",)
MENTION_COLUMNS = ("mention",)
# A .csv is split at whichever of these splits its header into the most columns (a tie goes
# to the first): exports from spreadsheets in many locales use ';', some use tab or '|'.
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


class BadInput(ValueError):
    """A file or row that cannot be scored. ``str()`` is the one-line message."""

    def __init__(self, path: str, problem: str, line: int | None = None, whole_file: bool = False):
        self.path, self.problem, self.line, self.whole_file = path, problem, line, whole_file
        super().__init__(f"{path}:{line}: {problem}" if line is not None else f"{path}: {problem}")

    def __reduce__(self):  # Ray's actors send these back to the driver
        return BadInput, (self.path, self.problem, self.line, self.whole_file)


@dataclass
class Record:
    """One input sentence (its actors are detected) or one (sentence, actor) pair."""

    source: str
    index: int  # sentence_index: the sentence's position in an article, the row's in a table
    line: int  # where it is in its file, for messages (a Parquet or DataFrame row: its number, from 1)
    sentence: str
    actor: str | None = None
    mention: str | None = None
    columns: dict = field(default_factory=dict)  # the input columns, values as read


@dataclass(frozen=True)
class Columns:
    """The columns to read; None: the first default name present, in any case. ``flags``
    name the options that set them, for messages (the CLI's, or score_frame's arguments)."""

    text: str | None = None
    actor: str | None = None
    mention: str | None = None
    flags: tuple[str, str, str] = ("--text-column", "--actor-column", "--mention-column")

    def resolve(self, names: Iterable, where: str, line: int | None, kind: str = "column",
                strict: bool = True) -> tuple[str, str | None, str | None]:
        """(text, actor, mention) names among ``names``. A missing text column raises; so does
        a missing actor or mention column named by an option, when ``strict`` (a header)."""
        names = [n for n in names if isinstance(n, str)]
        found = (_pick(names, self.text, TEXT_COLUMNS), _pick(names, self.actor, ACTOR_COLUMNS),
                 _pick(names, self.mention, MENTION_COLUMNS))
        if found[0] is None:
            listed = f" (found: {', '.join(names)})" if kind == "column" else ""
            if self.text is None:
                defaults = " or ".join(repr(c) for c in TEXT_COLUMNS)
                raise BadInput(where, f"no {defaults} {kind}{listed}; name the text {kind} with {self.flags[0]}", line,
                               whole_file=strict)
            raise BadInput(where, f"no {self.text!r} {kind}, named by {self.flags[0]}{listed}", line, whole_file=strict)
        for wanted, got, flag in ((self.actor, found[1], self.flags[1]), (self.mention, found[2], self.flags[2])):
            if strict and wanted is not None and got is None:
                raise BadInput(where, f"no {wanted!r} {kind}, named by {flag} (found: {', '.join(names)})", line,
                               whole_file=True)
        return found


def _pick(names: list[str], wanted: str | None, defaults: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in names else None
    by_case: dict[str, str] = {}
    for name in names:
        by_case.setdefault(name.casefold(), name)  # the first of "Sentence" and "sentence"
    return next((by_case[d] for d in defaults if d in by_case), None)


@dataclass(frozen=True)
class ReadOptions:
    columns: Columns = Columns()
    encoding: str = "utf-8"
    stdin_format: str | None = None  # "csv", ...: the format of ``-``


# -- paths ----------------------------------------------------------------------------------
def input_format(path: str, stdin_format: str | None = None) -> str:
    """".csv" for a.csv, a.CSV.gz, a Parquet dataset folder's ".parquet", stdin's --format."""
    if path == STDIN:
        return f".{stdin_format}" if stdin_format else ""
    name = path.rstrip("/").lower()
    return Path(name.removesuffix(".gz")).suffix


def display(path: str) -> str:
    return STDIN_NAME if path == STDIN else path


def expand(inputs: Iterable[str]) -> list[str]:
    """Paths as given, plus the matches of any glob the shell left unexpanded, and the
    input files of any folder, sorted (in order). A folder named *.parquet is one Parquet
    dataset (e.g. what `stance score --engine ray` writes), read as one input."""
    paths: list[str] = []
    for arg in inputs:
        if arg == STDIN:
            if STDIN in paths:
                raise BadInput(STDIN_NAME, "stdin can be read only once; give '-' once", whole_file=True)
            paths.append(arg)
            continue
        is_glob = any(c in arg for c in "*?[") and not os.path.exists(arg)
        matches = sorted(glob.glob(arg, recursive=True)) if is_glob else [arg]
        if not matches:
            raise BadInput(arg, "no file matches this pattern", whole_file=True)
        for m in matches:
            found = _folder_inputs(m) if os.path.isdir(m) and input_format(m) != ".parquet" else [m]
            paths.extend(f for f in found if f not in paths)
    return paths


def _folder_inputs(folder: str) -> list[str]:
    """The input files directly in a folder (not its subfolders), sorted; hidden ones left out."""
    found = sorted(str(p) for p in Path(folder).iterdir()
                   if input_format(p.name) in INPUT_FORMATS and not p.name.startswith(".")
                   and (p.is_file() or input_format(p.name) == ".parquet"))  # a Parquet dataset folder is one input
    if not found:
        raise BadInput(folder, f"no {_formats()} file in this folder", whole_file=True)
    return found


def _formats() -> str:
    return ", ".join(INPUT_FORMATS[:-1]) + f" or {INPUT_FORMATS[-1]}"


# -- reading --------------------------------------------------------------------------------
def read_inputs(paths: list[str], options: ReadOptions, on_bad: Callable[[BadInput], None] | None = None,
                on_skip: Callable[[str, int, str], None] | None = None) -> list[Record]:
    """The records of every path, in order. With ``on_bad``, a bad row or a file that cannot
    be used at all is passed to it and skipped; without, it is raised. ``on_skip(path, line,
    text)`` hears of each line of page furniture an article leaves out."""
    records: list[Record] = []
    for path in paths:
        try:
            records.extend(read_records(path, options, on_bad, on_skip))
        except BadInput as e:
            if on_bad is None or not e.whole_file:
                raise
            on_bad(e)
    return records


def read_records(path: str, options: ReadOptions = ReadOptions(), on_bad: Callable[[BadInput], None] | None = None,
                 on_skip: Callable[[str, int, str], None] | None = None) -> list[Record]:
    """All records of one file (``-``: stdin). A bad row goes to ``on_bad`` (or is raised);
    a file that cannot be read at all is always raised."""
    fmt, name = input_format(path, options.stdin_format), display(path)
    if fmt not in INPUT_FORMATS:
        raise BadInput(name, f"unsupported input format {fmt or '(none)'!r}; expected {_formats()} "
                             "(or any of them .gz)", whole_file=True)
    on_bad = on_bad or _raise
    if fmt == ".parquet":
        return _read_parquet(path, options.columns, on_bad)
    text = decode(name, read_bytes(path), options.encoding)
    if fmt == ".txt":
        return _read_txt(name, text, on_skip)
    if fmt == ".jsonl":
        return _read_jsonl(name, text, options.columns, on_bad)
    return _read_csv(name, text, options.columns, on_bad, "\t" if fmt == ".tsv" else None)


def _raise(error: BadInput) -> None:
    raise error


def read_bytes(path: str) -> bytes:
    """The bytes of a file (``-``: stdin), gunzipped if its name ends in .gz (stdin: if it
    starts like a gzip stream)."""
    name = display(path)
    if path == STDIN:
        data = sys.stdin.buffer.read()
        gzipped = data[:2] == b"\x1f\x8b"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise BadInput(name, f"cannot read file ({e.strerror or e})", whole_file=True) from None
        gzipped = path.lower().endswith(".gz")
    if not gzipped:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise BadInput(name, f"not a gzip file ({e})", whole_file=True) from None


def decode(name: str, data: bytes, encoding: str = "utf-8") -> str:
    """Text in ``encoding`` (UTF-8: a byte-order mark dropped); the message of an undecodable
    byte names its line, and for UTF-8 the option that reads other encodings."""
    utf8 = codecs.lookup(encoding).name == "utf-8"
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        what = "UTF-8" if utf8 else encoding
        hint = "; name its encoding with --encoding, e.g. --encoding cp1252" if utf8 else ""
        raise BadInput(name, f"not {what} text (byte 0x{data[e.start]:02x}){hint}", line, whole_file=True) from None


def _read_txt(name: str, text: str, on_skip) -> list[Record]:
    spans = split_sentences(text, on_skip=(lambda line, skipped: on_skip(name, line, skipped)) if on_skip else None)
    if not spans:
        raise BadInput(name, "no sentences in this article", whole_file=True)
    # Line starts as the segmenter counts lines (str.splitlines), so its line numbers and ours agree.
    starts, pos = [], 0
    for line in text.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    return [Record(name, i, bisect.bisect_right(starts, s.start), s.text, columns={"sentence": s.text})
            for i, s in enumerate(spans)]


def _read_jsonl(name: str, text: str, columns: Columns, on_bad) -> list[Record]:
    records = []
    for line_no, line in enumerate(jsonl_lines(text), 1):
        try:
            if not line.strip():
                raise BadInput(name, "empty row", line_no)
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(name, f"malformed JSON ({e.msg} at column {e.colno})", line_no) from None
            if not isinstance(row, dict):
                raise BadInput(name, f"expected a JSON object, got {type(row).__name__}", line_no)
            if not row:
                raise BadInput(name, "empty row", line_no)
            names = columns.resolve(row, name, line_no, kind="field", strict=False)
            records.append(make_record(name, line_no - 1, line_no, row, names))
        except BadInput as e:
            on_bad(e)
    return records


def jsonl_lines(text: str) -> list[str]:
    """Lines split at \\n only: str.splitlines() would also split at U+2028 and other
    separators that a JSON string may legally contain."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def sniff_delimiter(header_line: str) -> str:
    """The one of DELIMITERS that splits the header row into the most columns."""
    widths = [len(next(csv.reader([header_line], delimiter=d), [])) for d in DELIMITERS]
    return DELIMITERS[widths.index(max(widths))]


def _read_csv(name: str, text: str, columns: Columns, on_bad, delimiter: str | None) -> list[Record]:
    delimiter = delimiter or sniff_delimiter(text.split("\n", 1)[0])
    old_limit = csv.field_size_limit(2**31 - 1)  # a cell may hold a whole article (default cap: 128 KiB)
    try:
        return _csv_records(name, csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), columns, on_bad,
                            delimiter)
    finally:
        csv.field_size_limit(old_limit)


def _csv_records(name: str, reader, columns: Columns, on_bad, delimiter: str) -> list[Record]:
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise BadInput(name, f"malformed CSV ({e})", 1, whole_file=True) from None
    if not header:
        raise BadInput(name, "empty file, expected a header row naming the columns", 1, whole_file=True)
    try:
        names = columns.resolve(header, name, 1)
    except BadInput as e:
        if len(header) > 1 or _pick(header, columns.text, TEXT_COLUMNS):
            raise
        # No text column in a header of one: perhaps the file is separated by something we do not sniff.
        raise BadInput(name, f"{e.problem}; the header is one column when split at any of "
                             f"{', '.join(DELIMITER_NAMES.values())}", 1, whole_file=True) from None
    records, index, start = [], -1, reader.line_num + 1
    while True:
        line_no = start  # where the record starts: a quoted field may span lines
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            values = BadInput(name, f"malformed CSV ({e})", line_no)
        start, index = reader.line_num + 1, index + 1
        try:
            if isinstance(values, BadInput):
                raise values
            if not any(v.strip() for v in values):
                raise BadInput(name, "empty row", line_no)
            if len(values) != len(header):
                raise BadInput(name, f"expected {len(header)} fields ({DELIMITER_NAMES[delimiter]}-separated), "
                                     f"got {len(values)}", line_no)
            records.append(make_record(name, index, line_no, dict(zip(header, values)), names, empty_is_null=True))
        except BadInput as e:
            on_bad(e)
    return records


def _read_parquet(path: str, columns: Columns, on_bad) -> list[Record]:
    """Rows of a Parquet file (or dataset folder); the "line" of a message is the row number,
    from 1. Values keep their Arrow types, as Python values (int, float, datetime, dict, ...)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = display(path)
    # Compressed or piped: read into memory; a file or dataset folder: read by Arrow itself.
    source = pa.BufferReader(read_bytes(path)) if path == STDIN or path.lower().endswith(".gz") else path
    try:
        if isinstance(source, str) and not os.path.isdir(source):
            Path(source).open("rb").close()  # a missing file gets the same message as other formats
        table = pq.read_table(source)
    except OSError as e:
        raise BadInput(name, f"cannot read file ({e.strerror or e})", whole_file=True) from None
    except (pa.ArrowException, ValueError) as e:
        raise BadInput(name, f"not a Parquet file ({e})", whole_file=True) from None
    return records_from_rows(name, table.column_names, (row for b in table.to_batches() for row in b.to_pylist()),
                             columns, on_bad)


def records_from_rows(name: str, header: list, rows: Iterable[dict], columns: Columns,
                      on_bad: Callable[[BadInput], None] | None = None) -> list[Record]:
    """Records of typed rows sharing one header (a Parquet table, a DataFrame); a row's
    "line" is its number, from 1."""
    names = columns.resolve(header, name, None)
    records = []
    for index, row in enumerate(rows):
        try:
            records.append(make_record(name, index, index + 1, row, names))
        except BadInput as e:
            (on_bad or _raise)(e)
    return records


def make_record(name: str, index: int, line: int, row: dict, names: tuple[str, str | None, str | None],
                empty_is_null: bool = False) -> Record:
    """A record of one row, its values checked by the API's rule. ``empty_is_null``: an
    empty actor or mention cell means none (CSV cannot say null)."""
    text, actor_column, mention_column = names
    sentence = row.get(text)
    _check(name, line, text, sentence, lambda v: check_text(v, None, nullable=False))
    actor = _value(row, actor_column, empty_is_null)
    _check(name, line, actor_column, actor, check_actor)
    # A mention says where the given actor is; without an actor the actors are detected.
    mention = _value(row, mention_column, empty_is_null) if actor is not None else None
    _check(name, line, mention_column, mention, lambda v: check_text(v, None, nullable=True))
    return Record(name, index, line, sentence, actor, mention, columns=row)


def _value(row: dict, column: str | None, empty_is_null: bool):
    value = row.get(column) if column is not None else None
    return None if empty_is_null and value == "" else value


def _check(name: str, line: int, column: str | None, value, rule) -> None:
    """``rule(value)`` (model/items.py: the HTTP API's rules), its BadText as this row's BadInput."""
    try:
        rule(value)
    except BadText as e:
        raise BadInput(name, f"{column} {e}", line) from None
