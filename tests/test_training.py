"""Training code on a tiny model: the saved artefact, its metadata, reload, and shapes."""

import json

import numpy as np
import pytest

from model.labels import SENTIMENT, STANCE
from model.predictor import Item, LabelMismatchError, Predictor
from tests.conftest import tiny_config, tiny_dataset


def test_saved_artefact_carries_labels_and_reloads_identically(tiny_model_dir, tiny_model, tokenizer):
    meta = json.loads((tiny_model_dir / "meta.json").read_text())
    assert meta["labels"] == {"stance": list(STANCE), "sentiment": list(SENTIMENT)}
    assert meta["config"]["encoder"] == "tiny"
    original = Predictor(tiny_model, tokenizer)
    reloaded = Predictor.load(tiny_model_dir, backend="torch")
    rows = [("Sergey Lavrov", "Lavrov praised the talks.", (0, 6))]
    np.testing.assert_allclose(original.stance_probs(rows).numpy(), reloaded.stance_probs(rows).numpy(), atol=1e-6)


def test_onnx_backend_gives_the_pytorch_results(tiny_model_dir):
    from model.onnx_encoder import TOLERANCE, OnnxEncoder

    meta = json.loads((tiny_model_dir / "meta.json").read_text())
    assert 0 <= meta["onnx_max_prob_diff"] <= TOLERANCE  # checked when it was saved
    fast, slow = Predictor.load(tiny_model_dir), Predictor.load(tiny_model_dir, backend="torch")
    assert isinstance(fast.encoder, OnnxEncoder) and not isinstance(slow.encoder, OnnxEncoder)
    # Other lengths and batch sizes than the export's probe: the axes are dynamic.
    items = [Item("Kyiv condemned the talks, while Moscow welcomed them."), Item("No one is named here."),
             Item(" ".join(["Lavrov said the talks went well."] * 30)), Item("Orbán hailed them.", actor="Viktor Orbán")]
    for a, b in zip(fast.predict(items), slow.predict(items)):
        np.testing.assert_allclose(list(a["sentiment_probs"].values()), list(b["sentiment_probs"].values()), atol=TOLERANCE)
        for x, y in zip(a["actors"], b["actors"], strict=True):
            np.testing.assert_allclose(list(x["stance_probs"].values()), list(y["stance_probs"].values()), atol=TOLERANCE)


def test_onnx_check_refuses_an_export_that_disagrees(tiny_model, tokenizer):
    from model.predictor import check_onnx

    torch_predictor = Predictor(tiny_model, tokenizer)
    with pytest.raises(RuntimeError, match="the ONNX export disagrees with PyTorch"):
        check_onnx(torch_predictor, lambda enc: torch_predictor.encoder(enc) * 1.5)


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="backend must be 'auto', 'onnx' or 'torch', not 'gpu'"):
        Predictor.load(tiny_model_dir, backend="gpu")


def test_loading_refuses_a_model_with_other_labels(tiny_model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["labels"]["stance"] = ["pro", "anti", "neutral"]
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LabelMismatchError, match=r"trained with stance labels \['pro', 'anti', 'neutral'\].*retrain it with `make train`"):
        Predictor.load(bad)


def test_prediction_shape(tiny_predictor):
    out = tiny_predictor.predict([Item("Kyiv condemned the talks, while Moscow welcomed them."), Item("No one is named here.")])
    assert [a["actor"] for a in out[0]["actors"]] == ["Ukraine", "Russia"]
    assert out[1]["actors"] == []
    for r in out:
        assert set(r) == {"sentence", "sentiment", "sentiment_probs", "actors", "model"}
        assert list(r["sentiment_probs"]) == list(SENTIMENT)
        assert abs(sum(r["sentiment_probs"].values()) - 1) < 1e-3
        for a in r["actors"]:
            assert list(a["stance_probs"]) == list(STANCE)
            assert a["stance"] == max(a["stance_probs"], key=a["stance_probs"].get)


def test_sentiment_does_not_depend_on_the_actor(tiny_predictor):
    s = "Kyiv condemned the talks, while Moscow welcomed them."
    a, b = tiny_predictor.predict([Item(s, "Ukraine"), Item(s, "Russia")])
    assert a["sentiment_probs"] == b["sentiment_probs"]


def test_free_text_actor_outside_the_registry(tiny_predictor):
    out = tiny_predictor.predict([Item("Orbán hailed the Riyadh talks.", actor="Viktor Orbán")])[0]
    assert out["actors"][0]["actor"] == "Viktor Orbán"
    assert out["actors"][0]["mention"] == "Orbán"
    assert out["actors"][0]["affiliation"] is None


def test_training_is_deterministic(tokenizer):
    from training.train import fit

    a = fit(tiny_config(), tiny_dataset(), tokenizer)
    b = fit(tiny_config(), tiny_dataset(), tokenizer)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(p.numpy(), q.numpy()), n


def test_training_learns_the_tiny_set(tokenizer):
    """Enough steps on six examples must fit them: the loop really optimises."""
    from training.train import fit, predict_dataset

    ds = tiny_dataset()
    model = fit(tiny_config(max_steps=0, epochs=40, head_lr=3e-2, lr=3e-3), ds, tokenizer)
    stance, _ = predict_dataset(model, tokenizer, ds, tiny_config())
    assert (stance.argmax(1) == np.array(ds["stance_id"])).mean() >= 0.8


