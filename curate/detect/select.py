"""Which images and boxes a detection set holds: the crop task's selection, per image.

Boxes are chosen exactly as for crops (`curate.sources.openimages.select_boxes`: class resolution,
attribute filters, IoU merge). On top of that:

- a box of a selected class that a filter drops becomes an *ignore region* of its image (unless a kept
  box of the same label covers it, IoU >= 0.9: the same object, already labelled), so no object of a
  selected class is ever silently unlabelled;
- `max_per_label` counts images that contain the label, and a taken image keeps every selected box;
- `background` images (no box of any selected class, hidden classes included) may be added.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from curate.core import storage
from curate.core.errors import InputError
from curate.crop.build import plan_splits
from curate.sources import openimages as oi
from curate.sources.box_selection import COUNT_COLUMNS, MERGE_IOU
from curate.sources.classes import resolve

BACKGROUND = "__background__"  # split-planning label of background images (never a class)
INCLUDE_ALL = dict.fromkeys(oi.FLAG_OPTIONS, True)


@dataclass
class DetectSelection:
    boxes: pd.DataFrame  # kept boxes of the taken images (select_boxes columns)
    ignore: pd.DataFrame  # filter-dropped boxes of the taken images, with `ignore_reason`
    background: list[str]  # image ids without any selected box
    table: pd.DataFrame  # per label: boxes/images available and selected
    filtered: dict[str, int]  # boxes dropped by flag filters, by reason (before limits)
    merged: int

    @property
    def counts(self) -> dict[str, list[int]]:
        """label -> boxes/images available and selected, as the crop selection gives them to the CLI."""
        t = self.table[COUNT_COLUMNS]
        return {str(k): [int(v) for v in row] for k, row in zip(t.index, t.to_numpy(), strict=True)}

    @property
    def columns(self) -> dict[str, np.ndarray]:
        return {c: self.boxes[c].to_numpy() for c in self.boxes.columns}

    @property
    def image_ids(self) -> list[str]:
        return sorted(set(self.boxes.ImageID) | set(self.background))


@dataclass
class DetectPrepared:
    """The detection plan; shaped like `openimages.Prepared` so the CLI prints it the same way."""

    layout: oi.Layout
    index: object
    selection: object
    chosen: DetectSelection
    boxes_read: int
    local: bool
    labels: list[str] = field(default_factory=list)  # class order: YOLO index 0.., COCO id 1..

    @property
    def image_ids(self) -> list[str]:
        return sorted(set(self.chosen.boxes.ImageID) | set(self.chosen.background))


def _key(seed: int, image_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{image_id}".encode()).hexdigest()


def ignore_regions(kept: pd.DataFrame, every: pd.DataFrame) -> pd.DataFrame:
    """Boxes of `every` (no filter) missing from `kept`, unless a kept same-label box overlaps IoU >= 0.9."""
    key = ["ImageID", "box_index"]
    dropped = every.merge(kept[key], on=key, how="left", indicator=True)
    dropped = dropped[dropped["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
    if dropped.empty:
        return dropped.assign(ignore_reason=pd.Series(dtype=object))
    cols = ["XMin", "XMax", "YMin", "YMax"]
    pairs = dropped[["ImageID", "label", *cols]].reset_index(names="_d").merge(
        kept[["ImageID", "label", *cols]], on=["ImageID", "label"], suffixes=("", "_k"))
    d, k = pairs[cols].to_numpy(np.float64), pairs[[f"{c}_k" for c in cols]].to_numpy(np.float64)
    inter = (np.clip(np.minimum(d[:, 1], k[:, 1]) - np.maximum(d[:, 0], k[:, 0]), 0, None)
             * np.clip(np.minimum(d[:, 3], k[:, 3]) - np.maximum(d[:, 2], k[:, 2]), 0, None))
    union = (d[:, 1] - d[:, 0]) * (d[:, 3] - d[:, 2]) + (k[:, 1] - k[:, 0]) * (k[:, 3] - k[:, 2]) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    covered = set(pairs["_d"].to_numpy()[iou >= MERGE_IOU])  # the same object, already labelled
    dropped = dropped[~dropped.index.isin(covered)].copy()
    flags = dropped[list(oi.FLAG_OPTIONS.values())].to_numpy() > 0
    names = list(oi.FLAG_OPTIONS)
    dropped["ignore_reason"] = [",".join(n for n, f in zip(names, row, strict=True) if f) or "filtered"
                                for row in flags]
    return dropped.reset_index(drop=True)


def limit_images(boxes: pd.DataFrame, max_per_label: int | None, max_samples: int | None,
                 seed: int) -> set[str]:
    """Image ids taken, walking images in seeded order: an image is taken while one of its labels has
    fewer than `max_per_label` images; at most `max_samples` images."""
    per_image = boxes.groupby("ImageID").label.agg(lambda s: sorted(set(s)))
    order = sorted(per_image.index, key=lambda i: _key(seed, i))
    taken: set[str] = set()
    counts: dict[str, int] = {}
    for image_id in order:
        if max_samples is not None and len(taken) >= max_samples:
            break
        labels = per_image[image_id]
        if max_per_label is not None and all(counts.get(lab, 0) >= max_per_label for lab in labels):
            continue
        taken.add(image_id)
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
    return taken


def read_image_ids(csv_path) -> list[str]:
    """Every ImageID of a detections CSV (only that column is kept), sorted."""
    conv = pacsv.ConvertOptions(column_types={"ImageID": pa.string()}, include_columns=["ImageID"])
    ids: set[str] = set()
    try:
        with storage.open_read(storage.as_location(csv_path)) as raw:
            for batch in pacsv.open_csv(raw, convert_options=conv):
                ids.update(pc.unique(batch.column("ImageID")).drop_null().to_pylist())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        raise InputError(f"{csv_path} is malformed: {str(e).splitlines()[0]}",
                         "expected an Open Images detections CSV with an ImageID column") from e
    return sorted(ids)


def pick_background(all_ids: list[str], with_selected: set[str], n: int, seed: int) -> list[str]:
    cands = [i for i in all_ids if i not in with_selected]
    return sorted(sorted(cands, key=lambda i: _key(seed, f"bg\x00{i}"))[:n])


def select_detections(df: pd.DataFrame, selection, index, *, include=None, max_per_label=None,
                      max_samples=None, ambiguous_iou: float = 0.7, seed: int = 0,
                      all_ids: list[str] | None = None, background: int = 0) -> DetectSelection:
    kept = oi.select_boxes(df, selection, index, include=include, ambiguous_iou=ambiguous_iou, seed=seed)
    # only images where a filter dropped a row can hold ignore regions; box_index is per image, so the same
    include = {**oi.DEFAULT_INCLUDE, **(include or {})}
    hit = np.zeros(len(df), bool)
    for opt, col in oi.FLAG_OPTIONS.items():
        if not include[opt]:
            hit |= df[col].to_numpy() > 0
    some = df[df.ImageID.isin(set(df.ImageID[hit]))]
    every = oi.select_boxes(some, selection, index, include=INCLUDE_ALL, ambiguous_iou=ambiguous_iou, seed=seed)
    ignore = ignore_regions(kept.boxes, every.boxes)
    taken = limit_images(kept.boxes, max_per_label, max_samples, seed)
    boxes = kept.boxes[kept.boxes.ImageID.isin(taken)].reset_index(drop=True)
    ignore = ignore[ignore.ImageID.isin(taken)].reset_index(drop=True)
    chosen = boxes.groupby("label").agg(boxes_selected=("ImageID", "size"), images_selected=("ImageID", "nunique"))
    table = kept.table[["boxes_available", "images_available"]].join(chosen).reindex(selection.labels)
    table = table.fillna(0).astype(int)
    bg = pick_background(all_ids or [], set(df.ImageID[df.LabelName.isin(selection.label_of)]), background, seed)
    return DetectSelection(boxes, ignore, bg, table, kept.filtered, kept.merged)


def prepare_detect(classes: str, *, source=None, split: str = "train", download_dir=None, include=None,
                   max_per_label=None, max_samples=None, ambiguous_iou: float = 0.7, seed: int = 0,
                   background: int = 0, quiet: bool = True) -> DetectPrepared:
    """Resolve classes and choose images and boxes; nothing is written and no image is downloaded."""
    if background < 0:
        raise InputError(f"--background {background} is negative", "pass a count of images, e.g. 100")
    layout, local = oi.open_source(source, split, download_dir)
    index = layout.class_index()
    selection = resolve(classes, index)
    df = oi.read_boxes(layout.detections_csv, set(selection.label_of), quiet=quiet)
    all_ids = read_image_ids(layout.detections_csv) if background else None
    chosen = select_detections(df, selection, index, include=include, max_per_label=max_per_label,
                               max_samples=max_samples, ambiguous_iou=ambiguous_iou, seed=seed,
                               all_ids=all_ids, background=background)
    return DetectPrepared(layout, index, selection, chosen, len(df), local, list(selection.labels))


def plan_detect_splits(chosen: DetectSelection, val_ratio: float, test_ratio: float, seed: int) -> dict[str, str]:
    """Image -> train/val/test, grouped by image and stratified by main label (background is a stratum).

    `build.plan_splits` picks val+test images together, then test among them by the same rule."""
    if not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise InputError(f"--val-ratio {val_ratio} + --test-ratio {test_ratio} leave no training images",
                         "keep the sum below 1")
    rows = chosen.boxes[["ImageID", "label"]]
    if chosen.background:
        rows = pd.concat([rows, pd.DataFrame({"ImageID": chosen.background, "label": BACKGROUND})])
    if rows.empty:
        return {}
    held = val_ratio + test_ratio
    split = plan_splits(rows, held, seed)
    if test_ratio > 0:
        out = [i for i, s in split.items() if s == "val"]
        sub = plan_splits(rows[rows.ImageID.isin(out)], test_ratio / held, seed)
        split.update({i: "test" if s == "val" else "val" for i, s in sub.items()})
    return split
