"""The request guard: ASGI middleware in front of the API routes, so that every bad input
gets a 4xx JSON error ``{"error": "<field>: <problem>", "field": "<field>"}`` and BentoML
only ever sees a valid request.

- 400: the body is unreadable (empty, not UTF-8, not JSON, nested too deeply);
- 405: a method other than POST (with ``Allow: POST``);
- 413: the body is over the size cap (refused from Content-Length before reading, or as soon
  as the streamed bytes pass it);
- 422: a well-formed body that breaks the rules (unknown fields, wrong types, empty or
  over-long text, too many items).

The limits live here, once; the pydantic schema in serving/schema.py documents them in the
OpenAPI document. The rules for text are the model's own (model/items.py), shared with the
batch CLI. The guard also completes BentoML's OpenAPI document (serving/openapi.py).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from model.items import BadText, check_actor, check_text, json_type
from serving.lifecycle import LIFECYCLE

MAX_SENTENCE_CHARS = 2000
MAX_BATCH_ITEMS = 256
MAX_BODY_BYTES = 1024 * 1024
# Items of one /classify_batch that may ask for evidence: each costs up to one forward row per
# word of its sentence (model/explain.py), so 32 long ones stay well inside the 60 s timeout.
MAX_EXPLAIN_ITEMS = 32
MAX_TEXT_CHARS = 100_000  # /segment: a long article
ITEM_FIELDS = ("sentence", "actor", "explain")  # any other field is rejected (422): a typo must not pass silently


class Problem(Exception):
    def __init__(self, status: int, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.status, self.field = status, field

    def body(self) -> bytes:
        return json.dumps({"error": str(self), "field": self.field}).encode()


def _text(value: Any, field: str, limit: int, nullable: bool) -> None:
    try:
        check_text(value, limit, nullable)
    except BadText as e:
        raise Problem(422, field, str(e)) from None


def _object(value: Any, fields: tuple[str, ...], required: str, prefix: str = "") -> None:
    """``value`` is a JSON object of only ``fields``, with ``required`` among them."""
    if not isinstance(value, dict):
        raise Problem(422, prefix.rstrip(".") or "body", f"must be a JSON object, got {json_type(value)}")
    for key in value:
        if key not in fields:
            known = f"the fields are {', '.join(fields)}" if len(fields) > 1 else f"the only field is {fields[0]}"
            raise Problem(422, f"{prefix}{key}", f"is not a known field; {known}")
    if required not in value:
        raise Problem(422, f"{prefix}{required}", "is required")


def check_item(item: Any, prefix: str = "") -> None:
    _object(item, ITEM_FIELDS, "sentence", prefix)
    _text(item["sentence"], f"{prefix}sentence", MAX_SENTENCE_CHARS, nullable=False)
    try:
        check_actor(item.get("actor"))
    except BadText as e:
        raise Problem(422, f"{prefix}actor", str(e)) from None
    if not isinstance(item.get("explain", False), bool):
        raise Problem(422, f"{prefix}explain", f"must be true or false, got {json_type(item['explain'])}")


def check_batch(body: Any) -> None:
    _object(body, ("items",), "items")
    items = body["items"]
    if not isinstance(items, list):
        raise Problem(422, "items", f"must be an array, got {json_type(items)}")
    if not items:
        raise Problem(422, "items", "must not be empty")
    if len(items) > MAX_BATCH_ITEMS:
        raise Problem(422, "items", f"must hold at most {MAX_BATCH_ITEMS} items, got {len(items)}; split the batch")
    for i, item in enumerate(items):
        check_item(item, f"items[{i}].")
    explained = sum(item.get("explain") is True for item in items)
    if explained > MAX_EXPLAIN_ITEMS:
        raise Problem(422, "items", f"at most {MAX_EXPLAIN_ITEMS} items may ask for explain, got {explained}; split the batch")


def check_text_body(body: Any) -> None:
    _object(body, ("text",), "text")
    _text(body["text"], "text", MAX_TEXT_CHARS, nullable=False)


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


CHECKS: dict[str, Callable[[Any], None]] = {"/classify": check_item, "/classify_batch": check_batch,
                                             "/segment": check_text_body}


class RequestGuard:
    """Caps the body size while it streams in, then parses and checks it. ``patch_openapi``
    (serving/openapi.py) completes BentoML's OpenAPI document on its way out."""

    def __init__(self, app, checks: dict[str, Callable] = CHECKS, max_body: int = MAX_BODY_BYTES,
                 patch_openapi: Callable[[dict], dict] | None = None):
        self.app, self.checks, self.max_body, self.patch_openapi = app, checks, max_body, patch_openapi

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == "/docs.json" and self.patch_openapi:
            return await _rewrite_json(self.app, scope, receive, send, self.patch_openapi)
        if scope["type"] == "http" and scope.get("path") == "/readyz" and LIFECYCLE.stopping.is_set():
            # Not ready while draining: a load balancer stops sending requests here.
            return await reply(send, Problem(503, "service", "shutting down"), close=True)
        check = self.checks.get(scope.get("path")) if scope["type"] == "http" else None
        if check is None:
            return await self.app(scope, receive, send)
        if LIFECYCLE.stopping.is_set():
            # Draining before shutdown: no new work; Connection: close moves the client's
            # keep-alive connection off this server before it stops listening.
            return await reply(send, Problem(503, "service", "shutting down; retry later"), close=True)
        if scope["method"] != "POST":
            return await reply(send, Problem(405, "method", f"{scope['method']} is not allowed; use POST"),
                               headers=[(b"allow", b"POST")])
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > self.max_body:
            # Refused from the header alone: nothing of the body is read or buffered.
            return await reply(send, self._too_large(), close=True)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await reply(send, self._too_large(), close=True)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            check(parse_body(raw))
        except Problem as problem:
            return await reply(send, problem)
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


async def reply(send, problem: Problem, close: bool = False, headers: list | None = None) -> None:
    body = problem.body()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": problem.status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _rewrite_json(app, scope, receive, send, rewrite: Callable[[dict], dict]) -> None:
    """Run ``app`` and pass its JSON response through ``rewrite`` before sending it."""
    start, chunks = {}, []

    async def capture(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    body = b"".join(chunks)
    if start.get("status") == 200:
        body = json.dumps(rewrite(json.loads(body))).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
    await send({"type": "http.response.body", "body": body})
