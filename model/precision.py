"""Numeric precision of the encoder at inference: a measured choice, not an assumption.
(This module imports torch only to convert a model, so a CLI can list the choices cheaply.)

- ``fp32``: the weights as trained.
- ``bf16``: encoder weights in bfloat16. Fast only on CPUs with bf16 matrix units (Intel
  AMX, AVX512-BF16 on Intel and AMD Zen 4); elsewhere it is emulated and slow.
- ``int8``: dynamic int8 quantisation of the encoder's linear layers (opt-in only).
- ``auto``: bf16 where the CPU has bf16 units and the saved model's checks passed for bf16
  (the probes, and the target on the dev and challenge sets), else fp32.

Pooling and heads always run in fp32. A precision is allowed only if, on the probe
sentences, its labels match fp32's (checked when the model is saved, model/artifact.py).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16", "int8")
# Where the encoder runs (Predictor.load): "auto" times PyTorch against ONNX Runtime for fp32.
BACKENDS = ("auto", "torch", "onnx")
# CPU flags (Linux /proc/cpuinfo names) that mean bf16 matrix arithmetic in hardware.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()  # not Linux: no flags known, so auto stays fp32
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's name with its family and model numbers: a hypervisor may name several
    generations alike ("AMD EPYC" was a CPU without AVX-512 and a Zen 5 with AVX512-BF16 here,
    3-4x apart in speed), and the numbers tell them apart."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown CPU"
    fields: dict[str, str] = {}
    for line in text.splitlines():  # the first processor's block is enough
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    numbers = [f"{label} {fields[key]}" for key, label in (("cpu family", "family"), ("model", "model")) if fields.get(key)]
    name = fields.get("model name") or "unknown CPU"
    return f"{name} ({', '.join(numbers)})" if numbers else name


def passed_checks(meta: dict) -> dict[str, bool]:
    """Which precisions matched fp32's labels on the probes when the model was saved (its
    meta.json): those may be asked for."""
    return {p: bool(c.get("passed")) for p, c in meta.get("precision_checks", {}).items()}


def met_targets(meta: dict) -> dict[str, bool]:
    """Which precisions also kept fp32's labels on the dev and challenge sets when the model
    was saved (training/precision_target.py): only those may ``auto`` pick. A model saved
    without that check (no dev set, or before it existed) has none."""
    return {p: bool(c.get("passed") and c.get("target", {}).get("met")) for p, c in meta.get("precision_checks", {}).items()}


def resolve(precision: str, passed: dict[str, bool], flags: set[str] | None = None,
            met: dict[str, bool] | None = None) -> tuple[str, str]:
    """(the precision to run, why). ``passed`` says which precisions matched fp32's labels on
    the probes when the model was saved (an unchecked or failed precision is refused when asked
    for); ``met``, which also met the target on the dev and challenge sets (default: ``passed``),
    the only ones ``auto`` picks."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    flags = cpu_flags() if flags is None else flags
    units = [f for f in BF16_FLAGS if f in flags]
    if precision == "auto":
        if not units:
            return "fp32", "auto: fp32 (this CPU has no bf16 matrix units: none of " + ", ".join(BF16_FLAGS) + ")"
        if not passed.get("bf16"):
            return "fp32", f"auto: fp32 (the CPU has {', '.join(units)}, but bf16 did not match fp32's labels on this model)"
        if not (passed if met is None else met).get("bf16"):
            return "fp32", (f"auto: fp32 (the CPU has {', '.join(units)}, but bf16 did not keep fp32's labels on the "
                            "dev and challenge sets when this model was saved: >= 99% agreement, macro-F1 within 0.005)")
        return "bf16", f"auto: bf16 (the CPU has {', '.join(units)}; bf16 matched fp32's labels on this model)"
    if precision != "fp32" and not passed.get(precision):
        raise ValueError(f"precision {precision} did not match fp32's labels when this model was saved; use fp32 or auto")
    return precision, f"{precision}, as asked"


def convert(model, precision: str):
    """A copy of ``model`` whose encoder runs at ``precision`` (the heads stay fp32)."""
    import torch

    if precision == "fp32":
        return model
    model = copy.deepcopy(model)
    if precision == "bf16":
        model.encoder.to(torch.bfloat16)
    elif precision == "int8":
        with warnings.catch_warnings():  # torch.ao announces its move to torchao; the API still works
            warnings.simplefilter("ignore")
            model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        raise ValueError(f"cannot convert to {precision!r}")
    return model.eval()
