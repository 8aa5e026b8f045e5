"""A detection plan -> a YOLO or COCO tree, in the crop build's idempotent shards.

Each image is written once (its bytes copied, or re-encoded upright / resized when needed) with its
YOLO label file, into a shard's file set (curate.core.filesets: staged, then renamed when complete; the
crop build's resume rule); the driver then moves the files into place and writes data.yaml or the COCO JSON,
manifest.parquet (one row per box, ignore region or background image) and curate.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.core import storage
from curate.core.errors import UnreadableImage
from curate.core.filesets import file_set
from curate.core.images import DEFAULT_MAX_PIXELS, decode
from curate.core.tree import INFO_NAME
from curate.crop import letterbox as C
from curate.crop.shard import FLAG_FIELDS, STATE, Shard, shard_folder
from curate.detect import formats as F
from curate.detect.select import DetectPrepared, plan_detect_splits

COPY_FORMATS = {"JPEG": "jpg", "PNG": "png"}  # formats whose bytes are copied as they are…
COPY_MODES = ("RGB", "L")  # …when 8-bit RGB or gray: CMYK, 16-bit, palette, alpha load differently per loader
OWN_PATHS = ("images", "labels", "annotations", "data.yaml")  # what a detection build writes (+ manifest, state)


@dataclass(frozen=True)
class DetectParams:
    label_format: str = "yolo"
    image_size: int | None = None  # longer side of re-encoded images; None: copy the bytes
    format: str = "jpg"  # jpg | png, for re-encoded images
    quality: int = 95
    min_size: int = 1  # kept boxes with a shorter side below this (source pixels) become ignore regions
    val_ratio: float = 0.2
    test_ratio: float = 0.0
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard_size: int = 2000  # rows (boxes) per shard


@dataclass
class DetectResult:
    out: Path
    manifest: pd.DataFrame
    skipped: list[dict]
    counts: dict[str, dict[str, int]]  # split -> {"images": n, "boxes": n, "ignore": n, "background": n}
    skips_by_reason: dict[str, int]  # images
    reused_shards: int
    problems: int  # unreadable or missing images


def header(data: bytes) -> tuple[str, str, int, tuple[int, int]] | None:
    """(format, mode, EXIF orientation, stored size) from the header, or None (decode() says why)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            try:
                orient = int(im.getexif().get(0x0112, 1) or 1)
            except Exception:  # malformed EXIF: decode() reads the image as stored
                orient = 1
            return im.format or "?", im.mode, orient, im.size
    except Exception:
        return None


def image_bytes(data: bytes, p: DetectParams) -> tuple[bytes, str, tuple[int, int], tuple[int, int], bool]:
    """(bytes, ext, source size, written size, re-encoded): the source bytes when they load upright at
    the wanted size, else the upright pixels re-encoded (resized so the longer side is `image_size`).

    A copied JPEG is still decoded in full (at 1/8 scale in the DCT domain: every byte is read), so a
    truncated or corrupt source is reported, never copied."""
    head = header(data)
    big = p.image_size is not None and head is not None and max(head[3]) > p.image_size
    copy = head is not None and head[0] in COPY_FORMATS and head[1] in COPY_MODES and head[2] == 1 and not big
    if copy:
        img = decode(data, max_pixels=p.max_pixels, min_scale=0.125)
        return data, COPY_FORMATS[img.format], (img.width, img.height), (img.width, img.height), False
    img = decode(data, max_pixels=p.max_pixels,
                 min_scale=lambda w, h: min(1.0, p.image_size / max(w, h)) if p.image_size else 1.0)
    w, h = img.width, img.height
    if p.image_size is not None and max(w, h) > p.image_size:
        k = p.image_size / max(w, h)
        w, h = max(1, round(w * k)), max(1, round(h * k))
    px = img.pixels
    if px.shape[:2] != (h, w):
        px = cv2.resize(px, (w, h), interpolation=cv2.INTER_AREA)
    return C.encode(px, p.format, p.quality), p.format, (img.width, img.height), (w, h), True


def as_written(v) -> float:
    """A CSV coordinate read as float32 (0.15 -> 0.15000000596) back to the decimal it was written as."""
    return float(str(np.float32(v)))


def _skip(image_id: str, reason: str, detail: str, n: int) -> dict:
    return {"image_id": image_id, "reason": reason, "boxes": n, "detail": detail[:200]}


