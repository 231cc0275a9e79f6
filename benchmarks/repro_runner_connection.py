"""Why serving/service.py sets `runner_connection` on its model service: a reproducer.

    .venv/bin/python benchmarks/repro_runner_connection.py            # ~1 minute

BentoML's public batching route is a `batchable=True` API on an inner service, called from
the API service through `bentoml.depends()`. The client between the two closes its
connection pool every `runner_connection.max_requests` calls (default 100), and the calls
still in flight on it fail with "Server disconnected" (HTTP 500 to the user). This serves a
two-service toy (no model: the inner API sleeps 2 ms per item) twice, with BentoML's default
and with the setting the service uses, drives each with 32 concurrent clients for 20 s, and
prints the status codes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TOY = '''
import time
import bentoml

@bentoml.service(workers=1{connection})
class Inner:
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=30000)
    def predict(self, items: list[dict]) -> list[dict]:
        time.sleep(0.002 * len(items) + 0.01)
        return items

@bentoml.service(workers=1)
class Outer:
    inner = bentoml.depends(Inner)

    @bentoml.api
    async def classify(self, sentence: str) -> dict:
        (result,) = await self.inner.to_async.predict([{{"sentence": sentence}}])
        return result
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(port: int, clients: int, seconds: float) -> collections.Counter:
    import httpx

    codes: collections.Counter = collections.Counter()
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=60) as client:
        async def worker(k: int) -> None:
            i = 0
            while time.monotonic() < end:
                try:
                    r = await client.post(f"http://127.0.0.1:{port}/classify", json={"sentence": f"s{k}-{i}"})
                    codes[r.status_code] += 1
                except httpx.HTTPError as e:
                    codes[type(e).__name__] += 1
                i += 1

        await asyncio.gather(*(worker(k) for k in range(clients)))
    return codes


def run(connection: str, clients: int, seconds: float) -> collections.Counter:
    import httpx

    folder = Path(tempfile.mkdtemp(prefix="repro-"))
    (folder / "toy.py").write_text(textwrap.dedent(TOY.format(connection=connection)))
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(folder / "home"), "BENTOML_DO_NOT_TRACK": "true"}
    server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "toy:Outer", "--port", str(port)],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return asyncio.run(load(port, clients, seconds))
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    settings = {"BentoML's default (max_requests=100)": "",
                "serving/service.py's setting (never recycled)": ', runner_connection={"max_requests": 2**62, "max_age": 1e9}'}
    for name, connection in settings.items():
        codes = run(connection, clients=32, seconds=20)
        failed = sum(n for code, n in codes.items() if code != 200)
        print(f"{name}: {dict(codes)}; {failed / max(sum(codes.values()), 1):.1%} failed")


if __name__ == "__main__":
    main()
