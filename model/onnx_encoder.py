"""The encoder as an ONNX Runtime session: an fp32 backend the predictor can pick.

The saved model carries ``encoder.onnx``, an export of its fine-tuned encoder (input ids,
attention mask, token types -> last hidden states); ``StanceSentimentModel.forward`` takes
it in place of the PyTorch encoder, so pooling and heads are the same code. Whether it is
faster than PyTorch depends on the CPU, so ``Predictor.load`` times both, once per model and
machine (model/backend_memo.py). The export is checked against PyTorch when it is written
(model/checks.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from model.artifact import ONNX_FILE as FILE
from model.network import ENCODER_INPUTS as INPUTS, EncoderOnly


def export(model, tokenizer, path: str | Path) -> Path:
    """Write ``path/encoder.onnx`` from the model's encoder, with dynamic batch and length."""
    path = Path(path) / FILE
    probe = tokenizer(["Moscow welcomed the talks.", "A longer probe sentence, so the lengths differ."],
                      padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs one
        # more package (onnxscript) and took 6× longer here for the same graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(EncoderOnly(model).eval(), tuple(probe[k] for k in INPUTS), str(path), input_names=list(INPUTS),
                          output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


class OnnxEncoder:
    """Callable like ``StanceSentimentModel.encode`` on a batch from model.encoding."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Same thread budget as torch, so a worker told to use one core uses one core.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # The service asks torch's threads not to spin (serving/serve.py); the same for ORT's.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, enc: dict) -> torch.Tensor:
        ids = enc["input_ids"].numpy()
        feed = {"input_ids": ids, "attention_mask": enc["attention_mask"].numpy(),
                "token_type_ids": enc["token_type_ids"].numpy() if "token_type_ids" in enc else np.zeros_like(ids)}
        return torch.from_numpy(self.session.run(None, feed)[0])
