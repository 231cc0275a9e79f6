"""Simple baselines, trained and scored on the same folds as the model."""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from model.encoding import mark_mention
from model.labels import SENTIMENT, STANCE


def marked_texts(ds) -> list[str]:
    """The actor-marked sentence, the same marking the model reads, with the actor in front."""
    return [f"{a} || {mark_mention(s, (b, e))[0]}" for a, s, b, e in
            zip(ds["actor"], ds["sentence"], ds["mention_start"], ds["mention_end"])]


def majority(train_y, n_test: int, n_labels: int) -> np.ndarray:
    p = np.zeros((n_test, n_labels))
    p[:, np.bincount(train_y, minlength=n_labels).argmax()] = 1.0
    return p


def tfidf_logreg(train_texts, train_y, test_texts, n_labels: int) -> np.ndarray:
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                        LogisticRegression(max_iter=2000, class_weight="balanced", C=4.0))
    clf.fit(train_texts, train_y)
    p = np.zeros((len(test_texts), n_labels))
    p[:, clf.classes_] = clf.predict_proba(test_texts)
    return p


# A small hand-written news-tone lexicon; a floor any learned model must clear.
_POS = {"welcome", "welcomed", "welcoming", "praise", "praised", "hope", "hopeful", "optimism", "optimistic", "positive",
        "constructive", "productive", "successful", "success", "progress", "agree", "agreed", "breakthrough", "upbeat",
        "good", "useful", "opportunity", "opportunities", "cooperation", "peace", "hailed", "incredible", "extraordinary",
        "bonhomie", "jovial", "well", "trust", "grateful", "thanks"}
_NEG = {"war", "reject", "rejected", "condemn", "condemned", "fear", "fears", "concern", "concerns", "criticism",
        "criticized", "angrily", "protest", "invasion", "sanctions", "killing", "kill", "destructive", "aggression",
        "threat", "threats", "distrust", "excluded", "sidelined", "isolation", "unacceptable", "crippling", "damaged",
        "frustration", "confusion", "apprehensions", "worry", "worries", "surrender", "attacks", "meaningless", "losses",
        "vulnerable", "hostilities", "expulsions", "interfered", "crimes", "devastation", "shelling", "denounced"}


def lexicon_sentiment(sentences: list[str]) -> np.ndarray:
    p = np.zeros((len(sentences), len(SENTIMENT)))
    for i, s in enumerate(sentences):
        words = re.findall(r"[a-z]+", s.lower())
        score = sum(w in _POS for w in words) - sum(w in _NEG for w in words)
        p[i, SENTIMENT.index("positive" if score > 0 else "negative" if score < 0 else "neutral")] = 1.0
    return p


def run_baselines(pairs, synthetic, extra=None) -> dict[str, dict[str, np.ndarray]]:
    """Out-of-fold (leave-one-article-out) predictions of each baseline for `pairs`, and
    predictions for `extra` from baselines trained on all real (+ synthetic) pairs."""
    from datasets import concatenate_datasets

    art = np.array(pairs["article"])
    out = {name: {"stance": np.zeros((len(pairs), len(STANCE))), "sentiment": np.zeros((len(pairs), len(SENTIMENT)))}
           for name in ("majority", "tfidf_logreg", "tfidf_logreg_real_only")}
    out["lexicon"] = {"sentiment": lexicon_sentiment(pairs["sentence"])}
    for a in sorted(set(art)):
        test = pairs.select(np.flatnonzero(art == a))
        real = pairs.select(np.flatnonzero(art != a))
        both = concatenate_datasets([real, synthetic]) if synthetic is not None else real
        idx = np.flatnonzero(art == a)
        for task, n in (("stance", len(STANCE)), ("sentiment", len(SENTIMENT))):
            key = f"{task}_id"
            out["majority"][task][idx] = majority(real[key], len(test), n)
            for name, train in (("tfidf_logreg", both), ("tfidf_logreg_real_only", real)):
                x_train = marked_texts(train) if task == "stance" else train["sentence"]
                x_test = marked_texts(test) if task == "stance" else test["sentence"]
                out[name][task][idx] = tfidf_logreg(x_train, train[key], x_test, n)
    if extra is not None:
        both = concatenate_datasets([pairs, synthetic]) if synthetic is not None else pairs
        out["extra"] = {
            "majority": {t: majority(pairs[f"{t}_id"], len(extra), len(TASK)) for t, TASK in (("stance", STANCE), ("sentiment", SENTIMENT))},
            "tfidf_logreg": {"stance": tfidf_logreg(marked_texts(both), both["stance_id"], marked_texts(extra), len(STANCE)),
                             "sentiment": tfidf_logreg(both["sentence"], both["sentiment_id"], extra["sentence"], len(SENTIMENT))},
            "lexicon": {"sentiment": lexicon_sentiment(extra["sentence"])},
        }
    return out
