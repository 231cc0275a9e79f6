"""Split an article into sentences with character offsets, dropping page boilerplate.

The annotation set (data/annotations/sentences.jsonl) and batch scoring use this one
segmenter, so a sentence scored later has the same boundaries as the one labelled.
Every returned span satisfies ``text == article[start:end]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lines that are page furniture, not reporting. Each pattern is matched against the
# whole stripped line; see GUIDELINES.md ("Excluded lines") for why each is here.
_BOILERPLATE = [
    r"leave a comment",
    r"about wn",
    r"check also",
    r"advertis(e)?ment\b.*",
    r"original url:?",
    r"<?https?://\S+>?",
    r"#*\s*\**embed:?\**",
    r"\**related( article)?:?\**.*",
    r"[*_]*.*contributed reporting.*[*_]*",
    r"(\d{1,2}\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(,\s*\d{4})?",
    r".*\*\*[^*]+\*\*",  # photo caption ending in a bold credit
]
_BOILERPLATE_RE = re.compile(r"(?:%s)" % "|".join(_BOILERPLATE), re.IGNORECASE)
# A "Check also" / "Read more" marker is followed by another story's teaser: its headline (a
# line with no full stop at its end) and a truncated summary (a line ending in an ellipsis),
# skipped with the marker. A paragraph of the article after the marker is kept.
_TEASER_RE = re.compile(r"(check also|read more|see also|related|more on this)", re.IGNORECASE)

# Abbreviations whose full stop does not end a sentence.
_ABBREV = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "gen", "col", "lt", "sen", "rep", "gov",
    "pres", "prof", "u.s", "u.k", "u.n", "e.u", "no", "vs", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "inc", "corp", "co", "ltd",
}
_CLOSERS = "\"'”’)]*"
_END_RE = re.compile(r"[.!?…]+[%s]*" % re.escape(_CLOSERS))
_MARKDOWN_PREFIX = re.compile(r"^(#+\s*|[-*]\s+|>\s*)")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


def is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE_RE.fullmatch(line.strip()))


def _blocks(text: str, on_skip=None):
    """Yield (start, end) of content lines, joining a sentence broken across lines. Page
    furniture is skipped line by line (never the rest of the file); ``on_skip(line, text)``
    hears of each skipped line, numbered from 1."""
    pos, blocks, teaser_lines = 0, [], 0
    # Lines end at "\n" only, as an editor numbers them (str.splitlines would also end one
    # at a form feed or U+2028), so a skipped line's number is the one the user sees.
    for line_no, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if stripped:
            lead = len(line) - len(line.lstrip())
            prefix = _MARKDOWN_PREFIX.match(stripped)
            lead += prefix.end() if prefix else 0
            start, end = pos + lead, pos + len(line.rstrip())
            teaser = teaser_lines > 0 and (stripped.endswith(("…", "...")) or not _END_RE.search(stripped[-3:]))
            teaser_lines = 2 if _TEASER_RE.fullmatch(stripped) else teaser_lines - 1 if teaser else 0
            if is_boilerplate(stripped) or teaser or _TEASER_RE.fullmatch(stripped):
                if on_skip:
                    on_skip(line_no, stripped)
            elif start < end:
                # A line that starts in lower case continues the previous one's sentence
                # (a paragraph break inside a quote, as in some scraped pages).
                if blocks and text[start].islower() and not _END_RE.search(text[blocks[-1][1] - 2 : blocks[-1][1]]):
                    blocks[-1] = (blocks[-1][0], end)
                else:
                    blocks.append((start, end))
        pos += len(raw) + 1
    return blocks


def _is_boundary(text: str, match_end: int, punct_start: int, block_end: int) -> bool:
    if match_end >= block_end:
        return True
    nxt = text[match_end:block_end].lstrip()
    if not text[match_end].isspace():
        # '"went well."High-ranking': a closed quote glued to the next sentence.
        return text[match_end - 1] in _CLOSERS and text[match_end].isupper()
    if not nxt:
        return False
    word = re.search(r"([\w.]+)$", text[max(0, punct_start - 12) : punct_start])
    if text[punct_start] == "." and word:
        w = word.group(1)
        if w.lower() in _ABBREV or (len(w) == 1 and w.isupper()) or re.fullmatch(r"([a-z]\.)+[a-z]", w.lower()):
            return False  # "Mr. Trump", "Sergey V. Lavrov", "U.S. officials"; but "report number 5. On day 6"
    return nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "\"“‘'([*"


def split_sentences(text: str, on_skip=None) -> list[Span]:
    """The sentences of ``text``; ``on_skip(line, text)`` hears of each line of page furniture
    left out (see GUIDELINES.md, "Excluded lines")."""
    spans = []
    for bstart, bend in _blocks(text, on_skip):
        start = bstart
        for m in _END_RE.finditer(text, bstart, bend):
            if _is_boundary(text, m.end(), m.start(), bend):
                spans.append((start, m.end()))
                start = m.end()
                while start < bend and text[start].isspace():
                    start += 1
        if start < bend:
            spans.append((start, bend))
    return [Span(s, e, text[s:e]) for s, e in spans if text[s:e].strip()]
