"""Turn (actor, sentence, mention span) and plain sentences into model inputs. Training
and inference share this, so the model never sees another input format than it learned.

The window rule (the model reads ``max_length`` tokens; a sentence may be longer):
- **stance**: ``[CLS] actor [SEP] window [SEP]``. The actor gets at most ``ACTOR_TOKENS``
  tokens, so every actor string fits; the window is the stretch of the marked sentence
  that contains the mention, centred on it, with as much context on both sides as fits.
  An actor with no mention in the sentence is read over every window of the sentence.
- **sentiment**: ``[CLS] window [SEP]`` over windows that tile the whole sentence (half
  overlapping); the predictor averages their probabilities, so all of the sentence counts.
A sentence that fits is one window: short inputs are encoded exactly as a plain tokenizer
call with truncation would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MARK_OPEN, MARK_CLOSE = "<<", ">>"
# Tokens of the actor's name the stance input keeps. The longest registry alias takes 12
# ("UN Secretary-General António Guterres"); a 200-character actor of "!" takes 200.
ACTOR_TOKENS = 16
PAD_MULTIPLE = 8  # padded lengths are multiples of this (see _pad)


@dataclass
class Encoded:
    """A padded batch of windows. ``owner[i]`` is the input row that window i belongs to;
    ``truncated[r]`` says whether input row r was longer than one window."""

    tensors: dict[str, torch.Tensor]
    owner: list[int]
    truncated: list[bool]


def mark_mention(sentence: str, span: tuple[int, int] | None) -> tuple[str, tuple[int, int] | None]:
    """Wrap the mention in markers; return the text and the marked region's char span."""
    if span is None:
        return sentence, None
    s, e = span
    marked = f"{sentence[:s]}{MARK_OPEN} {sentence[s:e]} {MARK_CLOSE}{sentence[e:]}"
    return marked, (s, e + len(MARK_OPEN) + len(MARK_CLOSE) + 2)


def windows(n: int, budget: int, focus: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Token ranges [a, b) of at most ``budget`` tokens: the one centred on ``focus`` (a token
    range), or, with no focus, half-overlapping ranges that tile all ``n`` tokens."""
    if n <= budget:
        return [(0, n)]
    if focus is not None:
        a, b = focus
        start = max(0, min(a - (budget - (b - a)) // 2, n - budget))
        return [(start, start + budget)]
    stride = max(1, budget // 2)
    starts = list(range(0, n - budget, stride)) + [n - budget]
    return [(s, s + budget) for s in starts]


def encode_pairs(tokenizer, actors: list[str], sentences: list[str], spans: list, max_length: int) -> Encoded:
    marked = [mark_mention(s, sp) for s, sp in zip(sentences, spans)]
    actor_ids = tokenizer(list(actors), add_special_tokens=False)["input_ids"] if actors else []
    text = tokenizer([m[0] for m in marked], add_special_tokens=False, return_offsets_mapping=True) if marked else None
    rows, owner, truncated = [], [], []
    for r, (ids_a, (_, region)) in enumerate(zip(actor_ids, marked)):
        ids_a = ids_a[:ACTOR_TOKENS]
        ids, offsets = text["input_ids"][r], text["offset_mapping"][r]
        inside = [region is not None and b > a and a >= region[0] and b <= region[1] for a, b in offsets]
        focus = (inside.index(True), len(inside) - inside[::-1].index(True)) if any(inside) else None
        budget = max(1, max_length - len(ids_a) - 3)
        spans = windows(len(ids), budget, focus)
        truncated.append(len(ids) > budget)
        for a, b in spans:
            head = [tokenizer.cls_token_id, *ids_a, tokenizer.sep_token_id]
            rows.append((head + ids[a:b] + [tokenizer.sep_token_id], len(head), [0] * len(head) + inside[a:b] + [0]))
            owner.append(r)
    return Encoded(_pad(tokenizer, rows, with_span=True), owner, truncated)


def encode_sentences(tokenizer, sentences: list[str], max_length: int) -> Encoded:
    text = tokenizer(list(sentences), add_special_tokens=False)["input_ids"] if sentences else []
    rows, owner, truncated = [], [], []
    budget = max_length - 2
    for r, ids in enumerate(text):
        truncated.append(len(ids) > budget)
        for a, b in windows(len(ids), budget):
            rows.append(([tokenizer.cls_token_id, *ids[a:b], tokenizer.sep_token_id], len(ids[a:b]) + 2, None))
            owner.append(r)
    return Encoded(_pad(tokenizer, rows, with_span=False), owner, truncated)


def _pad(tokenizer, rows: list[tuple[list[int], int, list | None]], with_span: bool) -> dict[str, torch.Tensor]:
    """rows of (ids, length of the first segment, span flags) -> padded tensors. Token types
    are 0 on the first segment and 1 on the second, as the tokenizer makes them for a pair."""
    n = max((len(ids) for ids, _, _ in rows), default=0)
    # Lengths rounded up to a multiple of 8: oneDNN keeps compiled kernels per input shape.
    # Scoring the articles' sentences one at a time grew a bf16 process by 360 MiB with a
    # shape per exact length, by 65 MiB rounded. Padding is masked: the outputs do not change.
    n = -(-n // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = torch.full((len(rows), n), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    types = torch.zeros((len(rows), n), dtype=torch.long)
    span = torch.zeros((len(rows), n), dtype=torch.long)
    for i, (row, first, flags) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        types[i, first : len(row)] = 1 if with_span else 0
        if flags is not None:
            span[i, : len(flags)] = torch.tensor(flags, dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if with_span:
        out["span_mask"] = span
    return out
