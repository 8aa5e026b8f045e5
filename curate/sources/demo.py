"""The embedded default: a small Open Images–layout source built offline from package-shipped photos.

Boxes were set by hand on each photo and carry real Open Images class ids (manifests/demo/ holds the
37-class subset of the real class list and hierarchy they need). Variants exercise the decoder
(EXIF-rotated, CMYK, 16-bit, palette, grayscale) and give dedupe something to find (a re-encoded copy).
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from curate.core.errors import InputError
from curate.pipeline import run_pipeline
from curate.resources import resource
from curate.sources.samples import load_photo

DEMO_META = resource("manifests", "demo")
DEMO_CLASSES = "person,animal,vehicle,flag"

# photo -> [(class display name, xmin, xmax, ymin, ymax, flags)]; flags: G group-of, T truncated, D depiction
BOXES: dict[str, list[tuple]] = {
    "astronaut": [("Person", 0.03, 0.72, 0.02, 1.0, "T"), ("Woman", 0.03, 0.71, 0.02, 1.0, "T"),
                  ("Flag", 0.0, 0.17, 0.0, 0.85, "T"), ("Rocket", 0.68, 0.93, 0.0, 0.55, "D")],
    "chelsea": [("Cat", 0.02, 0.98, 0.0, 1.0, "T")],
    "coffee": [("Coffee cup", 0.28, 0.68, 0.02, 0.55, "")],
    "rocket": [("Rocket", 0.45, 0.57, 0.2, 0.98, ""), ("Tower", 0.0, 0.2, 0.05, 0.95, ""),
               ("Tower", 0.87, 1.0, 0.0, 0.95, "T")],
    "motorcycle": [("Motorcycle", 0.15, 0.97, 0.22, 0.9, "")],
    "camera": [("Man", 0.0, 0.62, 0.13, 1.0, "T"), ("Camera", 0.52, 0.66, 0.26, 0.38, ""),
               ("Tripod", 0.42, 0.66, 0.28, 1.0, "")],
    "grace_hopper": [("Woman", 0.18, 0.95, 0.05, 1.0, "T"), ("Person", 0.19, 0.95, 0.06, 1.0, "T"),
                     ("Flag", 0.0, 0.3, 0.0, 0.75, "T"), ("Tie", 0.47, 0.55, 0.8, 0.95, "")],
    "china": [("Tower", 0.05, 0.58, 0.05, 1.0, "")],
    "flower": [("Flower", 0.25, 0.68, 0.15, 0.85, ""), ("Flower", 0.45, 0.75, 0.85, 1.0, "T")],
    "horse": [("Horse", 0.0, 0.98, 0.0, 0.95, "D")],
    "coins": [("Coin", 0.0, 1.0, 0.0, 1.0, "G")],
}
# how each photo is stored in data/<ImageID>.jpg (all named .jpg, as FiftyOne does; decoded by content)
ENCODING = {"astronaut": "exif-rotated", "coffee": "cmyk", "motorcycle": "png16", "flower": "palette",
            "camera": "gray"}


def image_id(name: str) -> str:
    return hashlib.sha1(f"curate-demo/{name}".encode()).hexdigest()[:16]


def _encode(pixels: np.ndarray, how: str, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(pixels)
    if how == "exif-rotated":  # pixels stored rotated; EXIF orientation 6 turns them upright again
        exif = Image.Exif()
        exif[0x0112] = 6
        im.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=quality, exif=exif)
    elif how == "cmyk":
        im.convert("CMYK").save(buf, "JPEG", quality=quality)
    elif how == "png16":
        gray16 = (np.asarray(im.convert("L"), dtype=np.uint16) * 257)
        Image.fromarray(gray16).save(buf, "PNG")
    elif how == "palette":
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(buf, "PNG")
    elif how == "gray":
        im.convert("L").save(buf, "JPEG", quality=quality)
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


MARKER = ".curate-demo"  # in a source folder build_source wrote: only such a folder is ever replaced


def build_source(root: str | Path, split: str = "train") -> Path:
    """Write the demo source in FiftyOne's layout under root/<split>/ and return root."""
    root = Path(root)
    sdir = root / split
    above = next((p for p in [root, *root.absolute().parents] if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"{root} cannot be created: {above} is a file", "choose another --out")
    if sdir.exists():
        legacy = sdir / "metadata" / "classes.csv"  # written before the marker existed
        ours = (root / MARKER).is_file() or (legacy.is_file() and legacy.read_bytes() == (DEMO_META / "classes.csv").read_bytes())
        if not ours:
            raise InputError(f"{sdir} exists and was not written by curate demo",
                             "choose another --out; the demo never replaces folders it did not make")
        shutil.rmtree(sdir)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by `curate demo`; safe to delete\n", encoding="utf-8")
    (sdir / "data").mkdir(parents=True)
    (sdir / "labels").mkdir()
    (sdir / "metadata").mkdir()
    shutil.copy(DEMO_META / "classes.csv", sdir / "metadata" / "classes.csv")
    shutil.copy(DEMO_META / "hierarchy.json", sdir / "metadata" / "hierarchy.json")
    mids = {row[1]: row[0] for row in csv.reader(open(DEMO_META / "classes.csv", encoding="utf-8"))}
    rows = []
    for name, boxes in BOXES.items():
        pixels = load_photo(name)
        variants = [(name, pixels, ENCODING.get(name, "jpeg"), False),
                    (f"{name}-flipped", pixels[:, ::-1].copy(), "jpeg", True)]
        if name == "chelsea":  # a re-encoded copy under another id: the kind of duplicate dedupe finds
            variants.append(("chelsea-copy", pixels, "jpeg-q60", False))
        for vname, px, how, flipped in variants:
            iid = image_id(vname)
            data = _encode(px, "jpeg", 60) if how == "jpeg-q60" else _encode(px, how)
            (sdir / "data" / f"{iid}.jpg").write_bytes(data)
            for cls, x0, x1, y0, y1, flags in boxes:
                if flipped:
                    x0, x1 = 1.0 - x1, 1.0 - x0
                rows.append([iid, "xclick", mids[cls], 1, f"{x0:.6f}", f"{x1:.6f}", f"{y0:.6f}", f"{y1:.6f}",
                             0, int("T" in flags), int("G" in flags), int("D" in flags), 0])
    with open(sdir / "labels" / "detections.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
                    "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"])
        w.writerows(rows)
    return root


DEMO_PIPELINE = resource("pipelines", "demo.yaml")


class DemoResult:
    def __init__(self):
        self.summary: list[str] = []
        self.exit_code = 0


def run_demo(out: str | Path, *, workers: int | None = None, seed: int = 0, quiet: bool = False) -> DemoResult:
    """Build the source under OUT/source, then run pipelines/demo.yaml: crop -> dedupe -> report -> train."""
    out = Path(out)
    res = DemoResult()
    source = build_source(out / "source")
    tree, runs = out / "tree", out / "runs"
    variables = {"source": str(source), "out": str(tree), "runs": str(runs), "seed": seed,
                 "workers": workers or 2}
    result = run_pipeline(DEMO_PIPELINE, variables=variables, quiet=quiet, force=True)
    res.summary += result.lines()
    res.summary.append(f"source (Open Images layout, real photos): {source}")
    res.summary.append(f"curated tree + manifest.parquet + curate.json: {tree}")
    for p in sorted(tree.glob("**/report.html")):
        res.summary.append(f"QA report: {p}")
    for p in sorted(runs.glob("*/metrics.json")):
        res.summary.append(f"training run: {p.parent}")
    res.exit_code = result.exit_code
    return res
