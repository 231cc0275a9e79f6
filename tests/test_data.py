"""The annotation sets, the label contract, the registry and matcher, the segmenter and
the validator."""

import json
import shutil

import pytest

from model.actors import load_registry, parse_registry
from model.labels import SENTIMENT, STANCE
from model.segment import split_sentences
from training.data import ANNOTATIONS as ANN
from training.data import ARTICLES, load_sets, read_jsonl
from training.segment_articles import DEV_STORIES, article_sentences, candidate_pairs, dev_extra_actors
from training.validate import validate


def test_the_guidelines_list_the_labels_in_the_codes_order():
    """GUIDELINES.md states the label order the model's heads use; they must not drift apart."""
    text = (ANN / "GUIDELINES.md").read_text(encoding="utf-8")
    assert f"- stance: {', '.join(f'`{x}`' for x in STANCE)}" in text
    assert f"- sentiment: {', '.join(f'`{x}`' for x in SENTIMENT)}" in text


def test_real_annotations_validate():
    errors, counts = validate(ANN, ARTICLES)
    assert errors == []
    assert counts["pairs"] >= 300 and counts["dev"] >= 400


def test_the_dev_set_is_the_matchers_pairs_in_the_segmented_stories():
    """The dev set is wire stories segmented by the project's own segmenter: its pairs are
    the registry's mentions plus the actors outside it that the writers listed."""
    dev = read_jsonl(ANN / "dev.jsonl")
    expected = candidate_pairs(article_sentences(DEV_STORIES, short_ids=False), dev_extra_actors())
    key = ("id", "sentence", "mention", "mention_start", "mention_end")
    assert [tuple(r[k] for k in key) for r in dev] == [tuple(p[k] for k in key) for p in expected]


def test_written_sets_are_flagged_and_never_on_a_test_side():
    sets = load_sets()
    for name in ("synthetic", "written", "dev", "challenge"):
        ds = getattr(sets, name)
        assert ds is not None and all(ds["synthetic"]), name
    # Nothing written for training is also in a set that tests or chooses models.
    train = set(sets.synthetic["sentence"]) | set(sets.written["sentence"])
    assert not train & (set(sets.dev["sentence"]) | set(sets.challenge["sentence"]) | set(sets.pairs["sentence"]))


def test_every_registry_mention_of_the_written_corpus_has_a_pair():
    """Training sees the pairs that batch scoring will score: for each written sentence, every
    actor the matcher finds is labelled, on the matcher's mention."""
    registry = load_registry()
    by_sentence: dict[str, dict] = {}
    for r in read_jsonl(ANN / "written.jsonl"):
        by_sentence.setdefault(r["sentence"], {})[r["actor"]] = r["mention_start"]
    missing = [(s[:60], m.actor) for s, pairs in by_sentence.items() for m in registry.find(s) if pairs.get(m.actor) != m.start]
    assert missing == []


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
    ("The talks were held in Riyadh, and Ukraine rejected them.", [("Ukraine", "Ukraine")]),  # a new clause's subject
    ("Delegations met in Riyadh, and Europe was furious.", [("European Union", "Europe")]),
    ("They met for talks in Riyadh, and Saudi Arabia praised both sides.", [("Saudi Arabia", "Saudi Arabia")]),
    ("They met in Riyadh; and Ukraine rejected them.", [("Ukraine", "Ukraine")]),
    ("Concern spread across Europe and Ukraine.", []),                                    # a list of places
    ("Leaders met in France, Germany, and Poland, then left.", []),
    ("Talks in Riyadh as well as Moscow.", []),
    ("KYIV/MOSCOW, March 19 (Reuters) - Russia accused Kyiv.", [("Russia", "Russia"), ("Ukraine", "Kyiv")]),  # dateline
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


def test_segmenter_skips_boilerplate_lines_and_keeps_offsets():
    text = "Leaders met.\n\nOriginal url:\n<https://x.org/a>\nMr. Rubio said the U.S. side agreed. Lavrov agreed.\nAbout WN\nMore news.\n"
    skipped = []
    spans = split_sentences(text, on_skip=lambda line, what: skipped.append((line, what)))
    assert [s.text for s in spans] == ["Leaders met.", "Mr. Rubio said the U.S. side agreed.", "Lavrov agreed.", "More news."]
    assert all(text[s.start:s.end] == s.text for s in spans)
    assert skipped == [(3, "Original url:"), (4, "<https://x.org/a>"), (6, "About WN")]


