"""The one batched predictor behind the HTTP service and the batch-scoring CLI.

    predictor = Predictor.load("path/to/saved/model")
    predictor.predict([Item("Kyiv rejected the Riyadh talks.")])

A saved model is a folder: ``model.safetensors`` (all weights), ``encoder/`` (encoder
config and tokenizer, so loading needs no hub), ``encoder.onnx`` (the encoder for ONNX
Runtime, see model/onnx_encoder.py) and ``meta.json`` (labels, hashes, config, metrics,
versions). Loading refuses a model whose labels differ from the code's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from model import onnx_encoder
from model.actors import Registry, load_registry
from model.encoding import encode_sentences, encode_stance
from model.labels import SENTIMENT, STANCE
from model.network import StanceSentimentModel

MAX_LENGTH = 128


class LabelMismatchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Item:
    sentence: str
    actor: str | None = None
    mention: str | None = None


@dataclass(frozen=True)
class Target:
    actor: str
    mention: str | None
    span: tuple[int, int] | None
    affiliation: str | None


def check_labels(meta: dict, where: str) -> None:
    saved = meta.get("labels", {})
    for task, labels in (("stance", STANCE), ("sentiment", SENTIMENT)):
        if list(saved.get(task, [])) != list(labels):
            raise LabelMismatchError(
                f"model {where} was trained with {task} labels {list(saved.get(task, []))}, "
                f"but this code defines {list(labels)}; retrain it with `make train`"
            )


# Sentences the ONNX export is checked on when a model is saved: actors of every kind,
# several per sentence, short and long, so the batch has real padding.
PROBES = [
    Item("Rubio said the talks in Riyadh were a first step toward ending the war."),
    Item("Zelensky rejected any deal made without Ukraine, while Lavrov praised the meeting."),
    Item("European leaders complained that they had been left out of the negotiations in Saudi Arabia."),
    Item("China welcomed the contacts.", actor="China"),
    Item("The Kremlin's envoy Kirill Dmitriev, who heads Russia's sovereign wealth fund, said US companies "
         "could return to the Russian market once sanctions are eased, a prospect Kyiv views with alarm."),
    Item("The talks lasted four and a half hours."),
]


def read_meta(path: str | Path) -> dict:
    """The metadata of a saved model, its labels checked against the code's."""
    meta_file = Path(path) / "meta.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a saved stance model (no meta.json); train one with `make train`")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    check_labels(meta, f"at {path}")
    return meta


