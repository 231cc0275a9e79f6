"""The backend race's outcome (model/predictor.py ``_race``), remembered per model and machine.

Timing PyTorch against ONNX Runtime, and tracing the PyTorch encoder for it, took 3.7 s of
every load on an AMD EPYC without AVX-512 (4.6 s in all): 4% of a 5,000-pair
`stance score` run, and of every service start. The winner depends on the CPU, the thread
count and the library versions, not on the sentences, so it is timed once and kept in

    $STANCE_CACHE_DIR/backends.json      (default: $XDG_CACHE_HOME/stance, or ~/.cache/stance)

under a key naming all of those and the model files. Delete the file to time again. A file
that cannot be read or written is ignored: the load times the race as before.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("stance")

BACKENDS = ("torch", "onnx")
MAX_ENTRIES = 64  # one per model and machine setting; the oldest go first


@dataclass(frozen=True)
class Outcome:
    backend: str  # "torch" or "onnx", the faster
    torch_ms: float
    onnx_ms: float


def path() -> Path:
    base = os.environ.get("STANCE_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stance"
    return Path(base) / "backends.json"


def key(model_dir: Path, onnx_file: Path) -> str:
    """What the race's outcome depends on: the model files (a retrained model in the same
    folder is timed again), the CPU, the threads and how they wait, and the libraries."""
    import onnxruntime
    import torch

    from model.precision import cpu_model

    stat = onnx_file.stat()
    return " | ".join([str(Path(model_dir).resolve()), f"{stat.st_size} bytes, mtime {stat.st_mtime_ns}", cpu_model(),
                       f"{torch.get_num_threads()} threads", f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}",
                       f"torch {torch.__version__}", f"onnxruntime {onnxruntime.__version__}"])


def _entries() -> dict:
    try:
        entries = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def recall(name: str) -> Outcome | None:
    entry = _entries().get(name)
    try:
        outcome = Outcome(entry["backend"], float(entry["torch_ms"]), float(entry["onnx_ms"]))
    except (TypeError, KeyError, ValueError):
        return None  # absent, or not written by this module: time the race again
    return outcome if outcome.backend in BACKENDS else None


def remember(name: str, outcome: Outcome) -> None:
    entries = _entries()
    entries.pop(name, None)
    entries[name] = {"backend": outcome.backend, "torch_ms": round(outcome.torch_ms, 1),
                     "onnx_ms": round(outcome.onnx_ms, 1), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    kept = dict(list(entries.items())[-MAX_ENTRIES:])
    target, written = path(), None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: processes loading at once (Ray workers) never read half a file.
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, suffix=".tmp", delete=False) as f:
            written = f.name
            json.dump(kept, f, indent=1)
        os.replace(written, target)
    except OSError as e:
        log.debug("could not remember the backend race in %s: %s", target, e)
        if written:
            Path(written).unlink(missing_ok=True)
