"""Open Images V7 detections: FiftyOne's on-disk layout, streaming box reads, box selection, download.

Layout (what `fiftyone.utils.openimages.download_open_images_split(dataset_dir=<root>/<split>, …)` writes):

    <root>/<split>/labels/detections.csv      ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,
                                              IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside,…
    <root>/<split>/metadata/classes.csv       MID,DisplayName (no header; the 601 boxable classes)
    <root>/<split>/metadata/hierarchy.json    the official hierarchy with MIDs renamed to display names
    <root>/<split>/metadata/image_ids.csv     (optional here)
    <root>/<split>/data/<ImageID>.jpg

`--source` may point at <root> or at <root>/<split> itself, locally or as an object-store URL
(s3://bucket/oi, gs://…): then images are read by the workers straight from the store.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from curate import storage
from curate.classes import ClassIndex, Selection
from curate.errors import InputError, NetworkError

SPLITS = ("train", "validation", "test")
FLAG_COLUMNS = ["IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
REQUIRED_COLUMNS = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"]
BOX_COLUMNS = [*REQUIRED_COLUMNS, *FLAG_COLUMNS]
SAFE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # an ImageID is a file name stem: no separators, no '..'
# --include-* flag name -> CSV column; default: every kind included except group-of boxes
FLAG_OPTIONS = {"group": "IsGroupOf", "depiction": "IsDepiction", "truncated": "IsTruncated",
                "occluded": "IsOccluded", "inside": "IsInside"}
DEFAULT_INCLUDE = {"group": False, "depiction": True, "truncated": True, "occluded": True, "inside": True}
MERGE_IOU = 0.9  # same-label boxes at least this overlapping in one image become one crop


@dataclass(frozen=True)
class Layout:
    split_dir: Path | str  # a str only for object-store URLs
    split: str

    def _at(self, *parts: str) -> Path | str:
        if isinstance(self.split_dir, str):
            return storage.join(self.split_dir, *parts)
        return self.split_dir.joinpath(*parts)

    @property
    def detections_csv(self) -> Path | str:
        return self._at("labels", "detections.csv")

    @property
    def classes_csv(self) -> Path | str:
        return self._at("metadata", "classes.csv")

    @property
    def hierarchy_json(self) -> Path | str:
        return self._at("metadata", "hierarchy.json")

    @property
    def data_dir(self) -> Path | str:
        return self._at("data")

    def image_path(self, image_id: str) -> Path | str:
        return self._at("data", f"{image_id}.jpg")

    def class_index(self) -> ClassIndex:
        if isinstance(self.split_dir, str):  # small files: read from a local copy
            import tempfile

            with tempfile.TemporaryDirectory(prefix="curate-oi-") as tmp:
                classes = storage.fetch(self.classes_csv, Path(tmp) / "classes.csv")
                hier = storage.fetch(self.hierarchy_json, Path(tmp) / "hierarchy.json") \
                    if storage.exists(self.hierarchy_json) else None
                return ClassIndex.load(classes, hier)
        hier = self.hierarchy_json if self.hierarchy_json.exists() else None
        return ClassIndex.load(self.classes_csv, hier)


def find_layout(source: str | Path, split: str, *, need_labels: bool = True) -> Layout:
    """Locate a split inside a local copy; errors say exactly which file is missing."""
    if storage.is_url(source):
        return _find_layout_url(str(source).rstrip("/"), split, need_labels)
    source = storage.local_path(source).expanduser()
    if not source.is_dir():
        raise InputError(f"--source {source} is not a folder",
                         "point it at a local Open Images copy in FiftyOne's layout (see docs/openimages.md)")
    cand = source / split
    split_dir = cand if cand.is_dir() else source
    if not (split_dir / "metadata").is_dir() and not (split_dir / "labels").is_dir():
        present = [s for s in SPLITS if (source / s).is_dir()]
        hint = f"it has splits: {', '.join(present)}; pass --split" if present else \
            "expected <split>/labels/detections.csv and <split>/metadata/classes.csv (docs/openimages.md)"
        raise InputError(f"no Open Images '{split}' split under {source}", hint)
    layout = Layout(split_dir, split)
    # the hierarchy is required: without it 'animal' would quietly mean only boxes labelled Animal
    needed = [layout.classes_csv] + ([layout.detections_csv] if need_labels else []) + [layout.hierarchy_json]
    for p in needed:
        if not p.exists():
            raise InputError(f"{p} is missing", "is the local copy complete? (docs/openimages.md lists the layout)")
    return layout


def _find_layout_url(source: str, split: str, need_labels: bool) -> Layout:
    if not storage.is_dir(source):
        raise InputError(f"--source {source} holds no objects",
                         "point it at a copy in FiftyOne's layout (docs/openimages.md, docs/scaling.md)")
    cand = storage.join(source, split)
    split_dir = cand if storage.is_dir(cand) else source
    if not storage.is_dir(storage.join(split_dir, "metadata")) and not storage.is_dir(
            storage.join(split_dir, "labels")):
        present = [s for s in SPLITS if storage.is_dir(storage.join(source, s))]
        hint = f"it has splits: {', '.join(present)}; pass --split" if present else \
            "expected <split>/labels/detections.csv and <split>/metadata/classes.csv (docs/openimages.md)"
        raise InputError(f"no Open Images '{split}' split under {source}", hint)
    layout = Layout(split_dir, split)
    for p in [layout.classes_csv] + ([layout.detections_csv] if need_labels else []) + [layout.hierarchy_json]:
        if not storage.exists(p):
            raise InputError(f"{p} is missing", "is the copy complete? (docs/openimages.md lists the layout)")
    return layout


def read_boxes(csv_path: str | Path, mids: set[str] | None = None, block_size: int = 16 << 20,
               quiet: bool = True) -> pd.DataFrame:
    """Stream detections.csv, keeping only the needed columns and (optionally) the selected classes.

    Memory stays at one block plus the kept rows, whatever the file size (train is ~2.3 GB).
    """
    csv_path = storage.as_location(csv_path)
    types = {c: pa.float32() for c in ("XMin", "XMax", "YMin", "YMax")}
    types.update({c: pa.int8() for c in FLAG_COLUMNS})
    types.update({"ImageID": pa.string(), "LabelName": pa.string()})
    conv = pacsv.ConvertOptions(column_types=types, include_columns=BOX_COLUMNS,
                                include_missing_columns=True)
    from curate.executor import progress_bar

    try:
        with storage.open_read(csv_path) as raw, progress_bar(quiet) as bar:
            task = bar.add_task(f"reading {Path(str(csv_path)).name}", total=storage.size(csv_path),
                                unit="bytes")
            reader = pacsv.open_csv(raw, read_options=pacsv.ReadOptions(block_size=block_size),
                                    convert_options=conv)
            value_set = pa.array(sorted(mids), pa.string()) if mids is not None else None
            batches = []
            rows, nulls = 0, dict.fromkeys(REQUIRED_COLUMNS, 0)
            for batch in reader:
                rows += batch.num_rows  # a missing column is all nulls: count before filtering
                for col in nulls:
                    nulls[col] += batch.column(col).null_count
                if value_set is not None:
                    batch = batch.filter(pc.is_in(batch.column("LabelName"), value_set=value_set))
                if batch.num_rows:
                    batches.append(batch)
                bar.update(task, completed=raw.tell())
            table = pa.Table.from_batches(batches, schema=reader.schema)
    except FileNotFoundError:
        raise InputError(f"{csv_path} not found", "is the local copy complete?") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0]
        raise InputError(f"{csv_path} is malformed: {msg}",
                         "expected Open Images box CSV columns ImageID,LabelName,XMin,XMax,YMin,YMax,…") from e
    for col in REQUIRED_COLUMNS:
        if rows and nulls[col] == rows:
            raise InputError(f"{csv_path} has no '{col}' column", "is this an Open Images detections CSV?")
    df = table.to_pandas()
    ids = pd.Series(df.ImageID.unique(), dtype=object)
    unsafe = ids[~ids.str.fullmatch(SAFE_ID, na=False)]
    if len(unsafe):  # ids become file names: never a path, never empty
        raise InputError(f"{csv_path} has an invalid ImageID {unsafe.iloc[0]!r}",
                         "Open Images ids are letters and digits, e.g. 000002b66c9c498e")
    for col in FLAG_COLUMNS:
        df[col] = df[col].fillna(0).astype("int8")
    coords = df[["XMin", "XMax", "YMin", "YMax"]].to_numpy(np.float64)
    bad = ~np.isfinite(coords).all(axis=1) | (df.XMin >= df.XMax) | (df.YMin >= df.YMax)
    if bad.any():
        df = df[~bad]  # degenerate boxes carry no pixels; counted by the caller via len()
    return df.reset_index(drop=True)


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


@dataclass
class BoxSelection:
    boxes: pd.DataFrame  # one row per crop to make
    table: pd.DataFrame  # per label: boxes/images available and selected
    filtered: dict[str, int]  # boxes dropped by flag filters, by reason
    merged: int  # boxes folded into an overlapping same-label box


def select_boxes(
    df: pd.DataFrame,
    selection: Selection,
    index: ClassIndex,
    *,
    include: dict[str, bool] | None = None,
    max_per_label: int | None = None,
    max_samples: int | None = None,
    ambiguous_iou: float = 0.7,
    seed: int = 0,
) -> BoxSelection:
    """Label, filter, merge and limit boxes. Deterministic for a seed, whatever the CSV order."""
    include = {**DEFAULT_INCLUDE, **(include or {})}
    df = df[df.LabelName.isin(selection.label_of.keys())].copy()
    df["label"] = df.LabelName.map(selection.label_of)
    df["specificity"] = df.LabelName.map(index.specificity()).fillna(0).astype("int16")
    df["source_class"] = df.LabelName.map(index.name)
    # every column in the key: rows that differ only in a flag must get the same box_index whatever the
    # CSV order (identical rows are interchangeable)
    df = df.sort_values(["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", *FLAG_COLUMNS], kind="stable")
    df["box_index"] = df.groupby("ImageID").cumcount().astype("int32")

    filtered: dict[str, int] = {}
    keep = np.ones(len(df), bool)
    for opt, col in FLAG_OPTIONS.items():
        if not include[opt]:
            hit = (df[col].to_numpy() > 0) & keep
            if hit.any():
                filtered[opt] = int(hit.sum())
            keep &= ~hit
    df = df[keep]

    df = _merge_and_flag(df, ambiguous_iou)
    merged = int(df.merged.sum())

    avail = df.groupby("label").agg(boxes_available=("ImageID", "size"), images_available=("ImageID", "nunique"))
    df["_key"] = df.ImageID.map(lambda i: _image_key(seed, i))
    df = df.sort_values(["_key", "box_index"], kind="stable")
    if max_per_label is not None or max_samples is not None:
        df = _limit(df, max_per_label, max_samples)
    df = df.drop(columns="_key").sort_values(["ImageID", "box_index"], kind="stable").reset_index(drop=True)
    chosen = df.groupby("label").agg(boxes_selected=("ImageID", "size"), images_selected=("ImageID", "nunique"))
    table = avail.join(chosen, how="outer").reindex(selection.labels).fillna(0).astype(int)
    return BoxSelection(df, table, filtered, merged)


def _merge_and_flag(df: pd.DataFrame, ambiguous_iou: float) -> pd.DataFrame:
    """Fold same-label boxes with IoU >= MERGE_IOU (the most specific class is kept) and flag boxes
    overlapping a box of another selected label with IoU >= ambiguous_iou."""
    df = df.reset_index(drop=True)
    n = len(df)
    drop = np.zeros(n, bool)
    merged = np.zeros(n, np.int32)
    ambiguous_with = np.full(n, "", dtype=object)
    counts = df.groupby("ImageID", sort=False).size()
    multi = set(counts.index[counts.to_numpy() > 1])
    if multi:
        coords = df[["XMin", "XMax", "YMin", "YMax"]].to_numpy(np.float64)
        labels = df.label.to_numpy()
        specificity = df.specificity.to_numpy()
        rows = np.flatnonzero(df.ImageID.isin(multi).to_numpy())
        ids = df.ImageID.to_numpy()[rows]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        for s, e in zip(starts, ends, strict=True):
            idx = rows[s:e]
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
    df["merged"] = merged
    df["ambiguous_with"] = ambiguous_with
    df["ambiguous"] = df.ambiguous_with != ""
    return df[~drop]


def _limit(df: pd.DataFrame, max_per_label: int | None, max_samples: int | None) -> pd.DataFrame:
    """Walk images in seeded order; take an image while it adds boxes to labels under their limit."""
    if df.empty:  # nothing to walk (and no label to compare with its limit)
        return df
    keys = df["_key"].to_numpy()
    labels = df["label"].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    n_labels = len(set(labels))
    taken: dict[str, int] = {}
    keep = np.zeros(len(df), bool)
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
    return df[keep]


# ---------------------------------------------------------------- download (FiftyOne, files only)

OPEN_IMAGES_HOST = "storage.googleapis.com"


def _check_network(host: str = OPEN_IMAGES_HOST, timeout: float = 5.0) -> None:
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
    except OSError as e:
        raise NetworkError(f"cannot reach Open Images ({host}: {e})",
                           "work offline with --source DIR (a local copy in FiftyOne's layout)") from e
    finally:
        socket.setdefaulttimeout(old)


def _fiftyone_download(split_dir: Path, split: str, **kwargs) -> None:
    _check_network()
    try:
        import fiftyone.utils.openimages as foui
    except ImportError as e:
        raise InputError("downloading Open Images needs FiftyOne",
                         "pip install 'curate[openimages]', or pass --source DIR") from e
    try:
        # version must be explicit: FiftyOne's default is still v6
        foui.download_open_images_split(dataset_dir=str(split_dir), split=split, version="v7",
                                        label_types=["detections"], **kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # requests/urllib3/botocore errors all mean the same to the user
        raise NetworkError(f"Open Images download failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                           "re-run to resume, or use --source DIR with a local copy") from e


def fetch_metadata(download_dir: str | Path, split: str) -> Layout:
    """Phase 1: classes, hierarchy and the split's detections.csv; no image is downloaded."""
    split_dir = Path(download_dir).expanduser() / split
    layout = Layout(split_dir, split)
    if not (layout.classes_csv.exists() and layout.detections_csv.exists() and layout.hierarchy_json.exists()):
        _fiftyone_download(split_dir, split, max_samples=0)
    return find_layout(split_dir.parent, split)


