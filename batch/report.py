"""`stance report`: summarise a scored file in tables, with charts (batch/charts.py).

    stance report scored.csv --out-dir reports/scored
    stance report scored.parquet --date-column published --period week --outlet-column desk

writes into the folder:
- summary.csv, summary.md, stance_by_actor.png: counts and shares of support / oppose /
  neutral and the sentiment mix per actor (per source too when the file has several);
- when rows carry a date (a `date` column, or --date-column): stance_over_time.csv and
  stance_over_time.png, each major actor's stance share per day or week, and the change
  from one period to the next;
- when rows carry an outlet (an `outlet` column, an input `source` column, which `stance
  score` keeps as `input_source`, or --outlet-column): stance_by_outlet.csv and
  stance_by_outlet.png, the stance mix per outlet;
- when rows carry evidence (`stance score --explain`): evidence_phrases.csv, the phrases that
  most often carried each actor's support and its opposition (batch/phrases.py).
"""

from __future__ import annotations

import csv
import datetime
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from batch import phrases
from batch.inputs import BadInput
from batch.rows import ADDED
from batch.writers import atomic_path
from model.labels import SENTIMENT, STANCE

ALL = "(all sources)"
NO_AFFILIATION = "(not in registry)"
NO_OUTLET = "(no outlet)"
MIX_COLUMNS = [*STANCE, *(f"{s}_share" for s in STANCE)]
SUMMARY_COLUMNS = ["source", "actor", "affiliation", "pairs", *MIX_COLUMNS, *(f"sentiment_{s}_share" for s in SENTIMENT)]
TIME_COLUMNS = ["actor", "affiliation", "period", "pairs", *MIX_COLUMNS, *(f"{s}_change" for s in STANCE)]
OUTLET_COLUMNS = ["outlet", "pairs", *MIX_COLUMNS]
# The default names of the date and outlet columns, in any case. The `source` column that
# `stance score` adds is the input file, not an outlet: an input's own `source` column is kept
# as `input_source` (a `Source` column as it is).
DATE_COLUMNS = ("date",)
OUTLET_NAMES = ("outlet", "input_source", "source")
MAJOR_ACTORS = 6  # actors in the chart over time: more panels would not read at a glance
DAYS_BY_DAY = 31  # --period auto: per day when the dates span at most this many days, else per week
PERIODS = ("auto", "day", "week")


@dataclass(frozen=True)
class ReportOptions:
    min_pairs: int = 1
    date_column: str | None = None
    period: str = "auto"
    outlet_column: str | None = None


def mix(rows: list[dict]) -> dict:
    """Counts and shares of each stance among ``rows`` (pairs)."""
    counts, n = Counter(r["stance"] for r in rows), len(rows)
    return {**{s: counts[s] for s in STANCE}, **{f"{s}_share": round(counts[s] / n, 3) if n else 0.0 for s in STANCE}}


# -- per actor ------------------------------------------------------------------------------
def summarize(rows: list[dict], path: str = "scored file") -> tuple[list[dict], dict]:
    """Summary rows (one per actor, per source when there are several, plus the totals
    over all sources under source "(all sources)") and overall counts."""
    missing = {"actor", "stance", "sentiment"} - set(rows[0] if rows else {})
    if rows and missing:
        raise BadInput(path, f"not a scored file: missing columns {', '.join(sorted(missing))}", 1, whole_file=True)
    sources = list(dict.fromkeys(r.get("source") or "" for r in rows))
    pairs = [r for r in rows if r.get("actor")]
    totals = {"rows": len(rows), "pairs": len(pairs), "sources": sources,
              "sentences": len({(r.get("source"), r.get("sentence_index")) for r in rows}),
              "sentences_without_actor": sum(1 for r in rows if not r.get("actor")),
              "models": sorted({r["model"] for r in rows if r.get("model")})}
    groups = [(sources[0] if len(sources) == 1 else ALL, pairs)]
    if len(sources) > 1:
        groups += [(s, [r for r in pairs if (r.get("source") or "") == s]) for s in sources]
    out = []
    for source, group in groups:
        for actor, rs in _by(group, "actor").items():
            sentiment = Counter(r["sentiment"] for r in rs)
            out.append({"source": source, "actor": actor, "affiliation": _affiliation(rs), "pairs": len(rs), **mix(rs),
                        **{f"sentiment_{s}_share": round(sentiment[s] / len(rs), 3) for s in SENTIMENT}})
    return _ordered(out), totals


