"""`stance score --engine ray` on a local Ray (2 CPUs), with the tiny model: the same rows as
the local engine, labels and probabilities alike, in every output format; the same input
errors; a row whose scoring fails in an actor stops the run with its file and line, or is
skipped; one line when Ray is not installed."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from contextlib import nullcontext

import pytest
from helpers import ARTICLE, read_out, write, write_csv
from typer.testing import CliRunner

from batch.cli import app

runner = CliRunner()
HINT = "; use --skip-bad to skip it"
# Ray Data reads its own deprecated settings when it copies its context; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def fail_on_boom() -> None:
    """Run in every Ray worker as it starts: the predictor raises for any forward pass
    holding a sentence with 'BOOM', as a bug or a hostile row might."""
    from model.predictor import Predictor

    real = Predictor._predict

    def predict(self, items):
        if any("BOOM" in item.sentence for item in items):
            raise RuntimeError("boom")
        return real(self, items)

    Predictor._predict = predict


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module: starting it takes seconds; every run then only starts
    its actors (which load the model, as in a real run). Ray is installed by `make install`:
    without it these tests fail rather than skip, so CI cannot pass them by not running them."""
    import ray
    import ray.cloudpickle

    from batch.ray_engine import WORKER_ENV

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             runtime_env={"env_vars": WORKER_ENV, "worker_process_setup_hook": fail_on_boom})
    yield ray
    ray.shutdown()


