"""The charts of `stance report` (batch/report.py), as PNG files for a briefing.

    actor_chart(rows, "stance_by_actor.png", None, title)     # stacked bars per actor, by affiliation
    time_chart(table, periods, "week", "stance_over_time.png", title)   # one panel per major actor
    outlet_chart(table, "stance_by_outlet.png", title)        # stacked bars per outlet

Every chart uses the same colours (colour-blind-safe, Okabe-Ito), percentages on labelled
axes and the number of pairs behind each bar; a bar resting on fewer than FEW_PAIRS pairs
is drawn faded, since its shares say little.
"""

from __future__ import annotations

import math
from pathlib import Path

from batch.writers import atomic_path
from model.labels import SENTIMENT, STANCE

STANCE_COLOURS = {"support": "#009E73", "oppose": "#D55E00", "neutral": "#BBBBBB"}
SENTIMENT_COLOURS = {"positive": "#56B4E9", "negative": "#CC79A7", "neutral": "#DDDDDD"}
# Bottom to top in the chart over time: support reads from the floor, oppose from the ceiling.
STACK_ORDER = ("support", "neutral", "oppose")
FEW_PAIRS = 3
FADED = 0.45
MAX_TICKS = 8  # period labels on a time axis; more would overlap


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _save(fig, dest: Path) -> None:
    _, plt = _pyplot()
    with atomic_path(Path(dest)) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _stack(ax, y: float, parts: list[tuple[float, str]], labels: bool, alpha: float) -> None:
    """One horizontal bar of shares, left to right, labelled with the wide ones' percentages."""
    left = 0.0
    for share, colour in parts:
        if share <= 0:
            continue
        ax.barh(y, share, left=left, color=colour, alpha=alpha, height=0.72, edgecolor="white", linewidth=0.6)
        if labels and share >= 0.08:
            ax.text(left + share / 2, y, _pct(share), ha="center", va="center", fontsize=8,
                    color="white" if colour != STANCE_COLOURS["neutral"] and alpha == 1 else "#333333")
        left += share


def _legend(ax, colours: dict, labels: list[str], fontsize: int = 9, **kwargs) -> None:
    _, plt = _pyplot()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in colours]
    ax.legend(handles, labels, ncol=len(labels), loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False,
              fontsize=fontsize, **kwargs)


def _share_axis(axis, label: str) -> None:
    matplotlib, _ = _pyplot()
    axis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    axis.set_label_text(label)


def actor_chart(rows: list[dict], dest: Path, note: str | None, title: str) -> None:
    """Two panels sharing the actor axis: stance shares (wide) and sentiment mix (narrow),
    actors grouped under their affiliation, each bar labelled with its number of pairs.
    ``rows``: batch.report summary rows; ``note``: why there are none."""
    matplotlib, plt = _pyplot()
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
        alpha = 1.0 if r["pairs"] >= FEW_PAIRS else FADED
        _stack(ax, y, [(r[f"{s}_share"], STANCE_COLOURS[s]) for s in STANCE], True, alpha)
        ax.text(1.01, y, f"n={r['pairs']}", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#444444")
        _stack(ax2, y, [(r[f"sentiment_{s}_share"], SENTIMENT_COLOURS[s]) for s in SENTIMENT], False, alpha)
    actors = [(y, r) for y, (kind, r) in zip(ys, slots) if kind == "actor"]
    ax.set_yticks([y for y, _ in actors])
    ax.set_yticklabels([r["actor"] for _, r in actors], fontsize=9)
    for a, name in ((ax, "share of the actor's pairs, by stance"), (ax2, "sentiment mix")):
        a.set_xlim(0, 1)
        a.set_ylim(-0.7, len(slots) - 0.3)
        _share_axis(a.xaxis, name)
        a.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            a.spines[side].set_visible(False)
    ax2.set_xticks([0, 0.5, 1])
    _legend(ax, STANCE_COLOURS, [*STANCE[:-1], f"{STANCE[-1]}   (faded: fewer than {FEW_PAIRS} pairs)"])
    _legend(ax2, SENTIMENT_COLOURS, list(SENTIMENT), fontsize=8, handlelength=1, columnspacing=0.8)
    if note:
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, wrap=True)
    fig.suptitle(title, x=0.012, ha="left", fontsize=12, fontweight="bold")
    _save(fig, dest)


