"""Check the annotation files against the label contract, the registry and the articles.

    make validate        # or: python -m training.validate [--annotations DIR]

Each problem is reported as FILE:LINE: message; the exit status is 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.actors import Registry, load_registry
from model.labels import SENTIMENT, STANCE
from training.data import ANNOTATIONS, ARTICLES, FILES

SENTENCE_KEYS = {"sentence_id": str, "article": str, "start": int, "end": int, "text": str}
PAIR_KEYS = {"id": str, "sentence_id": str, "article": str, "sentence": str, "actor": str, "mention": str,
             "mention_start": int, "mention_end": int, "stance": str, "sentiment": str, "ambiguous": bool, "note": str}


def _rows(path: Path, errors: list[str]):
    """Yield (line number, object), reporting lines that are not JSON objects."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{path.name}:{n}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(row, dict):
                errors.append(f"{path.name}:{n}: expected a JSON object, got {type(row).__name__}")
                continue
            yield n, row


def _schema(row: dict, keys: dict, where: str, errors: list[str]) -> bool:
    ok = True
    for key, kind in keys.items():
        if key not in row:
            errors.append(f"{where}: missing key {key!r}")
            ok = False
        elif not isinstance(row[key], kind) or (kind is int and isinstance(row[key], bool)):
            errors.append(f"{where}: {key!r} must be {kind.__name__}, got {type(row[key]).__name__}")
            ok = False
    return ok


def validate_sentences(path: Path, articles: Path, errors: list[str]) -> dict[str, str]:
    texts, seen = {}, {}
    cache: dict[str, str] = {}
    for n, row in _rows(path, errors):
        where = f"{path.name}:{n}"
        if not _schema(row, SENTENCE_KEYS, where, errors):
            continue
        art = articles / f"{row['article']}.txt"
        if row["article"] not in cache:
            cache[row["article"]] = art.read_text(encoding="utf-8") if art.exists() else None
        if cache[row["article"]] is None:
            errors.append(f"{where}: article {row['article']!r} not found in {articles.name}/")
        elif cache[row["article"]][row["start"]:row["end"]] != row["text"]:
            errors.append(f"{where}: offsets {row['start']}:{row['end']} do not reproduce the text in {art.name}")
        if row["sentence_id"] in seen:
            errors.append(f"{where}: duplicate sentence_id {row['sentence_id']!r} (first on line {seen[row['sentence_id']]})")
        seen.setdefault(row["sentence_id"], n)
        texts[row["sentence_id"]] = row["text"]
    return texts


def validate_pairs(path: Path, registry: Registry, sentences: dict[str, str] | None, errors: list[str],
                   registry_only: bool = True, written: bool = False) -> int:
    """Check one file of pair rows. ``written``: rows written for the project, which must be
    flagged ``synthetic: true``; their actors may be outside the registry."""
    ids, pairs, sentiment = {}, {}, {}
    count = 0
    for n, row in _rows(path, errors):
        where = f"{path.name}:{n}"
        count += 1
        if not _schema(row, PAIR_KEYS, where, errors):
            continue
        if row["stance"] not in STANCE:
            errors.append(f"{where}: stance {row['stance']!r} is not one of {', '.join(STANCE)}")
        if row["sentiment"] not in SENTIMENT:
            errors.append(f"{where}: sentiment {row['sentiment']!r} is not one of {', '.join(SENTIMENT)}")
        if row["sentence"][row["mention_start"]:row["mention_end"]] != row["mention"]:
            errors.append(f"{where}: mention offsets {row['mention_start']}:{row['mention_end']} give "
                          f"{row['sentence'][row['mention_start']:row['mention_end']]!r}, not {row['mention']!r}")
        if written and row.get("synthetic") is not True:
            errors.append(f"{where}: a written row must be flagged \"synthetic\": true")
        if row["actor"] in registry:
            owner = registry.owner(row["mention"])
            if owner != row["actor"]:
                errors.append(f"{where}: mention {row['mention']!r} is not an alias of {row['actor']!r} in actors.yaml"
                              + (f" (it belongs to {owner!r})" if owner else ""))
        elif registry_only:
            errors.append(f"{where}: actor {row['actor']!r} is not in the registry (model/actors.yaml)")
        if sentences is not None:
            if row["sentence_id"] not in sentences:
                errors.append(f"{where}: sentence_id {row['sentence_id']!r} is not in sentences.jsonl")
            elif sentences[row["sentence_id"]] != row["sentence"]:
                errors.append(f"{where}: sentence differs from sentences.jsonl {row['sentence_id']!r}")
        if row["id"] in ids:
            errors.append(f"{where}: duplicate id {row['id']!r} (first on line {ids[row['id']]})")
        ids.setdefault(row["id"], n)
        key = (row["sentence_id"], row["actor"])
        if key in pairs:
            errors.append(f"{where}: duplicate pair ({row['sentence_id']}, {row['actor']}) (first on line {pairs[key]})")
        pairs.setdefault(key, n)
        first = sentiment.setdefault(row["sentence_id"], (row["sentiment"], n))
        if first[0] != row["sentiment"]:
            errors.append(f"{where}: sentiment {row['sentiment']!r} differs from {first[0]!r} on line {first[1]} "
                          f"for the same sentence {row['sentence_id']!r}; sentiment is per sentence")
    return count


def validate(annotations: Path, articles: Path, registry: Registry | None = None) -> tuple[list[str], dict]:
    registry = registry or load_registry()
    errors: list[str] = []
    counts = {}
    sentences = None
    for name in ("sentences.jsonl", "pairs.jsonl"):
        if not (annotations / name).exists():
            errors.append(f"{name}: missing from {annotations}")
    if (annotations / "sentences.jsonl").exists():
        sentences = validate_sentences(annotations / "sentences.jsonl", articles, errors)
        counts["sentences"] = len(sentences)
    if (annotations / "pairs.jsonl").exists():
        counts["pairs"] = validate_pairs(annotations / "pairs.jsonl", registry, sentences, errors)
    for name in ("synthetic", "written", "dev", "challenge"):
        path = annotations / FILES[name]
        # Written sentences, not article text: actors outside the registry are allowed
        # (that is their point), but labels, offsets and ids are held to the same rules.
        counts[name] = validate_pairs(path, registry, None, errors, registry_only=False, written=True) if path.exists() else 0
    return errors, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Validate the annotation files.")
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS, help="folder of the annotation files")
    parser.add_argument("--articles", type=Path, default=ARTICLES, help="folder of the article .txt files")
    args = parser.parse_args(argv)
    errors, counts = validate(args.annotations, args.articles)
    for e in errors:
        print(e, file=sys.stderr)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"{'FAILED' if errors else 'OK'}: {summary}; {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