def test_a_check_also_marker_skips_the_teaser_not_the_article():
    text = ("First paragraph about the talks.\n\nCheck also\n\nMitch McConnell announes he will not run\n\n"
            "US Senator Mitch McConnell has announced that he will not seek re-election …\n\n"
            "Second paragraph: Lavrov spoke.\n\nCheck Also\n\nA third paragraph, which is the article's own.\n")
    skipped = []
    spans = split_sentences(text, on_skip=lambda line, what: skipped.append(line))
    assert [s.text for s in spans] == ["First paragraph about the talks.", "Second paragraph: Lavrov spoke.",
                                       "A third paragraph, which is the article's own."]
    assert skipped == [3, 5, 7, 11]


def test_concatenated_articles_are_all_read():
    one = (ARTICLES / "004_5aef1d1f9a5dcf49.txt").read_text(encoding="utf-8")
    assert len(split_sentences("\n".join([one] * 8))) == 8 * len(split_sentences(one))


@pytest.mark.parametrize("text, expected", [
    ("It was report number 5. On day 6, Lavrov spoke.", ["It was report number 5.", "On day 6, Lavrov spoke."]),
    ("The plan came in phase b. Then Rubio spoke.", ["The plan came in phase b.", "Then Rubio spoke."]),
    ("Sergey V. Lavrov spoke.", ["Sergey V. Lavrov spoke."]),      # an initial
    ("Mr. Trump met U.S. officials. They left.", ["Mr. Trump met U.S. officials.", "They left."]),
])
def test_a_one_character_token_ends_a_sentence_unless_it_is_an_initial(text, expected):
    assert [s.text for s in split_sentences(text)] == expected


# -- the validator: corrupt a copy of the data in each way and assert the message -------

@pytest.fixture
def data_copy(tmp_path):
    shutil.copytree(ANN, tmp_path / "ann", ignore=shutil.ignore_patterns("passes", "synthetic.jsonl", "challenge.jsonl",
                                                                         "written.jsonl", "dev.jsonl"))
    return tmp_path / "ann"


def _edit(path, line_no, fn):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = fn(lines[line_no - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set(**kv):
    return lambda line: json.dumps({**json.loads(line), **kv}, ensure_ascii=False)


@pytest.mark.parametrize("corrupt, message", [
    (lambda line: line[:-5], "pairs.jsonl:3: not valid JSON (Expecting ':' delimiter at column 1)"),
    (lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != "stance"}), "pairs.jsonl:3: missing key 'stance'"),
    (_set(mention_start="4"), "pairs.jsonl:3: 'mention_start' must be int, got str"),
    (_set(ambiguous="no"), "pairs.jsonl:3: 'ambiguous' must be bool, got str"),
    (_set(stance="pro"), "pairs.jsonl:3: stance 'pro' is not one of support, oppose, neutral"),
    (_set(sentiment="happy"), "pairs.jsonl:3: sentiment 'happy' is not one of positive, negative, neutral"),
    (_set(mention_start=1, mention_end=10), "pairs.jsonl:3: mention offsets 1:10 give 'igh-level', not 'Donald Trump'"),
    (_set(actor="Gandalf"), "pairs.jsonl:3: actor 'Gandalf' is not in the registry (model/actors.yaml)"),
    (_set(actor="Vladimir Putin"), "pairs.jsonl:3: mention 'Donald Trump' is not an alias of 'Vladimir Putin' in actors.yaml (it belongs to 'Donald Trump')"),
    (_set(id="000-000:Russia"), "pairs.jsonl:3: duplicate id '000-000:Russia' (first on line 1)"),
    (_set(sentiment="positive"), "pairs.jsonl:3: sentiment 'positive' differs from 'neutral' on line 1 for the same sentence '000-000'; sentiment is per sentence"),
    (_set(sentence="Something else."), "pairs.jsonl:3: sentence differs from sentences.jsonl '000-000'"),
])
def test_validator_messages(data_copy, corrupt, message):
    _edit(data_copy / "pairs.jsonl", 3, corrupt)
    errors, _ = validate(data_copy, ARTICLES)
    assert message in errors, errors


def test_validator_duplicate_pair(data_copy):
    path = data_copy / "pairs.jsonl"
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**first, "id": "copy"}, ensure_ascii=False) + "\n")
    errors, _ = validate(data_copy, ARTICLES)
    assert "pairs.jsonl:351: duplicate pair (000-000, Russia) (first on line 1)" in errors, errors


def test_validator_sentence_offsets(data_copy):
    _edit(data_copy / "sentences.jsonl", 2, lambda line: json.dumps({**json.loads(line), "start": 0}, ensure_ascii=False))
    errors, _ = validate(data_copy, ARTICLES)
    row = json.loads((ANN / "sentences.jsonl").read_text(encoding="utf-8").splitlines()[1])
    assert f"sentences.jsonl:2: offsets 0:{row['end']} do not reproduce the text in {row['article']}.txt" in errors, errors


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
