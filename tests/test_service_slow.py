"""The real server: `python -m serving.serve` (-> `bentoml serve`) as a subprocess on a free
127.0.0.1 port. Both APIs, the whole bad-input suite over real HTTP (20 MB body included),
/metrics, concurrent clients, and the one-line "no model" exit.

It serves the real fine-tuned model: the project's (`make train`), or one the test session
trains once (see `real_model` in conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.test_service import ACTOR_KEYS, BAD, RESULT_KEYS, TWO_ACTORS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
READY_WITHIN = 90  # seconds; generous for a loaded CI machine (the goal on an idle one is 10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: str, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "BENTOML_HOME": home, "PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "serving.serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its session: serve -> bentoml -> workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    import httpx

    # The real fine-tuned model (the project's, or one trained for the test session).
    home = str(Path(request.getfixturevalue("real_model").path).parents[2])
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with log_path.open("wb") as log:
        proc = serve(home, port, log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_WITHIN
            while True:
                assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"not ready in {READY_WITHIN} s:\n{log_path.read_text()}"
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            with httpx.Client(base_url=url, timeout=60) as client:
                client.server_pid = proc.pid
                yield client
        finally:
            stop(proc)


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


def test_bentoml_endpoints(server):
    assert server.get("/healthz").status_code == 200
    metrics = server.get("/metrics")
    assert metrics.status_code == 200
    assert "stance_forward_batch_items_bucket" in metrics.text
    assert "bentoml_service_request_total" in metrics.text
    assert {"/classify", "/classify_batch"} <= set(server.get("/docs.json").json()["paths"])


def test_without_a_model_serve_prints_one_line_and_exits_non_zero(tmp_path):
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "serving.serve", "--port", str(port)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "BENTOML_HOME": str(tmp_path / "empty_store")})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "run `make train` first" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
