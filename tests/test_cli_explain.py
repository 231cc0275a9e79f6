"""Evidence in the analysts' CLI: `stance score --explain` adds an evidence column (JSONL list,
CSV JSON text, Parquet list of structs), and `stance report` lists the phrases that most often
carried each actor's support and opposition. On the tiny model (its evidence is noise: the
shapes are checked) and on a scored file made here, whose evidence is chosen."""

from __future__ import annotations

import json

import pytest
from helpers import ARTICLE, ARTICLE_SENTENCES, read_out, write, write_jsonl
from typer.testing import CliRunner

from batch.cli import app


def report(*args):
    return CliRunner().invoke(app, ["report", *map(str, args)])


@pytest.mark.parametrize("out", ["out.jsonl", "out.csv", "out.parquet"])
def test_explain_adds_an_evidence_column_last(score, tmp_path, out):
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", out, "--explain")
    assert result.exit_code == 0, result.output
    rows = read_out(tmp_path / out)
    assert list(rows[0])[-2:] == ["model", "evidence"]
    assert [r["actor"] or None for r in rows] == [a for _, actors in ARTICLE_SENTENCES for a in (actors or [None])]
    for row in rows:
        evidence = row["evidence"]
        if out.endswith(".csv"):
            evidence = json.loads(evidence) if evidence else None
        if not row["actor"]:
            assert evidence in (None, [])
            continue
        assert isinstance(evidence, list)
        for e in evidence:
            assert set(e) == {"text", "start", "end", "weight"}
            assert row["sentence"][e["start"]:e["end"]] == e["text"]


def test_without_explain_there_is_no_evidence_column(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "out.jsonl").exit_code == 0
    assert "evidence" not in read_out(tmp_path / "out.jsonl")[0]


def test_an_input_column_named_evidence_is_kept_apart(score, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"sentence": "Lavrov praised the talks.", "evidence": "a source note"}])
    assert score("in.jsonl", "--out", "out.jsonl", "--explain").exit_code == 0
    row = read_out(tmp_path / "out.jsonl")[0]
    assert row["input_evidence"] == "a source note" and isinstance(row["evidence"], list)


def test_score_frame_explains_too(tiny_predictor):
    pd = pytest.importorskip("pandas")
    from batch.frame import score_frame

    df = score_frame(pd.DataFrame({"text": ["Lavrov praised the talks."]}), predictor=tiny_predictor, explain=True)
    assert list(df.columns)[-1] == "evidence"
    assert score_frame(pd.DataFrame({"text": ["Rubio spoke."]}), predictor=tiny_predictor).columns[-1] == "model"


# -- the report ---------------------------------------------------------------------------------
def _pair(actor, stance, evidence, affiliation="Russia"):
    return {"source": "s.jsonl", "sentence_index": 0, "actor": actor, "mention": actor, "affiliation": affiliation,
            "stance": stance, "stance_probs": {}, "sentiment": "neutral", "sentiment_probs": {}, "model": "m",
            "evidence": evidence}


def _ev(*phrases):
    return [{"text": t, "start": 0, "end": len(t), "weight": w} for t, w in phrases]


SCORED = [
    _pair("Sergey Lavrov", "support", _ev(("praised", 0.4), ("the talks", 0.1))),
    _pair("Sergey Lavrov", "support", _ev(("Praised", 0.2), ("but", -0.3))),  # a negative weight carried nothing
    _pair("Sergey Lavrov", "support", _ev(("welcomed", 0.3))),
    _pair("Sergey Lavrov", "oppose", _ev(("rejected", 0.5))),
    _pair("Sergey Lavrov", "neutral", _ev(("said", 0.2))),  # neutral is carried by no phrase
    _pair("Kaja Kallas", "oppose", _ev(("a trap", 0.6)), "European Union"),
    _pair("Kaja Kallas", "oppose", [], "European Union"),
    {**_pair(None, None, None), "actor": None, "stance": None},
]


def test_report_lists_the_phrases_that_carried_support_and_opposition(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", SCORED)
    result = report(tmp_path / "s.jsonl", "--out-dir", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'rep' / 'evidence_phrases.csv'}" in result.stderr
    table = read_out(tmp_path / "rep" / "evidence_phrases.csv")
    assert [(r["actor"], r["stance"], r["phrase"], r["pairs"], r["share"], r["mean_weight"]) for r in table] == [
        ("Sergey Lavrov", "support", "praised", "2", "0.667", "0.3"),
        ("Sergey Lavrov", "support", "the talks", "1", "0.333", "0.1"),
        ("Sergey Lavrov", "support", "welcomed", "1", "0.333", "0.3"),
        ("Sergey Lavrov", "oppose", "rejected", "1", "1.0", "0.5"),
        ("Kaja Kallas", "oppose", "a trap", "1", "0.5", "0.6"),
    ]
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## What carried each actor's stance" in md
    assert "| Sergey Lavrov | Russia | praised (2), the talks (1), welcomed (1) | rejected (1) |" in md
    assert "| Kaja Kallas | European Union | – | a trap (1) |" in md


def test_report_reads_evidence_from_csv_and_parquet_as_score_wrote_them(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    for out in ("out.csv", "out.parquet"):
        assert score("a.txt", "--out", out, "--explain").exit_code == 0
        result = report(tmp_path / out, "--out-dir", tmp_path / f"rep_{out}")
        assert result.exit_code == 0, result.output
        assert (tmp_path / f"rep_{out}" / "evidence_phrases.csv").exists()


def test_a_report_without_evidence_has_no_phrase_section(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    assert score("a.txt", "--out", "out.jsonl").exit_code == 0
    assert report(tmp_path / "out.jsonl", "--out-dir", tmp_path / "rep").exit_code == 0
    assert not (tmp_path / "rep" / "evidence_phrases.csv").exists()
    assert "What carried" not in (tmp_path / "rep" / "summary.md").read_text()


def test_evidence_that_is_not_what_score_writes_is_refused_in_one_line(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [_pair("Sergey Lavrov", "support", [{"word": "x"}])])
    result = report(tmp_path / "s.jsonl", "--out-dir", tmp_path / "rep")
    assert result.exit_code == 1
    assert result.stderr == (f"error: {tmp_path / 's.jsonl'}:1: evidence must be a list of {{text, start, end, weight}}, "
                             "as `stance score --explain` writes it\n")
