"""The saved model: a folder that describes itself.

    model.safetensors   all weights, with the temperatures and decision priors
    encoder/            encoder config and tokenizer (loading needs no hub)
    actors.yaml         the actor registry it was trained with: it travels with the model,
                        so editing model/actors.yaml later changes only newly trained models
    encoder.onnx        the encoder for ONNX Runtime (model/onnx_encoder.py)
    meta.json           labels, max_length, registry hash, config, metrics, versions, and the
                        precision checks made when it was saved

Loading refuses a model whose labels differ from the code's, or whose registry is neither
saved with it nor the same as the code's. ``verify`` checks a folder without loading it.
torch and transformers are imported where a model is built, not here: ``verify`` runs in a
quarter of a second where importing them alone takes four.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from model.actors import REGISTRY_PATH, Registry, parse_registry
from model.labels import SENTIMENT, STANCE

REGISTRY_FILE = "actors.yaml"
ONNX_FILE = "encoder.onnx"  # written by model/onnx_encoder.py

if TYPE_CHECKING:
    from model.network import StanceSentimentModel


class LabelMismatchError(RuntimeError):
    pass


class RegistryMismatchError(RuntimeError):
    pass


def check_labels(meta: dict, where: str) -> None:
    saved = meta.get("labels", {})
    for task, labels in (("stance", STANCE), ("sentiment", SENTIMENT)):
        if list(saved.get(task, [])) != list(labels):
            raise LabelMismatchError(
                f"model {where} was trained with {task} labels {list(saved.get(task, []))}, "
                f"but this code defines {list(labels)}; retrain it with `make train`"
            )


def read_meta(path: str | Path) -> dict:
    """The metadata of a saved model, its labels checked against the code's."""
    meta_file = Path(path) / "meta.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a saved stance model (no meta.json); train one with `make train`")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_file} is corrupt ({e}); retrain with `make train`") from None
    check_labels(meta, f"at {path}")
    return meta


def read_registry(path: str | Path, meta: dict) -> Registry:
    """The registry saved with the model; for a model saved without one, the code's, if it
    is the one the model was trained with."""
    saved = Path(path) / REGISTRY_FILE
    if saved.exists():
        return parse_registry(saved.read_text(encoding="utf-8"), f"{path}/{REGISTRY_FILE}")
    code = parse_registry(REGISTRY_PATH.read_text(encoding="utf-8"), REGISTRY_PATH.name)
    if meta.get("registry_hash") != code.digest:
        raise RegistryMismatchError(
            f"model at {path} was trained with actor registry {meta.get('registry_hash')}, but model/actors.yaml is now "
            f"{code.digest} and the model carries no copy of its own; retrain it with `make train`")
    return code


def save(model: StanceSentimentModel, tokenizer, meta: dict, path: str | Path, registry_text: str,
         checks: dict | None = None) -> None:
    """Write the model folder. ``checks`` (the precision and ONNX checks, model/checks.py)
    go into meta.json."""
    from safetensors.torch import save_file

    path = Path(path)
    (path / "encoder").mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(path / "encoder")
    tokenizer.save_pretrained(path / "encoder")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    (path / REGISTRY_FILE).write_text(registry_text, encoding="utf-8")
    meta = {**meta, "labels": {"stance": list(STANCE), "sentiment": list(SENTIMENT)}, **(checks or {})}
    (path / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def load(path: str | Path) -> tuple[StanceSentimentModel, object, dict, Registry]:
    """(fp32 model, tokenizer, meta, registry) of a saved model folder."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from model.network import StanceSentimentModel

    path = Path(path)
    meta = read_meta(path)
    registry = read_registry(path, meta)
    try:
        model = StanceSentimentModel.from_encoder_config(str(path / "encoder"))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        tokenizer = AutoTokenizer.from_pretrained(str(path / "encoder"))
    except Exception as e:  # noqa: BLE001 - safetensors, torch and transformers each raise their own kinds
        raise _unloadable(path, e) from None
    return model.eval(), tokenizer, meta, registry


def verify(path: str | Path) -> dict:
    """The meta of a saved model folder, checked without building the model (what
    serving/serve.py runs before the server starts): labels, registry, a weights file whose
    header and size agree, heads shaped for its encoder config, a tokenizer that parses. The
    same one-line errors as ``load``."""
    import tokenizers
    from safetensors import safe_open

    path = Path(path)
    meta = read_meta(path)
    read_registry(path, meta)
    try:
        config = json.loads((path / "encoder" / "config.json").read_text(encoding="utf-8"))
        hidden = config["hidden_size"]
        with safe_open(str(path / "model.safetensors"), framework="numpy") as f:  # reads the header only
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        expected = {"encoder.embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
                    "stance_head.weight": (len(STANCE), 2 * hidden), "sentiment_head.weight": (len(SENTIMENT), hidden)}
        wrong = [f"{k} is {shapes.get(k)}, the config needs {shape}" for k, shape in expected.items() if shapes.get(k) != shape]
        if wrong:
            raise ValueError(f"weights do not fit the encoder config: {'; '.join(wrong)}")
        tokenizers.Tokenizer.from_file(str(path / "encoder" / "tokenizer.json"))
    except Exception as e:  # noqa: BLE001 - json, safetensors and tokenizers each raise their own kinds
        raise _unloadable(path, e) from None
    return meta


def _unloadable(path: Path, e: Exception) -> ValueError:
    return ValueError(f"the model at {path} cannot be loaded ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                      "retrain with `make train`")


def has_onnx(path: str | Path) -> bool:
    return (Path(path) / ONNX_FILE).exists()


def max_length(meta: dict) -> int:
    """The tokenizer window the model was trained with (older models: in the config)."""
    return int(meta.get("max_length") or meta.get("config", {}).get("max_length") or 128)

