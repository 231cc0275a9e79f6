"""What carried each actor's stance, for `stance report`: from the ``evidence`` column that
`stance score --explain` writes, the phrases that most often carried an actor's support and
its opposition.

    stance score articles/*.txt --out scored.jsonl --explain
    stance report scored.jsonl             # + evidence_phrases.csv and a section of summary.md

A phrase counts for a pair when it is in the pair's evidence with a positive weight (deleting
it lowers the probability of the stance the pair got, model/explain.py). Phrases are
compared in lower case.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from batch.inputs import BadInput
from batch.rows import EVIDENCE

STANCES = ("support", "oppose")  # neutral is the absence of a stance: no phrase "carries" it
TOP = 5  # phrases per actor and stance in the Markdown; the CSV has them all
COLUMNS = ["actor", "affiliation", "stance", "phrase", "pairs", "share", "mean_weight"]


def evidence_of(row: dict, line: int, path: str) -> list[dict]:
    """A row's evidence: a list in JSONL and Parquet, JSON text in CSV, None without an actor."""
    value = row.get(EVIDENCE)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise BadInput(path, f"evidence is not valid JSON ({e.msg} at column {e.colno})", line, whole_file=True) from None
    if not isinstance(value, list) or not all(isinstance(e, dict) and "text" in e and "weight" in e for e in value):
        raise BadInput(path, "evidence must be a list of {text, start, end, weight}, as `stance score --explain` "
                             "writes it", line, whole_file=True)
    return value


def carried(rows: list[dict], lines: list[int], path: str) -> list[dict]:
    """One row of COLUMNS per (actor, stance, phrase), by actor (most pairs first), stance, then
    how often the phrase carried it; ``share`` is of the actor's pairs with that stance."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    weights: dict[tuple, float] = defaultdict(float)
    pairs, affiliation = Counter(), {}
    for row, line in zip(rows, lines):
        actor, stance = row.get("actor"), row.get("stance")
        if not actor or stance not in STANCES:
            continue
        pairs[(actor, stance)] += 1
        affiliation.setdefault(actor, row.get("affiliation") or "")
        seen = set()
        for e in evidence_of(row, line, path):
            phrase = " ".join(str(e["text"]).lower().split())
            if float(e["weight"]) > 0 and phrase not in seen:
                seen.add(phrase)
                counts[(actor, stance)][phrase] += 1
                weights[(actor, stance, phrase)] += float(e["weight"])
    size = Counter()
    for (actor, _), n in pairs.items():
        size[actor] += n
    table = []
    for actor in sorted(size, key=lambda a: (-size[a], a)):
        for stance in STANCES:
            n = pairs[(actor, stance)]
            for phrase, k in sorted(counts[(actor, stance)].items(), key=lambda pk: (-pk[1], pk[0])):
                table.append({"actor": actor, "affiliation": affiliation[actor], "stance": stance, "phrase": phrase,
                              "pairs": k, "share": round(k / n, 3), "mean_weight": round(weights[(actor, stance, phrase)] / k, 3)})
    return table


def has_evidence(rows: list[dict]) -> bool:
    return any(EVIDENCE in r for r in rows[:1000])


def markdown(table: list[dict], csv_name: str) -> list[str]:
    lines = ["## What carried each actor's stance", "",
             "From the evidence of `stance score --explain`: the phrases whose deletion most lowered the probability of "
             f"the stance a pair got, counted over each actor's pairs (the {TOP} most frequent; all of them in "
             f"`{csv_name}`). A count is of pairs: \"praised (4)\" means four of its support pairs.", "",
             "| Actor | Affiliation | Support carried by | Opposition carried by |", "|---|---|---|---|"]
    by_actor: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in table:
        by_actor[r["actor"]][r["stance"]].append(r)
    for actor, stances in by_actor.items():
        cells = [", ".join(f"{r['phrase']} ({r['pairs']})" for r in stances[s][:TOP]) or "–" for s in STANCES]
        affiliation = next(r["affiliation"] for rs in stances.values() for r in rs) or "(not in registry)"
        lines.append(f"| {actor} | {affiliation} | {' | '.join(_cell(c) for c in cells)} |")
    if not by_actor:
        lines.append("| (no support or opposition with evidence) | | | |")
    return lines + [""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
