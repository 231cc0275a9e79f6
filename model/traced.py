"""The PyTorch encoder as a frozen TorchScript graph, for inference (``Predictor.load``).

Why: eager PyTorch runs the encoder's hundreds of small operations one by one from Python,
holding the GIL between them; in the service that Python competes with the event loop that
parses requests, and the second OpenMP thread waits meanwhile. The traced graph runs them in
C++ (and freezing folds the weights into it). Outputs are those of the eager encoder at the
same precision: ``trace`` checks that on the probe batch and returns None if not, so the caller
keeps the eager encoder.
"""

from __future__ import annotations

from typing import Callable

import torch

from model.network import ENCODER_INPUTS as KEYS, EncoderOnly


def trace(model, probe: dict) -> Callable[[dict], torch.Tensor] | None:
    """An encoder callable for ``model.forward(encoder=...)``, traced on ``probe`` (a batch from
    model.encoding); None if its hidden states differ from the eager encoder's on the probe."""
    args = tuple(probe[k] for k in KEYS)
    with torch.no_grad():
        try:
            graph = torch.jit.freeze(torch.jit.trace(EncoderOnly(model).eval(), args, check_trace=False))
        except Exception:  # noqa: BLE001 - an encoder TorchScript cannot trace still runs eager
            return None
        # Trace on one shape, check on another: a size frozen into the graph would show here.
        other = tuple(a[:1, :-1] for a in args)
        for shape in (args, other):
            eager, traced = model.encode(dict(zip(KEYS, shape))).float(), graph(*shape).float()
            if traced.shape != eager.shape or not torch.allclose(traced, eager, atol=1e-3, rtol=1e-3):
                return None

    def encoder(batch: dict) -> torch.Tensor:
        with torch.no_grad():
            return graph(*(batch[k] for k in KEYS))

    return encoder
