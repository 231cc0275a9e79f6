"""`stance report` through typer's CliRunner: on files `stance score` wrote with the tiny
model (structure: its labels are noise), and on a small scored file made here, whose
stances are chosen, so that shares, changes and outlets can be checked to the digit."""

from __future__ import annotations

import pytest
from helpers import ARTICLE, read_out, write, write_csv
from typer.testing import CliRunner

from batch.cli import app
from model.labels import SENTIMENT

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda *args: runner.invoke(app, ["report", *map(str, args)])


# -- per actor, on `stance score` output ---------------------------------------------------------
@pytest.mark.parametrize("scored", ["scored.csv", "scored.jsonl", "scored.parquet"])
def test_report_writes_tables_and_chart(score, report, tmp_path, scored):
    write(tmp_path / "a.txt", ARTICLE)
    write_csv(tmp_path / "b.csv", [["sentence", "actor"], ["Lavrov met Rubio.", ""], ["Sánchez spoke.", "Pedro Sánchez"]])
    assert score("a.txt", "b.csv", "--out", scored).exit_code == 0
    result = report(scored, "--out-dir", "rep")
    assert result.exit_code == 0, result.output
    rep = tmp_path / "rep"
    assert sorted(p.name for p in rep.iterdir()) == ["stance_by_actor.png", "summary.csv", "summary.md"]
    assert (rep / "stance_by_actor.png").read_bytes()[:8] == PNG
    assert result.stderr.splitlines() == [f"wrote rep/{name}" for name in ("summary.md", "summary.csv", "stance_by_actor.png")]

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


def test_report_default_folder_and_single_source(score, report, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "scored.jsonl").exit_code == 0
    result = report("scored.jsonl")
    assert result.exit_code == 0, result.output
    summary = read_out(tmp_path / "scored_report" / "summary.csv")
    assert {r["source"] for r in summary} == {"a.txt"}
    assert "## " not in (tmp_path / "scored_report" / "summary.md").read_text()  # no dates, no outlets: one section


def test_report_rejects_a_file_that_was_not_scored(report, tmp_path):
    write_csv(tmp_path / "raw.csv", [["sentence"], ["Putin spoke."]])
    result = report("raw.csv")
    assert (result.exit_code, result.stderr) == (1, "error: raw.csv:1: not a scored file: missing columns actor, "
                                                    "sentiment, stance\n")


# -- a scored file made here: dates and outlets --------------------------------------------------
HEADER = ["source", "sentence_index", "sentence", "actor", "affiliation", "stance", "sentiment", "model", "date", "outlet"]
# (date, actor, stance, outlet); weeks start on Monday 17 Feb, 24 Feb, 10 Mar and 24 Mar 2025.
PAIRS = [
    ("2025-02-18", "Sergey Lavrov", "support", "TASS"), ("2025-02-18T09:30:00", "Sergey Lavrov", "support", "TASS"),
    ("2025-02-19", "Sergey Lavrov", "neutral", "Reuters"), ("2025-02-19", "Volodymyr Zelensky", "oppose", "Kyiv Post"),
    ("2025-02-23", "Volodymyr Zelensky", "oppose", "Kyiv Post"),
    ("2025-02-25", "Sergey Lavrov", "support", "TASS"), ("2025-02-26", "Sergey Lavrov", "oppose", "Reuters"),
    ("2025-03-10", "Sergey Lavrov", "oppose", "Reuters"), ("2025-03-11", "Sergey Lavrov", "oppose", ""),
    ("2025-03-12", "Sergey Lavrov", "oppose", "Reuters"),
    ("2025-03-12", "Volodymyr Zelensky", "oppose", "Kyiv Post"), ("2025-03-13", "Volodymyr Zelensky", "neutral", "Reuters"),
    ("2025-03-25", "Volodymyr Zelensky", "support", "Reuters"),
    ("", "Volodymyr Zelensky", "neutral", "Reuters"),  # no date: left out of the stance over time only
]
AFFILIATION = {"Sergey Lavrov": "Russia", "Volodymyr Zelensky": "Ukraine"}


def write_scored(path, pairs=PAIRS):
    rows = [HEADER] + [["feed.csv", i, f"sentence {i}", actor, AFFILIATION[actor], stance, "neutral", "m:1", date, outlet]
                       for i, (date, actor, stance, outlet) in enumerate(pairs)]
    rows.append(["feed.csv", len(pairs), "No actor here.", "", "", "", "neutral", "m:1", "2025-02-18", "TASS"])
    return write_csv(path, rows)


