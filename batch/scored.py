"""Reading the files `stance score` wrote, for `stance report` (batch/report.py).

    rows, lines = read_scored("scored.csv")   # each row, and its line in the file, for messages

.jsonl, .csv or .parquet (a file, or the folder --engine ray writes), each also .gz. An
empty CSV cell reads as None, as the writer wrote None.
"""

from __future__ import annotations

import csv
import io
import json

from batch.inputs import BadInput, decode, input_format, jsonl_lines, read_bytes
from batch.writers import OUTPUT_FORMATS


def read_scored(path: str) -> tuple[list[dict], list[int]]:
    fmt = input_format(path)
    if fmt not in OUTPUT_FORMATS:
        raise BadInput(path, f"unsupported format {fmt or '(none)'!r}; expected {', '.join(OUTPUT_FORMATS[:-1])} "
                             f"or {OUTPUT_FORMATS[-1]}", whole_file=True)
    if fmt == ".parquet":
        return _read_parquet(path)
    text = decode(path, read_bytes(path))
    if fmt == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows, lines, start = [], [], 2
        for row in reader:
            rows.append({k: (v if v != "" else None) for k, v in row.items()})
            lines.append(start)
            start = reader.line_num + 1
        return rows, lines
    rows, lines = [], []
    for line_no, line in enumerate(jsonl_lines(text), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadInput(path, f"malformed JSON ({e.msg} at column {e.colno})", line_no) from None
            lines.append(line_no)
    return rows, lines


def _read_parquet(path: str) -> tuple[list[dict], list[int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pa.BufferReader(read_bytes(path)) if path.lower().endswith(".gz") else path
    try:
        rows = pq.read_table(source).to_pylist()
    except OSError as e:
        raise BadInput(path, f"cannot read file ({e})", whole_file=True) from None
    except (pa.ArrowException, ValueError) as e:
        raise BadInput(path, f"not a Parquet file ({e})", whole_file=True) from None
    return rows, list(range(1, len(rows) + 1))
