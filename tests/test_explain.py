"""Evidence (model/explain.py, model/gradients.py, the "explain" option of the API, /segment,
training/faithfulness.py) on the tiny model: the word rules, that a weight is exactly the fall
of the probability the predictor gives, and the API's shapes with and without explain."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from helpers import ACTOR_KEYS, TWO_ACTORS

from model.explain import Explainer, candidate_words, delete, evidence
from model.labels import STANCE


# -- words, deletion, phrases -----------------------------------------------------------------
def test_candidate_words_are_the_words_outside_the_mention():
    sentence = "Kyiv's envoy, Yermak, called the long-term deal \"a trap\"."
    span = (14, 20)  # Yermak
    assert [w.text for w in candidate_words(sentence, span)] == ["Kyiv's", "envoy", "called", "the", "long-term", "deal", "a", "trap"]
    assert all(sentence[w.start:w.end] == w.text for w in candidate_words(sentence, span))


def test_only_the_words_nearest_the_mention_are_candidates():
    sentence = " ".join(f"w{i}" for i in range(30)) + " Lavrov " + " ".join(f"v{i}" for i in range(30))
    start = sentence.index("Lavrov")
    words = [w.text for w in candidate_words(sentence, (start, start + 6), limit=4)]
    assert words == ["w28", "w29", "v0", "v1"]
    assert [w.text for w in candidate_words(sentence, None, limit=2)] == ["w0", "w1"]


def test_deleting_words_keeps_the_spacing_and_moves_the_mention():
    sentence = "Yesterday Lavrov warmly praised the talks."
    span = (10, 16)
    words = {w.text: w for w in candidate_words(sentence, span)}
    text, moved = delete(sentence, span, [words["Yesterday"], words["warmly"]])
    assert (text, text[moved[0]:moved[1]]) == ("Lavrov praised the talks.", "Lavrov")
    text, moved = delete(sentence, span, [words["talks"]])
    assert (text, moved) == ("Yesterday Lavrov warmly praised the.", span)
    assert delete(sentence, None, []) == (sentence, None)


def test_evidence_joins_neighbouring_words_of_one_sign_and_puts_the_strongest_first():
    sentence = "Kyiv firmly rejected the deal, but Lavrov praised it."
    words = candidate_words(sentence, (0, 4))
    w = {x.text: x for x in words}
    weights = {"firmly": 0.2, "rejected": 0.5, "deal": 0.005, "praised": -0.3, "it": 0.02}
    weighted = [(x, weights.get(x.text, 0.0)) for x in words]
    assert evidence(weighted, sentence) == [
        {"text": "firmly rejected", "start": w["firmly"].start, "end": w["rejected"].end, "weight": 0.7},
        {"text": "praised", "start": w["praised"].start, "end": w["praised"].end, "weight": -0.3},
        {"text": "it", "start": w["it"].start, "end": w["it"].end, "weight": 0.02},
    ]
    assert evidence([(x, 0.001) for x in words], sentence) == []  # no word moved it enough


def test_an_unknown_method_is_refused_in_words(tiny_predictor):
    with pytest.raises(ValueError, match=r"^method must be one of occlusion, gradients, not 'shap'$"):
        Explainer(tiny_predictor, "shap")


# -- the weights are what they say --------------------------------------------------------------
def test_an_occlusion_weight_is_the_fall_of_the_predictors_probability(tiny_predictor):
    sentence, span = TWO_ACTORS, (TWO_ACTORS.index("Lavrov"), TWO_ACTORS.index("Lavrov") + 6)
    row = ("Sergey Lavrov", sentence, span)
    full = tiny_predictor.probabilities([row], [])[0][0]
    label = STANCE[int(full.argmax())]
    weighted = Explainer(tiny_predictor).weights([row], [label])[0]
    for word, weight in weighted[:5]:
        cut = tiny_predictor.probabilities([("Sergey Lavrov", *delete(sentence, span, [word]))], [])[0][0]
        assert weight == pytest.approx(float(full[STANCE.index(label)] - cut[STANCE.index(label)]), abs=1e-5)


def test_add_evidence_puts_evidence_on_every_actor_toward_its_label(tiny_predictor):
    items = [TWO_ACTORS, ("Sánchez hailed the talks.", "Pedro Sánchez"), "It rained."]
    results = tiny_predictor.predict(items)
    plain = json.loads(json.dumps(results))
    Explainer(tiny_predictor).add_evidence(items, results)
    for before, after in zip(plain, results):
        assert [{k: v for k, v in a.items() if k != "evidence"} for a in after["actors"]] == before["actors"]
        for actor in after["actors"]:
            for e in actor["evidence"]:
                assert after["sentence"][e["start"]:e["end"]] == e["text"]
                assert e["text"] not in (actor["mention"] or "")


def test_with_isolate_only_the_item_whose_explanation_raises_fails(tiny_predictor, monkeypatch):
    from model import explain
    from model.predictor import Failure

    real = explain.Explainer.weights

    def weights(self, rows, labels):
        if any("breaks" in sentence for _, sentence, _ in rows):
            raise RuntimeError("injected fault")
        return real(self, rows, labels)

    monkeypatch.setattr(explain.Explainer, "weights", weights)
    items = ["Lavrov praised the talks.", "Rubio breaks the explainer.", "It rained."]
    results = tiny_predictor.predict(items)
    with pytest.raises(RuntimeError, match="^injected fault$"):
        Explainer(tiny_predictor).add_evidence(items, json.loads(json.dumps(results)))
    out = Explainer(tiny_predictor).add_evidence(items, results, isolate=True)
    assert isinstance(out[1], Failure) and out[1].error == "RuntimeError: injected fault"
    assert "evidence" in out[0]["actors"][0] and out[2]["actors"] == []
    again = Explainer(tiny_predictor).add_evidence(items, out, isolate=True)  # a Failure is passed over
    assert again[1] is out[1]


def test_gradients_run_on_fp32_weights_whatever_the_predictor_runs(tiny_model_dir, tiny_predictor):
    from model.gradients import Gradients
    from model.predictor import Predictor

    fp32 = Predictor.load(tiny_model_dir, precision="fp32", backend="torch")
    assert Gradients.for_predictor(fp32).model is fp32.model
    bf16 = Predictor.load(tiny_model_dir, precision="bf16", backend="torch") if "bf16" in tiny_predictor.choice else None
    if bf16 is not None:
        reloaded = Gradients.for_predictor(bf16).model
        assert reloaded is not bf16.model and all(p.dtype == torch.float32 for p in reloaded.parameters())
    explainer = Explainer(fp32, "gradients")
    span = (TWO_ACTORS.index("Lavrov"), TWO_ACTORS.index("Lavrov") + 6)
    weighted = explainer.weights([("Sergey Lavrov", TWO_ACTORS, span)], ["support"])[0]
    assert [w.text for w, _ in weighted] == [w.text for w in candidate_words(TWO_ACTORS, span)]
    assert explainer._gradients.gaps[0] < 1e-3  # completeness: the attributions add up


# -- the API ----------------------------------------------------------------------------------
def test_with_explain_every_actor_gets_evidence_and_nothing_else_changes(client):
    plain = client.post("/classify", json={"sentence": TWO_ACTORS}).json()
    explained = client.post("/classify", json={"sentence": TWO_ACTORS, "explain": True}).json()
    assert [set(a) for a in plain["actors"]] == [ACTOR_KEYS] * 2
    assert [set(a) for a in explained["actors"]] == [ACTOR_KEYS | {"evidence"}] * 2
    for a, b in zip(plain["actors"], explained["actors"]):
        assert {k: v for k, v in b.items() if k != "evidence"} == a
        for e in b["evidence"]:
            assert set(e) == {"text", "start", "end", "weight"}
            assert TWO_ACTORS[e["start"]:e["end"]] == e["text"]
    assert client.post("/classify", json={"sentence": TWO_ACTORS, "explain": False}).json() == plain


def test_without_explain_the_body_is_byte_for_byte_as_before(client):
    raw = client.post("/classify", json={"sentence": "Lavrov praised the talks."}).content
    assert b"evidence" not in raw
    body = json.loads(raw)
    assert raw == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(body) == ["sentence", "sentiment", "sentiment_probs", "actors", "model"]
    assert list(body["actors"][0]) == ["actor", "mention", "affiliation", "stance", "stance_probs"]


def test_a_batch_mixing_explained_and_plain_items_keeps_input_order(client):
    items = [{"sentence": TWO_ACTORS, "explain": True}, {"sentence": "Rubio spoke."},
             {"sentence": "Lavrov praised the talks.", "explain": True}, {"sentence": "It rained.", "explain": False}]
    results = client.post("/classify_batch", json={"items": items}).json()["results"]
    assert [r["sentence"] for r in results] == [i["sentence"] for i in items]
    assert [all("evidence" in a for a in r["actors"]) for r in results[:3]] == [True, False, True]
    assert [a["actor"] for a in results[1]["actors"]] == ["Marco Rubio"] and "evidence" not in results[1]["actors"][0]


def test_a_batch_may_explain_exactly_the_documented_maximum(client):
    from serving.guard import MAX_EXPLAIN_ITEMS

    items = [{"sentence": f"Lavrov spoke {i} times.", "explain": True} for i in range(MAX_EXPLAIN_ITEMS)]
    items += [{"sentence": "Rubio spoke."}] * 10  # plain items do not count
    response = client.post("/classify_batch", json={"items": items})
    assert response.status_code == 200, response.text


def test_an_explanation_that_fails_fails_only_its_request(client, monkeypatch):
    from model import explain

    real = explain.Explainer.weights

    def weights(self, rows, labels):
        if any(sentence == "Lavrov said this sentence breaks the explainer." for _, sentence, _ in rows):
            raise RuntimeError("injected fault")
        return real(self, rows, labels)

    monkeypatch.setattr(explain.Explainer, "weights", weights)
    bodies = [{"sentence": "Lavrov said this sentence breaks the explainer.", "explain": True},
              *[{"sentence": f"Lavrov said {i} times that the talks mattered.", "explain": i % 2 == 0} for i in range(6)]]
    with ThreadPoolExecutor(7) as pool:
        responses = list(pool.map(lambda b: client.post("/classify", json=b), bodies))
    assert responses[0].status_code == 503
    assert responses[0].json() == {"error": "model: this item could not be scored (RuntimeError: injected fault); retry later",
                                   "field": "model"}
    assert [r.status_code for r in responses[1:]] == [200] * 6


def test_segment_splits_an_article_as_the_batch_cli_does(client):
    from model.segment import split_sentences

    text = "Mr. Lavrov praised the talks. U.S. officials agreed.\nRead more\nA teaser headline\n\nKyiv objected."
    body = client.post("/segment", json={"text": text}).json()
    assert body == {"sentences": [{"text": s.text, "start": s.start, "end": s.end} for s in split_sentences(text)]}
    assert [s["text"] for s in body["sentences"]] == ["Mr. Lavrov praised the talks.", "U.S. officials agreed.", "Kyiv objected."]
    assert all(text[s["start"]:s["end"]] == s["text"] for s in body["sentences"])


def test_the_openapi_document_states_explain_evidence_and_segment(client):
    doc = client.get("/docs.json").json()
    schemas = doc["components"]["schemas"]
    explain = schemas["ClassifyRequest"]["properties"]["explain"]
    assert (explain["type"], explain["default"]) == ("boolean", False)
    actor = schemas["ActorStance"]
    assert "evidence" in actor["properties"] and "evidence" not in actor["required"]
    assert set(schemas["Evidence"]["required"]) == {"text", "start", "end", "weight"}
    post = doc["paths"]["/segment"]["post"]
    assert post["requestBody"]["required"] is True
    assert set(post["responses"]) == {"200", "400", "405", "413", "422", "429", "503"}


# -- the faithfulness report ------------------------------------------------------------------
def test_faithfulness_writes_both_figures_for_each_method(tiny_store, tmp_path):
    from training import faithfulness

    figures = faithfulness.main(["--model", tiny_store, "--limit", "4", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "faithfulness.json").read_text())
    assert set(saved["methods"]) == {"occlusion", "gradients"} and saved["rows"] == 4
    for method in saved["methods"].values():
        assert set(method["top"]) == {"1", "3", "5"}
        assert set(method["top"]["1"]) == {"comprehensiveness", "sufficiency"}
    assert set(saved["random"]) == {"1", "3", "5"}
    report = (tmp_path / "faithfulness.md").read_text()
    assert "| top-k of occlusion | 1 |" in report and "| random | 5 |" in report
    assert report.count("\n| ") >= 9 and figures["better"] in report
