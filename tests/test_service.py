"""The HTTP service in-process, through `StanceClassifier.to_asgi()`, on the tiny model:
response shapes, input order, actor handling, and every bad input of the contract (status
and message word for word, then /readyz still 200)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import ACTOR_KEYS, BAD, RESULT_KEYS, TWO_ACTORS, long_text

from model.labels import SENTIMENT, STANCE


def classify(client, body):
    response = client.post("/classify", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_shape(result: dict, tag: str) -> None:
    assert set(result) == RESULT_KEYS
    assert result["model"] == tag
    assert list(result["sentiment_probs"]) == list(SENTIMENT)
    assert result["sentiment"] == max(result["sentiment_probs"], key=result["sentiment_probs"].get)
    for actor in result["actors"]:
        assert set(actor) == ACTOR_KEYS
        assert list(actor["stance_probs"]) == list(STANCE)
        assert abs(sum(actor["stance_probs"].values()) - 1) < 1e-3


# -- the APIs ----------------------------------------------------------------------------------
def test_without_an_actor_every_registry_actor_in_the_sentence_is_scored(client, tiny_store):
    result = classify(client, {"sentence": TWO_ACTORS, "actor": None})
    assert_shape(result, tiny_store)
    assert result["sentence"] == TWO_ACTORS
    assert [(a["actor"], a["mention"], a["affiliation"]) for a in result["actors"]] == [
        ("Volodymyr Zelensky", "Zelenskyy", "Ukraine"), ("Sergey Lavrov", "Lavrov", "Russia")]
    assert classify(client, {"sentence": TWO_ACTORS}) == result  # an omitted actor is null


def test_with_an_actor_only_that_actor_is_scored_and_its_mention_found(client, tiny_store):
    result = classify(client, {"sentence": TWO_ACTORS, "actor": "Sergey Lavrov"})
    assert_shape(result, tiny_store)
    assert [(a["actor"], a["mention"]) for a in result["actors"]] == [("Sergey Lavrov", "Lavrov")]
    by_alias = classify(client, {"sentence": TWO_ACTORS, "actor": "Zelensky"})
    assert [(a["actor"], a["mention"]) for a in by_alias["actors"]] == [("Volodymyr Zelensky", "Zelenskyy")]


def test_a_free_text_actor_outside_the_registry_still_works(client, tiny_store):
    result = classify(client, {"sentence": "Sánchez hailed the Riyadh talks.", "actor": "Pedro Sánchez"})
    assert_shape(result, tiny_store)
    assert result["actors"] == [{**result["actors"][0], "actor": "Pedro Sánchez", "mention": "Sánchez", "affiliation": None}]
    absent = classify(client, {"sentence": "The talks ended.", "actor": "Pedro Sánchez"})
    assert [(a["actor"], a["mention"]) for a in absent["actors"]] == [("Pedro Sánchez", None)]


def test_a_sentence_with_no_actor_gets_no_actors_and_its_sentiment(client, tiny_store):
    result = classify(client, {"sentence": "The weather was mild on Tuesday."})
    assert_shape(result, tiny_store)
    assert result["actors"] == []
    assert result["sentiment"] in SENTIMENT


def test_batch_returns_results_in_input_order_equal_to_single_calls(client, tiny_store):
    items = [{"sentence": TWO_ACTORS}, {"sentence": "No one is named here."},
             {"sentence": TWO_ACTORS, "actor": "Sergey Lavrov"}, {"sentence": "Sánchez spoke.", "actor": "Pedro Sánchez"}]
    response = client.post("/classify_batch", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results"}
    assert [r["sentence"] for r in body["results"]] == [i["sentence"] for i in items]
    assert body["results"] == [classify(client, item) for item in items]


def test_batch_takes_exactly_the_documented_maximum(client):
    from serving.guard import MAX_BATCH_ITEMS

    items = [{"sentence": f"Sentence number {i} about the talks."} for i in range(MAX_BATCH_ITEMS)]
    response = client.post("/classify_batch", json={"items": items})
    assert response.status_code == 200, response.text
    assert [r["sentence"] for r in response.json()["results"]] == [i["sentence"] for i in items]


def test_concurrent_single_requests_each_get_their_own_result(client):
    """They share forward passes (adaptive batching); results must go back to the right caller."""
    sentences = [f"Lavrov said {i} times that the talks mattered." for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda s: client.post("/classify", json={"sentence": s}), sentences))
    assert [r.json()["sentence"] for r in results] == sentences


def test_the_body_is_read_as_json_whatever_its_content_type(client):
    response = client.post("/classify", content=b'{"sentence": "Rubio spoke."}',
                           headers={"Content-Type": "application/x-www-form-urlencoded"})  # curl -d
    assert response.status_code == 200, response.text


def test_control_characters_are_scored(client):
    result = classify(client, {"sentence": "Lavrov\x07 praised\x00 the talks.\u200b"})
    assert result["sentence"] == "Lavrov\x07 praised\x00 the talks.\u200b"
    assert [a["actor"] for a in result["actors"]] == ["Sergey Lavrov"]


def test_bentoml_endpoints(client):
    # /metrics is checked against the real server (test_service_slow.py): in-process,
    # bentoml 1.4's metrics route waits on a multiprocess registry that only `bentoml serve` sets up.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    spec = client.get("/docs.json").json()
    assert {"/classify", "/classify_batch"} <= set(spec["paths"])


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body, status, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_gets_a_4xx_json_error_naming_field_and_problem(client, path, body, status, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"error": message, "field": message.split(":")[0]})
    assert response.headers["content-type"] == "application/json"
    assert client.get("/readyz").status_code == 200


def test_limits_are_inclusive(client):
    assert client.post("/classify", json={"sentence": long_text(2000), "actor": "R" * 200}).status_code == 200


def test_a_20_mb_body_is_refused_from_its_length_alone(client):
    response = client.post("/classify", content=b'{"sentence": "' + b"a" * 20_000_000 + b'"}')
    assert response.status_code == 413
    assert response.json() == {"error": "body: is larger than the 1048576-byte limit; send fewer or shorter items", "field": "body"}
    assert response.headers["connection"] == "close"
    assert client.get("/readyz").status_code == 200


def test_a_streamed_body_is_cut_off_at_the_cap(client):
    chunks = (b"a" * 65536 for _ in range(320))  # 20 MB, chunked: no Content-Length
    response = client.post("/classify_batch", content=chunks)
    assert response.status_code == 413
    assert client.get("/readyz").status_code == 200


def test_other_methods_are_refused(client):
    response = client.get("/classify")
    assert (response.status_code, response.json()) == (405, {"error": "method: GET is not allowed; use POST", "field": "method"})


def test_the_guard_reads_no_body_when_content_length_is_over_the_cap():
    import asyncio

    from serving.guard import RequestGuard, check_item

    sent = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("the request reached the service")

    guard = RequestGuard(app, {"/classify": check_item}, max_body=100)
    scope = {"type": "http", "method": "POST", "path": "/classify", "headers": [(b"content-length", b"20000000")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413


# -- the entry point ---------------------------------------------------------------------------
@pytest.fixture
def serve_checks(monkeypatch, tiny_store, tmp_path):
    """serving.serve.main with execve and the port check stubbed: returns the calls made."""
    from serving import serve

    calls = []
    monkeypatch.setattr(serve.os, "execve", lambda path, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(serve, "port_problem", lambda host, port: None)
    return serve, calls


def test_serve_binds_loopback_and_reads_port_from_the_environment(serve_checks, monkeypatch):
    serve, calls = serve_checks
    monkeypatch.setenv("PORT", "4123")
    assert serve.main([]) == 0
    argv, env = calls[-1]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "4123"
    assert "serving.service:StanceClassifier" in argv
    assert "services.StanceClassifier.workers=1" in env["BENTOML_CONFIG_OPTIONS"]
    serve.main(["--port", "5000", "--workers", "2", "--threads", "1"])
    argv, env = calls[-1]
    assert argv[argv.index("--port") + 1] == "5000"
    assert "services.StanceClassifier.workers=2" in env["BENTOML_CONFIG_OPTIONS"] and env["STANCE_TORCH_THREADS"] == "1"


def test_each_server_keeps_its_own_metrics_folder_over_the_shared_store(serve_checks):
    """BentoML empties <BENTOML_HOME>/prometheus_multiproc_dir when a server starts: each server
    gets its own home, whose model store is the shared one."""
    import os
    from pathlib import Path

    from model import store

    serve, calls = serve_checks
    serve.main([])
    serve.main([])
    homes = [Path(env["BENTOML_HOME"]) for _, env in calls]
    assert homes[0] != homes[1]
    for home in homes:
        assert (home / "models").resolve() == (store.home() / "models").resolve()
        assert os.path.realpath(home / "prometheus_multiproc_dir") != os.path.realpath(store.home() / "prometheus_multiproc_dir")


def test_serve_without_a_model_says_make_train_in_one_line(monkeypatch, capsys, tmp_path):
    from serving import serve

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(serve.os, "execve", lambda *a: pytest.fail("started without a model"))
    assert serve.main([]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: no model 'stance_classifier:latest' in the BentoML store at {tmp_path / 'empty'} "
                   "(it holds no stance_classifier model); run `make train` first, or set BENTOML_HOME to the store that has it\n")


def test_serve_with_a_corrupt_model_says_so_in_one_line(monkeypatch, capsys, tmp_path, tiny_model_dir):
    import shutil

    from serving import serve

    home = tmp_path / "home"
    folder = home / "models" / "stance_classifier" / "v1"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.yaml").write_text("name: stance_classifier\n")
    (home / "models" / "stance_classifier" / "latest").write_text("v1")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setattr(serve.os, "execve", lambda *a: pytest.fail("started with a corrupt model"))
    assert serve.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: the model at {folder} cannot be loaded (")
    assert err.endswith("; retrain with `make train`\n")


def test_serve_on_a_busy_port_says_so_in_one_line(monkeypatch, capsys, tiny_store):
    import socket

    from serving import serve

    monkeypatch.setattr(serve.os, "execve", lambda *a: pytest.fail("started on a busy port"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert serve.main(["--port", str(port)]) == 1
    assert capsys.readouterr().err == (f"error: port {port} on 127.0.0.1 is already in use; stop the other server or "
                                       "choose another port (PORT=8080 make serve)\n")


# -- isolation and the OpenAPI contract --------------------------------------------------------
@pytest.mark.parametrize("actor", ["!" * 199 + "X", "中" * 200])
def test_a_hostile_actor_is_scored_and_its_neighbours_answered(client, actor):
    """An actor that fills the tokenizer window is cut to its budget (model/encoding.py), and
    the ordinary requests that share its forward pass are answered as usual."""
    good = [{"sentence": f"Lavrov said {i} times that the talks mattered."} for i in range(8)]
    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(client.post, "/classify", json=body) for body in [{"sentence": TWO_ACTORS, "actor": actor}, *good]]
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 9, [r.text for r in responses]
    assert [r.json()["actors"][0]["actor"] for r in responses[:1]] == [actor]


def test_one_failing_item_gets_a_503_and_the_others_their_results(client, monkeypatch):
    """A fault raised for one item (injected here) fails only that item's request."""
    from model.predictor import Predictor

    real = Predictor.targets

    def targets(self, item):
        if item.sentence == "This sentence breaks the model.":
            raise RuntimeError("injected fault")
        return real(self, item)

    monkeypatch.setattr(Predictor, "targets", targets)
    good = [{"sentence": f"Lavrov said {i} times that the talks mattered."} for i in range(8)]
    bodies = [{"sentence": "This sentence breaks the model."}, *good]
    with ThreadPoolExecutor(9) as pool:
        responses = [f.result() for f in [pool.submit(client.post, "/classify", json=b) for b in bodies]]
    assert responses[0].status_code == 503
    assert responses[0].json() == {"error": "model: this item could not be scored (RuntimeError: injected fault); retry later",
                                   "field": "model"}
    assert [r.status_code for r in responses[1:]] == [200] * 8
    assert [r.json()["sentence"] for r in responses[1:]] == [b["sentence"] for b in good]


