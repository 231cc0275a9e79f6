"""Write data/annotations/sentences.jsonl and the unlabelled (sentence, actor) candidates.

    python -m training.segment_articles            # rewrite sentences.jsonl
    python -m training.segment_articles --pairs    # also list candidate pairs to label
    python -m training.segment_articles --dev      # the dev stories' candidate pairs (dev_candidates.jsonl)

The candidates file is what annotators label; labels already in pairs.jsonl are kept
when the registry or segmenter changes, so re-running never loses annotation work.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from model.actors import load_registry
from model.segment import split_sentences

from training.data import ANNOTATIONS, ARTICLES, DATA

DEV_STORIES = DATA / "dev"


def article_sentences(articles_dir: Path = ARTICLES, short_ids: bool = True) -> list[dict]:
    """Every sentence of every .txt file, with offsets. Sentence ids are
    ``<first three characters of the file name>-<index>`` (``<file name>-<index>`` without short_ids)."""
    rows = []
    for path in sorted(articles_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        stem = path.stem[:3] if short_ids else path.stem
        for i, span in enumerate(split_sentences(text)):
            rows.append({"sentence_id": f"{stem}-{i:03d}", "article": path.stem, "start": span.start, "end": span.end, "text": span.text})
    return rows


def candidate_pairs(sentences: list[dict], extra: dict[str, list[tuple[str, list[str]]]] | None = None) -> list[dict]:
    """The registry matcher's mentions, plus the first mention of each actor in ``extra``
    (article -> [(actor, [the forms that name it])]) that no registry mention overlaps."""
    registry = load_registry()
    pairs = []
    for s in sentences:
        found = [(m.actor, m.text, m.start, m.end) for m in registry.find(s["text"])]
        for actor, forms in (extra or {}).get(s["article"], []):
            hits = [m for f in forms for m in re.finditer(r"(?<!\w)" + re.escape(f) + r"(?!\w)", s["text"])]
            hits = [h for h in hits if all(h.end() <= a or h.start() >= b for _, _, a, b in found)]
            if hits and actor not in {f[0] for f in found}:
                h = min(hits, key=lambda h: (h.start(), -h.end()))
                found.append((actor, h.group(), h.start(), h.end()))
        for actor, text, start, end in sorted(found, key=lambda f: f[2]):
            pairs.append({
                "id": f"{s['sentence_id']}:{actor}", "sentence_id": s["sentence_id"], "article": s["article"],
                "sentence": s["text"], "actor": actor, "mention": text, "mention_start": start, "mention_end": end,
            })
    return pairs


def dev_extra_actors(path: Path = DEV_STORIES / "actors.jsonl") -> dict[str, list[tuple[str, list[str]]]]:
    """The actors outside the registry that the dev stories' writers listed, per story."""
    extra: dict[str, list] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        extra.setdefault(row["article"], []).append((row["actor"], row["mentions"]))
    return extra


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", action="store_true", help="also write candidates.jsonl (unlabelled pairs)")
    parser.add_argument("--dev", action="store_true", help="write dev_candidates.jsonl from the stories in data/dev/")
    args = parser.parse_args()
    if args.dev:
        pairs = candidate_pairs(article_sentences(DEV_STORIES, short_ids=False), dev_extra_actors())
        write_jsonl(ANNOTATIONS / "dev_candidates.jsonl", pairs)
        print(f"{len(pairs)} candidate pairs -> {ANNOTATIONS / 'dev_candidates.jsonl'}")
        return
    sentences = article_sentences()
    write_jsonl(ANNOTATIONS / "sentences.jsonl", sentences)
    print(f"{len(sentences)} sentences -> {ANNOTATIONS / 'sentences.jsonl'}")
    if args.pairs:
        pairs = candidate_pairs(sentences)
        write_jsonl(ANNOTATIONS / "candidates.jsonl", pairs)
        print(f"{len(pairs)} candidate pairs -> {ANNOTATIONS / 'candidates.jsonl'}")


if __name__ == "__main__":
    main()
