"""Checks made when a model is saved: every faster way of running it must give the labels
that fp32 PyTorch gives on the probe sentences (model/predictor.py, PROBES).

Their results go into meta.json; ``Predictor.load`` refuses a precision that failed, and
``precision="auto"`` never picks one.
"""

from __future__ import annotations

from model import precision as precisions
from model.predictor import PROBES, Predictor

# Largest difference in any probability that the ONNX check accepts. Float32 kernels differ
# in summation order, so ONNX Runtime agrees with PyTorch to ~1e-5, not bit for bit.
ONNX_TOLERANCE = 1e-3


def compare(reference: Predictor, other: Predictor) -> dict:
    """Label agreement and the largest probability difference on the probes. A label that
    differs where the reference's top two probabilities are within 1e-3 does not count."""
    outputs = []
    for a, b in zip(reference.predict(PROBES), other.predict(PROBES)):
        outputs.append((a["sentiment_probs"], b["sentiment_probs"]))
        outputs += [(x["stance_probs"], y["stance_probs"]) for x, y in zip(a["actors"], b["actors"])]
    agree, diff = 0, 0.0
    for ref, got in outputs:
        diff = max(diff, *(abs(ref[k] - got[k]) for k in ref))
        top, second = sorted(ref.values(), reverse=True)[:2]
        agree += max(ref, key=ref.get) == max(got, key=got.get) or top - second <= ONNX_TOLERANCE
    return {"agreement": agree / len(outputs), "max_prob_diff": round(diff, 6), "labels": len(outputs)}


def check_precisions(predictor: Predictor) -> dict:
    """{"bf16": {...}, "int8": {...}}, each passed only if every probe label matches fp32's."""
    out = {}
    for name in ("bf16", "int8"):
        result = compare(predictor, predictor.with_parts(precisions.convert(predictor.model, name)))
        out[name] = {**result, "passed": result["agreement"] == 1.0}
    return out


def check_onnx(predictor: Predictor, encoder) -> float:
    """The largest probability difference between PyTorch and the ONNX encoder on the probes;
    raises if a label differs or a probability differs by more than ONNX_TOLERANCE."""
    result = compare(predictor, predictor.with_parts(encoder=encoder))
    if result["agreement"] < 1.0 or result["max_prob_diff"] > ONNX_TOLERANCE:
        raise RuntimeError(f"the ONNX export disagrees with PyTorch on the probe sentences: {result}")
    return result["max_prob_diff"]
