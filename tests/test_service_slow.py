"""The real server: `python -m serving.serve` (-> `bentoml serve`) as a subprocess on a free
127.0.0.1 port, serving the real fine-tuned model (the project's, from `make train`, or one the
test session trains once; see `real_model` in conftest.py).

Both APIs; the whole bad-input suite over real HTTP (20 MB body included); a hostile request
among concurrent ordinary ones; a mention past the first window; /metrics, also while a second
server starts on the same store; no tracing unless configured; schemathesis with every check;
SIGTERM under load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ACTOR_KEYS, BAD, RESULT_KEYS, ROOT, TWO_ACTORS, free_port, running_server

pytestmark = pytest.mark.slow
@pytest.fixture(scope="module")
def store_home(real_model) -> str:
    return str(Path(real_model[0]).parents[2])


@pytest.fixture(scope="module")
def server(store_home, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(store_home, log) as (client, proc):
        client.server_pid, client.log = proc.pid, log
        yield client


def test_classify(server):
    result = server.post("/classify", json={"sentence": TWO_ACTORS, "actor": None}).json()
    assert set(result) == RESULT_KEYS
    assert result["model"].startswith("stance_classifier:")
    assert [a["actor"] for a in result["actors"]] == ["Volodymyr Zelensky", "Sergey Lavrov"]
    assert all(set(a) == ACTOR_KEYS for a in result["actors"])
    one = server.post("/classify", json={"sentence": TWO_ACTORS, "actor": "Lavrov"}).json()
    assert [(a["actor"], a["mention"]) for a in one["actors"]] == [("Sergey Lavrov", "Lavrov")]
    free = server.post("/classify", json={"sentence": "Sánchez hailed the talks.", "actor": "Pedro Sánchez"}).json()
    assert [(a["actor"], a["mention"], a["affiliation"]) for a in free["actors"]] == [("Pedro Sánchez", "Sánchez", None)]
    assert server.post("/classify", json={"sentence": "It rained."}).json()["actors"] == []


def test_classify_batch_keeps_input_order(server):
    items = [{"sentence": f"Rubio met Lavrov for the {i}th time."} for i in range(40)] + [{"sentence": TWO_ACTORS, "actor": "Zelensky"}]
    response = server.post("/classify_batch", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["sentence"] for r in results] == [i["sentence"] for i in items]
    assert [a["actor"] for a in results[-1]["actors"]] == ["Volodymyr Zelensky"]


def test_concurrent_clients_all_succeed_and_get_their_own_result(server):
    sentences = [f"Lavrov said the talks went well, day {i}." for i in range(64)]
    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda s: server.post("/classify", json={"sentence": s}), sentences))
    assert [r.status_code for r in responses] == [200] * len(sentences)
    assert [r.json()["sentence"] for r in responses] == sentences


@pytest.mark.parametrize("actor, status", [("!" * 200, 422), ("!" * 199 + "X", 200), ("中" * 200, 200)])
def test_a_hostile_actor_gets_an_answer_and_its_eight_neighbours_theirs(server, actor, status):
    good = [{"sentence": f"Rubio said on day {i} that the talks in Riyadh were useful."} for i in range(8)]
    with ThreadPoolExecutor(9) as pool:
        hostile = pool.submit(server.post, "/classify", json={"sentence": TWO_ACTORS, "actor": actor})
        neighbours = [pool.submit(server.post, "/classify", json=body) for body in good]
        responses = [hostile.result()] + [f.result() for f in neighbours]
    assert [r.status_code for r in responses] == [status] + [200] * 8, [r.text for r in responses]
    assert [r.json()["sentence"] for r in responses[1:]] == [b["sentence"] for b in good]


def test_a_mention_past_the_first_window_gets_the_short_sentences_stance(server):
    short = "Zelensky rejected the talks."
    filler = " ".join(f"Delegates discussed shipping routes and grain prices on day {i} of the meetings." for i in range(24))
    long = f"{filler} {short}"
    assert len(long) <= 2000
    a = server.post("/classify", json={"sentence": short, "actor": "Volodymyr Zelensky"}).json()["actors"][0]
    b = server.post("/classify", json={"sentence": long, "actor": "Volodymyr Zelensky"}).json()["actors"][0]
    assert b["mention"] == "Zelensky"
    assert a["stance"] == b["stance"] == "oppose", (a, b)


@pytest.mark.parametrize("path, body, status, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input(server, path, body, status, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = server.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"error": message, "field": message.split(":")[0]})
    assert server.get("/readyz").status_code == 200


def worker_rss(server_pid: int) -> int:
    import psutil

    procs = psutil.Process(server_pid).children(recursive=True)
    return sum(p.memory_info().rss for p in procs if "_bentoml_impl.worker" in " ".join(p.cmdline()))


def test_a_20_mb_body_is_refused_at_once_without_growing_the_worker(server):
    before = worker_rss(server.server_pid)
    body = b'{"sentence": "' + b"a" * 20_000_000 + b'"}'
    for content in (body, (body[i : i + 65536] for i in range(0, len(body), 65536))):  # with a length, then chunked
        start = time.monotonic()
        response = server.post("/classify", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"] == "body: is larger than the 1048576-byte limit; send fewer or shorter items"
        assert time.monotonic() - start < 5
    assert worker_rss(server.server_pid) - before < 16 * 2**20
    assert server.get("/readyz").status_code == 200


def _batch_items(client) -> tuple[float, float]:
    """(forward passes, items) so far, from the service's stance_batch_items histogram."""
    values = {"count": 0.0, "sum": 0.0}
    for line in client.get("/metrics").text.splitlines():
        for key in values:
            if line.startswith(f"stance_batch_items_{key}"):
                values[key] += float(line.rsplit(" ", 1)[1])
    return values["count"], values["sum"]