def test_stance_over_time_per_week_with_the_changes(report, tmp_path):
    write_scored(tmp_path / "scored.csv")
    result = report("scored.csv", "--out-dir", "rep")
    assert result.exit_code == 0, result.output
    rep = tmp_path / "rep"
    assert (rep / "stance_over_time.png").read_bytes()[:8] == PNG
    table = [{k: v for k, v in r.items() if k in ("actor", "period", "pairs", "support_share", "oppose_share",
                                                 "neutral_share", "support_change", "oppose_change")}
             for r in read_out(rep / "stance_over_time.csv")]
    assert list(read_out(rep / "stance_over_time.csv")[0]) == [
        "actor", "affiliation", "period", "pairs", "support", "oppose", "neutral", "support_share", "oppose_share",
        "neutral_share", "support_change", "oppose_change", "neutral_change"]
    row = lambda actor, period, pairs, s, o, n, ds="", do="": {  # noqa: E731
        "actor": actor, "period": period, "pairs": pairs, "support_share": s, "oppose_share": o, "neutral_share": n,
        "support_change": ds, "oppose_change": do}
    assert table == [  # the actor with the most dated pairs first; its weeks in order
        row("Sergey Lavrov", "2025-02-17", "3", "0.667", "0.0", "0.333"),
        row("Sergey Lavrov", "2025-02-24", "2", "0.5", "0.5", "0.0", "-0.167", "0.5"),
        row("Sergey Lavrov", "2025-03-10", "3", "0.0", "1.0", "0.0", "-0.5", "0.5"),
        row("Volodymyr Zelensky", "2025-02-17", "2", "0.0", "1.0", "0.0"),
        row("Volodymyr Zelensky", "2025-03-10", "2", "0.0", "0.5", "0.5", "0.0", "-0.5"),
        row("Volodymyr Zelensky", "2025-03-24", "1", "1.0", "0.0", "0.0", "1.0", "-0.5"),
    ]
    md = (rep / "summary.md").read_text()
    assert ("## Stance over time\n\nPer week (from the `date` column; weeks start on Monday), for the 2 actor(s) with the "
            "most dated pairs. 1 pairs without a date are left out. A change is in share points from the actor's previous "
            "week with pairs.\n\n![Stance over time](stance_over_time.png)") in md
    assert "| Sergey Lavrov | week of 24 Feb 2025 | 2 | 50% | 50% | 0% | −17 pts | +50 pts |" in md
    assert "| Volodymyr Zelensky | week of 17 Feb 2025 | 2 | 0% | 100% | 0% |  |  |" in md


def test_stance_over_time_per_day(report, tmp_path):
    write_scored(tmp_path / "scored.csv")
    result = report("scored.csv", "--out-dir", "rep", "--period", "day", "--min-pairs", "6")
    assert result.exit_code == 0, result.output
    table = read_out(tmp_path / "rep" / "stance_over_time.csv")
    assert {r["actor"] for r in table} == {"Sergey Lavrov"}  # Zelensky has 6 pairs, but only 5 with a date
    assert [(r["period"], r["pairs"]) for r in table] == [("2025-02-18", "2"), ("2025-02-19", "1"), ("2025-02-25", "1"),
                                                          ("2025-02-26", "1"), ("2025-03-10", "1"), ("2025-03-11", "1"),
                                                          ("2025-03-12", "1")]
    assert "| Sergey Lavrov | 18 Feb 2025 | 2 | 100% | 0% | 0% |  |  |" in (tmp_path / "rep" / "summary.md").read_text()


def test_stance_by_outlet(report, tmp_path):
    write_scored(tmp_path / "scored.csv")
    assert report("scored.csv", "--out-dir", "rep").exit_code == 0
    assert (tmp_path / "rep" / "stance_by_outlet.png").read_bytes()[:8] == PNG
    assert [(r["outlet"], r["pairs"], r["support"], r["oppose"], r["neutral"], r["oppose_share"])
            for r in read_out(tmp_path / "rep" / "stance_by_outlet.csv")] == [
        ("Reuters", "7", "1", "3", "3", "0.429"), ("Kyiv Post", "3", "0", "3", "0", "1.0"),
        ("TASS", "3", "3", "0", "0", "0.0"), ("(no outlet)", "1", "0", "1", "0", "1.0")]  # most pairs first
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Stance by outlet\n\nAll pairs, per value of the `outlet` column." in md
    assert "| TASS | 3 | 3 (100%) | 0 (0%) | 0 (0%) |" in md