def test_405_says_which_method_is_allowed(client):
    response = client.put("/classify_batch", json={"items": []})
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_the_openapi_document_requires_the_body_and_lists_every_error(client):
    doc = client.get("/docs.json").json()
    for path in ("/classify", "/classify_batch"):
        post = doc["paths"][path]["post"]
        assert post["requestBody"]["required"] is True
        assert set(post["responses"]) == {"200", "400", "405", "413", "422", "429", "503"}
        assert post["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert doc["components"]["schemas"]["Problem"]["required"] == ["error"]


def _patterns(node, under_actor: bool = False) -> list[str]:
    """The `pattern`s an OpenAPI document puts on `actor` fields."""
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value, under_actor)]
    if not isinstance(node, dict):
        return []
    found = [node["pattern"]] if under_actor and "pattern" in node else []
    for key, value in node.items():
        found += _patterns(value, under_actor or (key == "actor" and isinstance(value, dict)))
    return found


@pytest.mark.parametrize("actor", ["Lavrov", "Лавров", "ì", "7", "Ð0\x08×", "!!!", "_", " \t", "\u200b",
                                   "\U00028722", "ì\U00028722", "\U0001d400", "😀"])
def test_the_documented_actor_pattern_is_the_rule_the_service_applies(client, actor):
    """Python's reading of the OpenAPI pattern and ECMA-262's (where \\w is ASCII; schemathesis
    reads it so) both say what the service does. The old pattern, [^\\W_], refused "ì" under
    ECMA while the service took it: schemathesis found that."""
    patterns = set(_patterns(client.get("/docs.json").json()))
    assert len(patterns) == 1  # one rule, on every route that takes an actor
    accepted = client.post("/classify", json={"sentence": "Lavrov spoke in Riyadh.", "actor": actor}).status_code == 200
    for pattern in patterns:
        for flags in (0, re.ASCII):
            assert bool(re.search(pattern, actor, flags)) == accepted, (actor, flags)


