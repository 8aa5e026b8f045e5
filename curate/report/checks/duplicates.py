"""Duplicate checks over the clusters of curate.dedupe.find (or exact sha256 groups as a fallback)."""

from __future__ import annotations

from curate.core.storage import join
from curate.dedupe.find import load_thumbnail, mirrored_similarity
from curate.dedupe.search import hamming_pairs, pack
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


MAX_VERIFY = 2000  # candidate pairs verified on pixels, closest hashes first


@register
class MirrorLeakage(Check):
    name = "mirror-leakage"
    title = "Mirrored copies across splits"
    group = "duplicates"
    description = ("A left-right mirrored copy of an image in another split (perceptual hashes within "
                   "{max_distance:g} of 64 bits, verified on thumbnails): with flip augmentation it is the "
                   "same training example.")
    defaults = {"max_distance": 10.0}

    def applies(self, ctx):
        return len(ctx.tree.split_dirs) > 1 and "phash_mirror" in ctx.images.columns

    def run(self, ctx):
        import numpy as np


        df = ctx.readable
        df = df[df["phash"].notna() & df["phash_mirror"].notna()].reset_index(drop=True)
        n = len(df)
        if n < 2:
            return []
        i, j, d = hamming_pairs(pack(list(df["phash"]) + list(df["phash_mirror"]), 64),
                                int(self.params["max_distance"]), 64)
        sel = (i < n) & (j >= n)  # an image's hash close to another image's mirrored hash
        a, b, d = i[sel], j[sel] - n, d[sel]
        split, path = df["split"].to_numpy(), df["path"].to_numpy()
        same_cluster = {p: c["id"] for c in ctx.clusters for p in c["members"]}
        cand: dict[tuple[int, int], int] = {}
        for x, y, dist in zip(a.tolist(), b.tolist(), d.tolist(), strict=True):
            if x == y or split[x] == split[y]:
                continue
            if same_cluster.get(path[x], -1) == same_cluster.get(path[y], -2):
                continue  # already an ordinary duplicate (a symmetric image)
            key = (min(x, y), max(x, y))
            cand[key] = min(dist, cand.get(key, 64))
        pairs = sorted(cand.items(), key=lambda kv: (kv[1], path[kv[0][0]], path[kv[0][1]]))[:MAX_VERIFY]
        thumbs: dict[int, np.ndarray | None] = {}
        out = []
        for (x, y), dist in pairs:
            for k in (x, y):
                if k not in thumbs:
                    thumbs[k] = load_thumbnail(join(ctx.root, path[k]))
            tx, ty = thumbs[x], thumbs[y]
            mirrored = None if tx is None or ty is None else mirrored_similarity(tx, ty)
            if mirrored is None:
                continue
            r = df.iloc[[x, y]]
            labels = sorted(set(r["label"]))
            out.append({"members": [path[x], path[y]], "splits": sorted(set(r["split"])), "labels": labels,
                        "label_conflict": len(labels) > 1, "distance": int(dist),
                        "similarity": round(mirrored, 4)})
        return sorted(out, key=lambda f: (f["distance"], f["members"]))
