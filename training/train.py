"""Fine-tune the stance + sentiment model and register it in the BentoML store.

    make train                       # or: python -m training.train --epochs 3

Steps: leave-one-article-out cross-validation gives out-of-fold probabilities, on which a
temperature per head is fitted (calibration) and the metrics are computed; then the model
is trained on all pairs and saved, with labels, hashes, config, metrics and versions, as
``stance_classifier`` in the store under $BENTOML_HOME. Only a finished run is registered.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import time

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from model.encoding import encode_sentences, encode_stance
from model.labels import SENTIMENT, STANCE
from model.network import StanceSentimentModel, default_encoder_path
from model.predictor import Predictor
from training.config import TrainConfig, add_config_args, config_from_args


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def load_tokenizer():
    return AutoTokenizer.from_pretrained(default_encoder_path())


def build_model(config: TrainConfig, tokenizer) -> StanceSentimentModel:
    if config.encoder == "tiny":
        return StanceSentimentModel.from_encoder(tiny_vocab_size=len(tokenizer), dropout=config.dropout)
    return StanceSentimentModel.from_encoder(dropout=config.dropout)


def _class_weights(ids: list[int], n: int, enabled: bool) -> torch.Tensor | None:
    if not enabled:
        return None
    counts = np.bincount(ids, minlength=n).astype(float)
    # Inverse frequency, softened (sqrt) so a 3-example class does not dominate.
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / n) ** 0.5, 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float)


def sentence_table(ds: Dataset) -> tuple[list[str], list[int]]:
    """Unique sentences with their (per-sentence) sentiment."""
    seen = {}
    for s, y in zip(ds["sentence"], ds["sentiment_id"]):
        seen.setdefault(s, y)
    return list(seen), list(seen.values())


def _cached_inputs(model, k: int, texts: list, encode) -> list[dict]:
    """Per-example inputs for training, in the order of ``texts``. With k frozen layers,
    the output of those layers is computed once here (no grad) instead of at every step
    of every epoch; in length-sorted chunks, so little of it is spent on padding."""
    order = sorted(range(len(texts)), key=lambda i: len(str(texts[i])))  # a pair tuple: about its text's length
    items: list[dict | None] = [None] * len(texts)
    model.eval()
    for idx in _chunks(order, 64):
        enc = encode([texts[i] for i in idx])
        if k:
            with torch.no_grad():
                hidden = model.hidden(enc["attention_mask"], enc["input_ids"], enc.get("token_type_ids"), stop=k)
        for j, (i, n) in enumerate(zip(idx, enc["attention_mask"].sum(1).tolist())):
            item = {key: v[j, :n] for key, v in enc.items() if key != "attention_mask"}
            if k:
                item = {"hidden": hidden[j, :n], **({"span_mask": item["span_mask"]} if "span_mask" in item else {})}
            items[i] = item
    return items


def _length(item: dict) -> int:
    """Tokens in one cached training example (every tensor in it has that length)."""
    return len(next(iter(item.values())))


def _collate(items: list[dict]) -> dict:
    n = max(map(_length, items))
    out = {key: torch.stack([torch.nn.functional.pad(it[key], (0, 0, 0, n - len(it[key])) if it[key].dim() == 2 else (0, n - len(it[key])))
                             for it in items]) for key in items[0]}
    out["attention_mask"] = torch.stack([(torch.arange(n) < _length(it)).long() for it in items])
    return out


def _forward(model, k: int, batch: dict, head: str):
    mask = batch["attention_mask"]
    if k:
        hidden = model.hidden(mask, start=k, hidden=batch["hidden"])
    else:
        hidden = model.hidden(mask, batch["input_ids"], batch.get("token_type_ids"))
    if head == "stance_features":
        return model.stance_features(hidden, mask, batch["span_mask"])
    return model.sentiment_from_hidden(hidden, mask)


def _chunks(seq, n):
    return [seq[i : i + n] for i in range(0, len(seq), n)]


# Examples are shuffled, then sorted by length within pools of this many batches, and the
# batches shuffled: a batch pads to its longest member, and on CPU every pad token costs
# as much as a real one. A pool is a whole number of batches, so an epoch still has
# ceil(examples / batch size) of them.
SORTISH_POOL = 50


def sortish_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for pool in _chunks(order, SORTISH_POOL * batch_size):
        batches += _chunks(sorted(pool, key=lengths.__getitem__), batch_size)
    rng.shuffle(batches)
    return batches


def _optimise(loss, optim, sched, params: list) -> None:
    optim.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optim.step()
    sched.step()


CONTRASTIVE_TEMPERATURE = 0.1


def supervised_contrastive(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020) over one batch: each example is
    pulled towards the others of its label and pushed from the rest, by cosine similarity."""
    z = torch.nn.functional.normalize(features, dim=-1)
    sim = z @ z.T / CONTRASTIVE_TEMPERATURE
    self_mask = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - sim.logsumexp(1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(1)
    anchors = n_pos > 0
    if not anchors.any():
        return features.sum() * 0.0
    per_anchor = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / n_pos[anchors]
    return -per_anchor.mean()


def _pre_fine_tune(config, model, k, items, labels, lengths, rng, desc) -> None:
    """SetFit-style stage: shape the encoder's stance features by label before any head
    is trained, so the classifier starts from features where the labels already cluster."""
    trained = [p for p in model.encoder.parameters() if p.requires_grad]
    if not trained:  # every layer frozen (a 1-layer test model): nothing to shape
        return
    total = math.ceil(len(items) / config.batch_size) * config.contrastive_epochs
    optim = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    sched = get_linear_schedule_with_warmup(optim, int(config.warmup_ratio * total), total)
    bar = tqdm(total=total, desc=f"{desc}: contrastive", unit="step", leave=False)
    for _ in range(config.contrastive_epochs):
        for idx in sortish_batches(lengths, config.batch_size, rng):
            feats = _forward(model, k, _collate([items[i] for i in idx]), "stance_features")
            loss = supervised_contrastive(feats, torch.tensor([labels[i] for i in idx]))
            _optimise(loss, optim, sched, trained)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()


def fit(config: TrainConfig, train: Dataset, tokenizer, desc: str = "train") -> StanceSentimentModel:
    seed_everything(config.seed, config.threads)
    model = build_model(config, tokenizer)
    k = min(config.frozen_layers, model.num_layers)
    frozen = [model.encoder.embeddings, *model.encoder.encoder.layer[:k]] if k else []
    for module in frozen:
        module.requires_grad_(False)
    rng = random.Random(config.seed)
    pairs = list(zip(train["actor"], train["sentence"], zip(train["mention_start"], train["mention_end"])))
    stance_y = list(train["stance_id"])
    sentences, sent_y = sentence_table(train)
    stance_items = _cached_inputs(model, k, pairs, lambda c: encode_stance(
        tokenizer, [p[0] for p in c], [p[1] for p in c], [p[2] for p in c], config.max_length))
    sent_items = _cached_inputs(model, k, sentences, lambda c: encode_sentences(tokenizer, c, config.max_length))
    model.train()

    pair_lengths, sent_lengths = list(map(_length, stance_items)), list(map(_length, sent_items))
    if config.contrastive_epochs:
        _pre_fine_tune(config, model, k, stance_items, stance_y, pair_lengths, rng, desc)
    total = math.ceil(len(pairs) / config.batch_size) * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optim = torch.optim.AdamW([
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": config.lr},
        {"params": heads, "lr": config.head_lr},
    ], weight_decay=config.weight_decay)
    sched = get_linear_schedule_with_warmup(optim, int(config.warmup_ratio * total), total)
    stance_loss = torch.nn.CrossEntropyLoss(weight=_class_weights(stance_y, len(STANCE), config.class_weights))
    sent_loss = torch.nn.CrossEntropyLoss(weight=_class_weights(sent_y, len(SENTIMENT), config.class_weights))
    # A share of the sentences per step in proportion to the pairs, so the sentiment head
    # sees each sentence about as often as the stance head sees each pair (there are about
    # twice as many pairs as sentences). Equal batches gave a sentiment macro-F1 of 0.727,
    # this 0.780 (training/EXPERIMENTS.md, rows 6 and 7).
    sent_batch_size = max(1, round(config.batch_size * len(sentences) / len(pairs)))
    sent_batches: list[list[int]] = []
    trained = [p for p in model.parameters() if p.requires_grad]
    # Polyak averaging: the model that is kept is an exponential moving average of the
    # weights over the last steps, less dependent on where the last few batches left it.
    average = [p.detach().clone() for p in trained] if config.ema else None
    step = 0
    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    for epoch in range(config.epochs):
        for idx in sortish_batches(pair_lengths, config.batch_size, rng):
            if step >= total:
                break
            feats = _forward(model, k, _collate([stance_items[i] for i in idx]), "stance_features")
            y = torch.tensor([stance_y[i] for i in idx])
            loss = stance_loss(model.stance_head(model.dropout(feats)), y)
            if config.contrastive:
                # Pairs with the same stance are pulled together in the features the head
                # reads: the encoder learns what the cue words have in common across actors.
                loss = loss + config.contrastive * supervised_contrastive(feats, y)
            # Sentiment is learned from whole sentences, cycling through them alongside the pairs.
            if not sent_batches:
                sent_batches = sortish_batches(sent_lengths, sent_batch_size, rng)
            sidx = sent_batches.pop()
            logits = _forward(model, k, _collate([sent_items[i] for i in sidx]), "sentiment")
            loss = loss + config.sentiment_weight * sent_loss(logits, torch.tensor([sent_y[i] for i in sidx]))
            _optimise(loss, optim, sched, trained)
            if average:
                with torch.no_grad():
                    for a, p in zip(average, trained):
                        a.lerp_(p, 1 - config.ema)
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{loss.item():.3f}")
    bar.close()
    if average:
        with torch.no_grad():
            for p, a in zip(trained, average):
                p.copy_(a)
    for module in frozen:
        module.requires_grad_(True)
    return model.eval()


def predict_dataset(model, tokenizer, ds: Dataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated stance probabilities per pair and sentiment probabilities per pair
    (computed once per sentence), through the same predictor that serves requests."""
    p = Predictor(model, tokenizer, batch_size=64, max_length=config.max_length)
    stance = p.stance_probs(list(zip(ds["actor"], ds["sentence"], zip(ds["mention_start"], ds["mention_end"])))).numpy()
    sentences, _ = sentence_table(ds)
    sp = dict(zip(sentences, p.sentiment_probs(sentences).numpy()))
    return stance, np.stack([sp[s] for s in ds["sentence"]]) if len(ds) else np.zeros((0, len(SENTIMENT)))


def _fold(config: TrainConfig, train: Dataset, test: Dataset | None, extra: Dataset | None, desc: str):
    """Train on one fold and predict its test side (and the held-out extra set); with no
    test side, return the model itself. Runs in a worker process when folds are parallel,
    so it loads its own tokenizer."""
    tokenizer = load_tokenizer()
    model = fit(config, train, tokenizer, desc=desc)
    if test is None:
        return model
    stance, sentiment = predict_dataset(model, tokenizer, test, config)
    extra_preds = predict_dataset(model, tokenizer, extra, config) if extra else None
    return stance, sentiment, extra_preds


def crossval(config: TrainConfig, pairs: Dataset, synthetic: Dataset | None, extra: Dataset | None = None,
             final: Dataset | None = None):
    """Leave-one-article-out: train on four articles (+ synthetic), predict the fifth.
    Returns out-of-fold probabilities for `pairs`, the fold-averaged probabilities for
    `extra` (a held-out set no fold trains on), and, if `final` is given, a model trained
    on it, fitted in the same worker pool (five folds on two workers leave one idle)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    articles = sorted(set(pairs["article"]))
    art = np.array(pairs["article"])
    jobs = []
    for k, a in enumerate(articles):
        train = pairs.select(np.flatnonzero(art != a))
        if synthetic is not None and config.synthetic:
            train = concatenate_datasets([train, synthetic])
        jobs.append((train, pairs.select(np.flatnonzero(art == a)), f"fold {k + 1}/{len(articles)} (test {a[:3]})"))
    if final is not None:
        jobs.append((final, None, "final model"))
    workers = min(config.workers, len(jobs))
    if workers > 1:
        fold_config = dataclasses.replace(config, threads=max(1, config.threads // workers), workers=1)
        # spawn, not fork: a forked child of a process that has run torch's thread pool can hang.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_fold, *zip(*[(fold_config, tr, te, extra, d) for tr, te, d in jobs])))
    else:
        results = [_fold(config, tr, te, extra, d) for tr, te, d in jobs]
    oof_stance = np.zeros((len(pairs), len(STANCE)))
    oof_sent = np.zeros((len(pairs), len(SENTIMENT)))
    extra_stance = np.zeros((len(extra) if extra else 0, len(STANCE)))
    extra_sent = np.zeros((len(extra) if extra else 0, len(SENTIMENT)))
    final_model = results.pop() if final is not None else None
    for a, (stance, sentiment, extra_preds) in zip(articles, results):
        idx = np.flatnonzero(art == a)
        oof_stance[idx], oof_sent[idx] = stance, sentiment
        if extra_preds is not None:
            extra_stance += extra_preds[0] / len(articles)
            extra_sent += extra_preds[1] / len(articles)
    return oof_stance, oof_sent, extra_stance, extra_sent, final_model


def main(argv=None) -> None:
    from training.calibration import fit_temperature
    from training.data import load_pairs, load_synthetic
    from training.metrics import summarize
    from training.store import register

    parser = argparse.ArgumentParser(description="Train the stance + sentiment model and register it in the BentoML store.")
    add_config_args(parser)
    parser.add_argument("--no-cv", dest="cv", action="store_false",
                        help="skip cross-validation (no calibration, no metrics in the model); for quick experiments")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer()
    pairs, synthetic = load_pairs(), load_synthetic()
    print(f"{len(pairs)} real pairs, {len(synthetic) if synthetic else 0} synthetic pairs; config: {config.to_dict()}")
    metrics, temps = {}, {"stance": 1.0, "sentiment": 1.0}
    train = concatenate_datasets([pairs, synthetic]) if synthetic is not None and config.synthetic else pairs
    if args.cv:
        st, se, _, _, model = crossval(config, pairs, synthetic, final=train)
        temps = {"stance": fit_temperature(st, pairs["stance_id"]), "sentiment": fit_temperature(se, pairs["sentiment_id"])}
        metrics = summarize(pairs, st, se, temps)
        print(f"leave-one-article-out macro-F1: stance {metrics['stance']['macro_f1']:.3f}, sentiment {metrics['sentiment']['macro_f1']:.3f}")
    else:
        model = fit(config, train, tokenizer, desc="final model")
    model.stance_temperature.fill_(temps["stance"])
    model.sentiment_temperature.fill_(temps["sentiment"])
    tag = register(model, tokenizer, config, metrics, temps, train_seconds=time.perf_counter() - t0)
    print(f"saved {tag} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
