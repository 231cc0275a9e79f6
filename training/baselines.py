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


def baseline_predictions(train, tests: list) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each baseline trained on ``train`` and applied to each of ``tests``:
    {name: [{task: probabilities} per test set]}."""
    out: dict[str, list] = {"majority": [], "tfidf_logreg": [], "lexicon": []}
    for test in tests:
        out["majority"].append({t: majority(train[f"{t}_id"], len(test), len(labels)) for t, labels in (("stance", STANCE), ("sentiment", SENTIMENT))})
        out["tfidf_logreg"].append({
            "stance": tfidf_logreg(marked_texts(train), train["stance_id"], marked_texts(test), len(STANCE)),
            "sentiment": tfidf_logreg(train["sentence"], train["sentiment_id"], test["sentence"], len(SENTIMENT))})
        out["lexicon"].append({"sentiment": lexicon_sentiment(test["sentence"])})
    return out