def save_model(model: StanceSentimentModel, tokenizer, meta: dict, path: str | Path) -> None:
    path = Path(path)
    (path / "encoder").mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(path / "encoder")
    tokenizer.save_pretrained(path / "encoder")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    meta = {**meta, "labels": {"stance": list(STANCE), "sentiment": list(SENTIMENT)}}
    onnx_path = onnx_encoder.export(model, tokenizer, path)
    meta["onnx_max_prob_diff"] = check_onnx(Predictor(model, tokenizer), onnx_encoder.OnnxEncoder(onnx_path))
    (path / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def check_onnx(predictor: "Predictor", encoder) -> float:
    """Largest probability difference between the PyTorch and the ONNX encoder on PROBES.
    Raises if it exceeds onnx_encoder.TOLERANCE, or if a label differs where PyTorch's
    top two probabilities are not tied within that tolerance."""
    fast = predictor.with_parts(encoder=encoder)
    diff = 0.0
    for a, b in zip(predictor.predict(PROBES), fast.predict(PROBES)):
        outputs = [(a["sentiment_probs"], b["sentiment_probs"])]
        outputs += [(x["stance_probs"], y["stance_probs"]) for x, y in zip(a["actors"], b["actors"])]
        for ref, got in outputs:
            diff = max(diff, *(abs(ref[k] - got[k]) for k in ref))
            top, second = sorted(ref.values(), reverse=True)[:2]
            label_differs = max(ref, key=ref.get) != max(got, key=got.get) and top - second > onnx_encoder.TOLERANCE
            if label_differs or diff > onnx_encoder.TOLERANCE:
                raise RuntimeError(f"the ONNX export disagrees with PyTorch on {a['sentence']!r}: {ref} vs {got}")
    return diff


class Predictor:
    """``encoder`` maps a batch from model.encoding to hidden states: the model's own
    PyTorch encoder by default, or an ``OnnxEncoder`` (what ``load`` picks when it can)."""

    def __init__(self, model: StanceSentimentModel, tokenizer, meta: dict | None = None, tag: str = "local",
                 registry: Registry | None = None, batch_size: int = 32, max_length: int = MAX_LENGTH,
                 encoder: Callable[[dict], torch.Tensor] | None = None):
        self.model = model.eval()
        self.encoder = encoder or (lambda enc: model.hidden(enc["attention_mask"], enc["input_ids"], enc.get("token_type_ids")))
        self.tokenizer = tokenizer
        self.meta = meta or {}
        self.tag = tag
        self.registry = registry or load_registry()
        self.batch_size = batch_size
        self.max_length = max_length

    def with_parts(self, model: StanceSentimentModel | None = None, encoder=None) -> "Predictor":
        """This predictor around another model and/or encoder (by default the model's own
        PyTorch encoder), with the same tokenizer, registry and settings."""
        return Predictor(model or self.model, self.tokenizer, self.meta, self.tag, self.registry,
                         self.batch_size, self.max_length, encoder=encoder)

    @classmethod
    def load(cls, path: str | Path, tag: str = "local", backend: str = "auto", **kwargs) -> "Predictor":
        """backend: "onnx", "torch", or "auto" (ONNX Runtime when the model has an export,
        as every model saved by this code has; else PyTorch)."""
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', not {backend!r}")
        path = Path(path)
        meta = read_meta(path)
        model = StanceSentimentModel.from_encoder_config(str(path / "encoder"))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        tokenizer = AutoTokenizer.from_pretrained(str(path / "encoder"))
        onnx_file = path / onnx_encoder.FILE
        if backend == "onnx" or (backend == "auto" and onnx_file.exists()):
            kwargs["encoder"] = onnx_encoder.OnnxEncoder(onnx_file)
        return cls(model, tokenizer, meta, tag, **kwargs)

    # -- which actors a request is about ------------------------------------------------
    def targets(self, item: Item) -> list[Target]:
        reg = self.registry
        if item.actor is None:
            return [Target(m.actor, m.text, (m.start, m.end), reg.actors[m.actor].affiliation) for m in reg.find(item.sentence)]
        name = reg.owner(item.actor) or item.actor
        affiliation = reg.actors[name].affiliation if name in reg else None
        span = _find(item.sentence, item.mention) if item.mention else None
        if span is None and name in reg:
            span = next(((m.start, m.end) for m in reg.find_all(item.sentence) if m.actor == name), None)
        if span is None:
            # A free-text actor may be named by surname only ("Orbán" for "Viktor Orbán").
            for candidate in (item.actor, *reversed(item.actor.split())):
                span = _find(item.sentence, candidate) if len(candidate) > 2 else None
                if span:
                    break
        mention = item.sentence[span[0]:span[1]] if span else None
        return [Target(name, mention, span, affiliation)]

    # -- forward passes -------------------------------------------------------------------
    @torch.inference_mode()
    def stance_probs(self, rows: list[tuple[str, str, tuple[int, int] | None]]) -> torch.Tensor:
        """rows of (actor, sentence, span) -> (n, len(STANCE)) calibrated probabilities."""
        out = torch.empty(len(rows), len(STANCE))
        for idx in _length_batches([r[1] for r in rows], self.batch_size):
            batch = [rows[i] for i in idx]
            enc = encode_stance(self.tokenizer, [r[0] for r in batch], [r[1] for r in batch], [r[2] for r in batch], self.max_length)
            logits = self.model.stance_from_hidden(self.encoder(enc), enc["attention_mask"], enc["span_mask"])
            logits = logits / self.model.stance_temperature
            out[idx] = logits.softmax(-1)
        return out

    @torch.inference_mode()
    def sentiment_probs(self, sentences: list[str]) -> torch.Tensor:
        out = torch.empty(len(sentences), len(SENTIMENT))
        for idx in _length_batches(sentences, self.batch_size):
            enc = encode_sentences(self.tokenizer, [sentences[i] for i in idx], self.max_length)
            logits = self.model.sentiment_from_hidden(self.encoder(enc), enc["attention_mask"])
            logits = logits / self.model.sentiment_temperature
            out[idx] = logits.softmax(-1)
        return out

    def predict(self, items: Iterable[Item], progress: Callable[[int], None] | None = None) -> list[dict]:
        """Items in, one result per item out, in order. Sentiment is computed once per
        distinct sentence; stance once per (sentence, actor)."""
        items = list(items)
        targets = [self.targets(it) for it in items]
        sentences = list(dict.fromkeys(it.sentence for it in items))
        sent_probs = self.sentiment_probs(sentences)
        by_sentence = {s: p for s, p in zip(sentences, sent_probs)}
        rows = [(t.actor, it.sentence, t.span) for it, ts in zip(items, targets) for t in ts]
        st_probs = self.stance_probs(rows)
        results, k = [], 0
        for it, ts in zip(items, targets):
            sp = by_sentence[it.sentence]
            actors = []
            for t in ts:
                p = st_probs[k]
                k += 1
                actors.append({"actor": t.actor, "mention": t.mention, "affiliation": t.affiliation,
                               "stance": STANCE[int(p.argmax())], "stance_probs": _probs(STANCE, p)})
            results.append({"sentence": it.sentence, "sentiment": SENTIMENT[int(sp.argmax())],
                            "sentiment_probs": _probs(SENTIMENT, sp), "actors": actors, "model": self.tag})
            if progress:
                progress(1)
        return results


def _probs(labels, p: torch.Tensor) -> dict[str, float]:
    return {label: round(float(v), 4) for label, v in zip(labels, p)}


def _find(sentence: str, text: str) -> tuple[int, int] | None:
    m = re.search(r"(?<!\w)" + re.escape(text.strip()) + r"(?!\w)", sentence, re.IGNORECASE) if text.strip() else None
    return (m.start(), m.end()) if m else None


def _length_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length, so padding wastes little compute."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
