"""Fine-tune the stance + sentiment model and register it in the BentoML store.

    make train                       # or: python -m training.train --epochs 3

Steps: (with --teachers N) train N teacher networks and average their calibrated
probabilities on the training rows; train the shipped network on the real pairs and the
written sets (and on the teachers' soft targets); fit the temperatures and decision priors
on the development set (data/annotations/dev.jsonl, never trained on); score the dev and
challenge sets; save the model, with labels, registry, config, metrics and versions, as
``stance_classifier`` in the store. Only a finished run is registered. Leave-one-article-out
cross-validation is `make evaluate`'s job (training/evaluate.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from model import precision as precisions
from model.encoding import encode_pairs, encode_sentences
from model.labels import SENTIMENT, STANCE
from model.network import StanceSentimentModel, default_encoder_path
from model.predictor import Predictor
from model.runtime import offline
from training.config import TrainConfig, add_config_args, config_from_args
from training.data import first_per_sentence


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


def autocast(config: TrainConfig):
    """bf16 autocast for the training steps where the config and the CPU allow it."""
    use = config.precision == "bf16" or (config.precision == "auto" and precisions.resolve("auto", {"bf16": True})[0] == "bf16")
    return torch.autocast("cpu", dtype=torch.bfloat16) if use else contextlib.nullcontext()


def _class_weights(ids: list[int], n: int, enabled: bool) -> torch.Tensor | None:
    if not enabled:
        return None
    counts = np.bincount(ids, minlength=n).astype(float)
    # Inverse frequency, softened (sqrt) so a rare class does not dominate.
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / n) ** 0.5, 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float)


def sentence_table(ds: Dataset) -> tuple[list[str], list[int]]:
    """Unique sentences with their (per-sentence) sentiment, in order of first appearance."""
    idx = first_per_sentence(ds)
    sentences, labels = ds["sentence"], ds["sentiment_id"]
    return [sentences[i] for i in idx], [labels[i] for i in idx]


def pair_rows(ds: Dataset) -> list[tuple[str, str, tuple[int, int]]]:
    return list(zip(ds["actor"], ds["sentence"], zip(ds["mention_start"], ds["mention_end"])))


def _cached_inputs(model, k: int, lengths: list[int], encode, ctx) -> tuple[list[dict], list[int]]:
    """Training examples (one per window; model/encoding.py) and the input row each came
    from. With k frozen layers, their output is computed once here (in chunks of similar
    length, so little of it is padding) instead of at every step of every epoch."""
    items, owners = [], []
    model.eval()
    for idx in _chunks(sorted(range(len(lengths)), key=lengths.__getitem__), 64):
        enc = encode(idx)
        hidden = None
        if k:
            with torch.no_grad(), ctx:
                hidden = model.encode(enc.tensors, stop=k).float()
        keep = ("span_mask",) if k else ("input_ids", "token_type_ids", "span_mask")
        for j, (owner, length) in enumerate(zip(enc.owner, enc.tensors["attention_mask"].sum(1).tolist())):
            item = {key: enc.tensors[key][j, :length] for key in keep if key in enc.tensors}
            if k:
                item["hidden"] = hidden[j, :length]
            items.append(item)
            owners.append(idx[owner])
    return items, owners


def _length(item: dict) -> int:
    """Tokens in one cached training example (every tensor in it has that length)."""
    return len(next(iter(item.values())))


def _collate(items: list[dict]) -> dict:
    n = max(map(_length, items))
    out = {key: torch.stack([torch.nn.functional.pad(it[key], (0, 0, 0, n - len(it[key])) if it[key].dim() == 2 else (0, n - len(it[key])))
                             for it in items]) for key in items[0]}
    out["attention_mask"] = torch.stack([(torch.arange(n) < _length(it)).long() for it in items])
    return out


def _chunks(seq, n):
    return [seq[i : i + n] for i in range(0, len(seq), n)]


def sortish_batches(lengths: list[int], batch_size: int, rng: random.Random, pool: int) -> list[list[int]]:
    """Examples are shuffled, then sorted by length within pools of ``pool`` batches, and the
    batches shuffled: a batch pads to its longest member, and on CPU every pad token costs
    as much as a real one. A pool is a whole number of batches, so an epoch still has
    ceil(examples / batch size) of them."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for chunk in _chunks(order, pool * batch_size):
        batches += _chunks(sorted(chunk, key=lengths.__getitem__), batch_size)
    rng.shuffle(batches)
    return batches


def _optimise(loss, optim, sched, params: list) -> None:
    optim.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optim.step()
    sched.step()


