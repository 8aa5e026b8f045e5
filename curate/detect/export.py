"""`curate export`: a detection tree from one format to the other; the source tree is only read.

YOLO -> COCO keeps every box (iscrowd 0: YOLO has no group flag). COCO -> YOLO keeps every box,
group boxes included, and leaves out images with an ignore region (YOLO cannot say "don't care here").
The whole source is read and validated before anything is written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from curate.core.errors import InputError
from curate.core.manifest import read_info, update_info
from curate.core.tree import atomic_write_bytes, atomic_write_text
from curate.detect import formats as F
from curate.engine.executor import progress_bar


@dataclass
class ExportResult:
    out: Path
    source_format: str
    to: str
    images: int
    boxes: int
    left_out: list[str]  # images/<split>/<file> of the source not written (ignore regions, YOLO)


def _check_out(src: Path, out: Path) -> None:
    if out == src or src in out.parents or out in src.parents:
        raise InputError(f"--out {out} overlaps the source tree {src}", "choose a separate folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder", "choose another --out")
    if out.exists() and any(out.iterdir()):
        if "export" not in (read_info(out).get("steps") or {}):
            raise InputError(f"{out} is not empty and was not made by curate export",
                             "choose a new --out; curate never writes into other folders")
        for name in ("images", "labels", "annotations", "data.yaml"):  # a previous export: start over
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def export(tree: str | Path, to: str, out: str | Path, *, quiet: bool = True) -> ExportResult:
    """Convert the detection tree at `tree` into format `to` (yolo|coco) at `out`."""
    if to not in F.FORMATS:
        raise InputError(f"unknown format '{to}'", "choose yolo or coco")
    src, out = Path(tree).expanduser().absolute(), Path(out).expanduser().absolute()
    if not src.is_dir():
        raise InputError(f"{src} is not a folder", "pass the root of a tree built with --task detect")
    fmt, ds = F.read_tree(src)
    if fmt == to:
        raise InputError(f"{src} is already a {to} tree", f"export it --to {'coco' if to == 'yolo' else 'yolo'}")
    _check_out(src, out)
    keep = [e for e in ds.entries if not (to == "yolo" and e.has_ignore)]
    missing = [e.path for e in keep if not (src / e.path).is_file()]
    if missing:
        raise InputError(f"{src / missing[0]} is missing ({len(missing)} images)", "the source tree is incomplete")
    with progress_bar(quiet) as bar:
        task = bar.add_task("copying images", total=len(keep), unit="images")
        for e in keep:
            atomic_write_bytes(out / e.path, (src / e.path).read_bytes())
            if to == "yolo":
                atomic_write_text(out / "labels" / e.split / f"{Path(e.file).stem}.txt", F.yolo_lines(e))
            bar.advance(task)
    kept = F.Dataset(ds.names, keep)
    if to == "yolo":
        atomic_write_text(out / "data.yaml", F.data_yaml(out, ds.names, kept.splits()))
    else:
        for split in kept.splits():
            doc = F.coco_json(kept, split)
            atomic_write_text(out / "annotations" / f"instances_{split}.json", json.dumps(doc, separators=(",", ":")))
    left = sorted(e.path for e in ds.entries if to == "yolo" and e.has_ignore)
    boxes = sum(len(e.boxes) for e in keep)
    update_info(out, "export", {"from": str(src), "source_format": fmt, "to": to, "images": len(keep),
                                "boxes": boxes, "left_out": left})
    return ExportResult(out, fmt, to, len(keep), boxes, left)
