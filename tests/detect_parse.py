"""Small independent readers of YOLO and COCO sets for the detection tests (no curate code, no ultralytics).

Each returns {"images/<split>/<file>": {"size": (w, h), "boxes": [(class_name, x, y, w, h, iscrowd, ignore)]}}
with boxes in pixels of the image as a loader reads it (EXIF orientation applied).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image, ImageOps


def loaded_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


def parse_yolo(root: Path) -> tuple[list[str], dict]:
    doc = yaml.safe_load((root / "data.yaml").read_text())
    names = [doc["names"][i] for i in range(doc["nc"])]
    assert len(doc["names"]) == doc["nc"]
    out = {}
    for split in ("train", "val", "test"):
        if split not in doc:
            continue
        img_dir = Path(doc["path"]) / doc[split]
        assert img_dir.is_dir(), img_dir
        for img in sorted(img_dir.iterdir()):
            w, h = loaded_size(img)
            label = root / "labels" / split / (img.stem + ".txt")
            assert label.exists(), f"{img} has no label file"
            boxes = []
            for line in label.read_text().splitlines():
                c, xc, yc, bw, bh = line.split()
                xc, yc, bw, bh = map(float, (xc, yc, bw, bh))
                assert 0 <= xc - bw / 2 + 1e-6 and xc + bw / 2 <= 1 + 1e-6, line
                assert 0 <= yc - bh / 2 + 1e-6 and yc + bh / 2 <= 1 + 1e-6, line
                boxes.append((names[int(c)], (xc - bw / 2) * w, (yc - bh / 2) * h, bw * w, bh * h, 0, 0))
            out[f"images/{split}/{img.name}"] = {"size": (w, h), "boxes": boxes}
    return names, out


def parse_coco(root: Path) -> tuple[list[str], dict]:
    names, out = None, {}
    for ann_file in sorted((root / "annotations").glob("instances_*.json")):
        split = ann_file.stem.split("_", 1)[1]
        doc = json.loads(ann_file.read_text())
        cats = {c["id"]: c["name"] for c in doc["categories"]}
        these = [cats[i] for i in sorted(cats)]
        assert sorted(cats) == list(range(1, len(cats) + 1))
        assert names in (None, these)
        names = these
        ids = {}
        for im in doc["images"]:
            path = f"images/{split}/{im['file_name']}"
            assert loaded_size(root / path) == (im["width"], im["height"]), path
            ids[im["id"]] = path
            out[path] = {"size": (im["width"], im["height"]), "boxes": []}
        ann_ids = [a["id"] for a in doc["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids)
        for a in doc["annotations"]:
            x, y, w, h = a["bbox"]
            W, H = out[ids[a["image_id"]]]["size"]
            assert 0 <= x and 0 <= y and x + w <= W + 1e-3 and y + h <= H + 1e-3, a
            assert abs(a["area"] - w * h) < 1e-2
            out[ids[a["image_id"]]]["boxes"].append(
                (cats[a["category_id"]], x, y, w, h, a["iscrowd"], a.get("ignore", 0)))
    return names, out