def supervised_contrastive(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020) over one batch: each example is
    pulled towards the others of its label and pushed from the rest, by cosine similarity."""
    z = torch.nn.functional.normalize(features.float(), dim=-1)
    sim = z @ z.T / temperature
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


def _loss(logits: torch.Tensor, y: torch.Tensor, weight, soft: torch.Tensor | None, distill: float) -> torch.Tensor:
    """Cross-entropy on the labels; with soft targets, mixed with cross-entropy on them."""
    hard = torch.nn.functional.cross_entropy(logits, y, weight=weight)
    if soft is None:
        return hard
    return (1 - distill) * hard + distill * -(soft * logits.log_softmax(-1)).sum(-1).mean()


def _pre_fine_tune(config, model, k, items, labels, lengths, rng, desc, ctx) -> None:
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
        for idx in sortish_batches(lengths, config.batch_size, rng, config.sortish_pool):
            with ctx:
                feats = model(stance=_collate([items[i] for i in idx]), start_layer=k).stance_features
            loss = supervised_contrastive(feats, torch.tensor([labels[i] for i in idx]), config.contrastive_temperature)
            _optimise(loss, optim, sched, trained)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()


def fit(config: TrainConfig, train: Dataset, tokenizer, desc: str = "train",
        soft: tuple[np.ndarray, np.ndarray] | None = None) -> StanceSentimentModel:
    """Train one network on ``train``. ``soft`` = (stance probabilities per pair, sentiment
    probabilities per unique sentence, in sentence_table order): the teachers' targets."""
    seed_everything(config.seed, config.threads)
    ctx = autocast(config)
    model = build_model(config, tokenizer)
    k = min(config.frozen_layers, model.num_layers)
    frozen = [model.encoder.embeddings, *model.encoder.encoder.layer[:k]] if k else []
    for module in frozen:
        module.requires_grad_(False)
    rng = random.Random(config.seed)
    pairs = pair_rows(train)
    sentences, sent_labels = sentence_table(train)
    stance_items, pair_of = _cached_inputs(model, k, [len(p[1]) for p in pairs], lambda idx: encode_pairs(
        tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], [pairs[i][2] for i in idx], config.max_length), ctx)
    sent_items, sentence_of = _cached_inputs(model, k, list(map(len, sentences)), lambda idx: encode_sentences(
        tokenizer, [sentences[i] for i in idx], config.max_length), ctx)
    stance_y = [train["stance_id"][i] for i in pair_of]
    sent_y = [sent_labels[i] for i in sentence_of]
    stance_soft = torch.tensor(soft[0][pair_of], dtype=torch.float) if soft else None
    sent_soft = torch.tensor(soft[1][sentence_of], dtype=torch.float) if soft else None
    model.train()

    pair_lengths, sent_lengths = list(map(_length, stance_items)), list(map(_length, sent_items))
    if config.contrastive_epochs:
        _pre_fine_tune(config, model, k, stance_items, stance_y, pair_lengths, rng, desc, ctx)
    total = math.ceil(len(stance_items) / config.batch_size) * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optim = torch.optim.AdamW([
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": config.lr},
        {"params": heads, "lr": config.head_lr},
    ], weight_decay=config.weight_decay)
    sched = get_linear_schedule_with_warmup(optim, int(config.warmup_ratio * total), total)
    stance_w = _class_weights(stance_y, len(STANCE), config.class_weights)
    sent_w = _class_weights(sent_y, len(SENTIMENT), config.class_weights)
    # A share of the sentences per step in proportion to the pairs, so the sentiment head
    # sees each sentence about as often as the stance head sees each pair (there are about
    # twice as many pairs as sentences). Equal batches gave a sentiment macro-F1 of 0.727,
    # this 0.780 (training/EXPERIMENTS.md, rows 6 and 7).
    sent_batch_size = max(1, round(config.batch_size * len(sent_items) / len(stance_items)))
    sent_batches: list[list[int]] = []
    trained = [p for p in model.parameters() if p.requires_grad]
    # Polyak averaging: the model that is kept is an exponential moving average of the
    # weights over the last steps, less dependent on where the last few batches left it.
    average = [p.detach().clone() for p in trained] if config.ema else None
    step = 0
    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    for epoch in range(config.epochs):
        for idx in sortish_batches(pair_lengths, config.batch_size, rng, config.sortish_pool):
            if step >= total:
                break
            # Sentiment is learned from whole sentences, cycling through them alongside the pairs.
            if not sent_batches:
                sent_batches = sortish_batches(sent_lengths, sent_batch_size, rng, config.sortish_pool)
            sidx = sent_batches.pop()
            y = torch.tensor([stance_y[i] for i in idx])
            with ctx:
                out = model(stance=_collate([stance_items[i] for i in idx]),
                            sentiment=_collate([sent_items[i] for i in sidx]), start_layer=k)
            loss = _loss(out.stance.float(), y, stance_w, None if stance_soft is None else stance_soft[idx], config.distill)
            if config.contrastive:
                # Pairs with the same stance are pulled together in the features the head
                # reads: the encoder learns what the cue words have in common across actors.
                loss = loss + config.contrastive * supervised_contrastive(out.stance_features, y, config.contrastive_temperature)
            loss = loss + config.sentiment_weight * _loss(out.sentiment.float(), torch.tensor([sent_y[i] for i in sidx]), sent_w,
                                                          None if sent_soft is None else sent_soft[sidx], config.distill)
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
    """Probabilities per pair (stance) and per pair's sentence (sentiment), through the
    predictor that serves requests, with the model's current calibration."""
    p = Predictor(model, tokenizer, batch_size=64, max_length=config.max_length)
    sentences, _ = sentence_table(ds)
    stance, sentiment = p.probabilities(pair_rows(ds), sentences)
    by_sentence = dict(zip(sentences, sentiment.numpy()))
    return stance.numpy(), np.stack([by_sentence[s] for s in ds["sentence"]]) if len(ds) else np.zeros((0, len(SENTIMENT)))


