"""The HTTP inference service: one BentoML service around the one batched predictor.

    python -m serving.serve --port 3000        # what `make serve` runs (127.0.0.1:3000)
    curl -s localhost:3000/classify -H 'Content-Type: application/json' \\
         -d '{"sentence": "Zelenskyy rejected the Riyadh talks.", "actor": null}'

``StanceClassifier``: ``/classify`` {"sentence", "actor", "explain"} -> one result,
``/classify_batch`` {"items": [...]} -> {"results": [...]} in input order, ``/segment``
{"text"} -> {"sentences": [...]} (model/segment.py), behind the request guard
(serving/guard.py). The items of concurrent requests share forward passes (serving/batcher.py).
Items with ``"explain": true`` are explained in a call of their own (model/explain.py), so a
request without explain never waits behind an explanation.
``/ui`` is the page (serving/static/), a client of these APIs like any other.
``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI document are BentoML's own; /metrics
also has ``stance_batch_items``, the items of each forward pass.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles

from model.store import MODEL_NAME
from serving import openapi
from serving.batcher import Batcher
from serving.guard import CHECKS, RequestGuard
from serving.lifecycle import LIFECYCLE
from serving.schema import EXAMPLE, Actor, BatchResult, Classification, Explain, Items, Segments, Sentence, Text

# Batching: at most this many items per forward pass; an item waits at most MAX_WAIT_SECONDS
# in the queue before it is shed with a 503 (overload, not bad input).
MAX_BATCH_SIZE = 64
MAX_WAIT_SECONDS = 30
# Rows per model call inside one forward pass (Predictor.batch_size). Measured on 2 cores:
# 16 gives the throughput of 32 with a smaller worker peak (smaller activations).
FORWARD_CHUNK = 16
STATIC = Path(__file__).resolve().parent / "static"


@functools.cache
def batch_items_metric():
    """Created at first use: prometheus_client must load after BentoML has set up its
    multiprocess directory, or /metrics would never show it."""
    from prometheus_client import Histogram

    return Histogram("stance_batch_items", "items per forward pass (what batching merged)",
                     buckets=(1, 2, 4, 8, 16, 32, 64))


def _unavailable(problem: str) -> JSONResponse:
    return JSONResponse({"error": f"model: {problem}; retry later", "field": "model"}, status_code=503)


@bentoml.service(
    # One worker whose torch uses every core (serving/serve.py sets the threads and says
    # why): batching then fills one forward pass, and the model is loaded once.
    workers=1,
    traffic={"timeout": 60},
    # Worker peak under load (`make bench-serve`): 716 MiB on an AMD EPYC; 1,024 MiB on an Intel Xeon
    # with AMX (oneDNN keeps kernels per input shape) before the model stopped loading scikit-learn
    # (model/runtime.py: 170 MiB less on the EPYC), not measured there since; 1Gi is too tight.
    resources={"cpu": "2", "memory": "1536Mi"},
    labels={"project": "riyadh-stance", "task": "stance+sentiment"},
    # The model's routes are not traced by OpenTelemetry unless asked: with BentoML's default of
    # no exporter the spans went nowhere, yet making them was a quarter of the event loop's work
    # per request (5.8 -> 4.2 ms at 1 client, AMD EPYC without AVX-512). To trace, set
    # services.StanceClassifier.tracing.excluded_urls (README, Configuration).
    tracing={"excluded_urls": ".*"},
)
class StanceClassifier:
    # At class scope, so `bentoml build` resolves "latest" to a version and packs it.
    model_ref = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        LIFECYCLE.install()  # SIGTERM drains first (serving/lifecycle.py)
        # Every torch call of this process runs on this one thread, loading and warm-up included.
        # libgomp gives each thread that starts a parallel region a team of OpenMP threads of its
        # own; with more of them than cores it stops spinning between regions, and a one-sentence
        # forward pass took 35 ms instead of 20 (BentoML runs sync APIs on a pool of threads).
        self.torch = ThreadPoolExecutor(1, thread_name_prefix="torch")
        self.predictor = self.torch.submit(self._load).result()
        self.batcher = Batcher(self._results, self.torch, MAX_BATCH_SIZE, MAX_WAIT_SECONDS,
                               on_batch=batch_items_metric().observe)

    def _load(self):
        from model.runtime import OPENMP, defaults

        defaults(OPENMP)  # before torch starts OpenMP, also under a bare `bentoml serve`
        import torch

        from model.predictor import Predictor

        if os.environ.get("STANCE_TORCH_THREADS"):
            torch.set_num_threads(int(os.environ["STANCE_TORCH_THREADS"]))
        stored = bentoml.models.get(type(self).model_ref.tag)
        predictor = Predictor.load(stored.path, tag=str(stored.tag), batch_size=FORWARD_CHUNK,
                                   precision=os.environ.get("STANCE_PRECISION", "auto"),
                                   backend=os.environ.get("STANCE_BACKEND", "auto"))
        print(f"model {stored.tag}: {predictor.choice}", flush=True)
        # Warm up: the first forward pass of a fresh process is several times slower.
        predictor.predict([EXAMPLE])
        return predictor

    def _results(self, items: list[dict[str, Any]], explain: bool = False) -> list[dict[str, Any]]:
        """Results for request items; an item whose prediction raises comes back as
        {"failure": ...} and the others are answered normally. With ``explain``, every actor
        also gets the evidence for its stance: not batched across requests, since one
        explanation costs a forward row per word and would hold up requests that asked for none."""
        from model.items import Item
        from model.predictor import Failure

        asked = [Item(i["sentence"], i.get("actor")) for i in items]
        results = self.predictor.predict(asked, isolate=True)
        if explain:
            from model.explain import Explainer

            results = Explainer(self.predictor).add_evidence(asked, results, isolate=True)
        return [{"failure": r.error} if isinstance(r, Failure) else r for r in results]

    async def _explained(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await asyncio.wrap_future(self.torch.submit(self._results, items, True))

    async def _predict(self, items: list[dict]) -> list[dict] | JSONResponse:
        plain = [k for k, i in enumerate(items) if not i.get("explain")]
        explained = [k for k, i in enumerate(items) if i.get("explain")]
        calls = [self.batcher([_item(items[k]) for k in plain]) if plain else _none(),
                 self._explained([_item(items[k]) for k in explained]) if explained else _none()]
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
    """What the model reads of a request item (without explain: the call says that)."""
    return {"sentence": item["sentence"], "actor": item.get("actor")}


async def _none() -> list:
    return []


StanceClassifier.add_asgi_middleware(RequestGuard, checks=CHECKS,
                                     patch_openapi=lambda doc: openapi.patch(doc, list(CHECKS)))
# The page: static files, no build step; html=True serves index.html at /ui/.
StanceClassifier.mount_asgi_app(StaticFiles(directory=STATIC, html=True), path="/ui", name="ui")
