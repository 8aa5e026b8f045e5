"""One shard of the crop build, run in a worker: decode each source image once, letterbox every box,
stage the files, mark the shard complete, move its files into the tree.

Workers import only this module (OpenCV, NumPy, Pillow; no pandas), so a process pool starts fast.
A shard writes its files through one write contract (curate.core.filesets, folder .curate/shards/<name>,
records.json the marker): locally staged in `<name>.tmp/` and renamed when complete, then moved into
OUT/<split>/<label>/; on object stores (no rename) straight to their final keys, the marker written last.
A complete shard is never recomputed: a rerun only moves what is still staged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core import storage
from curate.core.errors import UnreadableImage
from curate.core.filesets import MarkedFiles, StagedFiles, file_set
from curate.core.images import DEFAULT_MAX_PIXELS, decode
from curate.crop import letterbox as C

STATE = ".curate"
FLAG_FIELDS = {"IsGroupOf": "is_group_of", "IsDepiction": "is_depiction", "IsTruncated": "is_truncated",
               "IsOccluded": "is_occluded", "IsInside": "is_inside"}
# per-box columns a shard carries (besides ImageID and _path)
BOX_COLUMNS = ["box_index", "label", "split", "source_class", "LabelName", "XMin", "XMax", "YMin", "YMax",
               "ambiguous", "ambiguous_with", "merged", *FLAG_FIELDS]


@dataclass(frozen=True)
class BuildParams:
    size: int = 224
    min_size: int = 32
    margin: float = 0.0
    seed: int = 0
    format: str = "jpg"
    quality: int = 95
    val_ratio: float = 0.2
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard_size: int = 200  # boxes per shard: small enough to balance workers, big enough to be cheap
    reduced_decode: bool = True  # JPEG DCT-domain downscaling when every box is far larger than `size`

    def crop_params(self) -> C.CropParams:
        return C.CropParams(self.size, self.min_size, self.margin, self.seed)


@dataclass
class ImageTask:
    image_id: str
    path: str
    boxes: list[dict]  # box_index, label, split, source_class, LabelName, XMin.., flags, ambiguous…


@dataclass
class Shard:
    """A few hundred boxes, sorted by image. In the driver, a slice of the build's DataFrame (compact:
    no per-box Python objects, however many shards); pickled for a worker as plain lists of values,
    so workers never need pandas."""

    name: str
    out: str
    params: BuildParams
    frame: Any = None  # driver: DataFrame slice with ImageID, _path and BOX_COLUMNS
    columns: dict[str, list] | None = None  # worker: the same as lists
    extra: tuple[str, ...] = ()  # further columns a stage's worker needs (detection: role, class index ...)

    def plain_columns(self) -> dict[str, list]:
        if self.columns is None:
            return {c: self.frame[c].tolist() for c in ["ImageID", "_path", *BOX_COLUMNS, *self.extra]}
        return self.columns

    def __getstate__(self) -> dict:
        return {"name": self.name, "out": self.out, "params": self.params, "frame": None,
                "columns": self.plain_columns(), "extra": self.extra}

    @property
    def n_boxes(self) -> int:
        return len(self.frame) if self.columns is None else len(self.columns["ImageID"])

    @property
    def images(self) -> list[ImageTask]:
        cols = self.plain_columns()
        names = list(cols)
        tasks: list[ImageTask] = []
        for values in zip(*cols.values(), strict=True):
            r = dict(zip(names, values, strict=True))
            if not tasks or tasks[-1].image_id != r["ImageID"]:
                tasks.append(ImageTask(r["ImageID"], r["_path"], []))
            tasks[-1].boxes.append(r)
        return tasks


@dataclass
class ShardResult:
    name: str
    records: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # image_id / box_index, reason
    reused: bool = False
    lost: list[str] = field(default_factory=list)  # files of a complete shard gone from staging and tree


def crop_image(task: ImageTask, params: BuildParams) -> tuple[list[tuple[str, bytes, dict]], list[dict]]:
    """Decode one source image once and make every crop of it: ([(relpath, bytes, record)], skipped)."""
    cp = params.crop_params()
    ext = "png" if params.format == "png" else "jpg"

    def want(w: int, h: int) -> float:
        if not params.reduced_decode:
            return 1.0
        return max(C.needed_scale(C.pixel_box(b["XMin"], b["XMax"], b["YMin"], b["YMax"], w, h, cp.margin),
                                  cp.size) for b in task.boxes)

    try:  # BGR: OpenCV decodes and encodes it without a conversion
        img = decode(storage.read_image_bytes(task.path), max_pixels=params.max_pixels, min_scale=want, bgr=True)
    except UnreadableImage as e:
        return [], [{"image_id": task.image_id, "box_index": None, "reason": e.reason,
                     "boxes": len(task.boxes), "detail": e.detail[:200]}]
    except FileNotFoundError:
        return [], [{"image_id": task.image_id, "box_index": None, "reason": "missing",
                     "boxes": len(task.boxes), "detail": task.path}]
    outs, skipped = [], []
    for b in task.boxes:
        tight = C.pixel_box(b["XMin"], b["XMax"], b["YMin"], b["YMax"], img.width, img.height)
        if min(tight.w, tight.h) < cp.min_size:
            skipped.append({"image_id": task.image_id, "box_index": b["box_index"], "reason": "too-small",
                            "boxes": 1, "detail": f"{tight.w}x{tight.h}"})
            continue
        box = C.pixel_box(b["XMin"], b["XMax"], b["YMin"], b["YMax"], img.width, img.height, cp.margin)
        lb = C.letterbox(C.cut(img.pixels, box, img.scale), box.w, box.h, cp.size,
                         C.seed_key(cp.seed, task.image_id, b["box_index"]))
        data = C.encode(lb.canvas, ext, params.quality, bgr=True)
        rel = f"{b['split']}/{b['label']}/{task.image_id}_{b['box_index']:02d}.{ext}"
        outs.append((rel, data, _record(rel, data, task.image_id, b, img, box, lb, cp.size)))
    return outs, skipped


def _record(rel: str, data: bytes, image_id: str, b: dict, img, box: C.PixelBox, lb: C.Letterboxed,
            size: int) -> dict:
    """The manifest row of one crop."""
    fill_b, fill_g, fill_r = lb.fill  # BGR canvas
    rec = {
        "path": rel, "split": b["split"], "label": b["label"], "sha256": hashlib.sha256(data).hexdigest(),
        "width": size, "height": size, "source": "openimages", "source_id": image_id,
        "status": "kept", "box_index": int(b["box_index"]), "source_class": b["source_class"],
        "source_mid": b["LabelName"], "xmin": float(b["XMin"]), "xmax": float(b["XMax"]),
        "ymin": float(b["YMin"]), "ymax": float(b["YMax"]), "source_width": img.width,
        "source_height": img.height, "crop_w": box.w, "crop_h": box.h, "out_w": lb.out_w, "out_h": lb.out_h,
        "offset_x": lb.offset_x, "offset_y": lb.offset_y, "scale": max(lb.out_w, lb.out_h) / max(box.w, box.h),
        "decode_scale": img.scale, "fill_r": fill_r, "fill_g": fill_g, "fill_b": fill_b,
        "ambiguous": bool(b["ambiguous"]), "ambiguous_with": b["ambiguous_with"], "merged": int(b["merged"]),
    }
    for col, name in FLAG_FIELDS.items():
        rec[name] = bool(b[col] > 0)
    return rec


def shard_folder(name: str) -> str:
    """A shard's folder under OUT: its marker (records.json) and, locally, its staged files."""
    return f"{STATE}/shards/{name}"


