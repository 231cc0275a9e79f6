"""What the predictor is asked: an ``Item`` (a sentence, optionally an actor), and the one
rule for what text it accepts. The HTTP service and the batch CLI both apply ``check_text``,
so a value refused by one is refused by the other with the same words."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_ACTOR_CHARS = 200


@dataclass(frozen=True)
class Item:
    sentence: str
    actor: str | None = None
    mention: str | None = None


class BadText(ValueError):
    """A value the model cannot read; ``str()`` says what is wrong, without naming the field."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def is_blank(text: str) -> bool:
    """Only whitespace, control or format characters: nothing a model could read."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def is_name_char(ch: str) -> bool:
    """A letter or a digit of the Basic Multilingual Plane: what an actor's name must contain.
    Only the BMP, so that the API's OpenAPI document can state the rule exactly: JSON Schema
    patterns are ECMA-262 regular expressions, which read \\w as ASCII and cannot name a
    character above U+FFFF in a class. Every script news names people in lies in the BMP."""
    return ch <= "\uffff" and ch.isalnum()


@functools.cache
def _bmp_class(chars, negate: bool = False) -> str:
    """A regular-expression class of the BMP characters for which ``chars`` is true, written
    with \\u escapes only, so that Python and every ECMA-262 reading agree on it. Cached: the
    OpenAPI document is completed on every /docs.json request, and a scan of the BMP costs
    60 ms of the event loop (AMD EPYC without AVX-512)."""
    members = [c for c in range(0x10000) if not 0xD800 <= c < 0xE000 and chars(chr(c))]
    ranges, start = [], members[0]
    for prev, cur in zip(members, members[1:] + [None]):
        if cur != prev + 1:
            ranges.append((start, prev))
            start = cur
    return ("[^" if negate else "[") + "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]"


def not_blank_pattern() -> str:
    """A regular expression that finds a character ``is_blank`` does not count as blank (not
    whitespace, control or format), for documents that state the rule, such as the API's
    OpenAPI schema. It lists the blank BMP characters and negates them: a character above
    U+FFFF matches, and the few blank ones there (format characters) are still refused by the check."""
    return _bmp_class(is_blank, negate=True)


def name_pattern() -> str:
    """A regular expression that finds a character ``is_name_char`` accepts: the actor rule,
    for the API's OpenAPI schema."""
    return _bmp_class(is_name_char)


def check_text(value: Any, limit: int | None, nullable: bool) -> None:
    """Raise BadText unless ``value`` is text the model can read (or None, if nullable)."""
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise BadText(f"must be {'a string or null' if nullable else 'a string'}, got {json_type(value)}")
    if limit is not None and len(value) > limit:
        raise BadText(f"must be at most {limit} characters, got {len(value)}")
    if is_blank(value):
        hint = "; use null to get every registry actor found in the sentence" if nullable else ""
        raise BadText(f"must not be empty or whitespace only{hint}")
    # A lone surrogate (JSON "\ud800") cannot be encoded as UTF-8, so neither the tokenizer
    # nor the response could carry it: refuse it rather than score a mangled sentence.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadText(f"contains a lone surrogate (U+{ord(value[e.start]):04X}) at index {e.start}, "
                      "which is not valid Unicode") from None


def check_actor(value: Any) -> None:
    """The rule for an actor: null (every registry actor of the sentence), or text of at most
    MAX_ACTOR_CHARS with a letter or a digit in it (a name; 200 "!" name no one)."""
    check_text(value, MAX_ACTOR_CHARS, nullable=True)
    if value is not None and not any(is_name_char(ch) for ch in value):
        raise BadText("must contain a letter or a digit: it is the name of an actor")


def as_item(value: Any) -> Item:
    """An Item from an Item, a sentence, or a (sentence, actor) tuple."""
    if isinstance(value, Item):
        return value
    if isinstance(value, str):
        return Item(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Item(*value)
    raise TypeError(f"expected an Item, a sentence or a (sentence, actor) tuple, got {json_type(value)}")
