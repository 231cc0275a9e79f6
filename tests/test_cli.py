"""`stance score` through typer's CliRunner, with the tiny model in a temporary BentoML store
(the `tiny_store` fixture sets BENTOML_HOME; the `score` fixture runs in tmp_path). The tiny
model's labels are noise, so these tests check rows, columns and messages, not predictions.
Messages are part of the interface: they are compared word for word."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from helpers import ARTICLE, ARTICLE_SENTENCES, read_out, write, write_csv, write_jsonl
from typer.testing import CliRunner

from batch.cli import app
from model.labels import SENTIMENT, STANCE

STANCE_COLS = [f"stance_{s}" for s in STANCE]
SENTIMENT_COLS = [f"sentiment_{s}" for s in SENTIMENT]
ADDED_FLAT = ["source", "sentence_index", "actor", "mention", "affiliation", "stance", *STANCE_COLS,
              "sentiment", *SENTIMENT_COLS, "model"]
HINT = "; use --skip-bad to skip it"
# For runs whose outputs are compared: `auto` chooses by the CPU and by timing at load.
SAME = ["--precision", "fp32", "--backend", "torch"]

runner = CliRunner()


def pairs(rows):
    return [(r["sentence"], r["actor"] or None) for r in rows]


# -- formats --------------------------------------------------------------------------------
@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
def test_txt_article_is_split_and_its_actors_detected(score, tmp_path, tiny_store, out):
    name = write(tmp_path / "article.txt", ARTICLE)
    result = score(name, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / out)
    expected = [(i, s, a) for i, (s, actors) in enumerate(ARTICLE_SENTENCES) for a in (actors or [None])]
    assert [(int(r["sentence_index"]), r["sentence"], r["actor"] or None) for r in rows] == expected
    assert {r["source"] for r in rows} == {name}
    assert {r["model"] for r in rows} == {tiny_store}
    lavrov = next(r for r in rows if r["actor"] == "Sergey Lavrov")
    assert (lavrov["mention"], lavrov["affiliation"]) == ("Lavrov", "Russia")
    assert lavrov["stance"] in STANCE and lavrov["sentiment"] in SENTIMENT
    if out.endswith(".jsonl"):
        assert list(rows[0]) == ["sentence", "source", "sentence_index", "actor", "mention", "affiliation", "stance",
                                 "stance_probs", "sentiment", "sentiment_probs", "model"]
        assert list(lavrov["stance_probs"]) == list(STANCE) and list(lavrov["sentiment_probs"]) == list(SENTIMENT)
        assert abs(sum(lavrov["stance_probs"].values()) - 1) < 1e-3
        assert rows[0]["stance_probs"] is None and rows[0]["stance"] is None  # the sentence without an actor
    else:
        assert list(rows[0]) == ["sentence", *ADDED_FLAT]
        assert abs(sum(float(lavrov[c]) for c in STANCE_COLS) - 1) < 1e-3
        assert abs(sum(float(lavrov[c]) for c in SENTIMENT_COLS) - 1) < 1e-3
        assert rows[0]["stance_support"] in ("", None) and rows[0]["sentiment_neutral"] not in ("", None)
    assert "pairs/s" in result.stderr  # the progress bar shows the rate


@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
def test_csv_rows_keep_their_columns_and_an_explicit_actor_is_scored(score, tmp_path, out):
    name = write_csv(tmp_path / "export.csv", [
        ["id", "sentence", "actor", "mention", "stance", "desk"],
        ["a1", "Zelensky rejected any deal made without Ukraine.", "Zelensky", "", "oppose", "kyiv"],
        ["a2", "Lavrov praised the talks, and Rubio agreed.", "", "", "", "moscow"],
        ["a3", "Sánchez said little about the talks.", "Pedro Sánchez", "Sánchez", "", ""],
    ])
    result = score(name, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / out)
    # Input columns first, as they were; those named like an added column get an input_ prefix.
    assert list(rows[0])[:6] == ["id", "sentence", "input_actor", "input_mention", "input_stance", "desk"]
    assert [(r["id"], r["actor"], r["mention"], r["affiliation"] or None) for r in rows] == [
        ("a1", "Volodymyr Zelensky", "Zelensky", "Ukraine"),  # the explicit actor only, not Ukraine
        ("a2", "Sergey Lavrov", "Lavrov", "Russia"),  # an empty actor cell: detected
        ("a2", "Marco Rubio", "Rubio", "United States"),
        ("a3", "Pedro Sánchez", "Sánchez", None),  # a free-text actor outside the registry
    ]
    assert [r["input_actor"] for r in rows] == ["Zelensky", "", "", "Pedro Sánchez"]
    assert [r["input_stance"] for r in rows] == ["oppose", "", "", ""]
    assert [int(r["sentence_index"]) for r in rows] == [0, 1, 1, 2]
    assert {r["source"] for r in rows} == {"export.csv"}


@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
def test_jsonl_rows_keep_their_values(score, tmp_path, out):
    name = write_jsonl(tmp_path / "rows.jsonl", [
        {"sentence": "Putin welcomed the talks.", "n": 7, "meta": {"desk": "a"}},
        {"sentence": "Nobody spoke.", "n": 8, "meta": {"desk": "b"}, "actor": None, "mention": "ignored without actor"}])
    result = score(name, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / out)
    assert pairs(rows) == [("Putin welcomed the talks.", "Vladimir Putin"), ("Nobody spoke.", None)]
    if out.endswith(".csv"):
        assert [(r["n"], r["meta"]) for r in rows] == [("7", '{"desk": "a"}'), ("8", '{"desk": "b"}')]
    else:  # JSON and Parquet keep the types
        assert [(r["n"], r["meta"]) for r in rows] == [(7, {"desk": "a"}), (8, {"desk": "b"})]
    assert rows[1]["input_mention"] == "ignored without actor"


def test_several_inputs_and_a_glob(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    write(tmp_path / "b.txt", "Rubio met Lavrov.\n")
    write_csv(tmp_path / "c.csv", [["sentence"], ["Trump spoke."]])
    result = score("*.txt", "c.csv", "--out", "out.jsonl")  # the glob quoted, as from a Makefile
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / "out.jsonl")
    assert list(dict.fromkeys(r["source"] for r in rows)) == ["a.txt", "b.txt", "c.csv"]
    assert [r["actor"] for r in rows if r["source"] != "a.txt"] == ["Marco Rubio", "Sergey Lavrov", "Donald Trump"]


def test_parquet_input_keeps_its_types_and_a_folder_expands_sorted(score, tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sentence": ["Putin welcomed the talks.", "Sánchez said little."],
                             "actor": [None, "Pedro Sánchez"], "n": [1, 2],
                             "when": [datetime.datetime(2025, 2, 18, 9, 30), None]}), tmp_path / "p.parquet")
    (tmp_path / "exports").mkdir()
    write_csv(tmp_path / "exports" / "b.csv", [["sentence"], ["Trump spoke."]])
    write(tmp_path / "exports" / "a.jsonl", '{"sentence": "Rubio spoke."}\n')
    (tmp_path / "exports" / "c.tsv.gz").write_bytes(gzip.compress(b"sentence\nPutin spoke.\n"))
    write(tmp_path / "exports" / "notes.md", "not an input")  # other files, hidden files and subfolders are left out
    write(tmp_path / "exports" / ".draft.csv", "sentence\nDraft.\n")
    (tmp_path / "exports" / "old").mkdir()
    result = score("p.parquet", "exports", "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / "out.jsonl")
    assert [(r["source"], r["sentence_index"], r["actor"]) for r in rows] == [
        ("p.parquet", 0, "Vladimir Putin"), ("p.parquet", 1, "Pedro Sánchez"),
        ("exports/a.jsonl", 0, "Marco Rubio"), ("exports/b.csv", 0, "Donald Trump"),
        ("exports/c.tsv.gz", 0, "Vladimir Putin")]
    assert [(r["n"], r["when"]) for r in rows[:2]] == [(1, "2025-02-18T09:30:00"), (2, None)]  # JSON has no datetime

    assert score("p.parquet", "--out", "out.parquet").exit_code == 0
    assert [(r["n"], r["when"]) for r in read_out(tmp_path / "out.parquet")] == [
        (1, datetime.datetime(2025, 2, 18, 9, 30)), (2, None)]  # Parquet keeps the Arrow types


# -- columns, compression, stdin, delimiters, encodings ---------------------------------------
def test_default_columns_are_found_in_any_case(score, tmp_path):
    write_csv(tmp_path / "t.csv", [["ID", "Text", "ACTOR", "Mention"],
                                   ["1", "Zelensky rejected the deal, and Rubio agreed.", "Rubio", "Rubio"],
                                   ["2", "Lavrov praised the talks.", "", ""]])
    write_jsonl(tmp_path / "s.jsonl", [{"Sentence": "Trump spoke.", "Actor": None}])
    result = score("t.csv", "s.jsonl", "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / "out.jsonl")
    assert [(r.get("Text") or r.get("Sentence"), r["actor"], r["mention"]) for r in rows] == [
        ("Zelensky rejected the deal, and Rubio agreed.", "Marco Rubio", "Rubio"),  # the given actor only
        ("Lavrov praised the talks.", "Sergey Lavrov", "Lavrov"),
        ("Trump spoke.", "Donald Trump", "Trump")]
    # The input columns keep their names: none is named exactly like an added column.
    assert list(rows[0])[:4] == ["ID", "Text", "ACTOR", "Mention"]


def test_columns_named_by_options(score, tmp_path):
    write_csv(tmp_path / "t.csv", [["sentence", "body", "who", "where"],
                                   ["a headline", "Zelensky rejected the deal, and Rubio agreed.", "Ukraine", "Zelensky"]])
    result = score("t.csv", "--out", "out.jsonl", "--text-column", "body", "--actor-column", "who",
                   "--mention-column", "where")
    assert result.exit_code == 0, result.output
    [row] = read_out(tmp_path / "out.jsonl")
    assert (row["body"], row["actor"], row["mention"], row["sentence"]) == (
        "Zelensky rejected the deal, and Rubio agreed.", "Ukraine", "Zelensky", "a headline")


COLUMN_ERRORS = {
    "no default text column": (["id", "body"], [], "t.csv:1: no 'sentence' or 'text' column (found: id, body); "
                                                   "name the text column with --text-column" + HINT),
    "named text column missing": (["id", "body"], ["--text-column", "Body"],
                                  "t.csv:1: no 'Body' column, named by --text-column (found: id, body)" + HINT),
    "named actor column missing": (["sentence", "actor"], ["--actor-column", "who"],
                                   "t.csv:1: no 'who' column, named by --actor-column (found: sentence, actor)" + HINT),
    "named mention column missing": (["sentence"], ["--mention-column", "where"],
                                     "t.csv:1: no 'where' column, named by --mention-column (found: sentence)" + HINT),
    "one-column header": (["sentence:actor"], [],
                          "t.csv:1: no 'sentence' or 'text' column (found: sentence:actor); name the text column with "
                          "--text-column; the header is one column when split at any of ',', ';', tab, '|'" + HINT),
}


@pytest.mark.parametrize("case", list(COLUMN_ERRORS))
def test_column_errors(score, tmp_path, case):
    header, options, message = COLUMN_ERRORS[case]
    write_csv(tmp_path / "t.csv", [header, ["x"] * len(header)])
    result = score("t.csv", "--out", "out.csv", *options)
    assert (result.exit_code, result.stderr) == (1, f"error: {message}\n")


def test_a_jsonl_row_without_its_text_field(score, tmp_path):
    write_jsonl(tmp_path / "r.jsonl", [{"sentence": "Putin spoke."}, {"body": "Trump spoke."}])
    result = score("r.jsonl", "--out", "out.csv")
    assert result.stderr == "error: r.jsonl:2: no 'sentence' or 'text' field; name the text field with --text-column" \
                            + HINT + "\n"
    result = score("r.jsonl", "--out", "out.csv", "--text-column", "body")
    assert result.stderr == "error: r.jsonl:1: no 'body' field, named by --text-column" + HINT + "\n"


@pytest.mark.parametrize("name", ["a.txt", "r.jsonl", "r.csv", "r.tsv", "r.parquet"])
def test_gzipped_inputs_read_as_the_plain_ones(score, tmp_path, name):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table({"sentence": ["Putin spoke.", "Rubio met Lavrov."]}), plain)
    else:
        write(plain, {".txt": ARTICLE, ".jsonl": '{"sentence": "Putin spoke."}\n{"sentence": "Rubio met Lavrov."}\n',
                      ".csv": "sentence,id\nPutin spoke.,1\nRubio met Lavrov.,2\n",
                      ".tsv": "sentence\tid\nPutin spoke.\t1\nRubio met Lavrov.\t2\n"}[plain.suffix])
    (tmp_path / f"{name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
    assert score(name, "--out", "plain.jsonl", *SAME).exit_code == 0
    result = score(f"{name}.gz", "--out", "gz.jsonl", *SAME)
    assert result.exit_code == 0, result.output
    expected = [{**r, "source": f"{name}.gz"} for r in read_out(tmp_path / "plain.jsonl")]
    assert read_out(tmp_path / "gz.jsonl") == expected and len(expected) >= 2


def test_a_gz_that_is_not_gzip(score, tmp_path):
    write(tmp_path / "r.csv.gz", "sentence\nPutin spoke.\n")
    result = score("r.csv.gz", "--out", "out.csv")
    assert result.stderr == "error: r.csv.gz: not a gzip file (Not a gzipped file (b'se'))" + HINT + "\n"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt", "parquet"])
def test_stdin_with_format(score, tmp_path, fmt):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {"csv": b"sentence\nPutin spoke.\n", "jsonl": b'{"sentence": "Putin spoke."}\n', "txt": b"Putin spoke.\n"}
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.table({"sentence": ["Putin spoke."]}), buffer)
        data["parquet"] = buffer.getvalue()
    result = runner.invoke(app, ["score", "-", "--format", fmt, "--out", "out.jsonl", *SAME], input=data[fmt])
    assert result.exit_code == 0, result.output
    [row] = read_out(tmp_path / "out.jsonl")
    assert (row["source"], row["sentence"], row["actor"]) == ("<stdin>", "Putin spoke.", "Vladimir Putin")
    # Gzipped stdin is recognised by its first bytes.
    assert runner.invoke(app, ["score", "-", "--format", fmt, "--out", "gz.jsonl", *SAME],
                         input=gzip.compress(data[fmt])).exit_code == 0
    assert read_out(tmp_path / "gz.jsonl") == [row]


@pytest.fixture
def run(tiny_store, tmp_path, monkeypatch):
    """`stance <args>` in tmp_path, without the --model that the `score` fixture appends."""
    monkeypatch.chdir(tmp_path)
    return lambda *args, **kwargs: runner.invoke(app, list(map(str, args)), **kwargs)


@pytest.mark.parametrize("args, message", [
    (["-", "--out", "o.csv"], "reading stdin (-) needs --format"),
    (["a.txt", "--format", "csv", "--out", "o.csv"], "--format is for stdin (-); a file's extension names its format"),
    (["-", "-", "--format", "csv", "--out", "o.csv"], None),
    (["a.txt", "--out", "o.csv", "--encoding", "klingon"], "--encoding klingon: unknown encoding"),
    (["a.txt", "--out", "o.csv", "--precision", "fp16"], "--precision fp16: expected one of auto, fp32, bf16, int8"),
    (["a.txt", "--out", "o.xlsx"], "--out o.xlsx: unsupported format '.xlsx'; expected .jsonl, .csv or .parquet"),
    (["a.txt", "--out", "o.csv", "--out-format", "csv"],
     "--out-format is for --out - (stdout); the extension of a file picks its format"),
    (["a.txt", "--out", "o.csv", "--workers", "2"], "--workers is for --engine ray; the local engine scores in this process"),
])
def test_wrong_options_exit_2_with_one_line(run, tmp_path, args, message):
    write(tmp_path / "a.txt", ARTICLE)
    result = run("score", *args)
    if message is None:  # stdin twice: an input error, exit 1
        assert (result.exit_code, result.stderr) == (1, "error: <stdin>: stdin can be read only once; give '-' once\n")
    else:
        assert (result.exit_code, result.stderr) == (2, f"error: {message}\n")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("name, delimiter", [("semi.csv", ";"), ("tab.csv", "\t"), ("pipe.csv", "|"), ("t.tsv", "\t")])
def test_delimiters_are_sniffed_from_the_header(score, tmp_path, name, delimiter):
    # The rows hold the other delimiters too: only the header decides.
    write_csv(tmp_path / name, [["id", "sentence", "actor"], ["1", "Putin spoke; Rubio, too|", ""],
                                ["2", "Lavrov\tspoke.", "Sergey Lavrov"]], delimiter)
    result = score(name, "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["sentence"], r["actor"]) for r in read_out(tmp_path / "out.jsonl")] == [
        ("1", "Putin spoke; Rubio, too|", "Vladimir Putin"), ("1", "Putin spoke; Rubio, too|", "Marco Rubio"),
        ("2", "Lavrov\tspoke.", "Sergey Lavrov")]


def test_a_row_of_another_width_names_the_delimiter(score, tmp_path):
    write(tmp_path / "t.csv", "sentence;id\nPutin spoke;1;2\n")
    result = score("t.csv", "--out", "out.csv")
    assert result.stderr == "error: t.csv:2: expected 2 fields (';'-separated), got 3" + HINT + "\n"


def test_encoding(score, tmp_path):
    (tmp_path / "w.csv").write_bytes("sentence\nSánchez praised the talks – “useful”.\n".encode("cp1252"))
    result = score("w.csv", "--out", "out.jsonl")
    assert result.stderr == ("error: w.csv:2: not UTF-8 text (byte 0xe1); name its encoding with --encoding, "
                             "e.g. --encoding cp1252" + HINT + "\n")
    result = score("w.csv", "--out", "out.jsonl", "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert [r["sentence"] for r in read_out(tmp_path / "out.jsonl")] == ["Sánchez praised the talks – “useful”."]
    (tmp_path / "x.txt").write_bytes(b"Putin spoke.\n\x81\n")  # 0x81 is not a cp1252 character
    result = score("x.txt", "--out", "out.jsonl", "--encoding", "cp1252")
    assert result.stderr == "error: x.txt:2: not cp1252 text (byte 0x81)" + HINT + "\n"


# -- outputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs", [["same.csv"], ["*.csv"], ["."]])
def test_an_output_that_is_an_input_is_refused(score, tmp_path, inputs):
    write_csv(tmp_path / "same.csv", [["sentence"], ["Putin spoke."]])
    before = (tmp_path / "same.csv").read_bytes()
    result = score(*inputs, "--out", "same.csv")
    assert (result.exit_code, result.stderr) == (2, "error: --out same.csv is also an input; write the output to "
                                                    "another file\n")
    assert (tmp_path / "same.csv").read_bytes() == before


@pytest.mark.parametrize("out_format", [None, "jsonl", "csv"])
def test_out_dash_streams_to_stdout(score, tmp_path, out_format):
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "file.csv" if out_format == "csv" else "file.jsonl", *SAME).exit_code == 0
    result = score("a.txt", "--out", "-", *(["--out-format", out_format] if out_format else []), *SAME)
    assert result.exit_code == 0, result.output
    expected = (tmp_path / ("file.csv" if out_format == "csv" else "file.jsonl")).read_text(encoding="utf-8")
    assert result.stdout == expected  # the rows, and nothing else: messages go to stderr
    assert "wrote 5 rows to stdout:" in result.stderr


def test_out_dash_stops_quietly_when_the_reader_is_gone(score, tmp_path, monkeypatch):
    from batch import writers

    def closed_pipe(f, columns, chunks):  # `stance score ... --out - | head -1`: head has exited
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(writers._TEXT_WRITERS, ".jsonl", closed_pipe)
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "-")
    assert result.exit_code == 141  # as a tool killed by SIGPIPE
    assert "error" not in result.stderr and "Traceback" not in result.output


def test_out_dash_cannot_stream_parquet(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "-", "--out-format", "parquet")
    text = " ".join(result.stderr.replace("│", " ").split())  # typer draws its usage errors in a box
    assert result.exit_code == 2
    assert "Invalid value for '--out-format': Value error, 'parquet' is not one of 'jsonl', 'csv'." in text


# -- the rules for text, actor and mention (the HTTP API's, model.items.check_text) ---------
BAD_VALUES = {
    # JSONL: the values of issue 12, and the API's other refusals
    "actor number": ('{"sentence": "Rubio spoke.", "actor": 7}', "actor must be a string or null, got number"),
    "actor boolean": ('{"sentence": "Rubio spoke.", "actor": true}', "actor must be a string or null, got boolean"),
    "actor array": ('{"sentence": "Rubio spoke.", "actor": ["Rubio"]}', "actor must be a string or null, got array"),
    "actor object": ('{"sentence": "Rubio spoke.", "actor": {"name": "Rubio"}}', "actor must be a string or null, got object"),
    "actor blank": ('{"sentence": "Rubio spoke.", "actor": "   "}', "actor must not be empty or whitespace only; use null "
                                                                     "to get every registry actor found in the sentence"),
    "actor empty": ('{"sentence": "Rubio spoke.", "actor": ""}', "actor must not be empty or whitespace only; use null "
                                                                 "to get every registry actor found in the sentence"),
    "actor control only": ('{"sentence": "Rubio spoke.", "actor": "\\u0000\\u200b"}', "actor must not be empty or "
                           "whitespace only; use null to get every registry actor found in the sentence"),
    "actor punctuation": (json.dumps({"sentence": "Rubio spoke.", "actor": "!" * 200}),
                          "actor must contain a letter or a digit: it is the name of an actor"),
    "actor too long": (json.dumps({"sentence": "Rubio spoke.", "actor": "R" * 201}),
                       "actor must be at most 200 characters, got 201"),
    "actor lone surrogate": ('{"sentence": "Rubio spoke.", "actor": "Ru\\ud800bio"}',
                             "actor contains a lone surrogate (U+D800) at index 2, which is not valid Unicode"),
    "sentence number": ('{"sentence": 12}', "sentence must be a string, got number"),
    "sentence null": ('{"sentence": null}', "sentence must be a string, got null"),
    "sentence empty": ('{"sentence": ""}', "sentence must not be empty or whitespace only"),
    "sentence controls": ('{"sentence": "\\u0000\\u0001 "}', "sentence must not be empty or whitespace only"),
    "sentence lone surrogate": ('{"sentence": "\\udfff Putin spoke."}',
                                "sentence contains a lone surrogate (U+DFFF) at index 0, which is not valid Unicode"),
    "mention number": ('{"sentence": "Rubio spoke.", "actor": "Rubio", "mention": 3}',
                       "mention must be a string or null, got number"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_value_the_api_refuses_stops_with_file_line(score, tmp_path, case):
    row, problem = BAD_VALUES[case]
    write(tmp_path / "rows.jsonl", '{"sentence": "Putin spoke."}\n' + row + "\n")
    result = score("rows.jsonl", "--out", "out.csv")
    assert (result.exit_code, result.stderr) == (1, f"error: rows.jsonl:2: {problem}{HINT}\n")
    assert not (tmp_path / "out.csv").exists()


def test_bad_actors_in_csv_and_parquet(score, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_csv(tmp_path / "t.csv", [["sentence", "actor"], ["Rubio spoke.", ""], ["Rubio spoke.", " \t "]])
    result = score("t.csv", "--out", "out.csv")  # an empty cell is null (CSV has no other); blanks are refused
    assert result.stderr == ("error: t.csv:3: actor must not be empty or whitespace only; use null to get every registry "
                             "actor found in the sentence" + HINT + "\n")
    pq.write_table(pa.table({"sentence": ["Rubio spoke.", "Rubio spoke."], "actor": [None, ""]}), tmp_path / "p.parquet")
    result = score("p.parquet", "--out", "out.csv")
    assert result.stderr == ("error: p.parquet:2: actor must not be empty or whitespace only; use null to get every "
                             "registry actor found in the sentence" + HINT + "\n")
    pq.write_table(pa.table({"sentence": ["Rubio spoke."], "actor": [[1, 2]]}), tmp_path / "q.parquet")
    result = score("q.parquet", "--out", "out.csv")
    assert result.stderr == "error: q.parquet:1: actor must be a string or null, got array" + HINT + "\n"


def test_bad_values_are_skipped_and_counted_under_skip_bad(score, tmp_path):
    write(tmp_path / "rows.jsonl", "".join(row + "\n" for row, _ in BAD_VALUES.values()) + '{"sentence": "Putin spoke."}\n')
    result = score("rows.jsonl", "--out", "out.jsonl", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert pairs(read_out(tmp_path / "out.jsonl")) == [("Putin spoke.", "Vladimir Putin")]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert warnings == [f"warning: skipped rows.jsonl:{i}: {problem}" for i, (_, problem) in
                        enumerate(list(BAD_VALUES.values())[:10], 1)]  # the first ten listed
    assert result.stderr.splitlines()[-1] == f"skipped {len(BAD_VALUES)} bad rows (the first 10 listed above)"


def test_hostile_values_the_api_accepts_are_scored(score, tmp_path):
    cjk = "习近平" * 66 + "主席"  # 200 characters, each several tokens
    rows = [{"sentence": "Xi Jinping spoke about the talks in Riyadh.", "actor": "!" * 199 + "X"},
            {"sentence": "习近平主席说，利雅得会谈是积极的一步。", "actor": cjk},
            {"sentence": "Putin\x00 spoke\x07 of the\u200b talks\u2028 in Riyadh.", "actor": None},
            {"sentence": "الرئيس بوتين رحب بالمحادثات", "actor": "Vladimir Putin", "mention": "بوتين"}]
    write_jsonl(tmp_path / "hostile.jsonl", rows)
    # A cell over the csv module's default limit (128 KiB): one long sentence, read in windows.
    write_csv(tmp_path / "huge.csv", [["sentence"], ["Lavrov praised the talks. " * 6000 + "Zelensky rejected them."]])
    result = score("hostile.jsonl", "huge.csv", "--out", "out.parquet")
    assert result.exit_code == 0, result.output
    out = read_out(tmp_path / "out.parquet")
    assert [(r["source"], r["actor"]) for r in out] == [
        ("hostile.jsonl", "!" * 199 + "X"), ("hostile.jsonl", cjk), ("hostile.jsonl", "Vladimir Putin"),
        ("hostile.jsonl", "Vladimir Putin"), ("huge.csv", "Sergey Lavrov"), ("huge.csv", "Volodymyr Zelensky")]
    assert out[2]["sentence"] == rows[2]["sentence"]  # control characters kept, as read
    assert all(r["stance"] in STANCE for r in out)


# -- one row's failure --------------------------------------------------------------------------
@pytest.fixture
def boom(monkeypatch):
    """The predictor raises for any forward pass holding a sentence with 'BOOM'."""
    from model.predictor import Predictor

    real = Predictor._predict

    def predict(self, items):
        if any("BOOM" in item.sentence for item in items):
            raise RuntimeError("boom")
        return real(self, items)

    monkeypatch.setattr(Predictor, "_predict", predict)


def test_a_row_whose_scoring_fails_stops_the_run_with_file_line(score, tmp_path, boom):
    (tmp_path / "out.csv").write_text("previous results\n")
    write_csv(tmp_path / "t.csv", [["sentence"], ["Putin spoke."], ["Lavrov BOOM spoke."], ["Rubio spoke."]])
    result = score("t.csv", "--out", "out.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: t.csv:3: scoring failed (RuntimeError: boom)" + HINT
    assert (tmp_path / "out.csv").read_text() == "previous results\n"  # nothing written is lost


def test_a_row_whose_scoring_fails_is_skipped_under_skip_bad(score, tmp_path, boom):
    write(tmp_path / "a.txt", "Putin spoke.\n\nThen Lavrov BOOM spoke.\nRubio spoke.\n")
    result = score("a.txt", "--out", "out.jsonl", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert pairs(read_out(tmp_path / "out.jsonl")) == [("Putin spoke.", "Vladimir Putin"), ("Rubio spoke.", "Marco Rubio")]
    assert "warning: skipped a.txt:3: scoring failed (RuntimeError: boom)" in result.stderr.splitlines()
    assert result.stderr.splitlines()[-1] == "skipped 1 bad row"


# -- page furniture -----------------------------------------------------------------------------
def test_page_furniture_is_skipped_line_by_line_and_said(score, tmp_path):
    write(tmp_path / "a.txt", "Putin praised the talks.\nCheck also\nLeave a comment\n\nRubio said the talks went well.\n"
                              "About WN\nLavrov agreed.\n")
    result = score("a.txt", "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["actor"] for r in read_out(tmp_path / "out.jsonl")] == ["Vladimir Putin", "Marco Rubio", "Sergey Lavrov"]
    lines = result.stderr.splitlines()
    assert [line for line in lines if "page furniture" in line] == [
        "a.txt:2: skipped 'Check also' (page furniture)", "a.txt:3: skipped 'Leave a comment' (page furniture)",
        "a.txt:6: skipped 'About WN' (page furniture)", "skipped 3 lines of page furniture"]
    assert lines[-1] == "skipped 3 lines of page furniture"


def test_many_furniture_lines_are_counted_not_all_listed(score, tmp_path):
    write(tmp_path / "a.txt", "Putin spoke.\n" + "Leave a comment\n" * 12)
    result = score("a.txt", "--out", "out.jsonl")
    lines = [line for line in result.stderr.splitlines() if "furniture" in line]
    assert lines == [f"a.txt:{i}: skipped 'Leave a comment' (page furniture)" for i in range(2, 12)] + [
        "skipped 12 lines of page furniture (the first 10 listed above)"]


# -- bad input ------------------------------------------------------------------------------
BAD = {
    "missing file": (None, "gone.csv", "gone.csv: cannot read file (No such file or directory)" + HINT),
    "empty csv file": ("", "e.csv", "e.csv:1: empty file, expected a header row naming the columns" + HINT),
    "empty csv row": ("sentence,id\nPutin spoke.,1\n,\n", "r.csv", "r.csv:3: empty row" + HINT),
    "blank csv line": ("sentence\nPutin spoke.\n\nTrump spoke.\n", "b.csv", "b.csv:3: empty row" + HINT),
    "empty csv sentence": ("sentence,id\nPutin spoke.,1\n  ,2\n", "s.csv",
                           "s.csv:3: sentence must not be empty or whitespace only" + HINT),
    "csv field count": ("sentence,id\nPutin spoke.,1,extra\n", "f.csv", "f.csv:2: expected 2 fields (','-separated), "
                                                                        "got 3" + HINT),
    "malformed json": ('{"sentence": "Putin spoke."}\n{"sentence": "Trump spoke."\n', "m.jsonl",
                       "m.jsonl:2: malformed JSON (Expecting ',' delimiter at column 28)" + HINT),
    "json not an object": ('["Putin spoke."]\n', "l.jsonl", "l.jsonl:1: expected a JSON object, got list" + HINT),
    "empty json line": ('{"sentence": "Putin spoke."}\n\n{"sentence": "Trump spoke."}\n', "b.jsonl",
                        "b.jsonl:2: empty row" + HINT),
    "empty json object": ('{}\n', "o.jsonl", "o.jsonl:1: empty row" + HINT),
    "empty article": ("\n\n", "a.txt", "a.txt: no sentences in this article" + HINT),
    "unknown format": ("x", "notes.docx", "notes.docx: unsupported input format '.docx'; expected .txt, .jsonl, .csv, "
                                          ".tsv or .parquet (or any of them .gz)" + HINT),
    "glob without match": (None, "*.jsonl", "*.jsonl: no file matches this pattern"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_stops_with_one_line_naming_file_and_line(score, tmp_path, case):
    content, name, message = BAD[case]
    if content is not None:
        write(tmp_path / name, content)
    result = score(name, "--out", "out.csv")
    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


PARQUET_BAD = {
    "null sentence": ({"sentence": ["Putin spoke.", None]}, "p.parquet:2: sentence must be a string, got null" + HINT),
    "sentence not text": ({"sentence": [1, 2]}, "p.parquet:1: sentence must be a string, got number" + HINT),
    "no sentence column": ({"body": ["Putin spoke."]}, "p.parquet: no 'sentence' or 'text' column (found: body); "
                                                       "name the text column with --text-column" + HINT),
    "not parquet": (None, "p.parquet: not a Parquet file (Could not open Parquet input source 'p.parquet': Parquet file "
                          "size is 5 bytes, smaller than the minimum file footer (8 bytes))" + HINT),
}


@pytest.mark.parametrize("case", list(PARQUET_BAD))
def test_bad_parquet_input_names_file_and_row(score, tmp_path, case):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, message = PARQUET_BAD[case]
    if columns is None:
        write(tmp_path / "p.parquet", "hello")
    else:
        pq.write_table(pa.table(columns), tmp_path / "p.parquet")
    result = score("p.parquet", "--out", "out.csv")
    assert (result.exit_code, result.stderr) == (1, f"error: {message}\n")


def test_folder_without_inputs(score, tmp_path):
    (tmp_path / "empty").mkdir()
    result = score("empty", "--out", "out.csv")
    assert (result.exit_code, result.stderr) == (1, "error: empty: no .txt, .jsonl, .csv, .tsv or .parquet file in this "
                                                    "folder\n")


def test_skip_bad_skips_rows_and_files_and_says_how_many(score, tmp_path):
    write(tmp_path / "rows.jsonl", '{"sentence": "Putin spoke."}\n{"sentence": \n\n{"sentence": "Trump spoke."}\n')
    write_csv(tmp_path / "t.csv", [["sentence", "id"], ["", "1"], ["Rubio spoke.", "2"]])
    result = score("rows.jsonl", "t.csv", "gone.txt", "--out", "out.jsonl", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r["actor"] for r in read_out(tmp_path / "out.jsonl")] == ["Vladimir Putin", "Donald Trump", "Marco Rubio"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith(("warning", "skipped"))]
    assert warnings == [
        "warning: skipped rows.jsonl:2: malformed JSON (Expecting value at column 14)",
        "warning: skipped rows.jsonl:3: empty row",
        "warning: skipped t.csv:2: sentence must not be empty or whitespace only",
        "warning: skipped gone.txt: cannot read file (No such file or directory)",
        "skipped 3 bad rows and 1 bad file",
    ]
    # sentence_index stays the record's position in its file, bad records counted.
    assert [r["sentence_index"] for r in read_out(tmp_path / "out.jsonl")] == [0, 3, 1]


def test_nothing_left_to_score(score, tmp_path):
    write(tmp_path / "rows.jsonl", "\n")
    result = score("rows.jsonl", "--out", "out.jsonl", "--skip-bad")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: nothing to score: the inputs hold no sentences"


# -- the model: the store, precision, loading -------------------------------------------------
def test_a_missing_model_names_the_store_and_its_tags(run, tmp_path, tiny_store):
    import os

    write(tmp_path / "a.txt", ARTICLE)
    result = run("score", "a.txt", "--out", "out.csv", "--model", "stance_classifier:nosuchversion")
    assert result.exit_code == 1
    assert result.stderr == (f"error: no model 'stance_classifier:nosuchversion' in the BentoML store at "
                             f"{os.environ['BENTOML_HOME']} (it holds {tiny_store}); run `make train` first, or set "
                             "BENTOML_HOME to the store that has it\n")


def test_the_default_model_is_latest_in_the_store(run, tmp_path, tiny_store):
    write(tmp_path / "a.txt", ARTICLE)
    result = run("score", "a.txt", "--out", "out.jsonl")  # no --model
    assert result.exit_code == 0, result.output
    assert {r["model"] for r in read_out(tmp_path / "out.jsonl")} == {tiny_store}


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_precision_reaches_the_predictor_and_its_choice_is_one_line(score, tmp_path, monkeypatch, tiny_store, precision):
    from model.predictor import Predictor

    loaded = []
    real = Predictor.from_store.__func__

    def from_store(cls, tag, **kwargs):
        loaded.append((tag, kwargs))
        loaded.append(real(cls, tag, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(Predictor, "from_store", classmethod(from_store))
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "out.csv", "--precision", precision, "--batch-size", "8")
    assert result.exit_code == 0, result.output
    (tag, kwargs), predictor = loaded
    assert (tag, kwargs) == (tiny_store, {"precision": precision, "backend": "auto", "batch_size": 8})
    [line] = [line for line in result.stderr.splitlines() if line.startswith("model ")]
    assert re.fullmatch(rf"model {tiny_store} loaded in \d+\.\ds: {re.escape(predictor.choice)}", line)
    assert predictor.choice.startswith("fp32, as asked" if precision == "fp32" else "auto: ")


@pytest.fixture
def refusing_store(tiny_store, tmp_path_factory, monkeypatch):
    """A copy of the tiny store whose model failed its bf16 and int8 checks when saved."""
    import os
    import shutil

    from model.store import find

    path, tag = find(tiny_store)
    home = tmp_path_factory.mktemp("refusing_store")
    copy = home / "models" / "stance_classifier" / tag.split(":")[1]
    shutil.copytree(path, copy)
    (copy.parent / "latest").write_text(tag.split(":")[1])
    meta = json.loads((copy / "meta.json").read_text())
    for check in meta["precision_checks"].values():
        check["passed"] = False
    (copy / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setitem(os.environ, "BENTOML_HOME", str(home))
    return tag


def test_a_precision_the_model_failed_is_refused_in_one_line(run, tmp_path, refusing_store):
    write(tmp_path / "a.txt", ARTICLE)
    result = run("score", "a.txt", "--out", "out.csv", "--precision", "bf16")
    assert (result.exit_code, result.stderr) == (1, "error: cannot load model 'stance_classifier:latest': precision "
                                                    "bf16 did not match fp32's labels when this model was saved; use "
                                                    "fp32 or auto\n")


def test_the_progress_estimate_starts_after_loading(score, tmp_path, monkeypatch):
    """The bar's clock starts once the model is loaded, so its first estimate of the time left
    does not count the loading (checked on the clocks themselves, not on timings)."""
    import time

    from batch import scoring
    from model.predictor import Predictor

    real_load, real_start = Predictor.from_store.__func__, scoring.Tally.start
    events = {}

    def slow_load(cls, tag, **kwargs):
        predictor = real_load(cls, tag, **kwargs)
        time.sleep(1.0)  # a model that takes long to load
        events["loaded"] = time.time()
        return predictor

    def start(self, initial: int = 0):
        real_start(self, initial)
        events["bar"] = self.bar.start_t  # tqdm's own clock origin (time.time())

    monkeypatch.setattr(Predictor, "from_store", classmethod(slow_load))
    monkeypatch.setattr(scoring.Tally, "start", start)
    write_csv(tmp_path / "t.csv", [["sentence"]] + [[f"Putin spoke on day {i}."] for i in range(6)])
    result = score("t.csv", "--out", "out.csv", "--batch-size", "1", *SAME)
    assert result.exit_code == 0, result.output
    assert re.search(r"model \S+ loaded in \d+\.\ds: ", result.stderr)
    assert events["bar"] >= events["loaded"]


# -- atomic output --------------------------------------------------------------------------
@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_failure_mid_run_leaves_existing_output_untouched(score, tmp_path, monkeypatch, out, failure):
    from model.predictor import Predictor

    (tmp_path / out).write_text("previous results\n")
    write_csv(tmp_path / "many.csv", [["sentence"]] + [[f"Putin spoke on day {i}."] for i in range(10)])
    calls, predict = [], Predictor.predict

    def failing_predict(self, items, isolate=False):
        calls.append(len(items))
        if len(calls) == 2:  # the first chunk is already in the temp file
            raise failure("stop")
        return predict(self, items, isolate)

    monkeypatch.setattr(Predictor, "predict", failing_predict)
    monkeypatch.setattr("batch.scoring.BATCHES_PER_CALL", 2)
    # --backend torch: with auto, a CPU without bf16 units times PyTorch against ONNX Runtime at
    # load through predict(), which would count here as the run's calls.
    result = score("many.csv", "--out", out, "--batch-size", "2", "--backend", "torch")  # 4 sentences per call
    assert calls == [4, 4]
    if failure is KeyboardInterrupt:
        assert (result.exit_code, result.stderr.splitlines()[-1]) == (130, f"error: interrupted; {out} was not written")
    else:
        assert isinstance(result.exception, RuntimeError)
    assert (tmp_path / out).read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out, "many.csv"])  # no temp file left


def test_success_replaces_existing_output(score, tmp_path):
    (tmp_path / "out.csv").write_text("previous results\n")
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "out.csv").exit_code == 0
    assert len(read_out(tmp_path / "out.csv")) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "out.csv"]


# -- the command line itself -------------------------------------------------------------------
def test_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"stance {version('riyadh-stance')}\n")


def test_help_names_every_option_and_every_precision():
    import click
    import typer.main

    from model.precision import PRECISIONS

    command = typer.main.get_command(app).commands["score"]
    text = " ".join(runner.invoke(app, ["score", "--help"], terminal_width=200).stdout.split())
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[0] in text
    assert all(p in text for p in PRECISIONS)


def test_the_bento_leaves_the_cli_out():
    """`bentoml build` packs what bentofile.yaml includes (gitignore-style patterns): the
    service, not the analysts' CLI, its report and its charts (matplotlib, Ray, pandas)."""
    import pathspec
    import yaml
    from helpers import ROOT

    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    packed = pathspec.PathSpec.from_lines("gitignore", bentofile["include"])
    excluded = pathspec.PathSpec.from_lines("gitignore", bentofile.get("exclude", []))
    in_bento = lambda path: packed.match_file(path) and not excluded.match_file(path)  # noqa: E731
    assert in_bento("serving/service.py") and in_bento("model/predictor.py")
    assert not [p.name for p in (ROOT / "batch").glob("*.py") if in_bento(f"batch/{p.name}")]
