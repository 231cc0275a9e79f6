"""Write data/annotations/sentences.jsonl and the unlabelled (sentence, actor) candidates.

    python -m training.segment_articles            # rewrite sentences.jsonl
    python -m training.segment_articles --pairs    # also list candidate pairs to label

The candidates file is what annotators label; labels already in pairs.jsonl are kept
when the registry or segmenter changes, so re-running never loses annotation work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.actors import load_registry
from model.segment import split_sentences

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "data" / "articles"
ANNOTATIONS = ROOT / "data" / "annotations"


def article_sentences(articles_dir: Path = ARTICLES) -> list[dict]:
    rows = []
    for path in sorted(articles_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for i, span in enumerate(split_sentences(text)):
            rows.append({"sentence_id": f"{path.stem[:3]}-{i:03d}", "article": path.stem, "start": span.start, "end": span.end, "text": span.text})
    return rows


def candidate_pairs(sentences: list[dict]) -> list[dict]:
    registry = load_registry()
    pairs = []
    for s in sentences:
        for m in registry.find(s["text"]):
            pairs.append({
                "id": f"{s['sentence_id']}:{m.actor}", "sentence_id": s["sentence_id"], "article": s["article"],
                "sentence": s["text"], "actor": m.actor, "mention": m.text,
                "mention_start": m.start, "mention_end": m.end,
            })
    return pairs


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", action="store_true", help="also write candidates.jsonl (unlabelled pairs)")
    args = parser.parse_args()
    sentences = article_sentences()
    write_jsonl(ANNOTATIONS / "sentences.jsonl", sentences)
    print(f"{len(sentences)} sentences -> {ANNOTATIONS / 'sentences.jsonl'}")
    if args.pairs:
        pairs = candidate_pairs(sentences)
        write_jsonl(ANNOTATIONS / "candidates.jsonl", pairs)
        print(f"{len(pairs)} candidate pairs -> {ANNOTATIONS / 'candidates.jsonl'}")


if __name__ == "__main__":
    main()
