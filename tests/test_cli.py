"""`stance score` and `stance report` through typer's CliRunner, with the tiny model in a
temporary BentoML store (the `tiny_store` fixture sets BENTOML_HOME). The tiny model's
labels are noise, so these tests check structure, columns and messages, not predictions."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from model.labels import SENTIMENT, STANCE
from serving.cli import app

ARTICLE = (
    "Talks in Riyadh\n\n"
    "Lavrov praised the talks in Riyadh as useful. The weather was mild on Tuesday.\n"
    "Kyiv condemned the talks, while Moscow welcomed them.\n"
)
# The article's sentences, its detected actors per sentence (registry names), in order.
ARTICLE_SENTENCES = [
    ("Talks in Riyadh", []),
    ("Lavrov praised the talks in Riyadh as useful.", ["Sergey Lavrov"]),
    ("The weather was mild on Tuesday.", []),
    ("Kyiv condemned the talks, while Moscow welcomed them.", ["Ukraine", "Russia"]),
]
STANCE_COLS = [f"stance_{s}" for s in STANCE]
SENTIMENT_COLS = [f"sentiment_{s}" for s in SENTIMENT]
ADDED_FLAT = ["source", "sentence_index", "actor", "mention", "affiliation", "stance", *STANCE_COLS,
              "sentiment", *SENTIMENT_COLS, "model"]

runner = CliRunner()


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path.name


def write_csv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path.name


def read_out(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


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
        ("a2", "Sergey Lavrov", "Lavrov", "Russia"),  # no actor: detected
        ("a2", "Marco Rubio", "Rubio", "United States"),
        ("a3", "Pedro Sánchez", "Sánchez", None),  # a free-text actor outside the registry
    ]
    assert [r["input_actor"] for r in rows] == ["Zelensky", "", "", "Pedro Sánchez"]
    assert [r["input_stance"] for r in rows] == ["oppose", "", "", ""]
    assert [int(r["sentence_index"]) for r in rows] == [0, 1, 1, 2]
    assert {r["source"] for r in rows} == {"export.csv"}


@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
def test_jsonl_rows_keep_their_values(score, tmp_path, out):
    lines = [{"sentence": "Putin welcomed the talks.", "n": 7, "meta": {"desk": "a"}},
             {"sentence": "Nobody spoke.", "n": 8, "meta": {"desk": "b"}, "mention": "ignored without actor"}]
    name = write(tmp_path / "rows.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    result = score(name, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / out)
    assert [(r["sentence"], r["actor"] or None) for r in rows] == [("Putin welcomed the talks.", "Vladimir Putin"),
                                                                   ("Nobody spoke.", None)]
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
    write(tmp_path / "exports" / "notes.md", "not an input")  # other files, hidden files and subfolders are left out
    write(tmp_path / "exports" / ".draft.csv", "sentence\nDraft.\n")
    (tmp_path / "exports" / "old").mkdir()
    result = score("p.parquet", "exports", "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / "out.jsonl")
    assert [(r["source"], r["sentence_index"], r["actor"]) for r in rows] == [
        ("p.parquet", 0, "Vladimir Putin"), ("p.parquet", 1, "Pedro Sánchez"),
        ("exports/a.jsonl", 0, "Marco Rubio"), ("exports/b.csv", 0, "Donald Trump")]
    assert [(r["n"], r["when"]) for r in rows[:2]] == [(1, "2025-02-18T09:30:00"), (2, None)]  # JSON has no datetime

    assert score("p.parquet", "--out", "out.parquet").exit_code == 0
    assert [(r["n"], r["when"]) for r in read_out(tmp_path / "out.parquet")] == [
        (1, datetime.datetime(2025, 2, 18, 9, 30)), (2, None)]  # Parquet keeps the Arrow types


# -- bad input ------------------------------------------------------------------------------
HINT = "; use --skip-bad to skip it"
BAD = {
    "missing file": (None, "gone.csv", "gone.csv: cannot read file (No such file or directory)" + HINT),
    "not utf-8": (b"sentence\nok\n\xff\xfe bad\n", "latin.csv", "latin.csv, line 3: not UTF-8 text" + HINT),
    "no sentence column": ("text,actor\nhello,Putin\n", "t.csv",
                           "t.csv, line 1: no 'sentence' column in the header (found: text, actor)" + HINT),
    "empty csv file": ("", "e.csv", "e.csv, line 1: empty file, expected a header row with a 'sentence' column" + HINT),
    "empty csv row": ("sentence,id\nPutin spoke.,1\n,\n", "r.csv", "r.csv, line 3: empty row" + HINT),
    "blank csv line": ("sentence\nPutin spoke.\n\nTrump spoke.\n", "b.csv", "b.csv, line 3: empty row" + HINT),
    "empty csv sentence": ("sentence,id\nPutin spoke.,1\n  ,2\n", "s.csv", "s.csv, line 3: empty sentence" + HINT),
    "csv field count": ("sentence,id\nPutin spoke.,1,extra\n", "f.csv", "f.csv, line 2: expected 2 fields, got 3" + HINT),
    "malformed json": ('{"sentence": "Putin spoke."}\n{"sentence": "Trump spoke."\n', "m.jsonl",
                       "m.jsonl, line 2: malformed JSON (Expecting ',' delimiter at column 28)" + HINT),
    "json not an object": ('["Putin spoke."]\n', "l.jsonl", "l.jsonl, line 1: expected a JSON object, got list" + HINT),
    "empty json line": ('{"sentence": "Putin spoke."}\n\n{"sentence": "Trump spoke."}\n', "b.jsonl",
                        "b.jsonl, line 2: empty row" + HINT),
    "empty json object": ('{}\n', "o.jsonl", "o.jsonl, line 1: empty row" + HINT),
    "no sentence field": ('{"text": "Putin spoke."}\n', "n.jsonl", "n.jsonl, line 1: no 'sentence' field" + HINT),
    "empty json sentence": ('{"sentence": ""}\n', "s.jsonl", "s.jsonl, line 1: empty sentence" + HINT),
    "sentence not text": ('{"sentence": 12}\n', "x.jsonl", "x.jsonl, line 1: 'sentence' is int, expected text" + HINT),
    "empty article": ("\n\n", "a.txt", "a.txt: no sentences in this article" + HINT),
    "unknown format": ("x", "notes.docx",
                       "notes.docx: unsupported input format '.docx'; expected .txt, .jsonl, .csv or .parquet" + HINT),
    "glob without match": (None, "*.jsonl", "*.jsonl: no file matches this pattern"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_stops_with_one_line_naming_file_and_line(score, tmp_path, case):
    content, name, message = BAD[case]
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content is not None:
        write(tmp_path / name, content)
    result = score(name, "--out", "out.csv")
    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


PARQUET_BAD = {
    "null sentence": ({"sentence": ["Putin spoke.", None]}, "p.parquet, line 2: empty sentence" + HINT),
    "sentence not text": ({"sentence": [1, 2]}, "p.parquet, line 1: 'sentence' is int, expected text" + HINT),
    "no sentence column": ({"text": ["Putin spoke."]}, "p.parquet: no 'sentence' column (found: text)" + HINT),
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
    assert (result.exit_code, result.stderr) == (1, "error: empty: no .txt, .jsonl, .csv or .parquet file in this folder\n")


def test_skip_bad_skips_rows_and_files_and_says_how_many(score, tmp_path):
    write(tmp_path / "rows.jsonl", '{"sentence": "Putin spoke."}\n{"sentence": \n\n{"sentence": "Trump spoke."}\n')
    write_csv(tmp_path / "t.csv", [["sentence", "id"], ["", "1"], ["Rubio spoke.", "2"]])
    result = score("rows.jsonl", "t.csv", "gone.txt", "--out", "out.jsonl", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r["actor"] for r in read_out(tmp_path / "out.jsonl")] == ["Vladimir Putin", "Donald Trump", "Marco Rubio"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith(("warning", "skipped"))]
    assert warnings == [
        "warning: skipped rows.jsonl, line 2: malformed JSON (Expecting value at column 14)",
        "warning: skipped rows.jsonl, line 3: empty row",
        "warning: skipped t.csv, line 2: empty sentence",
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


def test_unknown_output_format(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "out.xlsx")
    assert result.exit_code == 2
    assert result.stderr == "error: --out out.xlsx: unsupported format '.xlsx'; expected .jsonl, .csv or .parquet\n"


def test_missing_model_says_to_train(tiny_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.txt", ARTICLE)
    result = runner.invoke(app, ["score", "a.txt", "--out", "out.csv", "--model", "stance_classifier:nosuchversion"])
    assert result.exit_code == 1
    assert result.stderr == ("error: no model 'stance_classifier:nosuchversion' in the BentoML store; "
                             "run `make train` first\n")


# -- atomic output --------------------------------------------------------------------------
@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_failure_mid_run_leaves_existing_output_untouched(score, tmp_path, monkeypatch, out, failure):
    from model.predictor import Predictor

    (tmp_path / out).write_text("previous results\n")
    write_csv(tmp_path / "many.csv", [["sentence"]] + [[f"Putin spoke on day {i}."] for i in range(10)])
    calls, predict = [], Predictor.predict

    def failing_predict(self, items, progress=None):
        calls.append(len(items))
        if len(calls) == 2:  # the first chunk is already in the temp file
            raise failure("stop")
        return predict(self, items, progress)

    monkeypatch.setattr(Predictor, "predict", failing_predict)
    monkeypatch.setattr("serving.cli.BATCHES_PER_CALL", 2)
    result = score("many.csv", "--out", out, "--batch-size", "2")  # 4 sentences per predictor call
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


# -- report ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scored", ["scored.csv", "scored.jsonl", "scored.parquet"])
def test_report_writes_tables_and_chart(score, tmp_path, scored):
    write(tmp_path / "a.txt", ARTICLE)
    write_csv(tmp_path / "b.csv", [["sentence", "actor"], ["Lavrov met Rubio.", ""], ["Sánchez spoke.", "Pedro Sánchez"]])
    assert score("a.txt", "b.csv", "--out", scored).exit_code == 0
    result = runner.invoke(app, ["report", scored, "--out-dir", "rep"])
    assert result.exit_code == 0, result.output
    rep = tmp_path / "rep"
    assert sorted(p.name for p in rep.iterdir()) == ["stance_by_actor.png", "summary.csv", "summary.md"]
    assert (rep / "stance_by_actor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = read_out(rep / "summary.csv")
    assert list(summary[0]) == ["source", "actor", "affiliation", "pairs", "support", "oppose", "neutral",
                                "support_share", "oppose_share", "neutral_share", "sentiment_positive_share",
                                "sentiment_negative_share", "sentiment_neutral_share"]
    totals = {r["actor"]: r for r in summary if r["source"] == "(all sources)"}
    assert {a: int(r["pairs"]) for a, r in totals.items()} == {
        "Sergey Lavrov": 2, "Ukraine": 1, "Russia": 1, "Marco Rubio": 1, "Pedro Sánchez": 1}
    assert totals["Pedro Sánchez"]["affiliation"] == "(not in registry)"
    for r in summary:
        assert int(r["support"]) + int(r["oppose"]) + int(r["neutral"]) == int(r["pairs"])
        assert abs(sum(float(r[f"sentiment_{s}_share"]) for s in SENTIMENT) - 1) < 1e-2
    # Two sources: the totals, then each source.
    assert list(dict.fromkeys(r["source"] for r in summary)) == ["(all sources)", "a.txt", "b.csv"]
    assert {r["actor"]: int(r["pairs"]) for r in summary if r["source"] == "b.csv"} == {
        "Sergey Lavrov": 1, "Marco Rubio": 1, "Pedro Sánchez": 1}

    md = (rep / "summary.md").read_text()
    assert "![Stance by actor](stance_by_actor.png)" in md
    assert "## All sources" in md and "## a.txt" in md and "## b.csv" in md
    assert "| Actor | Affiliation | Pairs | Support | Oppose | Neutral | Sentiment +/−/0 |" in md
    assert "6 sentences from 2 source(s); 6 (sentence, actor) pairs; 2 sentences mention no actor." in md


def test_report_default_folder_and_single_source(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "scored.jsonl").exit_code == 0
    result = runner.invoke(app, ["report", "scored.jsonl"])
    assert result.exit_code == 0, result.output
    summary = read_out(tmp_path / "scored_report" / "summary.csv")
    assert {r["source"] for r in summary} == {"a.txt"}
    assert "## " not in (tmp_path / "scored_report" / "summary.md").read_text()


def test_report_rejects_a_file_that_was_not_scored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "raw.csv", [["sentence"], ["Putin spoke."]])
    result = runner.invoke(app, ["report", "raw.csv"])
    assert result.exit_code == 1
    assert result.stderr == "error: raw.csv, line 1: not a scored file: missing columns actor, sentiment, stance\n"
