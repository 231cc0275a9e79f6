"""Benchmark the HTTP service against the raw model, in one run, on loopback only.

    make bench-serve                                   # 60 s per load phase
    python benchmarks/bench_serve.py --duration 10     # a quick run

1. The raw model, in this process (the Predictor the service wraps).
2. `python -m serving.serve` on a free 127.0.0.1 port: the time until /readyz answers 200.
3. Concurrency 1, paired: each sentence goes to the raw model (predict([item])), then to
   POST /classify, in turn for --duration seconds, so the single-sentence latencies of both
   are measured on the same, possibly shared, machine.
4. Bounded concurrent clients (default 32) POST /classify for --duration seconds, in blocks of
   about --block seconds that alternate with the raw batched forward (predict(all sentences),
   the server idle), so that both are measured in the same minutes; then two clients POST
   /classify_batch with 32 items each. Throughput, p50/p95/p99 latency, errors, and the mean
   items per forward pass (what batching merged, from the service's /metrics) per phase; the
   peak RSS of the worker processes. At 32 clients, where the CPU went per request: the
   model's threads (against the raw forward's CPU per sentence), the server's event loop, and
   this process's clients, which share the cores.
5. Evidence, concurrency 1, paired (run right after phase 3): each sentence goes to POST
   /classify without, then with "explain": true, for --explain-seconds; the latency of both and
   what one explanation costs (forward rows per sentence, model/explain.py). Phases 3 and 4
   send no explain: the figures of requests without it, to set against a run of the code
   before explain existed.
6. The issue's goals, each marked ok / MISSED. The server is always stopped.

The load is the sentences of data/annotations/sentences.jsonl with no actor given (so
every registry actor in a sentence is scored), the same for the raw model and the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from common import ROOT, SENTENCES, machine  # noqa: E402 - also sets the offline environment

JSON = {"Content-Type": "application/json"}


def load_sentences() -> list[str]:
    with SENTENCES.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


# -- 1. the raw model ---------------------------------------------------------------------------
def raw_batched(predictor, items: list, seconds: float) -> tuple[float, float]:
    """(sentences per second, ms of CPU per sentence) of predict(all items): the Predictor's own
    batching, no server."""
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while done == 0 or time.perf_counter() - start < seconds:
        predictor.predict(items)
        done += len(items)
    return done / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / done


def paired_single(predictor, items: list, url: str, seconds: float, block: int = 20) -> tuple[dict, list[float]]:
    """Concurrency 1, paired by blocks: ``block`` sentences to the raw model, then the same to
    the server, in turn, so both see the same machine (other jobs on a shared box slow both
    alike). Blocks, not single requests: each side then runs with its weights in the CPU's
    cache, as it would alone; alternating every request made both read them cold. The
    client is the load phases' minimal one (``post``): its own CPU is on the clock here, and
    httpx's 2-3.5 ms per request (AMD EPYC with AVX-512) is the client's cost,
    not the server's."""
    netloc, host, port = address(url)
    loop, connection = asyncio.new_event_loop(), []
    raw, server, errors = [], [], Counter()
    deadline = time.perf_counter() + seconds
    try:
        for start in itertools.count(0, block):
            chunk = [items[(start + k) % len(items)] for k in range(block)]
            for item in chunk:
                t = time.perf_counter()
                predictor.predict([item])
                raw.append(time.perf_counter() - t)
            for item in chunk:
                request = request_bytes(netloc, "/classify", json.dumps({"sentence": item.sentence, "actor": None}).encode())
                t = time.perf_counter()
                if loop.run_until_complete(send(connection, request, host, port, errors)):
                    server.append(time.perf_counter() - t)
            if time.perf_counter() > deadline and start + block >= len(items):
                break
    finally:
        reset(connection)
        loop.close()
    elapsed = sum(raw) + sum(server)
    phase = {"path": "/classify", "concurrency": 1, "requests": len(server), "errors": dict(errors),
             "per_s": len(server) / sum(server) if server else 0.0,
             **{f"p{q}_ms": 1000 * percentile(server, q) for q in (50, 95, 99)}, "paired_seconds": elapsed}
    return phase, raw


