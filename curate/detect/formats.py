"""YOLO and COCO detection trees: one in-memory model, a writer and a strict reader for each format.

    YOLO (Ultralytics layout)               COCO
    data.yaml                               annotations/instances_<split>.json
    images/<split>/<id>.<ext>               images/<split>/<id>.<ext>
    labels/<split>/<id>.txt                 (file_name in the JSON is <id>.<ext>)

YOLO lines are `class x_center y_center width height`, normalised to [0, 1], 6 decimals. COCO boxes are
`[x, y, width, height]` in pixels of the written image; `iscrowd` is Open Images' IsGroupOf; an ignore
region (a box of a selected class that a filter dropped) is `iscrowd: 1, ignore: 1`. YOLO has no ignore
regions: an image with one is left out of a YOLO set.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from curate.core import storage
from curate.core.errors import InputError
from curate.core.layout import is_image_name, sort_splits

FORMATS = ("yolo", "coco")
TOLERANCE = 1e-6  # normalised coordinates may overshoot [0, 1] by this much (float rounding)


@dataclass
class Box:
    cls: int  # class index from 0, in the order of `Dataset.names`
    x: float  # pixels of the written image: left, top, width, height
    y: float
    w: float
    h: float
    iscrowd: int = 0
    ignore: int = 0


@dataclass
class Entry:
    split: str
    file: str  # file name inside images/<split>/
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"images/{self.split}/{self.file}"

    @property
    def has_ignore(self) -> bool:
        return any(b.ignore for b in self.boxes)


@dataclass
class Dataset:
    names: list[str]
    entries: list[Entry]  # sorted by (split, file)

    def splits(self) -> list[str]:
        present = {e.split for e in self.entries}
        return sort_splits(present)


def sniff(root: Path | str) -> str:
    """'yolo' or 'coco' for a detection tree (a local folder or an object-store prefix), else an InputError."""
    if storage.is_file(storage.join(root, "data.yaml")) and storage.is_dir(storage.join(root, "labels")):
        return "yolo"
    if any(n.startswith("instances_") and n.endswith(".json") for n in storage.list_names(storage.join(root, "annotations"))):
        return "coco"
    raise InputError(f"{root} is not a detection tree",
                     "expected data.yaml + labels/ (YOLO) or annotations/instances_<split>.json (COCO); "
                     "build one with curate openimages --task detect")


def refuse_detection_tree(root: Path | str, command: str) -> None:
    """One clear error when `command` (dedupe, resplit: they move image files) meets a detection tree, whose
    label files would be left behind."""
    try:
        fmt = sniff(root)
    except InputError:
        return
    raise InputError(f"{root} is a {fmt.upper()} detection set: curate {command} would move images without "
                     "their labels", f"see its duplicates and leakage with: curate report {root}")


# ---------------------------------------------------------------- YOLO


def yolo_lines(entry: Entry) -> str:
    out = []
    for b in entry.boxes:
        if b.ignore:
            raise ValueError("YOLO labels cannot hold ignore regions")
        xc, yc = (b.x + b.w / 2) / entry.width, (b.y + b.h / 2) / entry.height
        out.append(f"{b.cls} {xc:.6f} {yc:.6f} {b.w / entry.width:.6f} {b.h / entry.height:.6f}\n")
    return "".join(out)


def data_yaml(root: Path, names: list[str], splits: list[str]) -> str:
    doc = {"path": str(Path(root).absolute())}
    for s in ("train", "val", "test"):
        if s in splits:
            doc[s] = f"images/{s}"
    doc["nc"] = len(names)
    doc["names"] = dict(enumerate(names))
    return "# written by curate (Ultralytics YOLO layout)\n" + yaml.safe_dump(doc, sort_keys=False)


def read_data_yaml(root: Path) -> list[str]:
    path = root / "data.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path} cannot be read: {str(e).splitlines()[0]}", "is this a YOLO data.yaml?") from e
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise InputError(f"{path} has no class names", "expected names: {0: name, 1: name, …}")
    return [str(n) for n in names]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as a loader reads it (upright)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            orient = int(im.getexif().get(0x0112, 1) or 1)
            w, h = im.size
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"{path} is not a readable image: {e}", "rebuild the tree") from e
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def parse_yolo_label(path: Path, n_classes: int, width: int, height: int) -> list[Box]:
    boxes = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path} cannot be read: {e}", "rebuild the tree or fix the label file") from e
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError(f"{len(parts)} fields")
            cls = int(parts[0])
            xc, yc, w, h = (float(v) for v in parts[1:])
        except ValueError as e:
            raise InputError(f"{path}:{n}: broken label line {line.strip()!r} ({e})",
                             "expected 'class x_center y_center width height'") from None
        if not 0 <= cls < n_classes:
            raise InputError(f"{path}:{n}: unknown class id {cls}", f"data.yaml names {n_classes} classes (0..{n_classes - 1})")
        x0, y0, x1, y1 = xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2
        if not all(map(math.isfinite, (x0, y0, x1, y1))) or w <= 0 or h <= 0 or \
                min(x0, y0) < -TOLERANCE or max(x1, y1) > 1 + TOLERANCE:
            raise InputError(f"{path}:{n}: box outside the image: {line.strip()!r}",
                             "normalised coordinates must stay within [0, 1]")
        boxes.append(Box(cls, x0 * width, y0 * height, w * width, h * height))
    return boxes


def read_yolo(root: Path) -> Dataset:
    root = Path(root)
    names = read_data_yaml(root)
    entries = []
    for sdir in sorted(p for p in (root / "images").iterdir() if p.is_dir()) if (root / "images").is_dir() else []:
        for img in sorted(p for p in sdir.iterdir() if p.is_file() and is_image_name(p.name)):
            w, h = image_size(img)
            label = root / "labels" / sdir.name / f"{img.stem}.txt"
            boxes = parse_yolo_label(label, len(names), w, h) if label.exists() else []
            entries.append(Entry(sdir.name, img.name, w, h, boxes))
    if not entries:
        raise InputError(f"{root}/images holds no images", "expected images/<split>/<file>")
    return Dataset(names, entries)


# ---------------------------------------------------------------- COCO


def coco_json(ds: Dataset, split: str, extra_ann: dict | None = None) -> dict:
    """The instances JSON of one split: image ids from 1 in file order, annotation ids from 1.

    `extra_ann[(file, box_number)]` adds fields (e.g. Open Images attributes) to an annotation."""
    images, anns = [], []
    for entry in (e for e in ds.entries if e.split == split):
        images.append({"id": len(images) + 1, "file_name": entry.file, "width": entry.width,
                       "height": entry.height})
        for k, b in enumerate(entry.boxes):
            bbox = [round(b.x, 6), round(b.y, 6), round(b.w, 6), round(b.h, 6)]
            ann = {"id": len(anns) + 1, "image_id": len(images), "category_id": b.cls + 1, "bbox": bbox,
                   "area": round(b.w * b.h, 4), "iscrowd": int(b.iscrowd), "ignore": int(b.ignore)}
            ann.update((extra_ann or {}).get((entry.file, k), {}))
            anns.append(ann)
    cats = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(ds.names)]
    return {"info": {"description": f"curate detection set, split {split}"}, "images": images,
            "annotations": anns, "categories": cats}


def _coco_fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}", "expected COCO instances JSON (images, annotations, categories)")


def read_coco(root: Path) -> Dataset:
    root = Path(root)
    names: list[str] | None = None
    entries: list[Entry] = []
    for path in sorted((root / "annotations").glob("instances_*.json")):
        split = path.stem.removeprefix("instances_")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
            these = [str(c["name"]) for c in cats]
            if [int(c["id"]) for c in cats] != list(range(1, len(cats) + 1)):
                raise _coco_fail(path, "category ids must be 1..N")
            by_id = {}
            for im in doc["images"]:
                by_id[int(im["id"])] = Entry(split, str(im["file_name"]), int(im["width"]), int(im["height"]))
            for n, a in enumerate(doc["annotations"]):
                _add_annotation(path, n, a, by_id, len(these))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _coco_fail(path, f"malformed ({type(e).__name__}: {e})") from None
        if names is not None and these != names:
            raise _coco_fail(path, "categories differ from the other splits")
        names = these
        entries += sorted(by_id.values(), key=lambda e: e.file)
    if names is None:
        raise InputError(f"{root}/annotations holds no instances_<split>.json", "is this a COCO tree?")
    return Dataset(names, entries)


def _add_annotation(path: Path, n: int, a: dict, by_id: dict[int, Entry], n_classes: int) -> None:
    entry = by_id.get(int(a["image_id"]))
    if entry is None:
        raise _coco_fail(path, f"annotation {a.get('id')} names unknown image id {a['image_id']}")
    cat = int(a["category_id"])
    if not 1 <= cat <= n_classes:
        raise _coco_fail(path, f"annotation {a.get('id')} has unknown category id {cat}")
    x, y, w, h = (float(v) for v in a["bbox"])
    tol = TOLERANCE * max(entry.width, entry.height)
    if not all(map(math.isfinite, (x, y, w, h))) or w <= 0 or h <= 0 or min(x, y) < -tol or \
            x + w > entry.width + tol or y + h > entry.height + tol:
        raise _coco_fail(path, f"annotation {a.get('id')}: box {a['bbox']} outside the "
                               f"{entry.width}x{entry.height} image {entry.file}")
    entry.boxes.append(Box(cat - 1, x, y, w, h, int(a.get("iscrowd", 0)), int(a.get("ignore", 0))))


def read_tree(root: Path) -> tuple[str, Dataset]:
    fmt = sniff(Path(root))
    return fmt, (read_yolo(root) if fmt == "yolo" else read_coco(root))
