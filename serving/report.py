"""Per-actor summary of a scored file (`stance report`, see serving/cli.py).

    stance report scored.csv --out-dir reports/scored

writes summary.md and summary.csv (counts and shares of support / oppose / neutral and the
sentiment mix per actor, per source too when the file has several) and stance_by_actor.png
(stacked bars per actor, grouped by affiliation).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from model.labels import SENTIMENT, STANCE
from serving.batch import BadInput, atomic_path

ALL = "(all sources)"
NO_AFFILIATION = "(not in registry)"
SUMMARY_COLUMNS = ["source", "actor", "affiliation", "pairs", *STANCE, *(f"{s}_share" for s in STANCE),
                   *(f"sentiment_{s}_share" for s in SENTIMENT)]
# Colour-blind-safe (Okabe-Ito): support blue-green, oppose vermillion, neutral grey.
STANCE_COLOURS = {"support": "#009E73", "oppose": "#D55E00", "neutral": "#BBBBBB"}
SENTIMENT_COLOURS = {"positive": "#56B4E9", "negative": "#CC79A7", "neutral": "#DDDDDD"}
FEW_PAIRS = 3


def summarize(rows: list[dict], path: str = "scored file") -> tuple[list[dict], dict]:
    """Summary rows (one per actor, per source when there are several, plus the totals
    over all sources under source "(all sources)") and overall counts."""
    missing = {"actor", "stance", "sentiment"} - set(rows[0] if rows else {})
    if rows and missing:
        raise BadInput(path, f"not a scored file: missing columns {', '.join(sorted(missing))}", 1, whole_file=True)
    sources = list(dict.fromkeys(r.get("source") or "" for r in rows))
    sentences = {(r.get("source"), r.get("sentence_index"), r.get("sentence")) for r in rows}
    pairs = [r for r in rows if r.get("actor")]
    totals = {"rows": len(rows), "pairs": len(pairs), "sentences": len(sentences), "sources": sources,
              "sentences_without_actor": sum(1 for r in rows if not r.get("actor")),
              "models": sorted({r["model"] for r in rows if r.get("model")})}
    groups = [(sources[0] if len(sources) == 1 else ALL, pairs)]
    if len(sources) > 1:
        groups += [(s, [r for r in pairs if (r.get("source") or "") == s]) for s in sources]
    out = []
    for source, group in groups:
        by_actor = defaultdict(list)
        for r in group:
            by_actor[r["actor"]].append(r)
        for actor, rs in by_actor.items():
            stance, sentiment = Counter(r["stance"] for r in rs), Counter(r["sentiment"] for r in rs)
            n = len(rs)
            out.append({"source": source, "actor": actor,
                        "affiliation": next((r["affiliation"] for r in rs if r.get("affiliation")), NO_AFFILIATION),
                        "pairs": n, **{s: stance[s] for s in STANCE},
                        **{f"{s}_share": round(stance[s] / n, 3) for s in STANCE},
                        **{f"sentiment_{s}_share": round(sentiment[s] / n, 3) for s in SENTIMENT}})
    return _ordered(out), totals


def _ordered(summary: list[dict]) -> list[dict]:
    """Affiliations by their number of pairs, actors by theirs, within each source."""
    weight = Counter()
    for r in summary:
        weight[(r["source"], r["affiliation"])] += r["pairs"]
    key = lambda r: (r["source"] != ALL, r["source"], -weight[(r["source"], r["affiliation"])], r["affiliation"],
                     -r["pairs"], r["actor"])
    return sorted(summary, key=key)


def write_csv(summary: list[dict], dest: Path) -> None:
    with atomic_path(dest) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(summary)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def markdown(summary: list[dict], totals: dict, scored: str, chart: str | None) -> str:
    lines = [f"# Stance by actor: {Path(scored).name}", "",
             f"{totals['sentences']} sentences from {len(totals['sources'])} source(s); {totals['pairs']} (sentence, actor) "
             f"pairs; {totals['sentences_without_actor']} sentences mention no actor. "
             f"Model: {', '.join(totals['models']) or 'unknown'}.", "",
             "Stance is toward the US–Russia talks in Riyadh; sentiment is that of the sentences "
             "naming the actor. Shares are of the actor's pairs.", ""]
    if chart:
        lines += [f"![Stance by actor]({chart})", ""]
    several = len(totals["sources"]) > 1
    for source in dict.fromkeys(r["source"] for r in summary):
        rows = [r for r in summary if r["source"] == source]
        if several:
            lines += [f"## {'All sources' if source == ALL else source}", ""]
        lines += ["| Actor | Affiliation | Pairs | Support | Oppose | Neutral | Sentiment +/−/0 |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in rows:
            stance = [f"{r[s]} ({_pct(r[s + '_share'])})" for s in STANCE]
            mix = " / ".join(_pct(r[f"sentiment_{s}_share"]) for s in SENTIMENT)
            lines.append(f"| {r['actor']} | {r['affiliation']} | {r['pairs']} | {' | '.join(stance)} | {mix} |")
        lines.append("")
    if not summary:
        lines += ["No actor was found in this file.", ""]
    return "\n".join(lines)


def chart(summary: list[dict], dest: Path, title: str, min_pairs: int = 1) -> None:
    """Two panels sharing the actor axis: stance shares (wide) and sentiment mix (narrow),
    actors grouped under their affiliation, each bar labelled with its number of pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The first group is the totals over all sources (or the only source).
    first = summary[0]["source"] if summary else None
    rows = [r for r in summary if r["source"] == first and r["pairs"] >= min_pairs]
    # y slots, top to bottom: an affiliation heading, then its actors.
    slots: list[tuple[str, dict | str]] = []
    for i, r in enumerate(rows):
        if i == 0 or r["affiliation"] != rows[i - 1]["affiliation"]:
            slots.append(("heading", r["affiliation"]))
        slots.append(("actor", r))
    height = max(2.5, 0.34 * len(slots) + 1.6)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, height), sharey=True, layout="constrained",
                                  gridspec_kw={"width_ratios": [3.2, 1]})
    heading = matplotlib.transforms.blended_transform_factory(fig.transFigure, ax.transData)
    ys = list(range(len(slots)))[::-1]
    for y, (kind, r) in zip(ys, slots):
        if kind == "heading":
            # Affiliation headings sit at the figure's left edge, left of the actor names.
            ax.text(0.012, y - 0.1, r, transform=heading, ha="left", va="center", fontweight="bold", fontsize=10)
            if y != ys[0]:
                for a in (ax, ax2):
                    a.axhline(y + 0.5, color="#DDDDDD", linewidth=0.8, zorder=0)
            continue
        # Few pairs make a share unreliable: such bars are drawn faded.
        alpha = 1.0 if r["pairs"] >= FEW_PAIRS else 0.5
        _stack(ax, y, [(r[f"{s}_share"], STANCE_COLOURS[s], s) for s in STANCE], True, alpha)
        ax.text(1.01, y, f"n={r['pairs']}", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#444444")
        _stack(ax2, y, [(r[f"sentiment_{s}_share"], SENTIMENT_COLOURS[s], s) for s in SENTIMENT], False, alpha)
    actors = [(y, r) for y, (kind, r) in zip(ys, slots) if kind == "actor"]
    ax.set_yticks([y for y, _ in actors])
    ax.set_yticklabels([r["actor"] for _, r in actors], fontsize=9)
    for a, name in ((ax, "share of pairs by stance"), (ax2, "sentiment mix")):
        a.set_xlim(0, 1)
        a.set_ylim(-0.7, len(slots) - 0.3)
        a.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        a.set_xlabel(name)
        a.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            a.spines[side].set_visible(False)
    ax2.set_xticks([0, 0.5, 1])
    handles = [plt.Rectangle((0, 0), 1, 1, color=STANCE_COLOURS[s]) for s in STANCE]
    ax.legend(handles, [*STANCE[:-1], f"{STANCE[-1]}   (faded: fewer than {FEW_PAIRS} pairs)"], ncol=3,
              loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=SENTIMENT_COLOURS[s]) for s in SENTIMENT]
    ax2.legend(handles, SENTIMENT, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=8,
               handlelength=1, columnspacing=0.8)
    if not rows:
        ax.text(0.5, 0.5, "no actor found", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title, x=0.012, ha="left", fontsize=12, fontweight="bold")
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)


def _stack(ax, y: float, parts: list[tuple[float, str, str]], labels: bool, alpha: float) -> None:
    left = 0.0
    for share, colour, _ in parts:
        if share <= 0:
            continue
        ax.barh(y, share, left=left, color=colour, alpha=alpha, height=0.72, edgecolor="white", linewidth=0.6)
        if labels and share >= 0.08:
            ax.text(left + share / 2, y, _pct(share), ha="center", va="center", fontsize=8,
                    color="white" if colour != STANCE_COLOURS["neutral"] and alpha == 1 else "#333333")
        left += share


def write_report(scored: str, out_dir: Path, rows: list[dict], min_pairs: int = 1) -> dict[str, Path]:
    summary, totals = summarize(rows, scored)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "chart": out_dir / "stance_by_actor.png"}
    write_csv(summary, paths["csv"])
    title = (f"Stance toward the Riyadh talks, by actor — {Path(scored).name} "
             f"({totals['pairs']} pairs in {totals['sentences']} sentences)")
    chart(summary, paths["chart"], title, min_pairs)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(markdown(summary, totals, scored, paths["chart"].name), encoding="utf-8")
    return paths