def _job(config: TrainConfig, train: Dataset, predict: list[Dataset], desc: str, soft=None):
    """Train one network and predict each of ``predict``; with nothing to predict, return
    the network itself. Runs in a worker process when networks train in parallel, so it
    loads its own tokenizer."""
    tokenizer = load_tokenizer()
    model = fit(config, train, tokenizer, desc=desc, soft=soft)
    if not predict:
        return model
    return [predict_dataset(model, tokenizer, ds, config) for ds in predict]


def run_jobs(jobs: list[tuple], workers: int, threads: int) -> list:
    """``_job(*job)`` for each job, ``workers`` at a time in spawned processes that share
    the threads (on 2 cores, two 1-thread networks beat one 2-thread network)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = min(workers, len(jobs))
    if workers <= 1:
        return [_job(*job) for job in jobs]
    jobs = [(dataclasses.replace(config, threads=max(1, threads // workers), workers=1), *rest) for config, *rest in jobs]
    # spawn, not fork: a forked child of a process that has run torch's thread pool can hang.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_job, *zip(*jobs)))


def teacher_targets(config: TrainConfig, train: Dataset, dev: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble distillation: ``config.teachers`` networks (seeds seed+1, ...) trained on the
    same rows, each calibrated on the dev set; their probabilities on the training rows,
    averaged. Returns (stance per pair, sentiment per unique sentence, sentence_table order)."""
    from training.calibration import Calibration

    jobs = [(dataclasses.replace(config, seed=config.seed + i + 1, teachers=0), train, [train, dev],
             f"teacher {i + 1}/{config.teachers}") for i in range(config.teachers)]
    stance, sentiment = np.zeros((len(train), len(STANCE))), np.zeros((len(train), len(SENTIMENT)))
    for (train_st, train_se), (dev_st, dev_se) in run_jobs(jobs, config.workers, config.threads):
        cal = Calibration.fit(dev, dev_st, dev_se, prior=False)
        stance += cal.apply("stance", train_st) / config.teachers
        sentiment += cal.apply("sentiment", train_se) / config.teachers
    return stance, sentiment[first_per_sentence(train)]


def main(argv=None) -> dict:
    from training.calibration import Calibration
    from training.data import ANNOTATIONS, load_sets, training_set
    from training.metrics import summarize
    from training.store import register

    offline()
    parser = argparse.ArgumentParser(description="Train the stance + sentiment model and register it in the BentoML store.")
    add_config_args(parser)
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS, help="folder of the annotation files (default: %(default)s)")
    parser.add_argument("--no-register", dest="register", action="store_false",
                        help="train and score, but do not save the model in the store (for experiments)")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer()
    sets = load_sets(args.annotations)
    train, dev, challenge = training_set(config, sets.pairs, sets), sets.dev, sets.challenge
    print(f"{len(train)} training pairs ({sum(not s for s in train['synthetic'])} real), "
          f"{len(dev) if dev else 0} dev pairs; config: {config.to_dict()}")
    soft = teacher_targets(config, train, dev) if config.teachers else None
    model = fit(config, train, tokenizer, desc="final model", soft=soft)
    # Scores before and after the temperatures and decision priors fitted on the dev set: the
    # dev figure after is tuned on itself, the challenge figures show what they do to unseen text.
    metrics: dict = {}
    raw = {name: predict_dataset(model, tokenizer, ds, config) for name, ds in (("dev", dev), ("challenge", challenge)) if ds}
    if dev is not None:
        calibration = Calibration.fit(dev, *raw["dev"], prior=config.prior)
        calibration.set_on(model)
    for name, ds in (("dev", dev), ("challenge", challenge)):
        if ds is not None:
            metrics[f"{name}_uncalibrated"] = summarize(ds, *raw[name])
            metrics[name] = summarize(ds, *predict_dataset(model, tokenizer, ds, config))
    if dev is not None:
        metrics["dev"]["calibration"] = calibration.report(dev, *raw["dev"])
    for name, m in metrics.items():
        print(f"{name} macro-F1: stance {m['stance']['macro_f1']:.3f}, sentiment {m['sentiment']['macro_f1']:.3f}")
    if args.register:
        tag = register(model, tokenizer, config, metrics, time.perf_counter() - t0, sets.training_files(config),
                       check_sets={"dev": dev, "challenge": challenge})
        print(f"saved {tag} in {time.perf_counter() - t0:.0f} s")
    else:
        print(f"trained in {time.perf_counter() - t0:.0f} s (not registered)")
    return metrics


if __name__ == "__main__":
    main()
