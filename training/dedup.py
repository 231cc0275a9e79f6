"""Near-duplicate sentences: character 5-gram Jaccard similarity of 0.5 or more.

    python -m training.dedup                      # report near-duplicates in data/annotations/written.jsonl
    python -m training.dedup --write              # and drop them from its files

A written sentence is dropped if it is a near-duplicate of an earlier written sentence, or of
any sentence of the five articles, the challenge set or the dev set: the written training
corpus must not hold copies of what the model is tested on, nor many copies of one sentence
(data/annotations/WRITING.md, section 5).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

THRESHOLD = 0.5
N = 5


def grams(text: str, n: int = N) -> set[str]:
    """Character n-grams of the text, lower-cased, with runs of whitespace as one space."""
    t = re.sub(r"\s+", " ", text.lower()).strip()
    return {t[i : i + n] for i in range(max(1, len(t) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(texts: list[str], reference: list[str] = (), threshold: float = THRESHOLD) -> dict[int, tuple[str, float]]:
    """{index in ``texts``: (the earlier text or reference text it repeats, similarity)}.
    Candidates come from an inverted index of the n-grams, so this is fast on thousands."""
    index: dict[str, list[int]] = defaultdict(list)
    pool: list[tuple[str, set]] = []

    def add(text: str) -> None:
        g = grams(text)
        for gram in g:
            index[gram].append(len(pool))
        pool.append((text, g))

    for text in reference:
        add(text)
    found = {}
    for i, text in enumerate(texts):
        g = grams(text)
        shared: dict[int, int] = defaultdict(int)
        for gram in g:
            for j in index.get(gram, ()):
                shared[j] += 1
        best = max(((j, c / (len(g) + len(pool[j][1]) - c)) for j, c in shared.items()), key=lambda x: x[1], default=None)
        if best and best[1] >= threshold:
            found[i] = (pool[best[0]][0], best[1])
        else:
            add(text)  # only kept sentences count as "earlier" ones
    return found


def main(argv=None) -> int:
    from training.data import ANNOTATIONS, FILES, read_jsonl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    parser.add_argument("--write", action="store_true", help="drop the near-duplicates from written.jsonl")
    args = parser.parse_args(argv)

    def rows(name):
        path = args.annotations / FILES[name]
        return read_jsonl(path) if path.exists() else []

    reference = list(dict.fromkeys(r["sentence"] for name in ("pairs", "challenge", "dev") for r in rows(name)))
    written = rows("written")
    sentences = list(dict.fromkeys(r["sentence"] for r in written))
    dups = near_duplicates(sentences, reference)
    for i, (other, score) in sorted(dups.items()):
        print(f"{score:.2f}  {sentences[i][:90]!r}\n      ~ {other[:90]!r}")
    print(f"{len(dups)} of {len(sentences)} written sentences are near-duplicates (character {N}-gram Jaccard >= {THRESHOLD})")
    if args.write and dups:
        drop = {sentences[i] for i in dups}
        kept = [r for r in written if r["sentence"] not in drop]
        (args.annotations / FILES["written"]).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        print(f"dropped the pairs of {len(drop)} sentences")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