def test_bentoml_endpoints(server):
    assert server.get("/healthz").status_code == 200
    metrics = server.get("/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text
    passes, items = _batch_items(server)
    assert server.post("/classify_batch", json={"items": [{"sentence": "Lavrov praised the talks."}] * 3}).status_code == 200
    assert _batch_items(server) == (passes + 1, items + 3)  # one forward pass for the three items
    assert {"/classify", "/classify_batch"} <= set(server.get("/docs.json").json()["paths"])


def _classify_count(client) -> float:
    """requests counted by /metrics for /classify (all status codes)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("bentoml_service_request_total{") and 'endpoint="/classify"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_keep_counting_when_a_second_server_starts_on_the_same_store(server, store_home, tmp_path):
    for _ in range(3):
        server.post("/classify", json={"sentence": "Lavrov spoke."})
    before = _classify_count(server)
    assert before >= 3
    with running_server(store_home, tmp_path / "second.log") as (second, _):
        assert second.post("/classify", json={"sentence": "Rubio spoke."}).status_code == 200
        for _ in range(2):
            server.post("/classify", json={"sentence": "Lavrov spoke."})
        assert _classify_count(server) >= before + 2


def _access_line(client, sentence: str) -> str:
    """The access-log line of a /classify of ``sentence`` (its body length tells it apart)."""
    body = json.dumps({"sentence": sentence}).encode()
    assert client.post("/classify", content=body, headers={"Content-Type": "application/json"}).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in client.log.read_text().splitlines() if f"path=/classify,type=application/json,length={len(body)})" in line]
        if lines:
            return lines[-1]
        time.sleep(0.1)
    raise AssertionError(f"no access-log line for the request in {client.log}")


def test_requests_are_traced_only_when_tracing_is_configured(server, store_home, tmp_path, monkeypatch):
    assert "trace=" not in _access_line(server, "Lavrov spoke about tracing.")
    monkeypatch.setenv("BENTOML_CONFIG_OPTIONS", "services.StanceClassifier.tracing.excluded_urls=/readyz")
    log = tmp_path / "traced.log"
    with running_server(store_home, log) as (traced, _):
        traced.log = log
        assert "trace=" in _access_line(traced, "Rubio spoke about tracing, at length.")


def test_schemathesis_with_every_check_finds_nothing(server):
    """The third-party contract tester, as a user would run it, bounded examples."""
    cli = Path(sys.executable).with_name("schemathesis")
    config = Path(__file__).with_name("schemathesis.toml")
    run = subprocess.run([str(cli), "--config-file", str(config), "run", f"{server.base_url}/docs.json", "--checks", "all", "--max-examples", "30",
                          "--workers", "4", "--no-color", "--suppress-health-check", "all", "--seed", "1"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_sigterm_under_load_finishes_or_refuses_every_request_and_exits_in_10_s(store_home, tmp_path):
    import httpx

    outcomes: list[str] = []
    with running_server(store_home, tmp_path / "sigterm.log") as (client, proc):
        stop_flag = threading.Event()

        def load(k: int) -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
                i = 0
                while not stop_flag.is_set():
                    try:
                        r = c.post("/classify", json={"sentence": f"Lavrov said the talks went well, {k}-{i}."})
                        outcomes.append(str(r.status_code))
                        if r.status_code == 503:
                            break  # told the server is going: stop sending here, as a load balancer would
                    except httpx.ConnectError:
                        outcomes.append("refused")  # not in flight: the server no longer accepts
                        time.sleep(0.05)
                    except httpx.HTTPError as e:
                        outcomes.append(f"dropped: {type(e).__name__}")
                    i += 1

        threads = [threading.Thread(target=load, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGTERM)
        start = time.monotonic()
        proc.wait(timeout=30)
        exit_seconds = time.monotonic() - start
        time.sleep(0.5)
        stop_flag.set()
        for t in threads:
            t.join()
    assert exit_seconds < 10, exit_seconds
    assert "200" in outcomes
    assert set(outcomes) <= {"200", "503"}, sorted(set(outcomes))  # every request in flight answered


def test_without_a_model_serve_prints_one_line_and_exits_non_zero(tmp_path):
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "serving.serve", "--port", str(port)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "BENTOML_HOME": str(tmp_path / "empty_store")})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "run `make train` first" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
