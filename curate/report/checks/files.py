"""File-level checks: unreadable files, extensions that lie, manifest out of step with the tree."""

from __future__ import annotations

from curate.core.images import extension_matches
from curate.report.checks import Check, Context, register


@register
class Corrupt(Check):
    name = "corrupt"
    title = "Unreadable files"
    group = "files"
    description = "A file that cannot be decoded (empty, not an image, truncated, corrupt, too large)."

    def run(self, ctx: Context):
        bad = ctx.images[ctx.images["error"].notna()]
        return [{"path": r.path, "split": r.split, "label": r.label, "reason": r.error}
                for r in bad.itertuples(index=False)]


@register
class ExtMismatch(Check):
    name = "ext-mismatch"
    title = "Extension does not match content"
    group = "files"
    description = "A readable file whose extension names another format than its bytes (e.g. PNG saved as .jpg)."

    def run(self, ctx: Context):
        df = ctx.readable
        return [{"path": r.path, "split": r.split, "label": r.label, "format": r.format}
                for r in df.itertuples(index=False) if not extension_matches(r.path, r.format)]


@register
class ManifestDrift(Check):
    name = "manifest-drift"
    title = "Manifest out of step with the tree"
    group = "files"
    description = "A file on disk with no manifest row, a kept manifest row with no file, or a split/label mismatch."

    def applies(self, ctx: Context):
        return ctx.manifest is not None

    def run(self, ctx: Context):
        m = ctx.manifest[["path", "split", "label"]]
        disk = ctx.images[["path", "split", "label"]]
        j = disk.merge(m, on="path", how="outer", suffixes=("", "_m"), indicator=True)
        rows = [{"path": p, "problem": "not in manifest"} for p in j.loc[j["_merge"] == "left_only", "path"]]
        rows += [{"path": p, "problem": "missing on disk"} for p in j.loc[j["_merge"] == "right_only", "path"]]
        both = j[j["_merge"] == "both"]
        for col in ("split", "label"):
            bad = both[both[f"{col}_m"].notna() & (both[col] != both[f"{col}_m"])]
            rows += [{"path": r.path, "problem": f"{col} is '{getattr(r, col)}' on disk, '{getattr(r, col + '_m')}' "
                      "in manifest"} for r in bad.itertuples(index=False)]
        return sorted(rows, key=lambda r: (r["path"], r["problem"]))
