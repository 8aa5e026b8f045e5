"""Class balance checks: empty classes, labels missing from a split, starved eval classes, labels a resplit
could not give --min-per-class files, imbalance."""

from __future__ import annotations

from curate.core.errors import CurateError
from curate.core.manifest import read_info
from curate.report.checks import Check, Context, register


def counts(ctx: Context) -> dict[str, dict[str, int]]:
    """split -> label -> readable images, every split of the tree listed (labels sorted)."""
    df = ctx.readable
    out: dict[str, dict[str, int]] = {s: {} for s in ctx.tree.split_dirs}
    for (split, label), n in df.groupby(["split", "label"]).size().items():
        out.setdefault(split, {})[label] = int(n)
    return {s: dict(sorted(v.items())) for s, v in out.items()}


@register
class EmptyClass(Check):
    name = "empty-class"
    title = "Empty classes"
    group = "splits"
    description = "A class folder with no images, or whose every image is unreadable."

    def run(self, ctx):
        found = {(s, lab): "no image files" for s, lab in ctx.tree.empty_labels}
        all_files = ctx.images.groupby(["split", "label"]).size()
        good = ctx.readable.groupby(["split", "label"]).size()
        for key, n in all_files.items():
            if good.get(key, 0) == 0:
                found[key] = f"all {n} images unreadable"
        return [{"split": s, "label": lab, "reason": r} for (s, lab), r in sorted(found.items())]


@register
class MissingLabel(Check):
    name = "missing-label"
    title = "Labels missing from a split"
    group = "splits"
    description = "A label that has images in some split but none in another."

    def applies(self, ctx):
        return len(ctx.tree.split_dirs) > 1

    def run(self, ctx):
        c = counts(ctx)
        labels = sorted({lab for per in c.values() for lab in per})
        return [{"split": s, "label": lab, "present_in": sorted(o for o in c if c[o].get(lab))}
                for s in c for lab in labels if not c[s].get(lab)]


@register
class SmallClass(Check):
    name = "small-class"
    title = "Starved classes in val/test"
    group = "splits"
    description = "A label with fewer than {min_images:g} readable images in a val or test split."
    defaults = {"min_images": 5.0}

    def run(self, ctx):
        c = counts(ctx)
        rows = [{"split": s, "label": lab, "count": n} for s in c if s in ("val", "test")
                for lab, n in c[s].items() if 0 < n < self.params["min_images"]]
        return sorted(rows, key=lambda r: (r["count"], r["split"], r["label"]))


def resplit_minimum(ctx: Context) -> tuple[int, list[str]]:
    """(--min-per-class, evaluation splits) of the tree's last `curate resplit` (curate.json), or (0, [])."""

    try:
        rec = read_info(ctx.root).get("steps", {}).get("resplit") or {}
    except CurateError:  # a broken curate.json is manifest-drift's business, not this check's
        return 0, []
    return int(rec.get("min_per_class") or 0), [s for s in rec.get("into") or [] if s != "train"]


@register
class BelowMinimum(Check):
    name = "below-minimum"
    title = "Eval classes below the resplit minimum"
    group = "splits"
    description = ("A label with fewer files in an evaluation split than the last resplit's --min-per-class: "
                   "it had too few, so it got what there was.")

    def applies(self, ctx):
        return resplit_minimum(ctx)[0] > 0

    def run(self, ctx):
        minimum, evals = resplit_minimum(ctx)
        c = counts(ctx)
        labels = sorted({lab for per in c.values() for lab in per})
        rows = [{"split": s, "label": lab, "count": c[s].get(lab, 0), "minimum": minimum}
                for s in evals if s in c for lab in labels if c[s].get(lab, 0) < minimum]
        return sorted(rows, key=lambda r: (r["count"], r["split"], r["label"]))


@register
class Imbalance(Check):
    name = "imbalance"
    title = "Class imbalance"
    group = "splits"
    description = "A split whose largest class has more than {max_ratio:g}x the images of its smallest."
    defaults = {"max_ratio": 10.0}

    def run(self, ctx):
        rows = []
        for s, per in counts(ctx).items():
            if len(per) < 2:
                continue
            big = max(per, key=lambda k: (per[k], k))
            small = min(per, key=lambda k: (per[k], k))
            ratio = per[big] / per[small]
            if ratio > self.params["max_ratio"]:
                rows.append({"split": s, "ratio": round(ratio, 3), "largest": big, "largest_count": per[big],
                             "smallest": small, "smallest_count": per[small]})
        return sorted(rows, key=lambda r: -r["ratio"])
