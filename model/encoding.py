"""Turn (actor, sentence, mention span) into model inputs. Training and inference share
this, so the model never sees a different input format than the one it learned."""

from __future__ import annotations

import torch

from model.network import MARK_CLOSE, MARK_OPEN


def mark_mention(sentence: str, span: tuple[int, int] | None) -> tuple[str, tuple[int, int] | None]:
    """Wrap the mention in markers; return the text and the marked region's char span."""
    if span is None:
        return sentence, None
    s, e = span
    marked = f"{sentence[:s]}{MARK_OPEN} {sentence[s:e]} {MARK_CLOSE}{sentence[e:]}"
    return marked, (s, e + len(MARK_OPEN) + len(MARK_CLOSE) + 2)


def encode_stance(tokenizer, actors: list[str], sentences: list[str], spans: list, max_length: int) -> dict:
    texts, regions = zip(*(mark_mention(s, sp) for s, sp in zip(sentences, spans))) if sentences else ((), ())
    enc = tokenizer(list(actors), list(texts), truncation="only_second", max_length=max_length,
                    padding=True, return_offsets_mapping=True, return_tensors="pt")
    span_mask = torch.zeros_like(enc["input_ids"])
    for i, region in enumerate(regions):
        if region is None:
            continue
        seq_ids = enc.sequence_ids(i)
        for j, (a, b) in enumerate(enc["offset_mapping"][i].tolist()):
            if seq_ids[j] == 1 and b > a and a >= region[0] and b <= region[1]:
                span_mask[i, j] = 1
    enc.pop("offset_mapping")
    enc["span_mask"] = span_mask
    return dict(enc)


def encode_sentences(tokenizer, sentences: list[str], max_length: int) -> dict:
    return dict(tokenizer(list(sentences), truncation=True, max_length=max_length, padding=True, return_tensors="pt"))
