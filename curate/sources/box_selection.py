"""Open Images box selection: label, filter, merge and limit the boxes read from detections.csv.

NumPy only (no pandas: a dry run never imports it); deterministic for a seed, whatever the CSV order.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from curate.sources.classes import ClassIndex, Selection

if TYPE_CHECKING:
    import pandas as pd

FLAG_COLUMNS = ["IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
REQUIRED_COLUMNS = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"]
BOX_COLUMNS = [*REQUIRED_COLUMNS, *FLAG_COLUMNS]
# --include-* flag name -> CSV column; default: every kind included except group-of boxes
FLAG_OPTIONS = {"group": "IsGroupOf", "depiction": "IsDepiction", "truncated": "IsTruncated",
                "occluded": "IsOccluded", "inside": "IsInside"}
DEFAULT_INCLUDE = {"group": False, "depiction": True, "truncated": True, "occluded": True, "inside": True}
MERGE_IOU = 0.9  # same-label boxes at least this overlapping in one image become one crop


_NUMPY_TYPES = {pa.float32(): np.float32, pa.int8(): np.int8}


def arrow_to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """A column as NumPy (to_numpy() imports pandas too): strings as objects, numbers as floats with NaN
    where null (float32 columns stay float32; other numbers are float32 only when they have nulls)."""
    parts = []
    for a in col.chunks:
        if pa.types.is_string(a.type):
            parts.append(np.array(a.to_pylist(), object))
            continue
        validity, data = a.buffers()
        v = np.frombuffer(data, _NUMPY_TYPES[a.type], count=a.offset + len(a))[a.offset:]
        if a.null_count:
            ok = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[a.offset:a.offset + len(a)]
            v = np.where(ok.astype(bool), v, np.float32(np.nan))
        parts.append(v)
    if not parts:
        return np.zeros(0, object if pa.types.is_string(col.type) else _NUMPY_TYPES[col.type])
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _image_key(seed: int, image_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{image_id}".encode()).hexdigest()


def _iou_matrix(b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(b[:, None, 0], b[None, :, 0])
    x1 = np.minimum(b[:, None, 1], b[None, :, 1])
    y0 = np.maximum(b[:, None, 2], b[None, :, 2])
    y1 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (b[:, 1] - b[:, 0]) * (b[:, 3] - b[:, 2])
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


COUNT_COLUMNS = ["boxes_available", "images_available", "boxes_selected", "images_selected"]
OUT_COLUMNS = [*BOX_COLUMNS, "label", "specificity", "source_class", "box_index", "merged", "ambiguous_with",
               "ambiguous"]


@dataclass
class BoxSelection:
    """The chosen boxes as NumPy columns (OUT_COLUMNS, sorted by image and box), plus per-label counts.
    `boxes` and `table` are the same as DataFrames, made (and pandas imported) on first use."""

    columns: dict[str, np.ndarray]  # one row per crop to make
    counts: dict[str, list[int]]  # label -> COUNT_COLUMNS
    filtered: dict[str, int]  # boxes dropped by flag filters, by reason
    merged: int  # boxes folded into an overlapping same-label box

    @property
    def n_boxes(self) -> int:
        return len(self.columns["ImageID"])

    @property
    def image_ids(self) -> list[str]:
        return sorted(set(self.columns["ImageID"].tolist()))

    @functools.cached_property
    def boxes(self) -> pd.DataFrame:
        import pandas as pd

        df = pd.DataFrame({c: self.columns[c] for c in OUT_COLUMNS})
        text = ["ImageID", "LabelName", "label", "source_class", "ambiguous_with"]
        df[text] = df[text].astype(str)  # text columns even when empty (pandas infers them otherwise)
        return df

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(list(self.counts.values()), columns=COUNT_COLUMNS, dtype="int64",
                            index=pd.Index(list(self.counts), name="label"))


def _columns(df) -> dict[str, np.ndarray]:
    """BOX_COLUMNS of a pyarrow Table or DataFrame as NumPy arrays (strings as objects, flags int8)."""
    if isinstance(df, pa.Table):

        cols = {c: arrow_to_numpy(df.column(c)) for c in BOX_COLUMNS}
    else:
        cols = {c: df[c].to_numpy() for c in BOX_COLUMNS}
    for c in ("ImageID", "LabelName"):
        cols[c] = cols[c].astype(object)
    for c in FLAG_COLUMNS:  # a missing flag (null: NaN in NumPy) is 0
        cols[c] = np.nan_to_num(cols[c].astype(np.float32)).astype(np.int8) if cols[c].dtype.kind == "f" \
            else cols[c].astype(np.int8)
    return cols


def _rank(values: np.ndarray) -> np.ndarray:
    """Each value's rank in sorted order (equal values, equal ranks): sortable keys for lexsort."""
    return np.unique(values, return_inverse=True)[1].reshape(-1) if len(values) else np.zeros(0, np.intp)


def _take(cols: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[rows] for c, v in cols.items()}