def _by(rows: list[dict], column: str) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        groups[r[column]].append(r)
    return groups


def _affiliation(rows: list[dict]) -> str:
    return next((r["affiliation"] for r in rows if r.get("affiliation")), NO_AFFILIATION)


def _ordered(summary: list[dict]) -> list[dict]:
    """Affiliations by their number of pairs, actors by theirs, within each source."""
    weight = Counter()
    for r in summary:
        weight[(r["source"], r["affiliation"])] += r["pairs"]
    key = lambda r: (r["source"] != ALL, r["source"], -weight[(r["source"], r["affiliation"])], r["affiliation"],
                     -r["pairs"], r["actor"])
    return sorted(summary, key=key)


def chart_actors(summary: list[dict], min_pairs: int) -> tuple[list[dict], str | None]:
    """The summary rows the actor chart draws (the first group's, with at least ``min_pairs``),
    and why it is empty, if it is."""
    first = [r for r in summary if r["source"] == summary[0]["source"]] if summary else []
    kept = [r for r in first if r["pairs"] >= min_pairs]
    if not first:
        return kept, "no actor found"
    if not kept:
        most = max(r["pairs"] for r in first)
        return kept, (f"no actor has {min_pairs} or more pairs ({len(first)} actor{'s' * (len(first) != 1)} found, "
                      f"the most with {most}); lower --min-pairs")
    return kept, None


# -- over time ------------------------------------------------------------------------------
def find_column(rows: list[dict], wanted: str | None, defaults: tuple[str, ...], flag: str, path: str) -> str | None:
    """The column named by ``flag`` (which must exist), else the first default in any case
    (but never a column `stance score` adds under that exact name)."""
    names = list(dict.fromkeys(k for r in rows[:1000] for k in r))
    if wanted is not None:
        if wanted not in names:
            raise BadInput(path, f"no {wanted!r} column, named by {flag} (found: {', '.join(names)})", whole_file=True)
        return wanted
    by_case = {}
    for name in names:
        if name not in ADDED:
            by_case.setdefault(name.casefold(), name)
    return next((by_case[d] for d in defaults if d in by_case), None)


