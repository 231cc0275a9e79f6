"""The HTTP inference service: two BentoML services around the one batched predictor.

    python -m serving.serve --port 3000        # what `make serve` runs (127.0.0.1:3000)
    curl -s localhost:3000/classify -H 'Content-Type: application/json' \\
         -d '{"sentence": "Zelenskyy rejected the Riyadh talks.", "actor": null}'

``StanceClassifier`` is the API: ``/classify`` {"sentence", "actor", "explain"} -> one result,
``/classify_batch`` {"items": [...]} -> {"results": [...]} in input order, ``/segment``
{"text"} -> {"sentences": [...]} (model/segment.py), behind the request guard
(serving/guard.py). It calls ``StanceModel.predict``, a ``batchable`` BentoML API: BentoML's
adaptive batcher merges the items of concurrent requests into one forward pass. Items with
``"explain": true`` go to ``StanceModel.explain`` instead (model/explain.py), a call of their
own, so a request without explain never waits behind an explanation.
``/ui`` is the page (serving/static/), a client of these APIs like any other.
``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI document are BentoML's own.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import bentoml
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles

from model.store import MODEL_NAME
from serving import openapi
from serving.batching import dispatch_when_idle
from serving.guard import CHECKS, RequestGuard
from serving.lifecycle import LIFECYCLE
from serving.schema import EXAMPLE, Actor, BatchResult, Classification, Explain, Items, Segments, Sentence, Text

# Adaptive batching: at most this many items per forward pass; a request waits at most
# MAX_LATENCY_MS in the queue before it is shed with a 503 (overload, not bad input).
MAX_BATCH_SIZE = 64
MAX_LATENCY_MS = 30_000
# Rows per model call inside one forward pass (Predictor.batch_size). Measured on 2 cores:
# 16 gives the throughput of 32 with a smaller worker peak (smaller activations).
FORWARD_CHUNK = 16
# BentoML's client between services closes its connection pool every 100 requests by default
# (runner_connection.max_requests), failing the requests still in flight on it: at 32
# clients 12-15% of requests failed (benchmarks/repro_runner_connection.py). Never recycle it.
RUNNER_CONNECTION = {"max_requests": 2**62, "max_age": 10.0**9}
STATIC = Path(__file__).resolve().parent / "static"

dispatch_when_idle()


@bentoml.service(
    # One worker whose torch uses every core (serving/serve.py sets the threads and says
    # why): adaptive batching then fills one forward pass, and the model is loaded once.
    workers=1,
    traffic={"timeout": 60},
    resources={"cpu": "2", "memory": "1Gi"},  # worker peak 865 MiB under load (benchmarks/README.md)
    runner_connection=RUNNER_CONNECTION,
)
class StanceModel:
    # At class scope, so `bentoml build` resolves "latest" to a version and packs it.
    model_ref = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP; see serving/serve.py
        import torch

        from model.predictor import Predictor

        if os.environ.get("STANCE_TORCH_THREADS"):
            torch.set_num_threads(int(os.environ["STANCE_TORCH_THREADS"]))
        stored = bentoml.models.get(type(self).model_ref.tag)
        self.predictor = Predictor.load(stored.path, tag=str(stored.tag), batch_size=FORWARD_CHUNK,
                                        precision=os.environ.get("STANCE_PRECISION", "auto"),
                                        backend=os.environ.get("STANCE_BACKEND", "auto"))
        print(f"model {stored.tag}: {self.predictor.choice}", flush=True)
        # Warm up: the first forward pass of a fresh process is several times slower.
        self.predictor.predict([EXAMPLE])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The one forward pass for the items of several requests. An item whose prediction
        raises comes back as {"failure": ...}; the others are answered normally."""
        return self._results(items)

    def _results(self, items: list[dict[str, Any]], explain: bool = False) -> list[dict[str, Any]]:
        from model.items import Item
        from model.predictor import Failure

        asked = [Item(i["sentence"], i.get("actor")) for i in items]
        results = self.predictor.predict(asked, isolate=True)
        if explain:
            from model.explain import Explainer

            results = Explainer(self.predictor).add_evidence(asked, results, isolate=True)
        return [{"failure": r.error} if isinstance(r, Failure) else r for r in results]

    @bentoml.api
    def explain(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``predict`` plus, on every actor, the evidence for its stance (model/explain.py). Not
        batched across requests: an explanation costs a forward row per word, and merged into
        the adaptive batches it would hold up the requests that did not ask for one."""
        return self._results(items, explain=True)


def _unavailable(problem: str) -> JSONResponse:
    return JSONResponse({"error": f"model: {problem}; retry later", "field": "model"}, status_code=503)


@bentoml.service(
    workers=1,
    traffic={"timeout": 60},
    labels={"project": "riyadh-stance", "task": "stance+sentiment"},
)
class StanceClassifier:
    model = bentoml.depends(StanceModel)

    def __init__(self) -> None:
        LIFECYCLE.install()  # SIGTERM drains first (serving/lifecycle.py)

    async def _predict(self, items: list[dict]) -> list[dict] | JSONResponse:
        plain = [k for k, i in enumerate(items) if not i.get("explain")]
        explained = [k for k, i in enumerate(items) if i.get("explain")]
        calls = [self.model.to_async.predict([_item(items[k]) for k in plain]) if plain else _none(),
                 self.model.to_async.explain([_item(items[k]) for k in explained]) if explained else _none()]
        try:
            finished, answered = await LIFECYCLE.within_grace(asyncio.gather(*calls))
        except Exception as e:  # noqa: BLE001 - overload, shutdown: the client may retry
            return _unavailable(f"not available ({type(e).__name__})")
        if not finished:
            return _unavailable("the server is shutting down")
        results: list[dict] = [{}] * len(items)
        for order, answers in zip((plain, explained), answered):
            for k, r in zip(order, answers):
                results[k] = r
        failed = [r["failure"] for r in results if "failure" in r]
        return _unavailable(f"this item could not be scored ({failed[0]})") if failed else results

    @bentoml.api
    async def classify(self, sentence: Sentence, actor: Actor = None, explain: Explain = False) -> Classification:
        """Sentiment of the sentence and the stance of the actor (or of every registry actor found in it);
        with explain, each actor's evidence too."""
        results = await self._predict([{"sentence": sentence, "actor": actor, "explain": explain}])
        return results if isinstance(results, JSONResponse) else Classification.model_validate(results[0])

    @bentoml.api
    async def classify_batch(self, items: Items) -> BatchResult:
        """Up to 256 classify bodies in, {"results": [...]} out, in input order."""
        results = await self._predict([{"sentence": i.sentence, "actor": i.actor, "explain": i.explain} for i in items])
        return results if isinstance(results, JSONResponse) else BatchResult.model_validate({"results": results})

    @bentoml.api
    async def segment(self, text: Text) -> Segments:
        """An article (or any text) in, its sentences with character offsets out: the splitter of
        the batch CLI and the annotations (model/segment.py), for clients such as the page at /ui."""
        from model.segment import split_sentences

        return Segments.model_validate({"sentences": [vars(s) for s in split_sentences(text)]})


def _item(item: dict) -> dict:
    """What StanceModel reads of a request item (without explain: the route says that)."""
    return {"sentence": item["sentence"], "actor": item.get("actor")}


async def _none() -> list:
    return []


StanceClassifier.add_asgi_middleware(RequestGuard, checks=CHECKS,
                                     patch_openapi=lambda doc: openapi.patch(doc, list(CHECKS)))
# The page: static files, no build step; html=True serves index.html at /ui/.
StanceClassifier.mount_asgi_app(StaticFiles(directory=STATIC, html=True), path="/ui", name="ui")
