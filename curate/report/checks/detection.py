"""Detection trees (YOLO or COCO, `curate openimages --task detect`): the tree as the report sees it,
box statistics for report.json, and one check class per box issue.

A detection image is filed under its main label (the label with most of its boxes; ties: class order)
or `background`, so the split, balance, file, quality and duplicate checks run on whole images; duplicate
clusters get their splits from the image paths (images/<split>/…), so leakage means the same image in two
splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.core.errors import InputError
from curate.core.layout import Tree, TreeFile
from curate.core.lazy import lazy
from curate.detect import formats as F
from curate.report.checks import SEVERITY, Check, register

# the report's writers import this check (its JSON and HTML sections), and the analysis imports it too
charts = lazy("curate.report.charts")
H = lazy("curate.report.html")
jsonout = lazy("curate.report.jsonout")

BACKGROUND = "background"
SEVERITY.update({"no-boxes": "info", "tiny-box": "warning", "few-val-boxes": "warning", "crowded-image": "info"})


@dataclass
class DetectionTree(Tree):
    label_format: str = ""
    dataset: object = None  # curate.detect.formats.Dataset
    boxes: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per box: path, split, label, w, h, ignore


def main_label(names: list[str], boxes) -> str:
    counts = np.bincount([b.cls for b in boxes if not b.ignore], minlength=len(names))
    return names[int(counts.argmax())] if counts.sum() else BACKGROUND


def detection_tree(root) -> DetectionTree | None:
    """The tree of a local YOLO/COCO detection set (labels validated), or None for any other tree."""

    if isinstance(root, str) and "://" in root:
        return None
    root = Path(root)
    try:
        fmt = F.sniff(root)
    except InputError:
        return None
    ds = F.read_yolo(root) if fmt == "yolo" else F.read_coco(root)
    splits = ds.splits()
    tree = DetectionTree(root, {s: f"images/{s}" for s in splits}, label_format=fmt, dataset=ds)
    rows = []
    for e in ds.entries:
        tree.files.append(TreeFile(e.path, e.split, main_label(ds.names, e.boxes)))
        rows += [{"path": e.path, "split": e.split, "label": ds.names[b.cls], "w": b.w, "h": b.h,
                  "rel_area": b.w * b.h / (e.width * e.height), "ignore": bool(b.ignore)} for b in e.boxes]
    tree.files.sort(key=lambda f: f.path)
    tree.boxes = pd.DataFrame(rows, columns=["path", "split", "label", "w", "h", "rel_area", "ignore"])
    return tree


def retag_clusters(clusters: list[dict], tree: Tree) -> list[dict]:
    """Splits and labels of duplicate clusters from the detection tree's files (not folder names)."""
    if not isinstance(tree, DetectionTree):
        return clusters
    of = {f.path: f for f in tree.files}
    for c in clusters:
        members = [of[m] for m in c["members"] if m in of]
        if members:
            c["splits"] = sorted({f.split for f in members})
            c["labels"] = sorted({f.label for f in members})
            c["cross_split"], c["label_conflict"] = len(c["splits"]) > 1, False  # images hold several labels
    return clusters


def detection_section(tree: Tree) -> dict | None:
    """report.json `detection`: boxes per image and per label, box sizes, images without boxes."""
    if not isinstance(tree, DetectionTree):
        return None

    b = tree.boxes[~tree.boxes.ignore]
    per_image = b.groupby("path").size().reindex([f.path for f in tree.files], fill_value=0)
    side = np.minimum(b.w, b.h)
    per_label = {}
    for label in tree.dataset.names:
        g = b[b.label == label]
        per_label[label] = {"boxes": {s: int((g.split == s).sum()) for s in tree.split_dirs},
                            "images": {s: int(g[g.split == s].path.nunique()) for s in tree.split_dirs},
                            "median_side": round(float(np.minimum(g.w, g.h).median()), 2) if len(g) else None}
    return {"format": tree.label_format, "classes": list(tree.dataset.names), "boxes": int(len(b)),
            "ignore_regions": int(tree.boxes.ignore.sum()), "boxes_per_image": jsonout.summary(per_image),
            "images_without_boxes": int((per_image == 0).sum()), "box_side": jsonout.summary(side),
            "box_relative_area": jsonout.summary(b.rel_area), "per_label": per_label}


