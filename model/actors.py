"""The actor registry (model/actors.yaml) and the matcher that finds actors in a sentence.

    >>> reg = load_registry()
    >>> [(m.actor, m.text) for m in reg.find("Zelenskyy's office met Erdoğan in Ankara.")]
    [('Volodymyr Zelensky', 'Zelenskyy'), ('Recep Tayyip Erdogan', 'Erdoğan')]
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

REGISTRY_PATH = Path(__file__).with_name("actors.yaml")
KINDS = ("person", "state", "organisation", "group")

# A place name right after one of these is a location ("talks in Riyadh"), not an actor.
_LOCATIVE = {"in", "at", "from", "into", "across", "near", "inside", "outside", "throughout", "within"}
# A place name used as a modifier of one of these ("the Ukraine war", "US-Russia ties")
# names the topic, not the actor.
_MODIFIED = {
    "war", "wars", "conflict", "crisis", "talks", "meeting", "meetings", "summit", "invasion",
    "peace", "settlement", "relations", "ties", "projects", "cooperation", "policy", "negotiations",
    "agreement", "agreements", "accords", "format", "process", "track", "round",
}
# What may follow the last place of a list of places ("in Europe and Ukraine, ..."); a
# verb instead ("in Riyadh, and Ukraine rejected ...") makes the conjunct a clause's subject.
_LIST_END = re.compile(r"\s*([,.;:)]|$|(and|or|on|to|for|about|with|as|after|before|last|this|next|since|amid|over|that|which|where|while|when|but|\w+ing)\b)")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'"})


@dataclass(frozen=True)
class Actor:
    name: str
    kind: str
    affiliation: str
    aliases: tuple[str, ...]
    place: bool = False


@dataclass(frozen=True)
class Mention:
    actor: str
    text: str
    start: int
    end: int


def _fold(text: str) -> tuple[str, list[int]]:
    """Strip diacritics and unify apostrophes, keeping a map back to original offsets."""
    out, index = [], []
    for i, ch in enumerate(text.translate(_APOSTROPHES)):
        for c in unicodedata.normalize("NFKD", ch):
            if not unicodedata.combining(c):
                out.append(c)
                index.append(i)
    index.append(len(text))
    return "".join(out), index


def _is_acronym(alias: str) -> bool:
    letters = [c for c in alias if c.isalpha()]
    return len(letters) <= 5 and all(c.isupper() for c in letters)


class Registry:
    def __init__(self, actors: list[Actor], digest: str):
        self.actors = {a.name: a for a in actors}
        self.digest = digest
        self._alias_owner: dict[str, str] = {}
        patterns = []
        for a in actors:
            for alias in sorted(set(a.aliases) | {a.name}, key=len, reverse=True):
                folded = _fold(alias)[0]
                key = folded if _is_acronym(alias) else folded.casefold()
                if self._alias_owner.setdefault(key, a.name) != a.name:
                    raise ValueError(f"{REGISTRY_PATH.name}: alias {alias!r} belongs to both {self._alias_owner[key]} and {a.name}")
                # Acronyms match case-sensitively: "US" is the state, "us" is a pronoun.
                flags = "" if _is_acronym(alias) else "(?i:"
                body = re.escape(folded)
                patterns.append(f"{flags}{body})" if flags else body)
        # Longest alternatives first; boundaries stop "US" matching inside "USA" or "Bruce" in "Bruces".
        patterns.sort(key=len, reverse=True)
        # The match sits in a lookahead, so finditer reports one at every start position,
        # overlapping ones included (at each position the longest alias is tried first).
        self._pattern = re.compile(r"(?<![\w])(?=((?:%s)(?![\w])))" % "|".join(patterns))

    def __contains__(self, name: str) -> bool:
        return name in self.actors

    def owner(self, alias: str) -> str | None:
        folded = _fold(alias)[0]
        return self._alias_owner.get(folded) or self._alias_owner.get(folded.casefold())

    def find_all(self, sentence: str) -> list[Mention]:
        """Every actor mention, left to right; where candidates overlap the longest wins."""
        folded, index = _fold(sentence)
        candidates = [m.span(1) for m in self._pattern.finditer(folded)]
        chosen: list[tuple[int, int]] = []
        for s, e in sorted(candidates, key=lambda se: (se[0] - se[1], se[0])):
            if all(e <= cs or s >= ce for cs, ce in chosen):
                chosen.append((s, e))
        mentions, skipped_place_end = [], None
        for s, e in sorted(chosen):
            name = self.owner(folded[s:e])
            if name is None:
                continue
            actor = self.actors[name]
            if actor.place and self._is_place_use(folded, s, e, skipped_place_end):
                skipped_place_end = e
                continue
            mentions.append(Mention(name, sentence[index[s] : index[e]], index[s], index[e]))
        return mentions

    def find(self, sentence: str) -> list[Mention]:
        """One mention per actor (its first), in order of appearance."""
        seen, out = set(), []
        for m in self.find_all(sentence):
            if m.actor not in seen:
                seen.add(m.actor)
                out.append(m)
        return out

    @staticmethod
    def _is_place_use(folded: str, s: int, e: int, skipped_place_end: int | None) -> bool:
        if re.match(r"'s\b", folded[e:]):
            return False  # "in Moscow's promises": the possessor is an actor, not a place
        if folded[s:e].isupper() and re.fullmatch(r"[A-Z/ ]*", folded[:s]) and re.match(r"(/[A-Z][A-Z ]*)*,", folded[e:]):
            return True  # a dateline: "KYIV/MOSCOW, March 19 (Reuters) - ..." 
        before = folded[:s].rstrip()
        prev = re.search(r"(\w+)$", before)
        if prev and prev.group(1).lower() == "the":
            prev = re.search(r"(\w+)\s+the$", before)
        if prev and prev.group(1).lower() in _LOCATIVE:
            return True
        # "in Europe and Ukraine", "across France, Germany, and Poland": a conjunct shares the
        # preposition of the place before it, but only when the list ends there. "held in
        # Riyadh, and Ukraine rejected them" starts a new clause whose subject is an actor.
        if skipped_place_end is not None:
            between = folded[skipped_place_end:s]
            if re.fullmatch(r"\s*(,?\s*(and|or|as well as)|,)\s*", between) and _LIST_END.match(folded[e:]):
                return True
        after = re.match(r"(?:-[\w.]+)*\s*([A-Za-z]+)", folded[e:])
        return bool(after and after.group(1).lower() in _MODIFIED)


def parse_registry(text: str, source: str = "actors.yaml") -> Registry:
    rows = yaml.safe_load(text)
    if not isinstance(rows, list):
        raise ValueError(f"{source}: expected a list of actors")
    actors, names = [], set()
    for i, row in enumerate(rows, 1):
        missing = {"name", "kind", "affiliation", "aliases"} - set(row or {})
        if missing:
            raise ValueError(f"{source}: actor #{i} lacks {', '.join(sorted(missing))}")
        if row["kind"] not in KINDS:
            raise ValueError(f"{source}: actor {row['name']!r} has kind {row['kind']!r}; expected one of {', '.join(KINDS)}")
        if row["name"] in names:
            raise ValueError(f"{source}: actor {row['name']!r} is listed twice")
        names.add(row["name"])
        actors.append(Actor(row["name"], row["kind"], row["affiliation"], tuple(row["aliases"]), bool(row.get("place"))))
    return Registry(actors, hashlib.sha256(text.encode()).hexdigest()[:16])


@lru_cache(maxsize=None)
def load_registry(path: str | Path = REGISTRY_PATH) -> Registry:
    return parse_registry(Path(path).read_text(encoding="utf-8"), Path(path).name)