def test_schemathesis_finds_no_contract_violation(client):
    """A third-party contract tester, all checks, bounded examples, against the in-process app."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/docs.json", client.app)
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case):
            try:
                case.call_and_validate()
            except Exception as e:  # noqa: BLE001 - collect every operation's failures, then report them
                failures.append(f"{op.label}: {str(e).splitlines()[0]}")
                raise

        try:
            run()
        except Exception as e:  # noqa: BLE001 - a schema it cannot generate from is a failure too
            failures.append(f"{op.label}: {str(e).splitlines()[0]}")
    assert failures == []


# -- shutting down ------------------------------------------------------------------------------
@pytest.fixture
def draining():
    from serving.lifecycle import LIFECYCLE

    LIFECYCLE.stopping.set()
    yield
    LIFECYCLE.stopping.clear()


def test_while_draining_new_requests_get_503_and_close_the_connection(client, draining):
    response = client.post("/classify", json={"sentence": "Lavrov spoke."})
    assert (response.status_code, response.json()) == (503, {"error": "service: shutting down; retry later", "field": "service"})
    assert response.headers["connection"] == "close"
    assert client.get("/readyz").status_code == 503  # a load balancer stops routing here


def test_sigterm_drains_before_the_servers_own_handler_runs(monkeypatch):
    import signal
    import time

    from serving import lifecycle

    monkeypatch.setattr(lifecycle, "DRAIN_SECONDS", 0.2)
    calls = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(time.monotonic()))
    state = lifecycle.Lifecycle()
    try:
        state.install()
        start = time.monotonic()
        signal.raise_signal(signal.SIGTERM)
        assert state.stopping.is_set() and calls == []  # draining; the server has not been told yet
        time.sleep(0.5)
        assert len(calls) == 1 and calls[0] - start >= 0.2
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_call_still_running_after_the_grace_is_given_up(monkeypatch):
    import asyncio

    from serving import lifecycle

    monkeypatch.setattr(lifecycle, "GRACE_SECONDS", 0.2)
    state = lifecycle.Lifecycle()

    async def run():
        quick = await state.within_grace(asyncio.sleep(0.05, result="done"))
        state.stopping.set()
        slow = await state.within_grace(asyncio.sleep(30, result="too late"))
        return quick, slow

    assert asyncio.run(run()) == ((True, "done"), (False, None))


def test_calls_in_flight_when_the_server_stops_get_the_grace_and_no_more(monkeypatch):
    import asyncio
    import time

    from serving import lifecycle

    monkeypatch.setattr(lifecycle, "GRACE_SECONDS", 0.3)
    state = lifecycle.Lifecycle()

    async def run():
        quick = asyncio.ensure_future(state.within_grace(asyncio.sleep(0.4, result="done")))
        slow = asyncio.ensure_future(state.within_grace(asyncio.sleep(30, result="too late")))
        await asyncio.sleep(0.2)
        start = time.monotonic()
        state.stop()  # what SIGTERM calls, while both are waiting
        results = await asyncio.gather(quick, slow)
        return results, time.monotonic() - start

    results, waited = asyncio.run(run())
    assert results == [(True, "done"), (False, None)]
    assert 0.3 <= waited < 1.0  # the slow one was cut at the grace, not at its own end
