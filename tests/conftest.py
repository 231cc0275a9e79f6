"""Shared fixtures. Everything runs offline; the tiny model is a 1-layer BERT built from a
config (random weights, the real tokenizer), trained for a few steps in seconds."""

from __future__ import annotations

import os

from model.runtime import offline  # noqa: E402

offline()  # before any HF import: tests must never reach a hub

from pathlib import Path

import pytest

from helpers import ROOT, tiny_config, tiny_dataset  # noqa: E402

# Read at import, before `tiny_store` points BENTOML_HOME at its temporary store.
PROJECT_HOME = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


@pytest.fixture(scope="session", autouse=True)
def backend_memo_dir(tmp_path_factory):
    """Tests (and the processes they start) remember backend races here, not in ~/.cache."""
    os.environ["STANCE_CACHE_DIR"] = str(tmp_path_factory.mktemp("stance_cache"))
    return Path(os.environ["STANCE_CACHE_DIR"])


@pytest.fixture(scope="session")
def tokenizer():
    from training.train import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    from training.train import fit

    return fit(tiny_config(), tiny_dataset(), tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tokenizer, tmp_path_factory):
    from training.store import save

    path = tmp_path_factory.mktemp("tiny_model")
    save(tiny_model, tokenizer, tiny_config(), {}, path)
    return path


@pytest.fixture(scope="session")
def tiny_store(tiny_model, tokenizer, tmp_path_factory):
    """A BENTOML_HOME holding a registered tiny `stance_classifier`; yields its tag."""
    home = tmp_path_factory.mktemp("bentoml_home")
    old = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    from training.store import register

    tag = register(tiny_model, tokenizer, tiny_config(), {}, 0.0)
    yield tag
    if old is None:
        os.environ.pop("BENTOML_HOME", None)
    else:
        os.environ["BENTOML_HOME"] = old


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir):
    from model.predictor import Predictor

    return Predictor.load(tiny_model_dir, tag="stance_classifier:tiny")


def _usable_model(home: Path):
    """(folder, tag) of `stance_classifier:latest` in the store at `home`, if it is there and
    this code can load it (a model from an older checkout may not be)."""
    from model import artifact, store

    old = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    try:
        path, tag = store.find()
        artifact.read_registry(path, artifact.read_meta(path))
        return path, tag
    except Exception:  # noqa: BLE001 - absent, corrupt or incompatible: train one instead
        return None
    finally:
        if old is None:
            os.environ.pop("BENTOML_HOME", None)
        else:
            os.environ["BENTOML_HOME"] = old


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """(folder, tag) of the real fine-tuned model: `stance_classifier:latest` from the
    BentoML store if `make train` has run; else trained once here, in a subprocess, with
    the same data and config as `make train`, into a temporary store."""
    import subprocess
    import sys

    found = _usable_model(PROJECT_HOME)
    if found is None:
        home = tmp_path_factory.mktemp("real_store")
        subprocess.run([sys.executable, "-m", "training.train"], cwd=ROOT, check=True,
                       env={**os.environ, "BENTOML_HOME": str(home)})
        found = _usable_model(home)
    return found


@pytest.fixture(scope="session")
def real_predictor(real_model):
    from model.predictor import Predictor

    return Predictor.load(real_model[0], tag=real_model[1])


@pytest.fixture(scope="session")
def service_app(tiny_store, tmp_path_factory):
    """``StanceClassifier.to_asgi()`` on the tiny model, built once per session: BentoML
    registers its Prometheus metrics once per process, so a second app fails to start."""
    # What BentoML's server sets for its workers; /metrics needs it in-process too.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
    from serving.service import StanceClassifier

    return StanceClassifier.to_asgi()


@pytest.fixture(scope="module")
def client(service_app):
    """The HTTP service in-process behind starlette's TestClient. Module-scoped: a client that
    enters the app's lifespan (schemathesis does) shuts its service down on leaving, so each
    module starts it again."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient warns that it still uses httpx
        from starlette.testclient import TestClient

    with TestClient(service_app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def score(tiny_store, monkeypatch, tmp_path):
    """Run `stance score ... --model <tiny tag>` in tmp_path, through the CLI runner; return the result."""
    from typer.testing import CliRunner

    from batch.cli import app

    monkeypatch.chdir(tmp_path)

    def run(*args):
        return CliRunner().invoke(app, ["score", *map(str, args), "--model", tiny_store])

    return run
