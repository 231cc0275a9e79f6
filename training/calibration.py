"""Temperature scaling (Guo et al., 2017) and expected calibration error."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(probs: np.ndarray, labels) -> float:
    """The temperature T that minimises the NLL of softmax(log p / T) on held-out rows.
    Scaling log-probabilities equals scaling logits: the per-row constant cancels."""
    logp = torch.log(torch.as_tensor(probs, dtype=torch.float64).clamp_min(1e-12))
    y = torch.as_tensor(list(labels))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logp / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(probs, 1e-12, None)) / t
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels, bins: int = 10) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    correct = pred == np.asarray(list(labels))
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