def test_columns_named_by_options_and_their_errors(report, tmp_path):
    import csv

    write_scored(tmp_path / "scored.csv")
    text = (tmp_path / "scored.csv").read_text().replace(",date,outlet", ",published,desk")
    (tmp_path / "renamed.csv").write_text(text)
    assert report("renamed.csv", "--out-dir", "plain").exit_code == 0  # no default name: no dates, no outlets
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["stance_by_actor.png", "summary.csv", "summary.md"]
    result = report("renamed.csv", "--out-dir", "named", "--date-column", "published", "--outlet-column", "desk")
    assert result.exit_code == 0, result.output
    assert report("scored.csv", "--out-dir", "default").exit_code == 0
    for name in ("stance_over_time.csv", "stance_by_outlet.csv"):
        assert read_out(tmp_path / "named" / name) == read_out(tmp_path / "default" / name)
    assert "per value of the `desk` column" in (tmp_path / "named" / "summary.md").read_text()

    result = report("renamed.csv", "--date-column", "day")
    assert (result.exit_code, result.stderr) == (1, "error: renamed.csv: no 'day' column, named by --date-column (found: "
                                                    f"{', '.join(HEADER[:-2])}, published, desk)\n")
    with (tmp_path / "bad.csv").open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, ["feed.csv", 0, "s", "Sergey Lavrov", "Russia", "support", "neutral", "m:1",
                                          "18/02/2025", ""]])
    result = report("bad.csv")
    assert (result.exit_code, result.stderr) == (1, "error: bad.csv:2: date '18/02/2025' is not a date; write dates as "
                                                    "YYYY-MM-DD (ISO 8601)\n")


def test_min_pairs_says_why_a_chart_is_empty(report, tmp_path):
    write_scored(tmp_path / "scored.csv")
    result = report("scored.csv", "--out-dir", "rep", "--min-pairs", "10")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        "warning: the actor chart is empty: no actor has 10 or more pairs (2 actors found, the most with 8); "
        "lower --min-pairs",
        "warning: no stance over time: no actor has 10 or more pairs with a date"]
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert ("The chart is empty: no actor has 10 or more pairs (2 actors found, the most with 8); lower --min-pairs."
            in md)
    assert len(read_out(tmp_path / "rep" / "summary.csv")) == 2  # the tables keep every actor


def test_dates_and_outlets_pass_through_stance_score(score, report, tmp_path):
    write_csv(tmp_path / "feed.csv", [["sentence", "date", "source"],
                                      ["Lavrov praised the talks.", "2025-02-18", "TASS"],
                                      ["Lavrov met Rubio.", "2025-02-25", "Reuters"]])
    assert score("feed.csv", "--out", "scored.parquet").exit_code == 0
    result = report("scored.parquet", "--out-dir", "rep")
    assert result.exit_code == 0, result.output
    assert [(r["actor"], r["period"], r["pairs"]) for r in read_out(tmp_path / "rep" / "stance_over_time.csv")] == [
        ("Sergey Lavrov", "2025-02-18", "1"), ("Sergey Lavrov", "2025-02-25", "1"), ("Marco Rubio", "2025-02-25", "1")]
    # The input's own `source` column is kept as input_source: the outlet.
    assert [(r["outlet"], r["pairs"]) for r in read_out(tmp_path / "rep" / "stance_by_outlet.csv")] == [
        ("Reuters", "2"), ("TASS", "1")]


def test_a_gzipped_scored_file_reads_as_the_plain_one(report, tmp_path):
    import gzip

    write_scored(tmp_path / "scored.csv")
    (tmp_path / "scored.csv.gz").write_bytes(gzip.compress((tmp_path / "scored.csv").read_bytes()))
    assert report("scored.csv", "--out-dir", "plain").exit_code == 0
    result = report("scored.csv.gz")  # the default folder: scored_report, as for scored.csv
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "wrote scored_report/summary.md"
    for name in ("summary.csv", "stance_over_time.csv", "stance_by_outlet.csv"):
        assert read_out(tmp_path / "scored_report" / name) == read_out(tmp_path / "plain" / name)
