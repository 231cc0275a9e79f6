"""Behavioural tests of the trained model (Made-With-ML / CheckList style), on sentences
written for the test, not taken from the data. Slow: they need the real fine-tuned model."""

import pytest

from model.predictor import Item

pytestmark = pytest.mark.slow


def _stance(predictor, sentence, actor=None):
    out = predictor.predict([Item(sentence, actor)])[0]["actors"]
    return out[0] if actor else {a["actor"]: a for a in out}


@pytest.mark.parametrize("template, names", [
    ("{} praised the talks in Riyadh as a useful first step.", ["Lavrov", "Yuri Ushakov", "Kirill Dmitriev", "Dmitry Peskov"]),
    ("{} said the meeting was productive and agreed to form negotiating teams.", ["Rubio", "Mike Waltz", "Steve Witkoff"]),
    ("{} denounced the Riyadh talks as a deal struck behind Ukraine's back.", ["Zelensky", "Andrii Sybiha"]),
    ("{} arrived in Riyadh on Monday evening.", ["Rubio", "Lavrov", "Witkoff", "Ushakov"]),
])
def test_invariance_to_the_name_of_an_actor_on_the_same_side(real_predictor, template, names):
    labels = {name: _stance(real_predictor, template.format(name), name)["stance"] for name in names}
    assert len(set(labels.values())) == 1, labels


@pytest.mark.parametrize("actor", ["Lavrov", "Rubio", "Zelensky", "Saudi Arabia", "the European Union", "Erdogan"])
def test_direction_welcomed_versus_rejected(real_predictor, actor):
    welcomed = _stance(real_predictor, f"{actor} welcomed the talks and said they should continue.", actor)["stance_probs"]
    rejected = _stance(real_predictor, f"{actor} rejected the talks and said they should not continue.", actor)["stance_probs"]
    assert welcomed["support"] > rejected["support"]
    assert rejected["oppose"] > welcomed["oppose"]


MFT = [
    ("Russia welcomed the outcome of the Riyadh talks.", "Russia", "support"),
    ("Saudi Arabia offered to host the next round of talks.", "Saudi Arabia", "support"),
    ("Peskov said the Kremlin was ready to continue the negotiations.", "Dmitry Peskov", "support"),
    ("Witkoff called the talks very constructive.", "Steve Witkoff", "support"),
    ("Kyiv rejected the outcome of the talks and said it would not recognise any deal.", "Ukraine", "oppose"),
    ("The European Union complained bitterly that it had been excluded from the talks.", "European Union", "oppose"),
    ("Zelensky said Ukraine will not accept any agreement reached without it.", "Volodymyr Zelensky", "oppose"),
    ("Rubio arrived in Riyadh on Monday evening.", "Marco Rubio", "neutral"),
    ("The talks were held at Diriyah Palace, and TASS reported on them.", "TASS", "neutral"),
    ("Lavrov praised the talks, while Zelensky condemned them.", "Sergey Lavrov", "support"),
    ("Lavrov praised the talks, while Zelensky condemned them.", "Volodymyr Zelensky", "oppose"),
]


def test_minimum_functionality_stance(real_predictor):
    got = [(s, a, _stance(real_predictor, s, a)["stance"], want) for s, a, want in MFT]
    wrong = [g for g in got if g[2] != g[3]]
    assert len(wrong) <= 2, wrong


def test_minimum_functionality_sentiment(real_predictor):
    cases = [("Officials hailed the talks as a great success and a hopeful new start.", "positive"),
             ("Missiles struck Kyiv overnight, killing twelve people and wounding dozens.", "negative"),
             ("The meeting is scheduled for Tuesday at the palace.", "neutral")]
    got = [(s, real_predictor.predict([Item(s)])[0]["sentiment"], want) for s, want in cases]
    assert all(g == w for _, g, w in got), got
