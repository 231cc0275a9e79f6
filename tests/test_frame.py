"""The Python API on the tiny model: ``score_frame`` gives what `stance score` writes, and the
README's example (its "Python API" section, read from README.md) runs as printed."""

from __future__ import annotations

import pytest
from helpers import ROOT

def readme_example() -> str:
    """The Python block of README.md's "### Python API" section, as a reader copies it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))] + "\n"

FLAT = ["source", "sentence_index", "actor", "mention", "affiliation", "stance", "stance_support", "stance_oppose",
        "stance_neutral", "sentiment", "sentiment_positive", "sentiment_negative", "sentiment_neutral", "model"]


def test_the_readme_example_runs(tiny_store, capsys):
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    scored = namespace["scored"]
    assert list(scored.columns) == ["text", "input_actor", "published", *FLAT]
    assert list(zip(scored["text"], scored["actor"])) == [
        ("Zelensky rejected any deal made without Ukraine.", "Volodymyr Zelensky"),  # the given actor only
        ("Lavrov met Rubio.", "Sergey Lavrov"), ("Lavrov met Rubio.", "Marco Rubio")]
    assert set(scored["model"]) == {tiny_store}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == namespace["predictor"].choice and printed[1] in ("support", "oppose", "neutral")


def test_score_frame_gives_what_stance_score_writes(score, tiny_model_dir, tmp_path):
    import pandas as pd

    from batch.frame import score_frame
    from model.predictor import Predictor

    df = pd.DataFrame({"sentence": ["Putin welcomed the talks.", "Sánchez said little.", "Lavrov met Rubio.", "No one."],
                       "actor": [None, "Pedro Sánchez", float("nan"), None],  # NaN: missing, as None
                       "n": [1, 2, 3, 4], "score": [0.5, None, 1.5, 2.0],
                       "when": pd.to_datetime(["2025-02-18", None, "2025-02-19", "2025-02-20"])})
    df.to_parquet(tmp_path / "in.parquet", index=False)
    # One precision and backend for both: `auto` chooses by the CPU and by timing at load.
    assert score("in.parquet", "--out", "out.parquet", "--precision", "fp32", "--backend", "torch").exit_code == 0
    expected = pd.read_parquet(tmp_path / "out.parquet")
    predictor = Predictor.load(tiny_model_dir, precision="fp32", backend="torch")
    got = score_frame(df, predictor=predictor, source="in.parquet")
    got["model"] = expected["model"]  # the tiny predictor's tag is not the store's
    pd.testing.assert_frame_equal(got, expected)
    assert list(got["actor"].fillna("-")) == ["Vladimir Putin", "Pedro Sánchez", "Sergey Lavrov", "Marco Rubio", "-"]


def test_score_frame_applies_the_same_rules(tiny_predictor):
    import pandas as pd

    from batch.frame import score_frame
    from batch.inputs import BadInput

    df = pd.DataFrame({"text": ["Putin spoke.", "Rubio spoke.", "Lavrov spoke."], "who": [None, 7, " "]})
    with pytest.raises(BadInput) as e:
        score_frame(df, predictor=tiny_predictor, actor_column="who")
    assert str(e.value) == "frame:2: who must be a string or null, got number"
    scored = score_frame(df, predictor=tiny_predictor, actor_column="who", skip_bad=True)
    assert list(scored["actor"]) == ["Vladimir Putin"]
    with pytest.raises(BadInput) as e:
        score_frame(df.rename(columns={"text": "body"}), predictor=tiny_predictor)
    assert str(e.value) == "frame: no 'sentence' or 'text' column (found: body, who); name the text column with text_column"
    empty = score_frame(df.iloc[:0], predictor=tiny_predictor)
    assert (len(empty), list(empty.columns)) == (0, ["text", "who", *FLAT])


def test_score_frame_loads_the_model_from_the_store(tiny_store):
    import pandas as pd

    from batch.frame import score_frame

    scored = score_frame(pd.DataFrame({"sentence": ["Putin spoke."]}), model=tiny_store, precision="fp32")
    assert (list(scored["actor"]), list(scored["model"])) == (["Vladimir Putin"], [tiny_store])
