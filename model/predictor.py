"""The one batched predictor behind the HTTP service, the batch CLI (both engines) and training.

    from model.predictor import Predictor
    predictor = Predictor.from_store("stance_classifier:latest")    # or Predictor.load(folder)
    predictor.predict(["Kyiv rejected the Riyadh talks.", ("Lavrov praised the talks.", "Sergey Lavrov")])

Items in, one result per item out, in order. A request walks down once: ``predict`` ->
``targets`` (registry matcher) -> model/encoding.py (windows) -> ``StanceSentimentModel.forward``
-> ``calibrate`` -> the windows' probabilities averaged per row.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from model import artifact, precision as precisions
from model.actors import Registry, load_registry
from model.encoding import Encoded, encode_pairs, encode_sentences
from model.items import Item, as_item
from model.labels import SENTIMENT, STANCE
from model.network import StanceSentimentModel

log = logging.getLogger("stance")

Row = tuple[str, str, "tuple[int, int] | None"]  # (actor, sentence, mention span)


@dataclass(frozen=True)
class Target:
    actor: str
    mention: str | None
    span: tuple[int, int] | None
    affiliation: str | None


@dataclass(frozen=True)
class Failure:
    """In place of a result: the item whose prediction raised, and why. Only ``predict(...,
    isolate=True)`` returns these; the other items of its batch are answered normally."""

    item: Item
    error: str


class Predictor:
    """``encoder`` maps a batch from model.encoding to hidden states: the model's own
    PyTorch encoder by default, or an ``OnnxEncoder`` (see ``load``)."""

    def __init__(self, model: StanceSentimentModel, tokenizer, meta: dict | None = None, tag: str = "local",
                 registry: Registry | None = None, batch_size: int = 32, max_length: int | None = None,
                 encoder: Callable[[dict], torch.Tensor] | None = None, choice: str = "fp32, PyTorch",
                 source: Path | None = None):
        self.model = model.eval()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.meta = meta or {}
        self.tag = tag
        self.registry = registry or load_registry()
        self.batch_size = batch_size
        self.max_length = max_length or artifact.max_length(self.meta)
        self.choice = choice  # the precision and backend that run, and why (logged by load)
        # The saved model folder this was loaded from (None if built in memory): where
        # model/gradients.py reloads fp32 weights when this predictor runs bf16 or int8.
        self.source = source

    def with_parts(self, model: StanceSentimentModel | None = None, encoder=None, choice: str = "") -> "Predictor":
        """This predictor around another model and/or encoder, with the same settings."""
        return Predictor(model or self.model, self.tokenizer, self.meta, self.tag, self.registry,
                         self.batch_size, self.max_length, encoder=encoder, choice=choice or self.choice,
                         source=self.source)

    @classmethod
    def load(cls, path: str | Path, tag: str = "local", precision: str = "auto", backend: str = "auto",
             batch_size: int = 32) -> "Predictor":
        """A saved model folder. ``precision``: auto | fp32 | bf16 | int8 (model/precision.py).
        ``backend``: torch | onnx | auto. With auto, bf16 and int8 run on PyTorch; fp32 runs
        on whichever of PyTorch and ONNX Runtime is faster here: timed on a few batches at the
        first load on this machine, then remembered (model/backend_memo.py)."""
        if backend not in precisions.BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(precisions.BACKENDS)}, not {backend!r}")
        model, tokenizer, meta, registry = artifact.load(path)
        chosen, why = precisions.resolve(precision, precisions.passed_checks(meta), met=precisions.met_targets(meta))
        base = cls(model, tokenizer, meta, tag, registry, batch_size, source=Path(path))

        # Each side is built only if it runs: converting and tracing an unused encoder costs a second.
        def on_torch() -> "Predictor":
            return base.with_parts(precisions.convert(model, chosen), choice=f"{why}; PyTorch").traced()

        def on_onnx() -> "Predictor":
            from model.onnx_encoder import FILE, OnnxEncoder

            return base.with_parts(encoder=OnnxEncoder(Path(path) / FILE), choice=f"{why}; ONNX Runtime")

        if backend == "onnx":
            predictor = on_onnx()
        elif backend == "torch" or chosen != "fp32" or not artifact.has_onnx(path):
            predictor = on_torch()
        else:
            predictor = cls._raced(path, on_torch, on_onnx)
        log.info("stance model %s: %s", tag, predictor.choice)
        return predictor

    @staticmethod
    def _raced(path, on_torch, on_onnx) -> "Predictor":
        """The faster of the two backends for fp32, timed on the probes at the first load of
        this model on this machine and remembered for the next (model/backend_memo.py)."""
        from model import backend_memo
        from model.onnx_encoder import FILE

        name = backend_memo.key(Path(path), Path(path) / FILE)
        seen = backend_memo.recall(name)
        if seen:
            faster = on_onnx() if seen.backend == "onnx" else on_torch()
            how = f"measured at an earlier load, remembered in {backend_memo.path()}"
        else:
            a, b = on_torch(), on_onnx()
            t_torch, t_onnx = _race(a, b)
            faster = b if t_onnx < t_torch else a
            seen = backend_memo.Outcome("onnx" if faster is b else "torch", t_torch * 1000, t_onnx * 1000)
            backend_memo.remember(name, seen)
            how = "measured at load"
        return faster.with_parts(model=faster.model, encoder=faster.encoder, choice=(
            f"{faster.choice} ({how}: PyTorch {seen.torch_ms:.0f} ms, ONNX Runtime {seen.onnx_ms:.0f} ms)"))

    def traced(self) -> "Predictor":
        """This predictor with its PyTorch encoder run as a frozen TorchScript graph
        (model/traced.py), or as it is if the graph's hidden states differ on the probes."""
        from model import traced

        probe = encode_sentences(self.tokenizer, [p.sentence for p in PROBES[:4]], self.max_length).tensors
        encoder = traced.trace(self.model, probe)
        return self.with_parts(encoder=encoder, choice=f"{self.choice}, traced") if encoder else self

    @classmethod
    def from_store(cls, tag: str = "stance_classifier:latest", **kwargs) -> "Predictor":
        """The model ``make train`` saved in the BentoML store (model/store.py finds it)."""
        from model.store import find

        path, resolved = find(tag)
        return cls.load(path, tag=resolved, **kwargs)

    # -- which actors a request is about ------------------------------------------------
    def targets(self, item: Item) -> list[Target]:
        reg = self.registry
        if item.actor is None:
            return [Target(m.actor, m.text, (m.start, m.end), reg.actors[m.actor].affiliation) for m in reg.find(item.sentence)]
        actor = item.actor.strip()
        name = reg.owner(actor) or actor
        affiliation = reg.actors[name].affiliation if name in reg else None
        span = _find(item.sentence, item.mention) if item.mention else None
        if span is None and name in reg:
            span = next(((m.start, m.end) for m in reg.find_all(item.sentence) if m.actor == name), None)
        if span is None:
            # A free-text actor may be named by surname only ("Sánchez" for "Pedro Sánchez").
            for candidate in (actor, *reversed(actor.split())):
                span = _find(item.sentence, candidate) if len(candidate) > 2 else None
                if span:
                    break
        mention = item.sentence[span[0]:span[1]] if span else None
        return [Target(name, mention, span, affiliation)]

    # -- forward passes -------------------------------------------------------------------
    @torch.inference_mode()
    def probabilities(self, rows: list[Row], sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated stance probabilities per (actor, sentence, span) row and sentiment
        probabilities per sentence. A row longer than the window is read as several
        windows (model/encoding.py) whose probabilities are averaged."""
        stance = self._run(len(rows), [r[1] for r in rows], lambda idx: encode_pairs(
            self.tokenizer, [rows[i][0] for i in idx], [rows[i][1] for i in idx], [rows[i][2] for i in idx], self.max_length),
            "stance")
        sentiment = self._run(len(sentences), sentences, lambda idx: encode_sentences(
            self.tokenizer, [sentences[i] for i in idx], self.max_length), "sentiment")
        return stance, sentiment

    def _run(self, n: int, texts: list[str], encode: Callable[[list[int]], Encoded], task: str) -> torch.Tensor:
        labels = STANCE if task == "stance" else SENTIMENT
        out = torch.empty(n, len(labels))
        for idx in _length_batches(texts, self.batch_size):
            enc = encode(idx)
            logits = getattr(self.model.calibrate(self.model(**{task: enc.tensors}, encoder=self.encoder)), task)
            probs = logits.softmax(-1)
            owner = torch.tensor(enc.owner)
            summed = torch.zeros(len(idx), len(labels)).index_add_(0, owner, probs)
            out[idx] = summed / torch.bincount(owner, minlength=len(idx)).unsqueeze(1)
        return out

    def predict(self, items: Iterable[Item | str | tuple], isolate: bool = False) -> list[dict | Failure]:
        """Items (or sentences, or (sentence, actor) tuples) in, one result per item out, in
        order. Sentiment is computed once per distinct sentence; stance once per (sentence,
        actor). With ``isolate``, an item whose prediction raises gets a ``Failure`` and the
        others of the batch are answered as if it had not been sent."""
        items = [as_item(x) for x in items]
        try:
            return self._predict(items)
        except Exception:
            if not isolate:
                raise
        # Something in the batch raised: answer its items one at a time, so only that one fails.
        results: list[dict | Failure] = []
        for item in items:
            try:
                results.append(self._predict([item])[0])
            except Exception as e:  # noqa: BLE001 - isolated: one item's fault is its own
                log.exception("prediction failed for one item")
                results.append(Failure(item, f"{type(e).__name__}: {e}"))
        return results

    def _predict(self, items: list[Item]) -> list[dict]:
        targets = [self.targets(it) for it in items]
        sentences = list(dict.fromkeys(it.sentence for it in items))
        rows = [(t.actor, it.sentence, t.span) for it, ts in zip(items, targets) for t in ts]
        st_probs, sent_probs = self.probabilities(rows, sentences)
        by_sentence = dict(zip(sentences, sent_probs))
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
        return results


# Sentences the checks at save time and the backend timing at load run on: actors of every
# kind, several per sentence, short and long, so a batch has real padding.
PROBES = [
    Item("Rubio said the talks in Riyadh were a first step toward ending the war."),
    Item("Zelensky rejected any deal made without Ukraine, while Lavrov praised the meeting."),
    Item("European leaders complained that they had been left out of the negotiations in Saudi Arabia."),
    Item("China welcomed the contacts.", actor="China"),
    Item("The Kremlin's envoy Kirill Dmitriev, who heads Russia's sovereign wealth fund, said US companies "
         "could return to the Russian market once sanctions are eased, a prospect Kyiv views with alarm."),
    Item("The talks lasted four and a half hours."),
    Item("Peskov said Moscow was ready to host the next round, but Kallas called the process \"a trap\"."),
    Item("Yermak thanked the American team for a \"constructive\" conversation in Jeddah and said Kyiv was ready to move forward."),
]


def _race(a: Predictor, b: Predictor, rounds: int = 3) -> tuple[float, float]:
    """The best seconds of one pass over the probes, for ``a`` and for ``b``, timed in turns
    after one warm-up pass each. In turns, and the best pass of each: on a shared machine a
    burst of other work then slows one pass, not every pass of one side. Timing one side
    after the other (median of 3 each) picked the slower backend in 2 of 12 loads on an AMD
    EPYC without AVX-512, where ONNX Runtime is 1.2-1.6x faster (benchmarks/README.md)."""
    a.predict(PROBES)
    b.predict(PROBES)
    times = ([], [])
    for _ in range(rounds):
        for predictor, spent in zip((a, b), times):
            t = time.perf_counter()
            predictor.predict(PROBES)
            spent.append(time.perf_counter() - t)
    return min(times[0]), min(times[1])


def _probs(labels, p: torch.Tensor) -> dict[str, float]:
    return {label: round(float(v), 4) for label, v in zip(labels, p)}


def _find(sentence: str, text: str) -> tuple[int, int] | None:
    m = re.search(r"(?<!\w)" + re.escape(text.strip()) + r"(?!\w)", sentence, re.IGNORECASE) if text.strip() else None
    return (m.start(), m.end()) if m else None


def _length_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length, so padding wastes little compute."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
