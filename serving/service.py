"""The HTTP inference service: one BentoML service around the one batched predictor.

    bentoml serve serving.service:StanceClassifier      # or `make serve` (127.0.0.1:$PORT)
    curl -s localhost:3000/classify -H 'Content-Type: application/json' \\
         -d '{"sentence": "Zelenskyy rejected the Riyadh talks.", "actor": null}'

APIs (POST, JSON): ``/classify`` {"sentence", "actor"} -> one result; ``/classify_batch``
{"items": [...]} -> {"results": [...]} in input order. Both go through BentoML's adaptive
batcher, which merges the items of concurrent requests into one forward pass. ``/healthz``,
``/readyz``, ``/metrics`` and the OpenAPI document are BentoML's own.

Every request body is checked by ``RequestGuard`` before BentoML parses it, so every bad
input gets a 4xx JSON error ``{"error": "<field>: <problem>", "field": "<field>"}``:
400 unreadable body (empty, not UTF-8, not JSON), 413 body over the size cap (refused from
Content-Length before reading, or as soon as the streamed bytes pass the cap), 422 a
well-formed body that breaks the rules below, 405 a method other than POST.
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata
from typing import Annotated, Any, Sequence

import bentoml
from bentoml.exceptions import ServiceUnavailable
from pydantic import BaseModel, ConfigDict, Field

from serving.store import MODEL_NAME

# -- limits (documented in the README) -----------------------------------------------------
MAX_SENTENCE_CHARS = 2000
MAX_ACTOR_CHARS = 200
MAX_BATCH_ITEMS = 256
MAX_BODY_BYTES = 1024 * 1024
ITEM_FIELDS = ("sentence", "actor")  # any other field is rejected (422): a typo must not pass silently

# Adaptive batching: at most this many items per forward pass; a request waits at most
# MAX_LATENCY_MS in the queue before it is shed with a 503 (overload, not bad input).
MAX_BATCH_SIZE = 64
MAX_LATENCY_MS = 30_000
# Rows per model call inside one forward pass (Predictor.batch_size). Measured on 2 cores:
# 16 gives the throughput of 32 with a worker peak of ~750 MiB instead of ~900 (smaller
# activations leave less heap behind).
FORWARD_CHUNK = 16

EXAMPLE = "Zelenskyy said Ukraine would not accept any deal reached in Riyadh without it."


# -- request validation: plain Python, so every message is ours and tested word for word ---
class Problem(Exception):
    def __init__(self, status: int, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.status, self.field = status, field

    def body(self) -> bytes:
        return json.dumps({"error": str(self), "field": self.field}).encode()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _is_blank(text: str) -> bool:
    """Only whitespace, control or format characters: nothing a model could read."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def _check_text(value: Any, field: str, limit: int, nullable: bool) -> None:
    if not isinstance(value, str):
        kind = "a string or null" if nullable else "a string"
        raise Problem(422, field, f"must be {kind}, got {_json_type(value)}")
    if len(value) > limit:
        raise Problem(422, field, f"must be at most {limit} characters, got {len(value)}")
    if _is_blank(value):
        hint = "; use null to get every registry actor found in the sentence" if nullable else ""
        raise Problem(422, field, f"must not be empty or whitespace only{hint}")
    # A lone surrogate (JSON "\ud800") cannot be encoded as UTF-8, so neither the tokenizer
    # nor the response could carry it: refuse it rather than score a mangled sentence.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Problem(422, field, f"contains a lone surrogate (U+{ord(value[e.start]):04X}) at index {e.start}, "
                                  "which is not valid Unicode") from None


def check_item(item: Any, prefix: str = "") -> None:
    where = prefix.rstrip(".") or "body"
    if not isinstance(item, dict):
        raise Problem(422, where, f"must be a JSON object, got {_json_type(item)}")
    for key in item:
        if key not in ITEM_FIELDS:
            raise Problem(422, f"{prefix}{key}", f"is not a known field; the fields are {', '.join(ITEM_FIELDS)}")
    if "sentence" not in item:
        raise Problem(422, f"{prefix}sentence", "is required")
    _check_text(item["sentence"], f"{prefix}sentence", MAX_SENTENCE_CHARS, nullable=False)
    if item.get("actor") is not None:
        _check_text(item["actor"], f"{prefix}actor", MAX_ACTOR_CHARS, nullable=True)


