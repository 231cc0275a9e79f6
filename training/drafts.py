"""Written sentences: check a writer's draft, build annotation rows from drafts, and
measure the register of any annotation file against real coverage.

    python -m training.drafts check draft.jsonl            # FILE:LINE problems, then the register
    python -m training.drafts build drafts/w01/*.jsonl --prefix wr --out drafts/w01.jsonl   # then appended to data/annotations/written.jsonl
    python -m training.drafts stats data/annotations/written.jsonl

A draft has one sentence per line, with its pairs nested:

    {"sentence": "...", "sentiment": "negative", "voice": "wire", "stage": "riyadh",
     "pairs": [{"actor": "Volodymyr Zelensky", "mention": "Zelensky", "stance": "oppose",
                "ambiguous": false, "note": "..."}]}

Every actor the registry matcher finds must be a pair, on the matcher's mention (so that
training sees the pairs that batch scoring will score); anyone else may be added by name.
See data/annotations/WRITING.md for the targets the register figures are checked against.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

from model.actors import Registry, load_registry
from model.labels import SENTIMENT, STANCE

# The words that state a position outright; an implicit position uses none of them (WRITING.md).
EXPLICIT = re.compile(r"\b(support|oppos|welcom|reject|prais|condemn)\w*", re.IGNORECASE)
QUOTES = '"\u201c\u201d'


def _find(sentence: str, mention: str) -> tuple[int, int] | None:
    m = re.search(r"(?<!\w)" + re.escape(mention) + r"(?!\w)", sentence)
    return (m.start(), m.end()) if m else None


def check_draft(row: dict, registry: Registry) -> list[str]:
    """Problems with one draft line; an empty list if it is fine."""
    problems = []
    sentence = row.get("sentence")
    if not isinstance(sentence, str) or not sentence.strip() or "\n" in sentence:
        return ["'sentence' must be a non-empty one-line string"]
    if row.get("sentiment") not in SENTIMENT:
        problems.append(f"sentiment {row.get('sentiment')!r} is not one of {', '.join(SENTIMENT)}")
    pairs = row.get("pairs")
    if not isinstance(pairs, list):
        return problems + ["'pairs' must be a list"]
    found = {m.actor: m for m in registry.find(sentence)}
    named = set()
    for k, p in enumerate(pairs, 1):
        where = f"pair {k}"
        if not isinstance(p, dict) or not isinstance(p.get("actor"), str) or not isinstance(p.get("mention"), str):
            problems.append(f"{where}: needs 'actor' and 'mention' strings")
            continue
        actor, mention = p["actor"], p["mention"]
        if actor in named:
            problems.append(f"{where}: actor {actor!r} is listed twice (one pair per actor per sentence)")
        named.add(actor)
        if p.get("stance") not in STANCE:
            problems.append(f"{where}: stance {p.get('stance')!r} is not one of {', '.join(STANCE)}")
        if not isinstance(p.get("ambiguous"), bool):
            problems.append(f"{where}: 'ambiguous' must be true or false")
        if (p.get("stance") != "neutral" or p.get("ambiguous")) and not str(p.get("note") or "").strip():
            problems.append(f"{where}: a non-neutral or ambiguous label needs a 'note' saying why")
        owner = registry.owner(actor)
        if actor not in registry and owner:
            problems.append(f"{where}: {actor!r} is an alias of the registry actor {owner!r}; use that name")
        elif actor in registry:
            if actor not in found:
                problems.append(f"{where}: the matcher does not find {actor!r} in this sentence "
                                "(a place used as a place, a modifier, or not an alias); drop the pair")
            elif found[actor].text != mention:
                problems.append(f"{where}: the mention of {actor!r} is {found[actor].text!r} (the matcher's first mention), "
                                f"not {mention!r}")
        else:
            if _find(sentence, mention) is None:
                problems.append(f"{where}: mention {mention!r} is not in the sentence (exact text, whole words)")
            elif registry.owner(mention):
                problems.append(f"{where}: mention {mention!r} belongs to the registry actor {registry.owner(mention)!r}")
    for actor, m in found.items():
        if actor not in named:
            problems.append(f"missing pair: the matcher finds {actor!r} as {m.text!r}; label it (neutral if only named in passing)")
    return problems


def to_rows(row: dict, sentence_id: str, registry: Registry) -> list[dict]:
    """The annotation rows (data/annotations/README.md) of one checked draft line."""
    sentence = row["sentence"]
    found = {m.actor: m for m in registry.find(sentence)}
    rows = []
    for p in row["pairs"]:
        span = (found[p["actor"]].start, found[p["actor"]].end) if p["actor"] in found else _find(sentence, p["mention"])
        rows.append({
            "id": f"{sentence_id}:{p['actor']}", "sentence_id": sentence_id, "article": "written", "sentence": sentence,
            "actor": p["actor"], "mention": sentence[span[0]:span[1]], "mention_start": span[0], "mention_end": span[1],
            "stance": p["stance"], "sentiment": row["sentiment"], "ambiguous": p["ambiguous"], "note": p.get("note", ""),
            "synthetic": True, "voice": row.get("voice", ""), "stage": row.get("stage", ""),
        })
    return sorted(rows, key=lambda r: r["mention_start"])


def register(rows: list[dict]) -> dict:
    """Register and label mix of annotation rows (one row per pair), as WRITING.md measures it."""
    by_sentence: dict[str, list[dict]] = {}
    for r in rows:
        by_sentence.setdefault(r["sentence_id"], []).append(r)
    sentences = [group[0]["sentence"] for group in by_sentence.values()]
    words = [len(s.split()) for s in sentences]
    stances = Counter(r["stance"] for r in rows)
    positioned = [r for r in rows if r["stance"] != "neutral"]
    registry = load_registry()
    n = max(len(sentences), 1)
    return {
        "sentences": len(sentences),
        "pairs": len(rows),
        "median_words": statistics.median(words) if words else 0,
        "share_35_words": sum(w >= 35 for w in words) / n,
        "share_quote": sum(any(c in s for c in QUOTES) for s in sentences) / n,
        "stance_mix": {k: stances[k] / max(len(rows), 1) for k in STANCE},
        "sentiment_mix": dict(Counter(g[0]["sentiment"] for g in by_sentence.values())),
        "share_implicit": sum(not EXPLICIT.search(r["sentence"]) for r in positioned) / max(len(positioned), 1),
        "share_disagreeing": sum(len({r["stance"] for r in g}) > 1 for g in by_sentence.values()) / n,
        "share_outside_registry": sum(r["actor"] not in registry for r in rows) / max(len(rows), 1),
    }


def print_register(stats: dict) -> None:
    mix = " / ".join(f"{k} {v:.0%}" for k, v in stats["stance_mix"].items())
    print(f"{stats['sentences']} sentences, {stats['pairs']} pairs")
    print(f"  median words {stats['median_words']:.0f} (target ~25); 35+ words {stats['share_35_words']:.0%} (target 20-25%); "
          f"with a direct quote {stats['share_quote']:.0%} (target ~40%)")
    print(f"  stance {mix} (target 40 / 20 / 40); sentiment {stats['sentiment_mix']}")
    print(f"  support/oppose stated implicitly {stats['share_implicit']:.0%} (target >= 50%); "
          f"sentences whose actors disagree {stats['share_disagreeing']:.0%} (target ~33%); "
          f"pairs outside the registry {stats['share_outside_registry']:.0%}")


def _read(path: Path) -> list[tuple[int, dict | None, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append((n, row, "" if isinstance(row, dict) else "expected a JSON object"))
        except json.JSONDecodeError as e:
            out.append((n, None, f"not valid JSON ({e.msg} at column {e.colno})"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check draft files and print their register")
    check.add_argument("files", nargs="+", type=Path)
    build = sub.add_parser("build", help="turn checked drafts into annotation rows")
    build.add_argument("files", nargs="+", type=Path)
    build.add_argument("--prefix", default="wr", help="sentence ids are PREFIX-<file stem>-<line>")
    build.add_argument("--out", type=Path, required=True)
    stats = sub.add_parser("stats", help="register of annotation files (one row per pair)")
    stats.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    registry = load_registry()

    if args.command == "stats":
        rows = [r for f in args.files for _, r, _ in _read(f) if r]
        print_register(register(rows))
        return 0
    problems, rows = 0, []
    for path in args.files:
        for n, row, error in _read(path):
            errs = [error] if error else check_draft(row, registry)
            for e in errs:
                print(f"{path}:{n}: {e}", file=sys.stderr)
            problems += len(errs)
            if not errs:
                rows += to_rows(row, f"{getattr(args, 'prefix', 'draft')}-{path.stem}-{n:04d}", registry)
    if args.command == "build":
        if problems:
            print(f"not written: {problems} problem(s)", file=sys.stderr)
            return 1
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} pairs to {args.out}")
    print_register(register(rows))
    if problems:
        print(f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
