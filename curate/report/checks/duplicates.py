"""Duplicate checks over the clusters of curate.dedupe (or exact sha256 groups as a fallback)."""

from __future__ import annotations

from curate.report.checks import Check, Context, register


def _clusters(ctx: Context, pred) -> list[dict]:
    rows = [c for c in ctx.clusters if pred(c)]
    return sorted(rows, key=lambda c: (-len(c["members"]), c["members"][0]))


@register
class Leakage(Check):
    name = "leakage"
    title = "Duplicates across splits (leakage)"
    group = "duplicates"
    description = "The same or a near-identical image in more than one split: evaluation sees training data."

    def run(self, ctx):
        return _clusters(ctx, lambda c: c["cross_split"])


@register
class Duplicates(Check):
    name = "duplicates"
    title = "Duplicates within a split"
    group = "duplicates"
    description = "Exact or near-identical copies inside one split: they over-weight an image."

    def run(self, ctx):
        return _clusters(ctx, lambda c: not c["cross_split"])


@register
class LabelConflict(Check):
    name = "label-conflict"
    title = "Duplicates with different labels"
    group = "duplicates"
    description = "Copies of one image filed under different labels: at least one label is wrong."

    def run(self, ctx):
        return _clusters(ctx, lambda c: c["label_conflict"])
