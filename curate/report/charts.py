"""Charts for the HTML report: matplotlib figures (no pyplot, no GUI) as PNG data URIs."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np

COLORS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
MAX_BARS = 40


def _png(fig) -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layout complaints on degenerate data are not the user's problem
        fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float, layout: str | None = None):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout=layout)


def counts_chart(counts: dict[str, dict[str, int]], labels: list[str]) -> str:
    """Horizontal bars per label, one bar per split; past MAX_BARS labels, every label as a thin stacked
    column sorted by size (names would be unreadable: the table has them)."""
    totals = {lab: sum(c.get(lab, 0) for c in counts.values()) for lab in labels}
    splits = list(counts)
    if len(labels) > MAX_BARS:
        return _sorted_counts(counts, sorted(labels, key=lambda lab: (-totals[lab], lab)))
    shown = sorted(labels)
    fig = _figure(8, 0.6 + 0.28 * len(shown) * max(1, len(splits)) ** 0.5, layout="tight")  # long labels
    ax = fig.subplots()
    y = np.arange(len(shown))
    hgt = 0.8 / max(1, len(splits))
    for i, s in enumerate(splits):
        ax.barh(y + i * hgt, [counts[s].get(lab, 0) for lab in shown], height=hgt, label=s,
                color=COLORS.get(s, f"C{i + 3}"))
    ax.set_yticks(y + hgt * (len(splits) - 1) / 2, shown)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def histograms(panels: list[dict], cols: int = 3) -> str:
    """Small histograms; each panel: values, title, log (x on log scale), threshold (vertical line)."""
    rows = (len(panels) + cols - 1) // cols
    fig = _figure(3.2 * cols, 2.4 * rows)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.12 / rows, top=1 - 0.12 / rows, wspace=0.25,
                        hspace=0.5)  # fixed margins: a layout engine costs more than the drawing
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, p in zip(axes, panels, strict=False):
        v = np.asarray(p["values"], dtype=np.float64)
        v = v[np.isfinite(v)]
        if p.get("log"):
            v = v[v > 0]
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")  # 960, not 0.0 + 9.6e2
        if v.size and p.get("log") and v.max() > 10 * v.min():  # log only where the range spans a decade
            from matplotlib.ticker import FormatStrFormatter, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # plain numbers: no mathtext, faster
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.hist(v, bins=np.geomspace(v.min(), v.max(), 30), color="#4C72B0")
        elif v.size:
            one = v.min() == v.max()  # a single value: one bar around it
            ax.hist(v, bins=[v[0] * 0.9 - 0.5, v[0] * 1.1 + 0.5] if one else 30, color="#4C72B0")
            if one:  # a full-width block alone reads as a range: say it is one value
                ax.text(0.5, 0.5, f"all {v[0]:g}", transform=ax.transAxes, ha="center", va="center",
                        color="white", fontsize=10, fontweight="bold")
        for t in np.atleast_1d(p.get("threshold", [])):
            ax.axvline(t, color="#C44E52", linestyle="--", linewidth=1)
        ax.set_title(p["title"], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _png(fig)


def _sorted_counts(counts: dict[str, dict[str, int]], order: list[str]) -> str:
    """One stacked column per label (splits stacked), largest first: the shape of the class distribution."""
    fig = _figure(10, 3.2)
    fig.subplots_adjust(left=0.07, right=0.88, bottom=0.17, top=0.93)
    ax = fig.subplots()
    x = np.arange(len(order))
    bottom = np.zeros(len(order))
    for i, s in enumerate(counts):
        v = np.array([counts[s].get(lab, 0) for lab in order], dtype=np.float64)
        ax.bar(x, v, width=1.0, bottom=bottom, label=s, color=COLORS.get(s, f"C{i + 3}"), linewidth=0)
        bottom += v
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_xlabel(f"{len(order)} labels, sorted by images (smallest: {order[-1]}, {int(bottom[-1])})", fontsize=9)
    ax.set_ylabel("images")
    ax.set_xticks([])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
