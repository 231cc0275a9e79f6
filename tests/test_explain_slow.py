"""The direction of faithfulness on the real model, on sentences written for this test:
deleting the evidence words must lower the predicted stance's probability more than deleting
as many words drawn at random (ERASER's comprehensiveness; training/faithfulness.py measures
it on the whole dev set)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

# (sentence, actor, mention, the words that carry the stance)
WRITTEN = [
    ("Zelensky firmly rejected the Riyadh talks as a betrayal of Ukraine.", "Volodymyr Zelensky", "Zelensky", {"rejected", "betrayal"}),
    ("Lavrov warmly praised the talks in Riyadh as a useful step toward peace.", "Sergey Lavrov", "Lavrov", {"praised", "useful"}),
    ("Kallas condemned the deal as a dangerous trap for Europe.", "Kaja Kallas", "Kallas", {"condemned", "dangerous", "trap"}),
    ("Rubio welcomed the constructive meeting and thanked the Saudi hosts.", "Marco Rubio", "Rubio", {"welcomed", "constructive", "thanked"}),
    ("Macron criticised the talks for shutting Europe out of the negotiations.", "Emmanuel Macron", "Macron", {"criticised", "shutting"}),
    ("Peskov hailed the agreement reached in Riyadh as a breakthrough.", "Dmitry Peskov", "Peskov", {"hailed", "breakthrough"}),
    ("Sybiha denounced the meeting as a reward for Russian aggression.", "Andrii Sybiha", "Sybiha", {"denounced", "reward", "aggression"}),
    ("Orbán applauded the Riyadh talks and urged Brussels to follow.", "Viktor Orbán", "Orbán", {"applauded", "urged"}),
]


def rows():
    return [(actor, sentence, (sentence.index(mention), sentence.index(mention) + len(mention)))
            for sentence, actor, mention, _ in WRITTEN]


def test_deleting_the_evidence_lowers_the_label_more_than_deleting_random_words(real_predictor):
    from training.faithfulness import measure

    figures = measure(real_predictor, rows(), methods=("occlusion",), ks=(1, 2), draws=10, log=lambda _: None)
    for k in (1, 2):
        top = figures["methods"]["occlusion"]["top"][k]["comprehensiveness"]
        assert top > figures["random"][k]["comprehensiveness"] + 0.05, figures
    served = figures["methods"]["occlusion"]["served"]
    assert served["comprehensiveness"] > served["random_comprehensiveness"], served


def test_the_strongest_evidence_holds_a_word_that_carries_the_stance(real_predictor):
    from model.explain import Explainer
    from model.items import Item

    items = [Item(sentence, actor) for sentence, actor, _, _ in WRITTEN]
    results = Explainer(real_predictor).add_evidence(items, real_predictor.predict(items))
    hits = []
    for (sentence, _, _, carriers), result in zip(WRITTEN, results):
        evidence = result["actors"][0]["evidence"]
        strongest = evidence[0]["text"].lower().split() if evidence and evidence[0]["weight"] > 0 else []
        hits.append(bool(carriers & set(strongest)))
    assert sum(hits) >= 6, list(zip([w[0] for w in WRITTEN], hits))
