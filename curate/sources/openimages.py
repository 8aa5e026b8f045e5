"""Open Images V7 detections: FiftyOne's on-disk layout, streaming box reads, download, the whole job.
Box selection (labels, filters, merges, limits) is curate/sources/box_selection.py.

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
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from curate.core import storage
from curate.core.errors import InputError, NetworkError
from curate.core.lazy import lazy
from curate.engine.executor import progress_bar
from curate.sources.box_selection import (  # noqa: F401  (the selection API, re-exported)
    BOX_COLUMNS,
    DEFAULT_INCLUDE,
    FLAG_COLUMNS,
    FLAG_OPTIONS,
    REQUIRED_COLUMNS,
    BoxSelection,
    arrow_to_numpy,
    select_boxes,
)
from curate.sources.classes import ClassIndex, Selection, resolve

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "validation", "test")
SAFE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # an ImageID is a file name stem: no separators, no '..'

crop_build = lazy("curate.crop.build")  # pandas and OpenCV: not loaded by a dry run (planning only)


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
    """Locate a split inside a copy in FiftyOne's layout (a folder or an object-store prefix); errors say
    exactly which file is missing."""
    source = storage.as_location(os.path.expanduser(source))
    if not storage.is_dir(source):
        raise InputError(f"--source {source} is not a folder or holds no objects",
                         "point it at an Open Images copy in FiftyOne's layout (see docs/openimages.md)")
    cand = storage.join(source, split)
    split_dir = cand if storage.is_dir(cand) else str(source)
    if not any(storage.is_dir(storage.join(split_dir, d)) for d in ("metadata", "labels")):
        present = [s for s in SPLITS if storage.is_dir(storage.join(source, s))]
        hint = f"it has splits: {', '.join(present)}; pass --split" if present else \
            "expected <split>/labels/detections.csv and <split>/metadata/classes.csv (docs/openimages.md)"
        raise InputError(f"no Open Images '{split}' split under {source}", hint)
    layout = Layout(storage.as_location(split_dir), split)
    # the hierarchy is required: without it 'animal' would quietly mean only boxes labelled Animal
    for p in [layout.classes_csv] + ([layout.detections_csv] if need_labels else []) + [layout.hierarchy_json]:
        if not storage.exists(p):
            raise InputError(f"{p} is missing", "is the copy complete? (docs/openimages.md lists the layout)")
    return layout


def read_table(csv_path: str | Path, mids: set[str] | None = None, block_size: int = 16 << 20,
               quiet: bool = True) -> pa.Table:
    """Stream detections.csv, keeping only the needed columns and (optionally) the selected classes.

    Memory stays at one block plus the kept rows, whatever the file size (train is ~2.3 GB). Boxes
    without pixels (non-finite or empty) are dropped; flags are int8 (null where missing). No pandas.
    """
    csv_path = storage.as_location(csv_path)
    types = {c: pa.float32() for c in ("XMin", "XMax", "YMin", "YMax")}
    types.update({c: pa.int8() for c in FLAG_COLUMNS})
    types.update({"ImageID": pa.string(), "LabelName": pa.string()})
    conv = pacsv.ConvertOptions(column_types=types, include_columns=BOX_COLUMNS,
                                include_missing_columns=True)

    try:
        with storage.open_read(csv_path) as raw, progress_bar(quiet) as bar:
            task = bar.add_task(f"reading {Path(str(csv_path)).name}", total=storage.size(csv_path),
                                unit="bytes")
            reader = pacsv.open_csv(raw, read_options=pacsv.ReadOptions(block_size=block_size),
                                    convert_options=conv)
            value_set = _arrow_strings(sorted(mids)) if mids is not None else None
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
    ids = pc.unique(table.column("ImageID"))
    safe = pc.match_substring_regex(ids, f"^{SAFE_ID}$")
    if safe.null_count or not pc.all(safe).as_py():  # ids become file names: never a path, never empty
        bad = next(i for i, ok in zip(ids.to_pylist(), safe.to_pylist(), strict=True) if not ok)
        raise InputError(f"{csv_path} has an invalid ImageID {bad!r}",
                         "Open Images ids are letters and digits, e.g. 000002b66c9c498e")
    coords = np.stack([arrow_to_numpy(table.column(c)) for c in ("XMin", "XMax", "YMin", "YMax")], axis=1)
    bad = ~np.isfinite(coords).all(axis=1) | (coords[:, 0] >= coords[:, 1]) | (coords[:, 2] >= coords[:, 3])
    if bad.any():
        table = table.filter(_arrow_mask(~bad))  # degenerate boxes carry no pixels; counted by the caller via len()
    return table


# pyarrow's pa.array()/pa.scalar() import pandas (to check for pandas objects): these two build arrays from
# buffers instead, so that reading and planning (a dry run) never pay for importing pandas
def _arrow_strings(values: list[str]) -> pa.Array:
    data = [v.encode() for v in values]
    offsets = np.r_[0, np.cumsum([len(d) for d in data], dtype=np.int64)].astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _arrow_mask(mask: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])


def read_boxes(csv_path: str | Path, mids: set[str] | None = None, block_size: int = 16 << 20,
               quiet: bool = True) -> pd.DataFrame:
    """`read_table` as a DataFrame (flags int8, missing values 0)."""
    df = read_table(csv_path, mids, block_size, quiet).to_pandas()
    for col in FLAG_COLUMNS:
        df[col] = df[col].fillna(0).astype("int8")
    return df


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

    layout, local = open_source(source, split, download_dir)
    index = layout.class_index()
    selection = resolve(classes, index)
    table = read_table(layout.detections_csv, set(selection.label_of), quiet=quiet)
    chosen = select_boxes(table, selection, index, include=include, max_per_label=max_per_label,
                          max_samples=max_samples, ambiguous_iou=ambiguous_iou, seed=seed)
    return Prepared(layout, index, selection, chosen, table.num_rows, local)


def build(prep: Prepared, out, params, *, workers=None, engine="local", quiet=False, overwrite=False,
          command: str = ""):
    import pandas as pd

    ids = prep.chosen.image_ids
    if not prep.local:
        fetch_images(prep.layout, ids, workers)
    boxes = prep.chosen.boxes
    fp_data = {"split": prep.layout.split, "selection": prep.selection.label_of,
               "boxes": hashlib.sha256(pd.util.hash_pandas_object(
                   boxes[["ImageID", "box_index", "label"]], index=False).to_numpy().tobytes()).hexdigest()}
    info = {"command": command, "source": "openimages", "split": prep.layout.split,
            "classes": prep.selection.expansion(prep.index),
            "filtered_boxes": prep.chosen.filtered, "merged_boxes": prep.chosen.merged}
    return crop_build.build_tree(boxes, prep.layout.image_path, out, params, fingerprint_data=fp_data, info=info,
                      workers=workers, engine=engine, quiet=quiet, overwrite=overwrite)
