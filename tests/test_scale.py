"""`stance score --engine ray` on a local Ray (2 CPUs), with the tiny model: the same rows as
the local engine, labels and probabilities alike, in every output format; the same input
errors; one line when Ray is not installed."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from contextlib import nullcontext

import pytest
from typer.testing import CliRunner

from serving.cli import app
from tests.test_cli import ARTICLE, read_out, write, write_csv

runner = CliRunner()
# Ray Data reads its own deprecated settings when it copies its context; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module: starting it takes seconds; every run then only starts
    its actors (which load the model, as in a real run). Ray is installed by `make install`:
    without it these tests fail rather than skip, so CI cannot pass them by not running them."""
    import ray
    from serving.scale import WORKER_ENV

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             runtime_env={"env_vars": WORKER_ENV})
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


@pytest.mark.parametrize("out", ["scored.jsonl", "scored.csv", "scored.parquet"])
def test_ray_output_equals_local_row_for_row(ray_local, score, mixed_inputs, tmp_path, monkeypatch, out):
    # 8 records per predictor call: the 41 records make 6 chunks, spread over 2 actors.
    monkeypatch.setattr("serving.cli.BATCHES_PER_CALL", 4)
    local, remote = f"local_{out}", f"ray_{out}"
    result = score(*mixed_inputs, "--out", local, "--batch-size", "2", "--skip-bad")
    assert result.exit_code == 0, result.output
    if out.endswith(".parquet"):
        (tmp_path / remote).write_text("an older output, replaced")  # the folder replaces a file too
    result = score(*mixed_inputs, "--out", remote, "--batch-size", "2", "--skip-bad", "--engine", "ray")
    assert result.exit_code == 0, result.output

    expected, got = read_out(tmp_path / local), read_out(tmp_path / remote)
    assert len(expected) == 74
    assert got == expected  # labels and probabilities, every column, in order
    assert list(dict.fromkeys(r["source"] for r in got)) == ["a.jsonl", "b.csv", "c.parquet", "more/y.jsonl", "more/z.txt"]
    assert "warning: skipped a.jsonl, line 3: malformed JSON (Expecting property name enclosed in double quotes " \
           "at column 2)" in result.stderr
    assert "wrote 74 rows" in result.stderr and "on Ray, 2 workers" in result.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file or folder left
    if out.endswith(".parquet"):
        import pyarrow.parquet as pq

        assert sorted(p.name for p in (tmp_path / remote).iterdir()) == [f"part-{i:06d}.parquet" for i in range(6)]
        assert pq.read_schema(tmp_path / local) == pq.read_table(tmp_path / remote).schema
        assert got[0]["meta"] == {"desk": "a"} and got[-1]["day"] is None  # input values keep their types
        report = runner.invoke(app, ["report", remote, "--out-dir", "rep"])  # `stance report` reads the folder
        assert report.exit_code == 0, report.output


def test_bad_input_names_file_and_line_under_ray(ray_local, score, tmp_path):
    write(tmp_path / "ok.csv", "sentence\nPutin spoke.\n")
    write(tmp_path / "r.csv", "sentence,id\nPutin spoke.,1\n  ,2\n")
    result = score("ok.csv", "r.csv", "--out", "out.parquet", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == "error: r.csv, line 3: empty sentence; use --skip-bad to skip it\n"
    assert not (tmp_path / "out.parquet").exists()


def test_missing_model_under_ray(ray_local, score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    result = runner.invoke(app, ["score", "a.txt", "--out", "out.csv", "--engine", "ray",
                                 "--model", "stance_classifier:nosuchversion"])
    assert result.exit_code == 1
    assert result.stderr == ("error: no model 'stance_classifier:nosuchversion' in the BentoML store; "
                             "run `make train` first\n")


def test_without_ray_one_line_names_the_extra(score, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` (and ray.data) now raises ImportError
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "out.csv", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == "error: --engine ray needs Ray: pip install -e '.[scale]'\n"
    assert score("a.txt", "--out", "out.csv").exit_code == 0  # the local engine does not need it


def test_workers_needs_the_ray_engine(score, tmp_path):
    write(tmp_path / "a.txt", ARTICLE)
    result = score("a.txt", "--out", "out.csv", "--workers", "2")
    assert result.exit_code == 2
    assert result.stderr == "error: --workers is for --engine ray; the local engine scores in this process\n"


@pytest.mark.parametrize("existing", [None, "file", "folder"])
@pytest.mark.parametrize("fails", [False, True])
def test_parquet_folder_replaces_the_output_only_when_complete(tmp_path, existing, fails):
    from serving.batch import atomic_dir

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