@pytest.fixture
def mixed_inputs(tmp_path):
    """JSONL (with a bad row), CSV, Parquet, and a folder holding an article and more JSONL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"sentence": "Putin welcomed the talks.", "n": 7, "meta": {"desk": "a"}},
            {"sentence": "Zelensky rejected any deal made without Ukraine.", "actor": "Zelensky", "n": "eight"},
            {"sentence": "Nobody spoke.", "mention": "ignored without actor"}]
    write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:2]) + "{bad\n" + json.dumps(rows[2]) + "\n")
    write_csv(tmp_path / "b.csv", [["id", "sentence", "actor", "stance"],
                                   ["b1", "Lavrov praised the talks, and Rubio agreed.", "", "support"],
                                   ["b2", "Sánchez said little about the talks.", "Pedro Sánchez", ""]])
    pq.write_table(pa.table({"sentence": ["Kyiv condemned the talks, while Moscow welcomed them.", "Trump spoke."],
                             "day": [datetime.date(2025, 2, 18), None], "score": [0.5, 1.5]}), tmp_path / "c.parquet")
    (tmp_path / "more").mkdir()
    write(tmp_path / "more" / "z.txt", ARTICLE)
    write(tmp_path / "more" / "y.jsonl", "".join(json.dumps({"sentence": f"Rubio met Lavrov on day {i}."}) + "\n"
                                                 for i in range(30)))
    return ["a.jsonl", "b.csv", "c.parquet", "more"]


# One precision and backend for both engines: `auto` would choose by the CPU and by timing.
SAME = ["--precision", "fp32", "--backend", "torch"]


def test_ray_output_equals_local_row_for_row(ray_local, score, mixed_inputs, tmp_path, monkeypatch, tiny_store):
    """Parquet, written by the actors; JSONL and CSV are written by the driver, as from the
    local engine (the test below compares them, through stdout)."""
    # 8 records per predictor call: the 41 records make 6 chunks, spread over 2 actors.
    monkeypatch.setattr("batch.scoring.BATCHES_PER_CALL", 4)
    local, remote = "local.parquet", "ray.parquet"
    options = ["--batch-size", "2", "--skip-bad", *SAME]
    result = score(*mixed_inputs, "--out", local, *options)
    assert result.exit_code == 0, result.output
    (tmp_path / remote).write_text("an older output, replaced")  # the folder replaces a file too
    result = score(*mixed_inputs, "--out", remote, *options, "--engine", "ray")
    assert result.exit_code == 0, result.output

    expected, got = read_out(tmp_path / local), read_out(tmp_path / remote)
    assert len(expected) == 74
    assert got == expected  # labels and probabilities, every column, in order
    assert list(dict.fromkeys(r["source"] for r in got)) == ["a.jsonl", "b.csv", "c.parquet", "more/y.jsonl", "more/z.txt"]
    lines = result.stderr.splitlines()
    assert "warning: skipped a.jsonl:3: malformed JSON (Expecting property name enclosed in double quotes at column 2)" \
           in lines
    # --precision reaches the actors, and their choice is said in one line.
    assert [line for line in lines if line.startswith("model ")] == [f"model {tiny_store} on Ray: fp32, as asked; PyTorch, traced"]
    assert "wrote 74 rows" in result.stderr and "on Ray, 2 workers" in result.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file or folder left
    import pyarrow.parquet as pq

    assert sorted(p.name for p in (tmp_path / remote).iterdir()) == [f"part-{i:06d}.parquet" for i in range(6)]
    assert pq.read_schema(tmp_path / local) == pq.read_table(tmp_path / remote).schema
    assert got[0]["meta"] == {"desk": "a"} and got[-1]["day"] is None  # input values keep their types
    report = runner.invoke(app, ["report", remote, "--out-dir", "rep"])  # `stance report` reads the folder
    assert report.exit_code == 0, report.output


BOOM_ROWS = [["sentence"], ["Putin spoke."], ["Lavrov BOOM spoke."], ["Rubio spoke."]]


def test_a_row_whose_scoring_fails_in_an_actor_stops_the_run(ray_local, score, tmp_path):
    write_csv(tmp_path / "t.csv", BOOM_ROWS)
    result = score("t.csv", "--out", "out.parquet", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: t.csv:3: scoring failed (RuntimeError: boom)" + HINT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # nothing written, no temp file left


@pytest.mark.parametrize("out_format", ["jsonl", "csv"])
def test_a_row_whose_scoring_fails_in_an_actor_is_skipped_and_stdout_streams(ray_local, score, tmp_path, monkeypatch,
                                                                             out_format):
    from model.predictor import Predictor

    monkeypatch.setattr(Predictor, "_predict", Predictor._predict)  # restored after the test
    fail_on_boom()  # here too, so that the local engine gives the rows expected
    write_csv(tmp_path / "t.csv", BOOM_ROWS)
    options = ["--out", "-", "--out-format", out_format, "--skip-bad", *SAME]
    local = score("t.csv", *options)
    result = score("t.csv", *options, "--engine", "ray")
    assert result.exit_code == 0, result.output
    assert result.stdout == local.stdout
    assert [r["actor"] for r in read_out_text(result.stdout, out_format)] == ["Vladimir Putin", "Marco Rubio"]
    lines = result.stderr.splitlines()
    assert "warning: skipped t.csv:3: scoring failed (RuntimeError: boom)" in lines and lines[-1] == "skipped 1 bad row"


def read_out_text(text: str, out_format: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text))) if out_format == "csv" else list(map(json.loads, text.splitlines()))


def test_bad_input_names_file_and_line_under_ray(ray_local, score, tmp_path):
    write(tmp_path / "ok.csv", "sentence\nPutin spoke.\n")
    write(tmp_path / "r.csv", "sentence,actor\nPutin spoke.,\nPutin spoke.,  \n")
    result = score("ok.csv", "r.csv", "--out", "out.parquet", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == ("error: r.csv:3: actor must not be empty or whitespace only; use null to get every registry "
                             "actor found in the sentence" + HINT + "\n")
    assert not (tmp_path / "out.parquet").exists()


def test_missing_model_under_ray(ray_local, tiny_store, tmp_path, monkeypatch):
    import os

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.txt", ARTICLE)
    result = runner.invoke(app, ["score", "a.txt", "--out", "out.csv", "--engine", "ray",
                                 "--model", "stance_classifier:nosuchversion"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: no model 'stance_classifier:nosuchversion' in the BentoML store at "
                             f"{os.environ['BENTOML_HOME']} (it holds {tiny_store}); run `make train` first, or set "
                             "BENTOML_HOME to the store that has it\n")


def test_without_ray_one_line_names_the_extra(score, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` (and ray.data) now raises ImportError
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "out.csv", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == "error: --engine ray needs Ray: pip install -e '.[scale]'\n"
    assert score("a.txt", "--out", "out.csv").exit_code == 0  # the local engine does not need it


@pytest.mark.parametrize("existing", [None, "file", "folder"])
@pytest.mark.parametrize("fails", [False, True])
def test_parquet_folder_replaces_the_output_only_when_complete(tmp_path, existing, fails):
    from batch.writers import atomic_dir

    dest = tmp_path / "scored.parquet"
    if existing == "file":
        dest.write_text("old")
    elif existing == "folder":
        dest.mkdir()
        (dest / "part-000000.parquet").write_text("old")
    with pytest.raises(KeyboardInterrupt) if fails else nullcontext():
        with atomic_dir(dest) as tmp:
            (tmp / "part-000000.parquet").write_text("new")
            if fails:
                raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ([] if fails and not existing else ["scored.parquet"])
    if not fails:
        assert (dest / "part-000000.parquet").read_text() == "new"
    elif existing == "file":
        assert dest.read_text() == "old"
    elif existing == "folder":
        assert (dest / "part-000000.parquet").read_text() == "old"