def _groups(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each run of equal ids (ids sorted or grouped)."""
    if not len(ids):
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return starts, np.r_[starts[1:], len(ids)]


def _per_label(cols: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    """label -> (boxes, distinct images)."""
    out = {}
    for lab in set(cols["label"].tolist()):
        ids = cols["ImageID"][cols["label"] == lab]
        out[lab] = (len(ids), len(set(ids.tolist())))
    return out


def select_boxes(
    df,
    selection: Selection,
    index: ClassIndex,
    *,
    include: dict[str, bool] | None = None,
    max_per_label: int | None = None,
    max_samples: int | None = None,
    ambiguous_iou: float = 0.7,
    seed: int = 0,
) -> BoxSelection:
    """Label, filter, merge and limit boxes (`df`: read_table's Table or a DataFrame of its columns).
    Deterministic for a seed, whatever the CSV order. NumPy only: a dry run never imports pandas."""
    include = {**DEFAULT_INCLUDE, **(include or {})}
    cols = _columns(df)
    cols = _take(cols, np.fromiter((m in selection.label_of for m in cols["LabelName"]), bool,
                                   len(cols["LabelName"])))
    mids, inv = np.unique(cols["LabelName"], return_inverse=True) if len(cols["LabelName"]) else ([], [])
    spec = index.specificity()
    cols["label"] = np.array([selection.label_of[m] for m in mids], object)[inv]
    cols["specificity"] = np.array([spec.get(m, 0) for m in mids], np.int16)[inv]
    cols["source_class"] = np.array([index.name(m) for m in mids], object)[inv]
    # every column in the key: rows that differ only in a flag must get the same box_index whatever the
    # CSV order (identical rows are interchangeable); lexsort: last key first, row order breaks ties
    keys = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", *FLAG_COLUMNS]
    order = np.lexsort([np.arange(len(cols["ImageID"]))] + [
        _rank(cols[k]) if cols[k].dtype == object else cols[k] for k in reversed(keys)])
    cols = _take(cols, order)
    starts, ends = _groups(cols["ImageID"])
    first = np.repeat(starts, ends - starts)
    cols["box_index"] = (np.arange(len(order)) - first).astype(np.int32)

    filtered: dict[str, int] = {}
    keep = np.ones(len(order), bool)
    for opt, col in FLAG_OPTIONS.items():
        if not include[opt]:
            hit = (cols[col] > 0) & keep
            if hit.any():
                filtered[opt] = int(hit.sum())
            keep &= ~hit
    cols = _merge_and_flag(_take(cols, keep), ambiguous_iou)
    merged = int(cols["merged"].sum())
    avail = _per_label(cols)

    image_key = {i: _image_key(seed, i) for i in set(cols["ImageID"].tolist())}
    key = _rank(np.array([image_key[i] for i in cols["ImageID"]], object))
    order = np.lexsort([cols["box_index"], key])  # images in seeded order
    if max_per_label is not None or max_samples is not None:
        cols = _take(cols, order[_limit(key[order], cols["label"][order], max_per_label, max_samples)])
    cols = _take(cols, np.lexsort([cols["box_index"], _rank(cols["ImageID"])]))
    chosen = _per_label(cols)
    counts = {lab: [*avail.get(lab, (0, 0)), *chosen.get(lab, (0, 0))] for lab in selection.labels}
    return BoxSelection(cols, counts, filtered, merged)


def _merge_and_flag(cols: dict[str, np.ndarray], ambiguous_iou: float) -> dict[str, np.ndarray]:
    """Fold same-label boxes with IoU >= MERGE_IOU (the most specific class is kept) and flag boxes
    overlapping a box of another selected label with IoU >= ambiguous_iou. Rows are grouped by image."""
    n = len(cols["ImageID"])
    drop = np.zeros(n, bool)
    merged = np.zeros(n, np.int32)
    ambiguous_with = np.full(n, "", dtype=object)
    coords = np.stack([cols[c].astype(np.float64) for c in ("XMin", "XMax", "YMin", "YMax")], axis=1)
    labels, specificity = cols["label"], cols["specificity"]
    for s, e in zip(*_groups(cols["ImageID"]), strict=True):
        if e - s < 2:
            continue
        idx = np.arange(s, e)
        iou = _iou_matrix(coords[idx])
        # most specific first (a subclass before its parents), then box order
        order = sorted(range(len(idx)), key=lambda k: (-specificity[idx[k]], k))
        alive: list[int] = []
        for k in order:
            twin = next((a for a in alive if labels[idx[a]] == labels[idx[k]] and iou[a, k] >= MERGE_IOU), None)
            if twin is None:
                alive.append(k)
            else:
                drop[idx[k]] = True
                merged[idx[twin]] += 1
        for a in alive:
            others = sorted({labels[idx[b]] for b in alive
                             if labels[idx[b]] != labels[idx[a]] and iou[a, b] >= ambiguous_iou
                             and iou[a, b] > 0})  # disjoint boxes never overlap, even at --ambiguous-iou 0
            ambiguous_with[idx[a]] = ",".join(others)
    cols = {**cols, "merged": merged, "ambiguous_with": ambiguous_with,
            "ambiguous": ambiguous_with != ""}
    return _take(cols, ~drop)


def _limit(keys: np.ndarray, labels: np.ndarray, max_per_label: int | None,
           max_samples: int | None) -> np.ndarray:
    """Walk images in seeded order (rows grouped by `keys`); take an image while it adds boxes to labels
    under their limit. Returns the rows kept (bool mask)."""
    keep = np.zeros(len(keys), bool)
    if not len(keys):  # nothing to walk (and no label to compare with its limit)
        return keep
    starts, ends = _groups(keys)
    n_labels = len(set(labels.tolist()))
    taken: dict[str, int] = {}
    n_images = 0
    for s, e in zip(starts, ends, strict=True):
        if max_samples is not None and n_images >= max_samples:
            break
        if max_per_label is not None and len(taken) == n_labels and min(taken.values()) >= max_per_label:
            break
        added = False
        for i in range(s, e):
            lab = labels[i]
            if max_per_label is None or taken.get(lab, 0) < max_per_label:
                taken[lab] = taken.get(lab, 0) + 1
                keep[i] = added = True
        n_images += added
    return keep