def fetch_images(layout: Layout, image_ids: list[str], workers: int | None = None) -> int:
    """Phase 2: download exactly the chosen images (those already present are skipped)."""
    missing = [i for i in image_ids if not layout.image_path(i).exists()]
    if missing:
        _fiftyone_download(layout.split_dir, layout.split, image_ids=missing, num_workers=workers)
    return len(missing)


# ---------------------------------------------------------------- the whole job (API of the command)


def default_download_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("curate")) / "openimages"


@dataclass
class Prepared:
    layout: Layout
    index: ClassIndex
    selection: Selection
    chosen: BoxSelection
    boxes_read: int
    local: bool  # True for --source, False for the download cache


def open_source(source: str | Path | None, split: str, download_dir: str | Path | None) -> tuple[Layout, bool]:
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}'", f"choose one of {', '.join(SPLITS)}")
    if source is not None:
        return find_layout(source, split), True
    return fetch_metadata(download_dir or default_download_dir(), split), False


def prepare(classes: str, *, source=None, split: str = "train", download_dir=None, include=None,
            max_per_label=None, max_samples=None, ambiguous_iou: float = 0.7, seed: int = 0,
            quiet: bool = True) -> Prepared:
    """Resolve classes and choose boxes; nothing is written and no image is downloaded."""
    from curate.classes import resolve

    layout, local = open_source(source, split, download_dir)
    index = layout.class_index()
    selection = resolve(classes, index)
    df = read_boxes(layout.detections_csv, set(selection.label_of), quiet=quiet)
    chosen = select_boxes(df, selection, index, include=include, max_per_label=max_per_label,
                          max_samples=max_samples, ambiguous_iou=ambiguous_iou, seed=seed)
    return Prepared(layout, index, selection, chosen, len(df), local)


def build(prep: Prepared, out, params, *, workers=None, engine="local", quiet=False, overwrite=False,
          command: str = "", ray_address: str | None = None):
    from curate.build import build_tree

    ids = sorted(prep.chosen.boxes.ImageID.unique())
    if not prep.local:
        fetch_images(prep.layout, ids, workers)
    boxes = prep.chosen.boxes
    fp_data = {"split": prep.layout.split, "selection": prep.selection.label_of,
               "boxes": hashlib.sha256(pd.util.hash_pandas_object(
                   boxes[["ImageID", "box_index", "label"]], index=False).to_numpy().tobytes()).hexdigest()}
    info = {"command": command, "source": "openimages", "split": prep.layout.split,
            "classes": prep.selection.expansion(prep.index),
            "filtered_boxes": prep.chosen.filtered, "merged_boxes": prep.chosen.merged}
    return build_tree(boxes, prep.layout.image_path, out, params, fingerprint_data=fp_data, info=info,
                      workers=workers, engine=engine, quiet=quiet, overwrite=overwrite,
                      ray_address=ray_address)