def write_image(task, p: DetectParams) -> tuple[list[tuple[str, bytes]], dict | None, list[dict]]:
    """One source image -> ([(relpath, bytes)], record, skipped). The record lists its boxes."""
    rows = task.boxes
    try:
        data = storage.read_image_bytes(task.path)
        out, ext, (src_w, src_h), (w, h), reenc = image_bytes(data, p)
    except UnreadableImage as e:
        return [], None, [_skip(task.image_id, e.reason, e.detail, len(rows))]
    except FileNotFoundError:
        return [], None, [_skip(task.image_id, "missing", task.path, len(rows))]
    boxes = []
    for r in rows:
        if r["role"] == "background":
            continue
        b = dict(r)
        x0, x1, y0, y1 = (min(max(as_written(r[c]), 0.0), 1.0) for c in ("XMin", "XMax", "YMin", "YMax"))
        b.update(x=x0 * w, y=y0 * h, w=(x1 - x0) * w, h=(y1 - y0) * h)
        side = min((x1 - x0) * src_w, (y1 - y0) * src_h)  # --min-size is in source pixels, as for crops
        if b["role"] == "box" and side < p.min_size:
            b["role"], b["ignore_reason"] = "ignore", "too-small"
        boxes.append(b)
    split = rows[0]["split"]
    rel = f"images/{split}/{task.image_id}.{ext}"
    if p.label_format == "yolo" and any(b["role"] == "ignore" for b in boxes):
        reasons = sorted({b["ignore_reason"] for b in boxes if b["role"] == "ignore"})
        return [], None, [_skip(task.image_id, "ignore-region", ",".join(reasons), len(rows))]
    rec = {"path": rel, "split": split, "image_id": task.image_id, "sha256": hashlib.sha256(out).hexdigest(),
           "width": w, "height": h, "source_width": src_w, "source_height": src_h, "reencoded": reenc,
           "boxes": [_box_record(b) for b in boxes]}
    files = [(rel, out)]
    if p.label_format == "yolo":
        entry = F.Entry(split, rel.rsplit("/", 1)[1], w, h, [box_of(b) for b in rec["boxes"]])
        files.append((f"labels/{split}/{task.image_id}.txt", F.yolo_lines(entry).encode()))
    return files, rec, []


def box_of(rec: dict) -> F.Box:
    ignore = int(rec["role"] == "ignore")  # an ignore region is a crowd box COCO evaluation skips
    return F.Box(rec["class_id"], rec["x"], rec["y"], rec["w"], rec["h"], int(rec["is_group_of"]) | ignore, ignore)


def _box_record(b: dict) -> dict:
    rec = {"role": b["role"], "box_index": int(b["box_index"]), "label": b["label"], "class_id": int(b["cls"]),
           "source_class": b["source_class"], "source_mid": b["LabelName"], "xmin": float(b["XMin"]),
           "xmax": float(b["XMax"]), "ymin": float(b["YMin"]), "ymax": float(b["YMax"]), "x": b["x"],
           "y": b["y"], "w": b["w"], "h": b["h"], "ambiguous": bool(b["ambiguous"]),
           "ambiguous_with": b["ambiguous_with"], "merged": int(b["merged"]), "ignore_reason": b["ignore_reason"]}
    for col, name in FLAG_FIELDS.items():
        rec[name] = bool(b[col] > 0)
    return rec


# ---------------------------------------------------------------- shards


def run_detect_shard(shard: Shard) -> dict:
    """Idempotent, like `crop.shard.run_shard`: a complete shard (its marker written) is reused."""
    cv2.setNumThreads(1)
    files = file_set(shard.out, shard_folder(shard.name))
    marker = files.marker()
    if marker is not None:
        return {"name": shard.name, "reused": True, **json.loads(marker)}
    res = {"records": [], "skipped": [], "files": []}
    for task in shard.images:
        written, rec, skipped = write_image(task, shard.params)
        res["skipped"] += skipped
        for rel, data in written:
            files.write(rel, data)
            res["files"].append(rel)
        if rec is not None:
            res["records"].append(rec)
    files.commit(json.dumps(res).encode())
    return {"name": shard.name, "reused": False, **res}


def plan_rows(prep: DetectPrepared, params: DetectParams) -> pd.DataFrame:
    """One row per box, ignore region and background image, with its split and class index."""
    ch = prep.chosen
    cls = {lab: i for i, lab in enumerate(prep.labels)}
    parts = [ch.boxes.assign(role="box", ignore_reason=""), ch.ignore.assign(role="ignore")]
    if ch.background:
        parts.append(pd.DataFrame({"ImageID": ch.background, "role": "background", "box_index": -1, "label": ""}))
    rows = pd.concat(parts, ignore_index=True)
    split_of = plan_detect_splits(ch, params.val_ratio, params.test_ratio, params.seed)
    rows["split"] = rows.ImageID.map(split_of)
    rows["cls"] = rows.label.map(cls).fillna(-1).astype(int)
    for col in ("XMin", "XMax", "YMin", "YMax"):
        rows[col] = rows[col].astype(float).fillna(0.0) if col in rows else 0.0
    for col in FLAG_FIELDS:
        rows[col] = rows[col].fillna(0).astype(int) if col in rows else 0
    defaults = {"LabelName": "", "source_class": "", "ambiguous": False, "ambiguous_with": "", "merged": 0,
                "ignore_reason": ""}
    for col, v in defaults.items():
        rows[col] = rows[col].fillna(v) if col in rows else v
    rows["box_index"] = rows.box_index.astype(int)
    keep = ["ImageID", "box_index", "role", "label", "cls", "split", "LabelName", "source_class", "XMin", "XMax",
            "YMin", "YMax", "ambiguous", "ambiguous_with", "merged", "ignore_reason", *FLAG_FIELDS]
    return rows.sort_values(["ImageID", "box_index"], kind="stable")[keep].reset_index(drop=True)


def _clear_own(out: Path) -> None:
    """--overwrite: remove only what a detection build writes, and only in a folder curate made."""
    if not ((out / INFO_NAME).exists() or (out / STATE / "build.json").exists()):
        return  # prepare_out refuses such a folder
    for name in OWN_PATHS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