def run_shard(shard: Shard) -> ShardResult:
    """Idempotent: a complete shard (its marker written: curate.core.filesets) is reused, not recomputed;
    then its files are moved into the tree (here, in the worker: the driver only gathers records)."""
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from workers; one thread each keeps runs comparable
    files = file_set(shard.out, shard_folder(shard.name))
    marker = files.marker()
    if marker is not None:
        res = ShardResult(shard.name, reused=True, **json.loads(marker))
    else:
        res = _make_shard(shard, files)
    res.lost = publish(shard.name, shard.out, res.records)
    return res


def _make_shard(shard: Shard, files: StagedFiles | MarkedFiles) -> ShardResult:
    """Crop every box of the shard into its file set, then commit it with the records as its marker."""
    res = ShardResult(shard.name)
    for task in shard.images:
        outs, skipped = crop_image(task, shard.params)
        res.skipped += skipped
        for rel, data, rec in outs:
            files.write(rel, data)
            res.records.append(rec)
    files.commit(json.dumps({"records": res.records, "skipped": res.skipped}).encode())
    return res


def publish(shard_name: str, out: Path | str, records: list[dict]) -> list[str]:
    """Move a complete shard's files into the tree (nothing to do on object stores). Returns paths that are
    neither staged nor in place."""
    return file_set(out, shard_folder(shard_name)).publish(r["path"] for r in records)
