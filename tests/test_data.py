"""The annotation set, the label contract, the registry and the validator."""

import json
import shutil

import pytest

from model.actors import load_registry, parse_registry
from model.labels import SENTIMENT, STANCE
from model.segment import split_sentences
from helpers import ROOT
from training.segment_articles import article_sentences, candidate_pairs
from training.validate import validate

ANN = ROOT / "data" / "annotations"
ARTICLES = ROOT / "data" / "articles"


def test_label_contract():
    assert STANCE == ("support", "oppose", "neutral")
    assert SENTIMENT == ("positive", "negative", "neutral")


def test_real_annotations_validate():
    errors, counts = validate(ANN, ARTICLES)
    assert errors == []
    assert counts["pairs"] >= 300


def test_sentences_file_is_the_segmenter_output():
    """Batch scoring re-segments articles: it must see exactly the annotated sentences."""
    rows = [json.loads(line) for line in (ANN / "sentences.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == article_sentences(ARTICLES)


def test_every_actor_mention_has_a_pair():
    """Coverage: the matcher on every sentence gives exactly the annotated (sentence, actor) set."""
    pairs = [json.loads(line) for line in (ANN / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = {(p["sentence_id"], p["actor"], p["mention_start"]) for p in candidate_pairs(article_sentences(ARTICLES))}
    assert {(p["sentence_id"], p["actor"], p["mention_start"]) for p in pairs} == expected


def test_registry_size_and_fields():
    reg = load_registry()
    assert len(reg.actors) >= 30
    assert {a.kind for a in reg.actors.values()} <= {"person", "state", "organisation", "group"}
    assert reg.owner("Kyiv") == "Ukraine" and reg.owner("the Kremlin") == "Russia"
    assert reg.owner("European leaders") == "European Union" and reg.owner("the Saudis") == "Saudi Arabia"


@pytest.mark.parametrize("sentence, expected", [
    ("Zelensky's office spoke.", [("Volodymyr Zelensky", "Zelensky")]),                 # possessive
    ("ZELENSKYY SPOKE.", [("Volodymyr Zelensky", "ZELENSKYY")]),                         # case
    ("Erdoğan met Erdogan.", [("Recep Tayyip Erdogan", "Erdoğan")]),                    # diacritics, one pair
    ("Russia’s foreign minister said so.", [("Sergey Lavrov", "Russia’s foreign minister")]),  # title, longest wins
    ("Ukrainian President Volodymyr Zelenskyy spoke.", [("Volodymyr Zelensky", "Ukrainian President Volodymyr Zelenskyy")]),
    ("The Trumpet sounded in Ukrainian towns.", []),                                     # word boundaries
    ("It came as a surprise to us.", []),                                                # 'us' is not the US
    ("The US and the Kremlin spoke.", [("United States", "US"), ("Russia", "the Kremlin")]),
    ("Talks in Riyadh ended the Ukraine war.", []),                                      # places used as places
    ("Riyadh offered to host the summit.", [("Saudi Arabia", "Riyadh")]),                 # place used as actor
])
def test_matcher(sentence, expected):
    found = load_registry().find(sentence)
    assert [(m.actor, m.text) for m in found] == expected
    for m in found:
        assert sentence[m.start:m.end] == m.text


def test_registry_rejects_an_alias_shared_by_two_actors():
    text = "- {name: A, kind: person, affiliation: X, aliases: [Al]}\n- {name: B, kind: person, affiliation: X, aliases: [Al]}\n"
    with pytest.raises(ValueError, match="alias 'Al' belongs to both A and B"):
        parse_registry(text)


def test_segmenter_drops_boilerplate_and_keeps_offsets():
    text = "Leaders met.\n\nOriginal url:\n<https://x.org/a>\nMr. Rubio said the U.S. side agreed. Lavrov agreed.\nAbout WN\nOther story.\n"
    spans = split_sentences(text)
    assert [s.text for s in spans] == ["Leaders met.", "Mr. Rubio said the U.S. side agreed.", "Lavrov agreed."]
    assert all(text[s.start:s.end] == s.text for s in spans)


# -- the validator: corrupt a copy of the data in each way and assert the message -------

@pytest.fixture
def data_copy(tmp_path):
    shutil.copytree(ANN, tmp_path / "ann", ignore=shutil.ignore_patterns("passes", "synthetic.jsonl", "challenge.jsonl"))
    return tmp_path / "ann"


def _edit(path, line_no, fn):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = fn(lines[line_no - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set(**kv):
    return lambda line: json.dumps({**json.loads(line), **kv}, ensure_ascii=False)


@pytest.mark.parametrize("corrupt, message", [
    (lambda line: line[:-5], r"pairs.jsonl:3: not valid JSON"),
    (lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != "stance"}), r"pairs.jsonl:3: missing key 'stance'"),
    (_set(mention_start="4"), r"pairs.jsonl:3: 'mention_start' must be int, got str"),
    (_set(ambiguous="no"), r"pairs.jsonl:3: 'ambiguous' must be bool, got str"),
    (_set(stance="pro"), r"pairs.jsonl:3: stance 'pro' is not one of support, oppose, neutral"),
    (_set(sentiment="happy"), r"pairs.jsonl:3: sentiment 'happy' is not one of positive, negative, neutral"),
    (_set(mention_start=1), r"pairs.jsonl:3: mention offsets 1:"),
    (_set(actor="Gandalf"), r"pairs.jsonl:3: actor 'Gandalf' is not in the registry"),
    (_set(actor="Vladimir Putin"), r"pairs.jsonl:3: mention .* is not an alias of 'Vladimir Putin'"),
    (_set(id="000-000:Russia"), r"pairs.jsonl:3: duplicate id '000-000:Russia' \(first on line 1\)"),
    (_set(sentiment="positive"), r"pairs.jsonl:3: sentiment 'positive' differs from 'neutral' on line 1 for the same sentence '000-000'"),
    (_set(sentence="Something else."), r"pairs.jsonl:3: .*sentence differs from sentences.jsonl"),
])
def test_validator_messages(data_copy, corrupt, message):
    _edit(data_copy / "pairs.jsonl", 3, corrupt)
    errors, _ = validate(data_copy, ARTICLES)
    assert any(__import__("re").search(message, e) for e in errors), errors


def test_validator_duplicate_pair(data_copy):
    path = data_copy / "pairs.jsonl"
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**first, "id": "copy"}, ensure_ascii=False) + "\n")
    errors, _ = validate(data_copy, ARTICLES)
    assert any("duplicate pair (000-000, Russia) (first on line 1)" in e for e in errors), errors


def test_validator_sentence_offsets(data_copy):
    _edit(data_copy / "sentences.jsonl", 2, lambda line: json.dumps({**json.loads(line), "start": 0}, ensure_ascii=False))
    errors, _ = validate(data_copy, ARTICLES)
    assert any(e.startswith("sentences.jsonl:2: offsets 0:") and "do not reproduce the text" in e for e in errors), errors


def test_validate_cli_exit_code(data_copy, capsys):
    from training.validate import main

    assert main(["--annotations", str(ANN)]) == 0
    _edit(data_copy / "pairs.jsonl", 1, _set(stance="pro"))
    assert main(["--annotations", str(data_copy)]) == 1
    assert "pairs.jsonl:1: stance 'pro'" in capsys.readouterr().err


def test_articles_catalogue_matches_the_files():
    import yaml

    entries = yaml.safe_load((ARTICLES / "articles.yaml").read_text(encoding="utf-8"))
    assert sorted(e["id"] for e in entries) == sorted(p.stem for p in ARTICLES.glob("*.txt"))
    assert all({"id", "title", "outlet", "url", "date"} <= set(e) for e in entries)
