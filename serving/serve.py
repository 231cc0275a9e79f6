"""Start the HTTP service (what `make serve` runs).

    python -m serving.serve --port 3000            # 127.0.0.1:3000
    PORT=8080 python -m serving.serve --host 0.0.0.0 --workers 2 --threads 1

It checks the model store first: with no model it prints one line saying to run
`make train` and exits 1. Otherwise it replaces itself with
`bentoml serve serving.service:StanceClassifier`, so signals (Ctrl-C, SIGTERM) reach
BentoML directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "serving.service:StanceClassifier"


def command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port), "--working-dir", str(ROOT)]


def environment(workers: int, threads: int | None) -> dict[str, str]:
    """The server's environment; every variable here was measured to matter on 2 cores."""
    # Default, one worker with torch on every core: the lowest latency for a lone request,
    # one model in memory, and adaptive batching fills one forward pass. On a host shared
    # with other CPU-bound jobs, `--workers 2 --threads 1` gave ~1.5x the throughput at
    # 32 clients (each worker gets its own CPU share) for twice the memory.
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    env = {
        "BENTOML_DO_NOT_TRACK": "true",
        # OpenMP threads sleep instead of spinning between operations: on a busy host,
        # spinning threads starve the one they wait for (a forward pass took 2 s, not 60 ms).
        "OMP_WAIT_POLICY": "PASSIVE",
        **os.environ,
        "STANCE_TORCH_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    options = [o for o in [env.get("BENTOML_CONFIG_OPTIONS", "")] if o]
    env["BENTOML_CONFIG_OPTIONS"] = " ".join([*options, f"services.StanceClassifier.workers={workers}"])
    return env


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
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--workers and --threads must be at least 1")

    from serving.store import MODEL_NAME, ModelNotFound, get_model

    try:
        get_model(f"{MODEL_NAME}:latest")
    except ModelNotFound:
        print(f"No {MODEL_NAME} model in the store at {os.environ.get('BENTOML_HOME', '~/bentoml')}: "
              "run `make train` first.", file=sys.stderr)
        return 1
    cmd = command(args.host, args.port)
    os.execve(cmd[0], cmd, environment(args.workers, args.threads))
    return 0  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main())