def check_batch(body: Any) -> None:
    if not isinstance(body, dict):
        raise Problem(422, "body", f"must be a JSON object, got {_json_type(body)}")
    for key in body:
        if key != "items":
            raise Problem(422, key, "is not a known field; the only field is items")
    if "items" not in body:
        raise Problem(422, "items", "is required")
    items = body["items"]
    if not isinstance(items, list):
        raise Problem(422, "items", f"must be an array, got {_json_type(items)}")
    if not items:
        raise Problem(422, "items", "must not be empty")
    if len(items) > MAX_BATCH_ITEMS:
        raise Problem(422, "items", f"must hold at most {MAX_BATCH_ITEMS} items, got {len(items)}; split the batch")
    for i, item in enumerate(items):
        check_item(item, f"items[{i}].")


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        raise Problem(400, "body", 'is empty; send a JSON object such as {"sentence": "..."}')
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Problem(400, "body", f"is not valid UTF-8 (byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Problem(400, "body", f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise Problem(400, "body", "is nested too deeply") from None
    except ValueError as e:  # e.g. an integer literal with thousands of digits
        raise Problem(400, "body", f"is not valid JSON ({e})") from None


class RequestGuard:
    """ASGI middleware in front of the API routes: caps the body size while it streams in,
    then parses and checks it, so BentoML only ever sees a valid request."""

    def __init__(self, app, checks: dict[str, Any], max_body: int = MAX_BODY_BYTES):
        self.app, self.checks, self.max_body = app, checks, max_body

    async def __call__(self, scope, receive, send):
        check = self.checks.get(scope.get("path")) if scope["type"] == "http" else None
        if check is None:
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await _reply(send, Problem(405, "method", f"{scope['method']} is not allowed; use POST"))
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > self.max_body:
            # Refused from the header alone: nothing of the body is read or buffered.
            return await _reply(send, self._too_large(), close=True)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _reply(send, self._too_large(), close=True)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            check(parse_body(raw))
        except Problem as problem:
            return await _reply(send, problem)
        # The body is JSON whatever the client labelled it (curl -d says form-urlencoded).
        headers[b"content-type"] = b"application/json"
        headers[b"content-length"] = str(len(raw)).encode()
        scope = {**scope, "headers": list(headers.items())}
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> Problem:
        return Problem(413, "body", f"is larger than the {self.max_body}-byte limit; send fewer or shorter items")


async def _reply(send, problem: Problem, close: bool = False) -> None:
    body = problem.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- the schema, for the OpenAPI document and BentoML's own parsing -----------------------
Sentence = Annotated[str, Field(min_length=1, max_length=MAX_SENTENCE_CHARS, description="the sentence to classify",
                                examples=[EXAMPLE])]
Actor = Annotated[str | None, Field(max_length=MAX_ACTOR_CHARS, description="an actor (registry name, alias or free "
                                    "text) to get the stance of; null for every registry actor found in the sentence",
                                    examples=[None, "Volodymyr Zelensky"])]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentence: Sentence
    actor: Actor = None


class ActorStance(BaseModel):
    actor: str = Field(description="registry name, or the free-text actor as given")
    mention: str | None = Field(description="the words of the sentence that name the actor; null if not found")
    affiliation: str | None = Field(description="the actor's side in the registry; null for a free-text actor")
    stance: str = Field(description="support, oppose or neutral, toward the talks")
    stance_probs: dict[str, float]


class Classification(BaseModel):
    sentence: str
    sentiment: str = Field(description="positive, negative or neutral")
    sentiment_probs: dict[str, float]
    actors: list[ActorStance]
    model: str = Field(description="the model store tag that produced this result")


class BatchResult(BaseModel):
    results: list[Classification] = Field(description="one result per item, in input order")


@functools.cache
def _batch_histogram():
    """Shown on /metrics. Created once per process: prometheus refuses a second registration."""
    from prometheus_client import Histogram

    return Histogram("stance_forward_batch_items", "items per forward pass (adaptive batching)",
                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


def _overloaded():
    raise ServiceUnavailable(f"overloaded: a request waited over {MAX_LATENCY_MS} ms for the model; retry later")


@bentoml.service(
    # One worker whose torch uses every core (serving/serve.py sets the threads and says
    # why): adaptive batching then fills one forward pass, and the model is loaded once.
    workers=1,
    traffic={"timeout": 60},
    resources={"cpu": "2", "memory": "1Gi"},
    labels={"project": "riyadh-stance", "task": "stance+sentiment"},
)
class StanceClassifier:
    # At class scope, so `bentoml build` resolves "latest" to a version and packs it.
    model_ref = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP; see serving/serve.py
        import torch
        from bentoml._internal.marshal.dispatcher import CorkDispatcher

        from model.predictor import Item
        from serving.store import load_predictor

        if os.environ.get("STANCE_TORCH_THREADS"):
            torch.set_num_threads(int(os.environ["STANCE_TORCH_THREADS"]))
        # Through the store (not the resolved reference), so a missing model fails with
        # "run `make train`" instead of a lookup on a remote registry.
        self.predictor = load_predictor(str(type(self).model_ref.tag), batch_size=FORWARD_CHUNK)
        self.item = Item
        # Warm up: the first forward pass of a fresh process is several times slower.
        self.predictor.predict([Item(EXAMPLE)])
        # BentoML's adaptive batcher, the one behind `@bentoml.api(batchable=True)`, used
        # directly: both APIs await it in-process. (Calling a batchable API through
        # `self.to_async` costs a second HTTP round trip per request, and in bentoml 1.4 that
        # proxy recycles its session every 100 calls, failing the calls still in flight.)
        dispatcher = CorkDispatcher(MAX_LATENCY_MS, MAX_BATCH_SIZE, fallback=_overloaded, get_batch_size=len)
        self.batcher = dispatcher(self.forward)
        self.batch_sizes = _batch_histogram()

    def forward(self, requests: Sequence[list]) -> list[list[dict]]:
        """The one forward pass: the items of several requests at once, results split back."""
        items = [item for request in requests for item in request]
        self.batch_sizes.observe(len(items))
        results = iter(self.predictor.predict(items))
        return [[next(results) for _ in request] for request in requests]

    @bentoml.api
    async def classify(self, sentence: Sentence, actor: Actor = None) -> Classification:
        """Sentiment of the sentence and the stance of the actor (or of every registry actor found in it)."""
        (result,) = await self.batcher([self.item(sentence, actor)])
        return Classification.model_validate(result)

    @bentoml.api
    async def classify_batch(
        self, items: Annotated[list[ClassifyRequest], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    ) -> BatchResult:
        """Up to 256 classify bodies in, {"results": [...]} out, in input order."""
        return BatchResult.model_validate({"results": await self.batcher([self.item(i.sentence, i.actor) for i in items])})


StanceClassifier.add_asgi_middleware(RequestGuard, checks={"/classify": check_item, "/classify_batch": check_batch})
