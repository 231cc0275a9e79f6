"""Word weights by integrated gradients (Captum's ``LayerIntegratedGradients`` on the word
embeddings): the other method of model/explain.py, kept so that training/faithfulness.py can
compare it with occlusion on the dev set.

    from model.explain import Explainer
    Explainer(predictor, method="gradients").weights(rows, labels)

The attributed output is the calibrated probability of the predicted label, the same quantity
occlusion measures, so both methods' weights are on one scale. The baseline keeps the actor,
the markers and the mention and replaces every other word piece of the sentence by [PAD]:
the weights share out "this sentence's words, against none of them". Word pieces are summed
into the words of model/explain.py; a sentence read as several windows gets the mean of its
windows' attributions, as its probability is the mean of theirs.

Gradients need the PyTorch model in fp32: the predictor's own when it is (fp32 PyTorch, or the
PyTorch model beside an ONNX Runtime encoder), else a copy reloaded once from the model folder
(a bf16 or int8 encoder gives gradients too coarse to sum up; see reports/faithfulness.md).
Cost per actor: ``STEPS`` forward and backward passes of each of its windows.
"""

from __future__ import annotations

import bisect

import torch

from model.encoding import MARK_CLOSE, MARK_OPEN, encode_pairs, mark_mention
from model.explain import Row, Word, candidate_words
from model.labels import STANCE

# Interpolation steps (Gauss-Legendre): at 16 the completeness gap (sum of the attributions
# against f(input) - f(baseline)) was already small on the dev set; see reports/faithfulness.md.
STEPS = 16


def _is_fp32_pytorch(model) -> bool:
    params = list(model.encoder.parameters())
    quantized = any("quantized" in type(m).__module__ for m in model.encoder.modules())
    return bool(params) and not quantized and all(p.dtype == torch.float32 for p in params)


class Gradients:
    def __init__(self, model, tokenizer, max_length: int, steps: int = STEPS):
        self.model, self.tokenizer, self.max_length, self.steps = model.eval(), tokenizer, max_length, steps
        self.gaps: list[float] = []

    @classmethod
    def for_predictor(cls, predictor, steps: int = STEPS) -> "Gradients":
        model = predictor.model
        if not _is_fp32_pytorch(model):
            if predictor.source is None:
                raise ValueError("integrated gradients need the fp32 PyTorch model; this predictor runs another "
                                 "precision and was not loaded from a folder to reload it from")
            from model import artifact

            model = artifact.load(predictor.source)[0]
        return cls(model, predictor.tokenizer, predictor.max_length, steps)

    def weights(self, rows: list[Row], labels: list[str]) -> list[list[tuple[Word, float]]]:
        return [self.row(actor, sentence, span, STANCE.index(label)) for (actor, sentence, span), label in zip(rows, labels)]

    def row(self, actor: str, sentence: str, span, target: int) -> list[tuple[Word, float]]:
        from captum.attr import LayerIntegratedGradients

        enc = encode_pairs(self.tokenizer, [actor], [sentence], [span], self.max_length)
        batch = enc.tensors
        ids = batch["input_ids"]
        # Baseline: [PAD] for the sentence's word pieces outside the marked mention.
        text = (batch["token_type_ids"] == 1) & (batch["span_mask"] == 0) & (ids != self.tokenizer.sep_token_id)
        baseline = torch.where(text, torch.full_like(ids, self.tokenizer.pad_token_id), ids)

        def probability(input_ids, attention_mask, token_type_ids, span_mask):
            out = self.model(stance={"input_ids": input_ids, "attention_mask": attention_mask,
                                     "token_type_ids": token_type_ids, "span_mask": span_mask})
            return self.model.calibrate(out).stance.softmax(-1)

        lig = LayerIntegratedGradients(probability, self.model.encoder.embeddings.word_embeddings)
        attributions = lig.attribute(ids, baselines=baseline, target=target, n_steps=self.steps,
                                     additional_forward_args=(batch["attention_mask"], batch["token_type_ids"], batch["span_mask"]),
                                     internal_batch_size=self.steps, return_convergence_delta=True)
        attributions, gap = attributions
        # Completeness: the attributions of a window add up to f(input) - f(baseline) up to
        # this gap, which shrinks as STEPS grows; kept for training/faithfulness.py to report.
        self.gaps.append(float(gap.abs().mean()))
        per_token = attributions.sum(-1).detach() / len(enc.owner)  # the row's probability is the mean over windows
        words = candidate_words(sentence, span)
        starts = [w.start for w in words]
        weights = [0.0] * len(words)
        for (window, position), a in self._token_starts(sentence, span, ids).items():
            i = bisect.bisect_right(starts, a) - 1  # the word this piece starts in, if any
            if i >= 0 and a < words[i].end:
                weights[i] += float(per_token[window, position])
        return list(zip(words, weights))

    def _token_starts(self, sentence: str, span, ids: torch.Tensor) -> dict[tuple[int, int], int]:
        """(window, position) of each word piece of the sentence outside the marked mention ->
        the character it starts at in ``sentence``. The windows are found among the marked
        sentence's word pieces by matching their ids, so this follows model/encoding.py's
        window rule without restating it."""
        marked, _ = mark_mention(sentence, span)
        tokens = self.tokenizer(marked, add_special_tokens=False, return_offsets_mapping=True)
        pieces, offsets = tokens["input_ids"], tokens["offset_mapping"]
        inserted = len(MARK_OPEN) + len(MARK_CLOSE) + 2  # "<< " and " >>" (model/encoding.py)
        sep = self.tokenizer.sep_token_id
        out = {}
        for window, row in enumerate(ids.tolist()):
            first = row.index(sep) + 1  # [CLS] actor [SEP] | the window | [SEP] [PAD]...
            last = len(row) - 1 - row[::-1].index(sep)
            part = row[first:last]
            start = next((s for s in range(len(pieces) - len(part) + 1) if pieces[s : s + len(part)] == part), None)
            if start is None:
                raise RuntimeError("a window of the stance input is not a stretch of the sentence's word pieces")
            for j in range(len(part)):
                a = offsets[start + j][0]
                if span is None or a < span[0]:
                    out[(window, first + j)] = a
                elif a >= span[1] + inserted:  # after the closing marker
                    out[(window, first + j)] = a - inserted
        return out
