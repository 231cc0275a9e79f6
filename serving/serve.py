"""Start the HTTP service (what `make serve` runs).

    python -m serving.serve --port 3000            # 127.0.0.1:3000
    python -m serving.serve --host 0.0.0.0 --workers 2 --threads 1

Before anything starts it checks, and reports in one line with exit status 1: that the store
has a model whose folder is whole (``model.artifact.verify``; else: run `make train`), and
that the port is free. Then it replaces itself with `bentoml serve
serving.service:StanceClassifier`, so signals (Ctrl-C, SIGTERM) reach BentoML directly.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import tempfile
from pathlib import Path

from model.runtime import OPENMP, offline

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "serving.service:StanceClassifier"


def command(host: str, port: int) -> list[str]:
    # The backstop of a graceful stop (serving/lifecycle.py drains first): what is still in
    # flight this many seconds after SIGTERM is cut, so the server is gone in under 10 s.
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port), "--working-dir", str(ROOT),
            "--timeout-graceful-shutdown", "7"]


def private_home(store: Path) -> Path:
    """A BENTOML_HOME for this server alone whose model store is ``store``'s. BentoML keeps the
    /metrics counters of a server in <BENTOML_HOME>/prometheus_multiproc_dir and empties that
    folder when a server starts, so a second server on the same home would reset this one's."""
    home = Path(tempfile.mkdtemp(prefix="stance-serve-"))
    for name in ("models", "bentos"):
        (store / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to((store / name).resolve(), target_is_directory=True)
    return home


def environment(workers: int, threads: int | None, home: Path) -> dict[str, str]:
    """The server's environment; every variable here was measured to matter on 2 cores."""
    # Default, one worker with torch on every core: the lowest latency for a lone request,
    # one model in memory, and batching fills one forward pass. On a host shared
    # with other CPU-bound jobs, `--workers 2 --threads 1` gave ~1.5x the throughput at
    # 32 clients (each worker gets its own CPU share) for twice the memory.
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    env = offline({
        **OPENMP,  # how torch's threads wait (model/runtime.py)
        **os.environ,
        "BENTOML_HOME": str(home),
        "STANCE_TORCH_THREADS": str(threads),
    })
    options = [o for o in [env.get("BENTOML_CONFIG_OPTIONS", "")] if o]
    env["BENTOML_CONFIG_OPTIONS"] = " ".join([*options, f"services.StanceClassifier.workers={workers}"])
    return env


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served, or None. Checked before BentoML starts, whose own
    report of a busy port is a long traceback."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is already in use; stop the other server or choose another port (PORT=8080 make serve)"
        return f"cannot listen on {host}:{port} ({e.strerror or e})"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the stance classifier over HTTP (BentoML).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    # String defaults go through type=int too, so a bad $PORT is a usage error, not a traceback.
    parser.add_argument("--port", type=int, default=os.environ.get("PORT") or "3000",
                        help="port to listen on (default: $PORT, else 3000)")
    parser.add_argument("--workers", type=int, default=os.environ.get("STANCE_WORKERS") or "1",
                        help="worker processes, each holding one copy of the model (default: $STANCE_WORKERS, else 1)")
    parser.add_argument("--threads", type=int, default=os.environ.get("STANCE_TORCH_THREADS") or None,
                        help="torch threads per worker (default: $STANCE_TORCH_THREADS, else CPU cores / workers)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default=os.environ.get("STANCE_PRECISION", "auto"),
                        help="encoder precision (default: $STANCE_PRECISION, else auto: bf16 where the CPU has bf16 units)")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--workers and --threads must be at least 1")

    from model import artifact, store

    try:
        path, tag = store.find()
        artifact.verify(path)  # a quarter of a second; loading would hold the start back by five
    except Exception as e:  # noqa: BLE001 - missing, corrupt or incompatible: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"serving {tag} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    env = environment(args.workers, args.threads, private_home(store.home()))
    env["STANCE_PRECISION"] = args.precision
    cmd = command(args.host, args.port)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main())