def as_date(value) -> datetime.date | None:
    """A date from a date, a datetime or ISO 8601 text ("2025-02-18", "2025-02-18T09:30Z");
    None if empty. Raises ValueError for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.strip()).date()
    raise ValueError(value)


def period_start(day: datetime.date, period: str) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday()) if period == "week" else day


def over_time(pairs: list[dict], dates: list[datetime.date], period: str, actors: list[str]) -> tuple[list[dict], list]:
    """One row per actor and period with pairs (TIME_COLUMNS; changes are in share points
    from the actor's previous period with pairs), and every period from the first to the
    last, so that a chart spaces them evenly in time."""
    starts = [period_start(d, period) for d in dates]
    step = datetime.timedelta(days=7 if period == "week" else 1)
    periods, p = [], min(starts)
    while p <= max(starts):
        periods.append(p)
        p += step
    table = []
    for actor in actors:
        cells = defaultdict(list)
        for row, start in zip(pairs, starts):
            if row["actor"] == actor:
                cells[start].append(row)
        previous = None
        for start in sorted(cells):
            shares = mix(cells[start])
            changes = {f"{s}_change": (round(shares[f"{s}_share"] - previous[f"{s}_share"], 3) if previous else None)
                       for s in STANCE}
            table.append({"actor": actor, "affiliation": _affiliation(cells[start]), "period": start,
                          "pairs": len(cells[start]), **shares, **changes})
            previous = shares
    return table, periods


def dated_pairs(rows: list[dict], lines: list[int], column: str, path: str) -> tuple[list[dict], list, int]:
    """(the pairs with a date, their dates, the number of pairs without one)."""
    pairs, dates, undated = [], [], 0
    for row, line in zip(rows, lines):
        if not row.get("actor"):
            continue
        try:
            day = as_date(row.get(column))
        except ValueError:
            raise BadInput(path, f"{column} {row.get(column)!r} is not a date; write dates as YYYY-MM-DD (ISO 8601)",
                           line, whole_file=True) from None
        if day is None:
            undated += 1
        else:
            pairs.append(row)
            dates.append(day)
    return pairs, dates, undated


def choose_period(period: str, dates: list[datetime.date]) -> str:
    if period != "auto":
        return period
    return "day" if (max(dates) - min(dates)).days <= DAYS_BY_DAY else "week"


def major_actors(pairs: list[dict], min_pairs: int) -> list[str]:
    """The actors with the most dated pairs (at least ``min_pairs``), most first."""
    counts = Counter(r["actor"] for r in pairs)
    return [a for a, n in sorted(counts.items(), key=lambda an: (-an[1], an[0])) if n >= min_pairs][:MAJOR_ACTORS]


# -- per outlet -----------------------------------------------------------------------------
def by_outlet(pairs: list[dict], column: str) -> list[dict]:
    groups = defaultdict(list)
    for r in pairs:
        value = r.get(column)
        groups[NO_OUTLET if value is None or str(value).strip() == "" else str(value)].append(r)
    table = [{"outlet": outlet, "pairs": len(rs), **mix(rs)} for outlet, rs in groups.items()]
    return sorted(table, key=lambda r: (-r["pairs"], r["outlet"]))


# -- writing --------------------------------------------------------------------------------
def write_csv(table: list[dict], columns: list[str], dest: Path) -> None:
    with atomic_path(dest) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(table)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _points(x: float | None) -> str:
    return "" if x is None else f"{'+' if x > 0 else '−' if x < 0 else '±'}{abs(100 * x):.0f} pts"


def period_label(start: datetime.date, period: str) -> str:
    return f"week of {start:%d %b %Y}" if period == "week" else f"{start:%d %b %Y}"


def markdown(summary: list[dict], totals: dict, scored: str, chart: str, note: str | None) -> list[str]:
    lines = [f"# Stance by actor: {Path(scored).name}", "",
             f"{totals['sentences']} sentences from {len(totals['sources'])} source(s); {totals['pairs']} (sentence, actor) "
             f"pairs; {totals['sentences_without_actor']} sentences mention no actor. "
             f"Model: {', '.join(totals['models']) or 'unknown'}.", "",
             "Stance is toward the US–Russia talks in Riyadh; sentiment is that of the sentences "
             "naming the actor. Shares are of the actor's pairs.", "",
             f"![Stance by actor]({chart})", ""]
    if note:
        lines += [f"The chart is empty: {note}.", ""]
    several = len(totals["sources"]) > 1
    for source in dict.fromkeys(r["source"] for r in summary):
        if several:
            lines += [f"## {'All sources' if source == ALL else source}", ""]
        lines += ["| Actor | Affiliation | Pairs | Support | Oppose | Neutral | Sentiment +/−/0 |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in (r for r in summary if r["source"] == source):
            stance = [f"{r[s]} ({_pct(r[s + '_share'])})" for s in STANCE]
            sentiment = " / ".join(_pct(r[f"sentiment_{s}_share"]) for s in SENTIMENT)
            lines.append(f"| {r['actor']} | {r['affiliation']} | {r['pairs']} | {' | '.join(stance)} | {sentiment} |")
        lines.append("")
    if not summary:
        lines += ["No actor was found in this file.", ""]
    return lines


def time_markdown(table: list[dict], period: str, column: str, undated: int, chart: str, actors: list[str]) -> list[str]:
    left_out = f" {undated} pairs without a {column} are left out." if undated else ""
    lines = ["## Stance over time", "",
             f"Per {period} (from the `{column}` column; weeks start on Monday), for the {len(actors)} actor(s) with the "
             f"most dated pairs.{left_out} A change is in share points from the actor's previous {period} with pairs.", "",
             f"![Stance over time]({chart})", "",
             f"| Actor | {period.capitalize()} | Pairs | Support | Oppose | Neutral | Change in support | Change in oppose |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['actor']} | {period_label(r['period'], period)} | {r['pairs']} | "
                     + " | ".join(_pct(r[f"{s}_share"]) for s in STANCE)
                     + f" | {_points(r['support_change'])} | {_points(r['oppose_change'])} |")
    return lines + [""]


def outlet_markdown(table: list[dict], column: str, chart: str) -> list[str]:
    lines = ["## Stance by outlet", "", f"All pairs, per value of the `{column}` column.", "",
             f"![Stance by outlet]({chart})", "",
             "| Outlet | Pairs | Support | Oppose | Neutral |", "|---|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['outlet']} | {r['pairs']} | " + " | ".join(f"{r[s]} ({_pct(r[s + '_share'])})" for s in STANCE)
                     + " |")
    return lines + [""]


def write_report(scored: str, out_dir: Path, rows: list[dict], lines: list[int],
                 options: ReportOptions = ReportOptions()) -> tuple[dict[str, Path], list[str]]:
    """Write the report; return the files written and notes for the analyst (an empty chart)."""
    from batch import charts

    summary, totals = summarize(rows, scored)
    pairs = [r for r in rows if r.get("actor")]
    date_column = find_column(rows, options.date_column, DATE_COLUMNS, "--date-column", scored)
    outlet_column = find_column(rows, options.outlet_column, OUTLET_NAMES, "--outlet-column", scored)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "chart": out_dir / "stance_by_actor.png"}
    write_csv(summary, SUMMARY_COLUMNS, paths["csv"])
    drawn, note = chart_actors(summary, options.min_pairs)
    charts.actor_chart(drawn, paths["chart"], note, f"Stance toward the Riyadh talks, by actor — {Path(scored).name} "
                                                    f"({totals['pairs']} pairs in {totals['sentences']} sentences)")
    text = markdown(summary, totals, scored, paths["chart"].name, note)
    notes = [f"the actor chart is empty: {note}"] if note and summary else []

    if date_column:
        dated, dates, undated = dated_pairs(rows, lines, date_column, scored)
        actors = major_actors(dated, options.min_pairs)
        if not actors:
            notes.append(f"no stance over time: no actor has {options.min_pairs} or more pairs with a {date_column}")
        else:
            period = choose_period(options.period, dates)
            table, periods = over_time(dated, dates, period, actors)
            paths["time_csv"], paths["time_chart"] = out_dir / "stance_over_time.csv", out_dir / "stance_over_time.png"
            write_csv(table, TIME_COLUMNS, paths["time_csv"])
            charts.time_chart(table, periods, period, paths["time_chart"],
                              f"Stance toward the Riyadh talks over time — share of each actor's pairs per {period}")
            text += time_markdown(table, period, date_column, undated, paths["time_chart"].name, actors)
    if outlet_column and pairs:
        table = by_outlet(pairs, outlet_column)
        paths["outlet_csv"], paths["outlet_chart"] = out_dir / "stance_by_outlet.csv", out_dir / "stance_by_outlet.png"
        write_csv(table, OUTLET_COLUMNS, paths["outlet_csv"])
        charts.outlet_chart(table, paths["outlet_chart"], "Stance toward the Riyadh talks, by outlet — share of all pairs")
        text += outlet_markdown(table, outlet_column, paths["outlet_chart"].name)
    if phrases.has_evidence(rows):
        paths["phrases_csv"] = out_dir / "evidence_phrases.csv"
        table = phrases.carried(rows, lines, scored)
        write_csv(table, phrases.COLUMNS, paths["phrases_csv"])
        text += phrases.markdown(table, paths["phrases_csv"].name)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text("\n".join(text), encoding="utf-8")
    return paths, notes