class DetectionCheck(Check):
    group = "detection"

    def applies(self, ctx):
        return isinstance(ctx.tree, DetectionTree)


@register
class NoBoxes(DetectionCheck):
    name = "no-boxes"
    title = "Images without boxes"
    description = "Images with no box: intended background, or objects nobody labelled."

    def run(self, ctx):
        with_boxes = set(ctx.tree.boxes.path[~ctx.tree.boxes.ignore])
        return [{"path": f.path, "split": f.split, "label": f.label} for f in ctx.tree.files
                if f.path not in with_boxes]


@register
class TinyBox(DetectionCheck):
    name = "tiny-box"
    title = "Tiny boxes"
    description = "Boxes whose shorter side is under {min_side:g} px: few detectors find them."
    defaults = {"min_side": 8.0}

    def run(self, ctx):
        b = ctx.tree.boxes[~ctx.tree.boxes.ignore]
        b = b.assign(score=np.minimum(b.w, b.h))
        hit = b[b.score < self.params["min_side"]].sort_values(["score", "path"])
        return [{"path": r.path, "split": r.split, "label": r.label, "score": round(float(r.score), 2)}
                for r in hit.itertuples()]


@register
class FewValBoxes(DetectionCheck):
    name = "few-val-boxes"
    title = "Labels with too few boxes in val/test"
    description = "A label with fewer than {min_boxes:g} boxes in a val or test split: its AP is noise."
    defaults = {"min_boxes": 10.0}

    def run(self, ctx):
        b = ctx.tree.boxes[~ctx.tree.boxes.ignore]
        out = []
        for split in (s for s in ctx.tree.split_dirs if s in ("val", "test")):
            for label in ctx.tree.dataset.names:
                n = int(((b.split == split) & (b.label == label)).sum())
                if n < self.params["min_boxes"]:
                    out.append({"split": split, "label": label, "boxes": n})
        return out


@register
class CrowdedImage(DetectionCheck):
    name = "crowded-image"
    title = "Crowded images"
    description = "Images with more than {max_boxes:g} boxes (dense scenes; check the detector's max detections)."
    defaults = {"max_boxes": 50.0}

    def run(self, ctx):
        b = ctx.tree.boxes[~ctx.tree.boxes.ignore]
        n = b.groupby("path").size()
        label = {f.path: (f.split, f.label) for f in ctx.tree.files}
        return [{"path": p, "split": label[p][0], "label": label[p][1], "score": int(v)}
                for p, v in sorted(n[n > self.params["max_boxes"]].items(), key=lambda kv: (-kv[1], kv[0]))]


def html_body(a, doc: dict) -> str:
    """The report.html section of a detection tree: charts, per-label table, the box checks."""

    d = doc["detection"]
    lines = (f"<p>{d['format'].upper()} · {d['boxes']:,} boxes · {d['ignore_regions']:,} ignore regions · "
             f"{d['images_without_boxes']:,} images without boxes · median boxes per image: "
             f"<b>{(d['boxes_per_image'] or {}).get('median', 0):g}</b></p>")
    per = [{"label": k, **{f"{what} {s}": v[what][s] for what in ("boxes", "images") for s in v[what]},
            "median side (px)": v["median_side"]} for k, v in d["per_label"].items()]
    blocks = [lines, H.table(per)]
    img = chart(a.ctx.tree)
    if img:
        blocks.insert(1, f'<p><img class="chart" alt="box distributions" src="{img}"></p>')
    names = [n for n, c in doc["checks"].items() if c["group"] == "detection"]
    for name in H._fired_first(doc, names):
        blocks.append(H._check_block(name, doc["checks"][name], H.table(doc["checks"][name]["findings"])))
    return "".join(blocks) + H._passed(doc, names)


def chart(tree: Tree) -> str | None:

    if not isinstance(tree, DetectionTree) or tree.boxes.empty:
        return None
    b = tree.boxes[~tree.boxes.ignore]
    per_image = b.groupby("path").size().reindex([f.path for f in tree.files], fill_value=0)
    return charts.histograms([
        {"values": np.minimum(b.w, b.h).astype("float64"), "title": "box shorter side (px)", "log": True},
        {"values": b.rel_area.astype("float64"), "title": "box area / image area", "log": True},
        {"values": per_image.astype("float64"), "title": "boxes per image"},
    ])