def time_chart(table: list[dict], periods: list, period: str, dest: Path, title: str) -> None:
    """Small multiples, one panel per actor (``table``: batch.report TIME_COLUMNS rows, in
    actor order): a stacked bar of stance shares per period, every period of the range on
    the same axis, the actor's pairs in that period above the bar."""
    matplotlib, plt = _pyplot()
    actors = list(dict.fromkeys(r["actor"] for r in table))
    ncols = min(3, len(actors))
    nrows = math.ceil(len(actors) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 2.7 * nrows + 1.3), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    x = list(range(len(periods)))
    step = max(1, math.ceil(len(periods) / MAX_TICKS))
    for k, actor in enumerate(actors):
        ax = axes.flat[k]
        cells = {r["period"]: r for r in table if r["actor"] == actor}
        bottom = [0.0] * len(periods)
        for stance in STACK_ORDER:
            heights = [cells[p][f"{stance}_share"] if p in cells else 0.0 for p in periods]
            colours = [matplotlib.colors.to_rgba(STANCE_COLOURS[stance], 1.0 if p in cells and cells[p]["pairs"] >= FEW_PAIRS
                                                 else FADED) for p in periods]
            ax.bar(x, heights, bottom=bottom, color=colours, width=0.8, edgecolor="white", linewidth=0.5)
            bottom = [b + h for b, h in zip(bottom, heights)]
        if len(periods) <= 2 * MAX_TICKS:  # the pairs per bar, where they fit
            for xi, p in zip(x, periods):
                if p in cells:
                    ax.text(xi, 1.015, str(cells[p]["pairs"]), ha="center", va="bottom", fontsize=7, color="#555555")
        ax.set_title(f"{actor} ({sum(r['pairs'] for r in cells.values())} pairs)", loc="left", fontsize=10,
                     fontweight="bold", pad=12)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, len(periods) - 0.4)
        _share_axis(ax.yaxis, "share of pairs" if k % ncols == 0 else "")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        # The lowest panel of each column carries the time axis (the grid may not be full).
        if k + ncols >= len(actors):
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("week starting (Monday)" if period == "week" else "day")
    for ax in list(axes.flat)[len(actors):]:
        ax.set_visible(False)
    axes.flat[0].set_xticks(x[::step])
    axes.flat[0].set_xticklabels([f"{p.day} {p:%b}" for p in periods][::step])
    for ax in axes.flat:
        ax.tick_params(labelsize=8)
    # One legend under the panels, its last entry (no swatch) saying how to read the bars.
    handles = [plt.Rectangle((0, 0), 1, 1, color=STANCE_COLOURS[s]) for s in STACK_ORDER]
    handles.append(plt.Rectangle((0, 0), 0, 0, alpha=0))
    labels = [*STACK_ORDER, f"number above a bar: the actor's pairs that {period}; faded: fewer than {FEW_PAIRS}"]
    fig.legend(handles, labels, ncol=len(labels), loc="outside lower left", frameon=False, fontsize=9)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    _save(fig, dest)


def outlet_chart(table: list[dict], dest: Path, title: str) -> None:
    """One stacked bar of stance shares per outlet (``table``: batch.report OUTLET_COLUMNS
    rows, most pairs first), with its number of pairs."""
    _, plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, max(2.2, 0.42 * len(table) + 1.5)), layout="constrained")
    ys = list(range(len(table)))[::-1]
    for y, r in zip(ys, table):
        alpha = 1.0 if r["pairs"] >= FEW_PAIRS else FADED
        _stack(ax, y, [(r[f"{s}_share"], STANCE_COLOURS[s]) for s in STANCE], True, alpha)
        ax.text(1.01, y, f"n={r['pairs']}", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#444444")
    ax.set_yticks(ys)
    ax.set_yticklabels([r["outlet"] for r in table], fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, len(table) - 0.3)
    _share_axis(ax.xaxis, "share of the outlet's pairs, by stance")
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    _legend(ax, STANCE_COLOURS, [*STANCE[:-1], f"{STANCE[-1]}   (faded: fewer than {FEW_PAIRS} pairs)"])
    fig.suptitle(title, x=0.012, ha="left", fontsize=12, fontweight="bold")
    _save(fig, dest)