def test_contrastive_loss_prefers_features_grouped_by_label():
    import torch

    from training.train import supervised_contrastive

    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    grouped = torch.eye(3).repeat_interleave(2, dim=0) + 0.01 * torch.randn(6, 3)
    mixed = grouped[[0, 2, 4, 1, 3, 5]]
    assert supervised_contrastive(grouped, labels) < supervised_contrastive(mixed, labels)
    # A batch where no example has a partner of its label has nothing to pull together.
    assert supervised_contrastive(torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2])).item() == 0


def test_contrastive_weight_changes_training(tokenizer):
    from training.train import fit

    # It acts on the encoder (the features the stance head reads), so train the encoder.
    a = fit(tiny_config(contrastive=0.0, frozen_layers=0), tiny_dataset(), tokenizer)
    b = fit(tiny_config(contrastive=0.5, frozen_layers=0), tiny_dataset(), tokenizer)
    layer = "encoder.encoder.layer.0.output.dense.weight"
    assert not np.array_equal(a.state_dict()[layer].numpy(), b.state_dict()[layer].numpy())


def test_contrastive_pre_fine_tuning_groups_the_stance_features(tokenizer, monkeypatch):
    """The SetFit-style stage must move the encoder so that pairs with the same stance get
    closer: its own loss on the training set falls."""
    import torch

    import training.train as train

    ds = tiny_dataset()
    seen = {}

    def loss_of(model):
        items = train._cached_inputs(model, 0, list(zip(ds["actor"], ds["sentence"], zip(ds["mention_start"], ds["mention_end"]))),
                                     lambda c: train.encode_stance(tokenizer, [p[0] for p in c], [p[1] for p in c], [p[2] for p in c], 64))
        with torch.no_grad():
            return train.supervised_contrastive(train._forward(model, 0, train._collate(items), "stance_features"),
                                                torch.tensor(ds["stance_id"])).item()

    real_pre = train._pre_fine_tune

    def spy(config, model, *args):
        seen["before"] = loss_of(model)
        real_pre(config, model, *args)
        seen["after"] = loss_of(model)
        model.train()

    monkeypatch.setattr(train, "_pre_fine_tune", spy)
    train.fit(tiny_config(frozen_layers=0, contrastive_epochs=20, batch_size=12, lr=3e-3, max_steps=1), ds, tokenizer)
    assert seen["after"] < seen["before"] - 0.05


def test_crossval_never_tests_on_a_training_article(tokenizer, monkeypatch):
    import training.train as train

    seen = []
    real_fit = train.fit

    def spy(config, data, tok, desc=""):  # workers=1: folds run in this process, so the spy sees them
        seen.append(set(data["article"]))
        return real_fit(config, data, tok, desc)

    monkeypatch.setattr(train, "fit", spy)
    ds = tiny_dataset(articles=("a", "b", "c"))
    syn = tiny_dataset(articles=("synthetic",))
    st, se, _, _, _ = train.crossval(tiny_config(), ds, syn)
    assert [sorted(s) for s in seen] == [["b", "c", "synthetic"], ["a", "c", "synthetic"], ["a", "b", "synthetic"]]
    assert st.shape == (len(ds), len(STANCE)) and se.shape == (len(ds), len(SENTIMENT))


def test_config_rejects_bad_values():
    from training.config import load_config

    with pytest.raises(ValueError, match="epochs must be at least 1"):
        load_config(None, epochs=0)
    with pytest.raises(ValueError, match="encoder must be 'minilm' or 'tiny'"):
        load_config(None, encoder="bert-large")


def test_register_and_load_from_store(tiny_store):
    from serving.store import load_predictor

    p = load_predictor()
    assert p.tag == tiny_store
    assert p.predict([Item("Rubio attended the meeting.")])[0]["model"] == tiny_store


def test_temperature_fit_recovers_overconfidence():
    from training.calibration import apply_temperature, expected_calibration_error, fit_temperature

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(size=(2000, 3))
    logits[np.arange(2000), y] += 1.0
    over = np.exp(logits * 4) / np.exp(logits * 4).sum(1, keepdims=True)  # sharpened: overconfident
    t = fit_temperature(over, y)
    assert 3.0 < t < 5.0
    assert expected_calibration_error(apply_temperature(over, t), y) < expected_calibration_error(over, y)


def test_parallel_folds_give_the_same_predictions_as_serial():
    from training.train import crossval

    ds = tiny_dataset(articles=("a", "b"))
    serial = crossval(tiny_config(workers=1, threads=1), ds, None, extra=ds, final=ds)
    parallel = crossval(tiny_config(workers=2, threads=2), ds, None, extra=ds, final=ds)
    for s, p in zip(serial[:4], parallel[:4]):
        np.testing.assert_allclose(s, p, atol=1e-6)
    for (name, a), (_, b) in zip(serial[4].state_dict().items(), parallel[4].state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("module", ["training.train", "training.evaluate"])
def test_help_lists_every_config_option(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--epochs" in out and "--frozen-layers" in out and "75% neutral" in out
