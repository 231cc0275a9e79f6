"""The HTTP service in-process, through `StanceClassifier.to_asgi()`, on the tiny model:
response shapes, input order, actor handling, and every bad input of the contract (status
and message word for word, then /readyz still 200)."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from model.labels import SENTIMENT, STANCE

RESULT_KEYS = {"sentence", "sentiment", "sentiment_probs", "actors", "model"}
ACTOR_KEYS = {"actor", "mention", "affiliation", "stance", "stance_probs"}
TWO_ACTORS = "Zelenskyy rejected the deal, while Lavrov praised the Riyadh talks."


@pytest.fixture(scope="module")
def client(tiny_store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient warns that it still uses httpx
        from starlette.testclient import TestClient

    from serving.service import StanceClassifier

    with TestClient(StanceClassifier.to_asgi(), raise_server_exceptions=False) as c:
        yield c


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
    result = classify(client, {"sentence": "Orbán hailed the Riyadh talks.", "actor": "Viktor Orbán"})
    assert_shape(result, tiny_store)
    assert result["actors"] == [{**result["actors"][0], "actor": "Viktor Orbán", "mention": "Orbán", "affiliation": None}]
    absent = classify(client, {"sentence": "The talks ended.", "actor": "Viktor Orbán"})
    assert [(a["actor"], a["mention"]) for a in absent["actors"]] == [("Viktor Orbán", None)]


def test_a_sentence_with_no_actor_gets_no_actors_and_its_sentiment(client, tiny_store):
    result = classify(client, {"sentence": "The weather was mild on Tuesday."})
    assert_shape(result, tiny_store)
    assert result["actors"] == []
    assert result["sentiment"] in SENTIMENT


def test_batch_returns_results_in_input_order_equal_to_single_calls(client, tiny_store):
    items = [{"sentence": TWO_ACTORS}, {"sentence": "No one is named here."},
             {"sentence": TWO_ACTORS, "actor": "Sergey Lavrov"}, {"sentence": "Orbán spoke.", "actor": "Viktor Orbán"}]
    response = client.post("/classify_batch", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results"}
    assert [r["sentence"] for r in body["results"]] == [i["sentence"] for i in items]
    assert body["results"] == [classify(client, item) for item in items]


def test_batch_takes_exactly_the_documented_maximum(client):
    from serving.service import MAX_BATCH_ITEMS

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
def long(n: int) -> str:
    return ("Lavrov spoke. " * (n // 14 + 1))[:n]


def batch(n: int) -> dict:
    return {"items": [{"sentence": "Rubio spoke."}] * n}


BAD = [
    # (id, path, raw body, status, error message)
    ("invalid JSON", "/classify", b'{"sentence": "x",}', 400,
     "body: is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 18)"),
    ("truncated JSON", "/classify", b'{"sentence": "x"', 400,
     "body: is not valid JSON (Expecting ',' delimiter at line 1 column 17)"),
    ("empty body", "/classify", b"", 400, 'body: is empty; send a JSON object such as {"sentence": "..."}'),
    ("blank body", "/classify_batch", b"  \n", 400, 'body: is empty; send a JSON object such as {"sentence": "..."}'),
    ("not UTF-8", "/classify", b'{"sentence": "\xff\xfe"}', 400, "body: is not valid UTF-8 (byte 14)"),
    ("nested too deeply", "/classify", b"[" * 100_000, 400, "body: is nested too deeply"),
    ("missing sentence", "/classify", {"actor": "Rubio"}, 422, "sentence: is required"),
    ("empty object", "/classify", {}, 422, "sentence: is required"),
    ("sentence number", "/classify", {"sentence": 42}, 422, "sentence: must be a string, got number"),
    ("sentence boolean", "/classify", {"sentence": True}, 422, "sentence: must be a string, got boolean"),
    ("sentence object", "/classify", {"sentence": {"text": "x"}}, 422, "sentence: must be a string, got object"),
    ("null body", "/classify", None, 422, "body: must be a JSON object, got null"),
    ("null sentence", "/classify", {"sentence": None}, 422, "sentence: must be a string, got null"),
    ("array body", "/classify", ["Rubio spoke."], 422, "body: must be a JSON object, got array"),
    ("string body", "/classify", "Rubio spoke.", 422, "body: must be a JSON object, got string"),
    ("list sentence", "/classify", {"sentence": ["Rubio spoke."]}, 422, "sentence: must be a string, got array"),
    ("list actor", "/classify", {"sentence": "Rubio spoke.", "actor": ["Rubio"]}, 422,
     "actor: must be a string or null, got array"),
    ("empty sentence", "/classify", {"sentence": ""}, 422, "sentence: must not be empty or whitespace only"),
    ("whitespace sentence", "/classify", {"sentence": " \t\n\u00a0"}, 422, "sentence: must not be empty or whitespace only"),
    ("control-only sentence", "/classify", {"sentence": "\x00\x01 "}, 422, "sentence: must not be empty or whitespace only"),
    ("sentence too long", "/classify", {"sentence": long(2001)}, 422, "sentence: must be at most 2000 characters, got 2001"),
    ("actor too long", "/classify", {"sentence": "Rubio spoke.", "actor": "R" * 201}, 422,
     "actor: must be at most 200 characters, got 201"),
    ("actor number", "/classify", {"sentence": "Rubio spoke.", "actor": 7}, 422, "actor: must be a string or null, got number"),
    ("actor object", "/classify", {"sentence": "Rubio spoke.", "actor": {"name": "Rubio"}}, 422,
     "actor: must be a string or null, got object"),
    ("empty actor", "/classify", {"sentence": "Rubio spoke.", "actor": " "}, 422,
     "actor: must not be empty or whitespace only; use null to get every registry actor found in the sentence"),
    ("lone surrogate", "/classify", b'{"sentence": "Rubio \\ud800 spoke."}', 422,
     "sentence: contains a lone surrogate (U+D800) at index 6, which is not valid Unicode"),
    ("lone surrogate actor", "/classify", b'{"sentence": "Rubio spoke.", "actor": "\\udfff"}', 422,
     "actor: contains a lone surrogate (U+DFFF) at index 0, which is not valid Unicode"),
    ("unknown field", "/classify", {"sentence": "Rubio spoke.", "actr": "Rubio"}, 422,
     "actr: is not a known field; the fields are sentence, actor"),
    ("empty batch", "/classify_batch", {"items": []}, 422, "items: must not be empty"),
    ("batch over max", "/classify_batch", batch(257), 422, "items: must hold at most 256 items, got 257; split the batch"),
    ("batch missing items", "/classify_batch", {}, 422, "items: is required"),
    ("batch items not a list", "/classify_batch", {"items": "Rubio spoke."}, 422, "items: must be an array, got string"),
    ("batch null items", "/classify_batch", {"items": None}, 422, "items: must be an array, got null"),
    ("batch item not an object", "/classify_batch", {"items": [{"sentence": "ok"}, "Rubio spoke."]}, 422,
     "items[1]: must be a JSON object, got string"),
    ("batch item bad sentence", "/classify_batch", {"items": [{"sentence": "ok"}, {"sentence": 1}]}, 422,
     "items[1].sentence: must be a string, got number"),
    ("batch item unknown field", "/classify_batch", {"items": [{"sentence": "ok", "lang": "en"}]}, 422,
     "items[0].lang: is not a known field; the fields are sentence, actor"),
    ("batch unknown field", "/classify_batch", {"items": [{"sentence": "ok"}], "mode": "fast"}, 422,
     "mode: is not a known field; the only field is items"),
    ("batch as single", "/classify_batch", {"sentence": "Rubio spoke."}, 422, "sentence: is not a known field; the only field is items"),
]


@pytest.mark.parametrize("path, body, status, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_gets_a_4xx_json_error_naming_field_and_problem(client, path, body, status, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"error": message, "field": message.split(":")[0]})
    assert response.headers["content-type"] == "application/json"
    assert client.get("/readyz").status_code == 200


def test_limits_are_inclusive(client):
    assert client.post("/classify", json={"sentence": long(2000), "actor": "R" * 200}).status_code == 200


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

    from serving.service import RequestGuard, check_item

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
def test_serve_binds_loopback_and_reads_port_from_the_environment(monkeypatch):
    from serving import serve

    calls = []
    monkeypatch.setattr(serve.os, "execve", lambda path, argv, env: calls.append((argv, env)))
    monkeypatch.setattr("serving.store.get_model", lambda tag: tag)
    monkeypatch.setenv("PORT", "4123")
    assert serve.main([]) == 0
    argv, env = calls[-1]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "4123"
    assert "serving.service:StanceClassifier" in argv
    assert "services.StanceClassifier.workers=1" in env["BENTOML_CONFIG_OPTIONS"]
    serve.main(["--port", "5000"])
    assert calls[-1][0][calls[-1][0].index("--port") + 1] == "5000"


def test_serve_without_a_model_says_make_train_in_one_line(monkeypatch, capsys):
    from serving import serve
    from serving.store import ModelNotFound

    def missing(tag):
        raise ModelNotFound(tag)

    monkeypatch.setattr("serving.store.get_model", missing)
    monkeypatch.setattr(serve.os, "execve", lambda *a: pytest.fail("started without a model"))
    assert serve.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `make train` first" in err