# -- 2. the server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int, threads: int | None, log: Path) -> tuple[subprocess.Popen, float]:
    import httpx

    env = {**os.environ, "PORT": str(port)}
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "serving.serve", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd + (["--threads", str(threads)] if threads else []),
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.perf_counter() - start < 120:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with code {proc.returncode}; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return proc, time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"the server was not ready within 120 s; see {log}")
    except BaseException:  # not ready, or Ctrl-C while waiting: never leave a server behind
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the session holds serve -> bentoml -> workers
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def workers(pid: int) -> list:
    """The BentoML worker processes under the server ``pid`` (psutil.Process objects)."""
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True) if "_bentoml_impl.worker" in " ".join(p.cmdline())]


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the workers' event-loop threads (a worker's main thread runs its
    event loop: HTTP, validation, batching), of their other threads (the model's), and of this
    process (the benchmark's clients)."""
    import psutil

    loop = model = 0.0
    for worker in workers(server_pid):
        for t in worker.threads():
            if t.id == worker.pid:
                loop += t.user_time + t.system_time
            else:
                model += t.user_time + t.system_time
    own = psutil.Process().cpu_times()
    return {"event_loop": loop, "model_threads": model, "client": own.user + own.system}


class RssSampler(threading.Thread):
    """Peak resident memory of the BentoML worker processes, sampled every 0.25 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def sample(self) -> int:
        import psutil

        try:
            return max((p.memory_info().rss for p in workers(self.pid)), default=0)
        except psutil.Error:
            return 0

    def run(self):
        while not self.stopped.wait(0.25):
            self.peak = max(self.peak, self.sample())


HIST = "stance_batch_items"


def forward_passes(url: str) -> tuple[float, float]:
    """(batches, items) so far, from the service's histogram of the items in each forward pass
    (serving/batcher.py)."""
    import httpx

    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        for key in (f"{HIST}_count", f"{HIST}_sum"):
            if line.startswith(key):
                values[key] = values.get(key, 0.0) + float(line.split()[-1])
    return values.get(f"{HIST}_count", 0.0), values.get(f"{HIST}_sum", 0.0)


# -- 3. load ------------------------------------------------------------------------------------
def request_bytes(host: str, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def post(connection: list, request: bytes, host: str, port: int) -> int:
    """Send one prebuilt request on a keep-alive connection ([reader, writer], opened if
    empty) and read the response by its Content-Length; returns the status."""
    if not connection:
        connection[:] = await asyncio.open_connection(host, port)
    reader, writer = connection
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if not head.startswith(b"http/1.1 ") or length is None:
        raise ValueError("not an HTTP/1.1 response with a Content-Length")
    await reader.readexactly(int(length.group(1)))
    if b"\r\nconnection: close" in head:
        writer.close()
        connection.clear()
    return int(head[9:12])


def address(url: str) -> tuple[str, str, int]:
    """(host:port, host, port) of an http:// URL."""
    netloc = url.split("://", 1)[1]
    host, port = netloc.rsplit(":", 1)
    return netloc, host, int(port)


async def send(connection: list, request: bytes, host: str, port: int, errors: Counter) -> bool:
    """``post`` with a 90 s limit: True for a 200; anything else is counted in ``errors``, and
    a connection that failed is closed (the next ``post`` opens a new one)."""
    try:
        status = await asyncio.wait_for(post(connection, request, host, port), 90)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError) as e:
        errors[type(e).__name__] += 1
        reset(connection)
        return False
    if status != 200:
        errors[f"HTTP {status}"] += 1
    return status == 200


def reset(connection: list) -> None:
    """Close a ``post`` connection, if open."""
    if connection:
        connection[1].close()
        connection.clear()


async def drive(url: str, path: str, bodies: list[bytes], items_per_request: int, concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients, each on its own keep-alive connection, POST ``bodies`` in turn
    for ``seconds``. A minimal HTTP/1.1 client, not httpx: the clients share the cores with the
    server, and at 32 clients httpx spent 2-3.5 ms of CPU per request (a tenth of a forward
    pass on an AMD EPYC), CPU that the server would not lose to clients on other machines; this
    one spends 0.2-0.3 ms. Its CPU per request is printed next to the server's."""
    netloc, host, port = address(url)
    requests = [request_bytes(netloc, path, body) for body in bodies]
    latencies, errors, counter = [], Counter(), itertools.count()
    start = time.perf_counter()
    deadline = start + seconds

    async def client_loop():
        connection: list = []
        while time.perf_counter() < deadline:
            request = requests[next(counter) % len(requests)]
            t = time.perf_counter()
            if await send(connection, request, host, port, errors):
                latencies.append(time.perf_counter() - t)
        reset(connection)

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"path": path, "concurrency": concurrency, "requests": len(latencies), "errors": dict(errors),
            "per_s": len(latencies) * items_per_request / elapsed, "elapsed": elapsed, "latencies": latencies,
            **{f"p{q}_ms": 1000 * percentile(latencies, q) for q in (50, 95, 99)}}


def paired_load(predictor, items: list, url: str, bodies: list[bytes], concurrency: int, seconds: float,
                block: float, server_pid: int) -> tuple[dict, list[float], list[float]]:
    """``concurrency`` clients against the server, paired by blocks with the raw batched
    forward: ``block`` seconds of the raw model (the server idle), then ``block`` seconds of
    load, in turn, until the load has run ``seconds``. The machine's speed drifts by a tenth
    or more over minutes (shared hosts: the raw forward ran at 86 and 107 sentences/s 3
    minutes apart), so a ratio of the two is only fair from the same minutes. Returns the load
    phase (with the CPU per request of server and clients), the raw rates and the raw CPU ms
    per sentence of each block."""
    rates, raw_cpu, runs = [], [], []
    cpu = dict.fromkeys(("event_loop", "model_threads", "client"), 0.0)
    blocks = max(1, round(seconds / block))
    for _ in range(blocks):
        rate, ms = raw_batched(predictor, items, seconds / blocks)
        rates.append(rate)
        raw_cpu.append(ms)
        before = cpu_seconds(server_pid)
        runs.append(asyncio.run(drive(url, "/classify", bodies, 1, concurrency, seconds / blocks)))
        for k, v in cpu_seconds(server_pid).items():
            cpu[k] += v - before[k]
    latencies = [t for r in runs for t in r.pop("latencies")]
    errors = sum((Counter(r["errors"]) for r in runs), Counter())
    elapsed = sum(r["elapsed"] for r in runs)
    phase = {"path": "/classify", "concurrency": concurrency, "requests": len(latencies), "errors": dict(errors),
             "per_s": len(latencies) / elapsed, **{f"p{q}_ms": 1000 * percentile(latencies, q) for q in (50, 95, 99)},
             "blocks": [r["per_s"] for r in runs], "raw_batched_per_s": statistics.mean(rates),
             "cpu_ms_per_request": {k: 1000 * v / max(1, len(latencies)) for k, v in cpu.items()}}
    return phase, rates, raw_cpu


def paired_explain(url: str, sentences: list[str], seconds: float) -> tuple[dict, dict]:
    """Concurrency 1: each sentence as a plain /classify, then with explain, in turn, so both
    see the same machine. Returns the two phases."""
    import httpx

    times = {False: [], True: []}
    errors = {False: Counter(), True: Counter()}
    deadline = time.perf_counter() + seconds
    with httpx.Client(base_url=url, timeout=90) as client:
        for k, sentence in enumerate(itertools.cycle(sentences)):
            for explain in (False, True):
                body = json.dumps({"sentence": sentence, "actor": None, **({"explain": True} if explain else {})}).encode()
                t = time.perf_counter()
                try:
                    response = client.post("/classify", content=body, headers=JSON)
                except httpx.HTTPError as e:
                    errors[explain][type(e).__name__] += 1
                    continue
                if response.status_code == 200:
                    times[explain].append(time.perf_counter() - t)
                else:
                    errors[explain][f"HTTP {response.status_code}"] += 1
            if time.perf_counter() > deadline and k + 1 >= min(len(sentences), 20):
                break
    return tuple({"path": "/classify" + (" explain" if explain else ""), "concurrency": 1, "requests": len(times[explain]),
                  "errors": dict(errors[explain]), "per_s": len(times[explain]) / sum(times[explain]) if times[explain] else 0.0,
                  "items_per_forward": float("nan"), "explain_pair": True, **{f"p{q}_ms": 1000 * percentile(times[explain], q) for q in (50, 95, 99)}}
                 for explain in (False, True))


def explain_rows(predictor, items: list) -> float:
    """Mean forward rows one explained sentence costs: per actor, the sentence and once without
    each candidate word (model/explain.py)."""
    from model.explain import candidate_words

    rows = [1 + len(candidate_words(item.sentence, t.span)) for item in items for t in predictor.targets(item)]
    return sum(rows) / len(items)


def backend(choice: str) -> str:
    """"onnx" or "torch" from a Predictor's choice, "...; <backend> (measured at load: ...)"."""
    return "onnx" if choice.rsplit("; ", 1)[-1].startswith("ONNX Runtime") else "torch"


def same_backend(predictor, log: Path, items: list):
    """The raw model on the backend the server chose at load (its log says which), so the
    comparison is like for like: each times the backends itself, and on a noisy machine the two
    choices can differ."""
    from model.predictor import Predictor
    from serving.service import FORWARD_CHUNK

    line = next((ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith(f"model {predictor.tag}: ")), "")
    served = line.partition(": ")[2]
    print(f"raw model: {predictor.choice}\nserver:    {served or '(not in its log)'}")
    if not served or backend(served) == backend(predictor.choice):
        return predictor
    print(f"  the raw model is reloaded on the server's backend ({backend(served)})")
    predictor = Predictor.from_store(predictor.tag, batch_size=FORWARD_CHUNK, backend=backend(served))
    predictor.predict(items[:8])  # warm-up
    return predictor


def items_per_forward(before: tuple[float, float], after: tuple[float, float]) -> float:
    passes = after[0] - before[0]
    return (after[1] - before[1]) / passes if passes else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the HTTP service against the raw model (loopback only).")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per phase (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated client counts for /classify (default: %(default)s)")
    parser.add_argument("--batch-items", type=int, default=32, help="items per /classify_batch request; 0 skips that phase")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("STANCE_WORKERS") or 1), help="server worker processes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per server worker (default: cores / workers)")
    parser.add_argument("--block", type=float, default=10,
                        help="seconds per block when the load at many clients alternates with the raw batched forward (default: %(default)s)")
    parser.add_argument("--explain-seconds", type=float, default=None,
                        help="seconds of the paired plain/explain phase; 0 skips it (default: --duration)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    # The server's setting (model/runtime.py), set before torch loads, so the raw model runs alike.
    from model.runtime import OPENMP, defaults

    defaults(OPENMP)

    import torch

    from model.predictor import Item, Predictor
    from model.store import ModelNotFound
    from serving.service import FORWARD_CHUNK

    try:
        predictor = Predictor.from_store(batch_size=FORWARD_CHUNK)  # as the service runs it
    except ModelNotFound as e:
        print(e, file=sys.stderr)
        return 1
    sentences = load_sentences()
    items = [Item(s) for s in sentences]
    predictor.predict(items[:8])  # warm-up
    print(f"machine: {machine()}")
    print(f"model {predictor.tag}; {len(sentences)} sentences from {SENTENCES.relative_to(ROOT)}, no actor given; "
          f"BENTOML_HOME={os.environ.get('BENTOML_HOME', '~/bentoml')}; {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}; "
          f"load average {os.getloadavg()[0]:.1f} before the run")
    batched, raw_cpu = [], []  # the raw batched forward, in blocks paired with the load (paired_load)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_serve_{port}.log"
    single = [json.dumps({"sentence": s, "actor": None}).encode() for s in sentences]
    batches = [json.dumps({"items": [{"sentence": s} for s in (sentences * 2)[i : i + args.batch_items]]}).encode()
               for i in range(0, len(sentences), max(1, args.batch_items))]
    proc, ready = start_server(port, args.workers, args.threads, log)
    sampler = RssSampler(proc.pid)
    phases, raw_single = [], []
    explain_seconds = args.duration if args.explain_seconds is None else args.explain_seconds
    try:
        idle_rss = sampler.sample()
        sampler.start()
        print(f"server ready {ready:.1f} s after start (pid {proc.pid}, log {log}); worker RSS {idle_rss / 2**20:.0f} MiB idle")
        predictor = same_backend(predictor, log, items)
        # Warm-up, not measured.
        asyncio.run(drive(url, "/classify", single, 1, 1, 2))
        asyncio.run(drive(url, "/classify", single, 1, 32, 3))
        for c in [int(c) for c in args.concurrency.split(",") if c.strip()]:
            before = forward_passes(url)
            if c == 1:
                phase, raw_single = paired_single(predictor, items, url, args.duration)
            else:
                phase, rates, ms = paired_load(predictor, items, url, single, c, args.duration, args.block, proc.pid)
                batched += rates
                raw_cpu += ms
            phase["items_per_forward"] = items_per_forward(before, forward_passes(url))
            phases.append(phase)
            print(f"  /classify c={c}: {phase['per_s']:.1f}/s, p50 {phase['p50_ms']:.1f} ms, errors {phase['errors'] or 0}"
                  + (f"; raw batched in the blocks between: {phase['raw_batched_per_s']:.1f}/s" if c > 1 else ""))
            if c == 1 and explain_seconds:  # right after the plain c=1 phase, on the same footing
                plain, explained = paired_explain(url, sentences, explain_seconds)
                phases += [plain, explained]
                print(f"  /classify explain c=1: p50 {explained['p50_ms']:.1f} ms against {plain['p50_ms']:.1f} ms without, "
                      f"errors {explained['errors'] or 0}")
        if args.batch_items:
            before = forward_passes(url)
            phase = asyncio.run(drive(url, "/classify_batch", batches, args.batch_items, 2, args.duration))
            del phase["latencies"]
            phases.append({**phase, "items_per_forward": items_per_forward(before, forward_passes(url))})
    finally:
        sampler.stopped.set()
        stop_server(proc)
    if not batched:  # no load phase paired it
        rate, ms = raw_batched(predictor, items, args.block)
        batched, raw_cpu = [rate], [ms]
    raw = {"tag": predictor.tag, "batched_per_s": statistics.mean(batched), "batched_runs": batched,
           "batched_cpu_ms_per_sentence": statistics.mean(raw_cpu),
           "single_p50_ms": 1000 * statistics.median(raw_single) if raw_single else float("nan")}

    paired = [p for p in phases if p.get("explain_pair")]
    print()
    print(f"{'phase':<26}{'sentences/s':>12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'requests':>10}{'per pass':>10}  errors")
    print(f"{'raw model, batched':<26}{raw['batched_per_s']:>12.1f}"
          f"{'':>37}  (blocks between the load: {', '.join(f'{b:.1f}' for b in batched)})")
    if raw_single:
        print(f"{'raw model, one sentence':<26}{len(raw_single) / sum(raw_single):>12.1f}{1000 * percentile(raw_single, 50):>9.1f}"
              f"{1000 * percentile(raw_single, 95):>9.1f}{1000 * percentile(raw_single, 99):>9.1f}{len(raw_single):>10}")
    for p in phases:
        name = (f"{p['path']} c={p['concurrency']}" + (f" x{args.batch_items}" if p["path"] == "/classify_batch" else "")
                + (" (paired)" if p.get("explain_pair") else ""))
        print(f"{name:<26}{p['per_s']:>12.1f}{p['p50_ms']:>9.1f}{p['p95_ms']:>9.1f}{p['p99_ms']:>9.1f}{p['requests']:>10}"
              f"{p['items_per_forward']:>10.1f}  {sum(p['errors'].values())} {p['errors'] or ''}")
    print("(per pass: mean items per forward pass in the server, i.e. what batching merged)")
    for p in phases:
        if "cpu_ms_per_request" in p:  # where the cores went: the model shares them with HTTP and the clients
            cpu = p["cpu_ms_per_request"]
            print(f"CPU per request at c={p['concurrency']}: model threads {cpu['model_threads']:.1f} ms "
                  f"(raw batched forward: {raw['batched_cpu_ms_per_sentence']:.1f} ms per sentence), server event loop "
                  f"{cpu['event_loop']:.1f} ms, benchmark clients {cpu['client']:.1f} ms")
    if paired:
        plain, explained = paired
        raw["explain_rows_per_sentence"] = explain_rows(predictor, items)
        print(f"explain: p50 {explained['p50_ms']:.0f} ms, p95 {explained['p95_ms']:.0f} ms, "
              f"{explained['p50_ms'] / plain['p50_ms']:.1f}x a plain request paired with it; one explained sentence "
              f"costs {raw['explain_rows_per_sentence']:.0f} forward rows on average (the sentence and once without "
              "each candidate word, per actor)")
    print(f"server ready in {ready:.1f} s; worker peak RSS {sampler.peak / 2**20:.0f} MiB; "
          f"load average {os.getloadavg()[0]:.1f} at the end")

    by_c = {p["concurrency"]: p for p in phases if p["path"] == "/classify" and not p.get("explain_pair")}
    goals = []
    if 32 in by_c:
        goals.append((f"zero errors at concurrency 32 for {args.duration:.0f} s", not by_c[32]["errors"]))
        ratio = by_c[32]["per_s"] / by_c[32]["raw_batched_per_s"]  # from the same minutes
        goals.append((f"throughput at c=32 >= 80% of raw batched in the blocks between ({100 * ratio:.0f}%)", ratio >= 0.8))
    if 1 in by_c:
        extra = by_c[1]["p50_ms"] - raw["single_p50_ms"]
        goals.append((f"p50 at c=1 <= raw single + 5 ms ({extra:+.1f} ms)", extra <= 5))
    goals.append((f"ready within 10 s ({ready:.1f} s)", ready <= 10))
    goals.append((f"worker memory under 1 GB ({sampler.peak / 2**20:.0f} MiB)", 0 < sampler.peak < 1e9))
    print("\ngoals:")
    for text, ok in goals:
        print(f"  {'ok    ' if ok else 'MISSED'}  {text}")
    if args.json:
        args.json.write_text(json.dumps({"raw": raw, "ready_s": ready, "worker_peak_rss": sampler.peak, "phases": phases,
                                         "goals": {t: ok for t, ok in goals}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
