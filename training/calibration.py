"""Calibration fitted on held-out predictions: a temperature per head (Guo et al., 2017),
then a decision prior per head (a bias per class added to the scaled log-probabilities,
chosen for macro-F1; the neutral class's bias stays 0), and the expected calibration error.

Both are fitted on the development set, never on a test side; the network applies them in
one place (``StanceSentimentModel.calibrate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.labels import TASKS
from training.data import first_per_sentence

# Biases tried for each non-neutral class (the neutral one is the reference).
PRIOR_GRID = np.round(np.arange(-1.5, 1.51, 0.1), 2)


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


def macro_f1(y: np.ndarray, pred: np.ndarray, n: int) -> float:
    f1 = []
    for c in range(n):
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + np.sum(y == c)
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def fit_prior(probs: np.ndarray, labels) -> np.ndarray:
    """The bias per class (neutral, the last class, fixed at 0) that maximises macro-F1 of
    argmax(log p + bias); among equal scores the smallest bias wins."""
    logp, y = np.log(np.clip(probs, 1e-12, None)), np.asarray(list(labels))
    n = probs.shape[1]
    best, best_key = np.zeros(n), None
    for a in PRIOR_GRID:
        for b in PRIOR_GRID:
            bias = np.array([a, b] + [0.0] * (n - 2))
            key = (round(macro_f1(y, (logp + bias).argmax(1), n), 6), -abs(a) - abs(b))
            if best_key is None or key > best_key:
                best, best_key = bias, key
    return best


@dataclass
class Calibration:
    temperature: dict[str, float]
    prior: dict[str, list[float]]

    @classmethod
    def fit(cls, ds, stance_probs: np.ndarray, sentiment_probs: np.ndarray, prior: bool = True) -> "Calibration":
        """From uncalibrated probabilities on ``ds`` (sentiment counted once per sentence)."""
        first = first_per_sentence(ds)
        rows = {"stance": (stance_probs, np.asarray(ds["stance_id"])),
                "sentiment": (sentiment_probs[first], np.asarray(ds["sentiment_id"])[first])}
        temps, priors = {}, {}
        for task, (probs, y) in rows.items():
            temps[task] = fit_temperature(probs, y)
            scaled = apply_temperature(probs, temps[task])
            priors[task] = (fit_prior(scaled, y) if prior else np.zeros(len(TASKS[task]))).tolist()
        return cls(temps, priors)

    def apply(self, task: str, probs: np.ndarray) -> np.ndarray:
        z = np.log(np.clip(probs, 1e-12, None)) / self.temperature[task] + np.asarray(self.prior[task])
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def set_on(self, model) -> None:
        with torch.no_grad():
            for task in ("stance", "sentiment"):
                getattr(model, f"{task}_temperature").fill_(self.temperature[task])
                getattr(model, f"{task}_prior").copy_(torch.tensor(self.prior[task]))

    def report(self, ds, stance_probs: np.ndarray, sentiment_probs: np.ndarray) -> dict:
        """Temperature, prior and expected calibration error before and after, per head."""
        first = first_per_sentence(ds)
        rows = {"stance": (stance_probs, np.asarray(ds["stance_id"])),
                "sentiment": (sentiment_probs[first], np.asarray(ds["sentiment_id"])[first])}
        return {task: {"temperature": self.temperature[task], "prior": self.prior[task],
                       "ece_before": expected_calibration_error(probs, y),
                       "ece_after": expected_calibration_error(apply_temperature(probs, self.temperature[task]), y)}
                for task, (probs, y) in rows.items()}
