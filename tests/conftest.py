"""Shared fixtures. Everything runs offline; the tiny model is a 1-layer BERT built from a
config (random weights, the real tokenizer), trained for a few steps in seconds."""

from __future__ import annotations

import os

# Set before any HF import: tests must never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Read at import, before `tiny_store` points BENTOML_HOME at its temporary store.
PROJECT_HOME = Path(os.environ.get("BENTOML_HOME") or ROOT / "bentoml_home")

TINY_ROWS = [
    # (sentence, actor, mention, stance, sentiment)
    ("Lavrov praised the talks in Riyadh as useful.", "Sergey Lavrov", "Lavrov", "support", "positive"),
    ("Zelensky rejected any deal made without Ukraine.", "Volodymyr Zelensky", "Zelensky", "oppose", "negative"),
    ("Rubio attended the meeting on Tuesday.", "Marco Rubio", "Rubio", "neutral", "neutral"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Ukraine", "Kyiv", "oppose", "negative"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Russia", "Moscow", "support", "negative"),
    ("The Saudis hosted the delegations at a palace.", "Saudi Arabia", "The Saudis", "neutral", "neutral"),
]


def tiny_dataset(articles=("a", "b")):
    from training.data import to_dataset

    rows = []
    for k, (sentence, actor, mention, stance, sentiment) in enumerate(TINY_ROWS * 2):
        start = sentence.index(mention)
        art = articles[k % len(articles)]
        rows.append({"id": f"{art}-{k}:{actor}", "sentence_id": f"{art}-{k}", "article": art, "sentence": sentence,
                     "actor": actor, "mention": mention, "mention_start": start, "mention_end": start + len(mention),
                     "stance": stance, "sentiment": sentiment, "ambiguous": False, "note": ""})
    return to_dataset(rows)


def tiny_config(**overrides):
    from training.config import load_config

    return load_config(None, **{"encoder": "tiny", "epochs": 2, "batch_size": 4, "max_steps": 4, "head_lr": 1e-2, "workers": 1, **overrides})


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
    from model.predictor import save_model

    path = tmp_path_factory.mktemp("tiny_model")
    save_model(tiny_model, tokenizer, {"config": tiny_config().to_dict(), "metrics": {}}, path)
    return path


@pytest.fixture(scope="session")
def tiny_store(tiny_model, tokenizer, tmp_path_factory):
    """A BENTOML_HOME holding a registered tiny `stance_classifier`; yields its tag."""
    home = tmp_path_factory.mktemp("bentoml_home")
    old = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    from training.store import register

    tag = register(tiny_model, tokenizer, tiny_config(), {}, {"stance": 1.0, "sentiment": 1.0}, 0.0)
    yield tag
    if old is None:
        os.environ.pop("BENTOML_HOME", None)
    else:
        os.environ["BENTOML_HOME"] = old


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir):
    from model.predictor import Predictor

    return Predictor.load(tiny_model_dir, tag="stance_classifier:tiny")


def _stored_model(home: Path, tag: str = "stance_classifier:latest"):
    """Look a model up in the store at `home` without touching BentoML's process-wide
    store, which the first use in a session fixes (and `tiny_store` may have set)."""
    from bentoml._internal.models import ModelStore
    from bentoml.exceptions import NotFound

    try:
        return ModelStore(str(home / "models")).get(tag)
    except (NotFound, FileNotFoundError):
        return None


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """The real checkpoint, fine-tuned: `stance_classifier:latest` from the project's store
    if `make train` has run; else trained once here, in a subprocess (final fit only, the
    same seed, data and config as `make train`), into a temporary store."""
    import subprocess
    import sys

    found = _stored_model(PROJECT_HOME)
    if found is None:
        home = tmp_path_factory.mktemp("real_store")
        subprocess.run([sys.executable, "-m", "training.train", "--no-cv"], cwd=ROOT, check=True,
                       env={**os.environ, "BENTOML_HOME": str(home)})
        found = _stored_model(home)
    return found


@pytest.fixture(scope="session")
def real_predictor(real_model):
    from model.predictor import Predictor

    return Predictor.load(real_model.path, tag=str(real_model.tag))


@pytest.fixture
def score(tiny_store, monkeypatch, tmp_path):
    """Run `stance score ... --model <tiny tag>` in tmp_path, through the CLI runner; return the result."""
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.chdir(tmp_path)

    def run(*args):
        return CliRunner().invoke(app, ["score", *map(str, args), "--model", tiny_store])

    return run
