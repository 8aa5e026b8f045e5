"""Detection-set throughput: curate --task detect vs. a naive notebook conversion, measured in one run.

    python bench/detect.py [--images 80] [--width 2400] [--height 1800] [--boxes 4] [--workers N]

Generates high-resolution JPEGs (real photos from installed packages, upscaled; bench/crop.py's source)
in a temp folder with an Open Images-layout detections.csv, then times:
  naive         pandas groupby per image, PIL open + exif_transpose + save (always re-encoded), YOLO text
  curate-copy   curate YOLO set, bytes copied (each JPEG still verified by a 1/8-scale decode), 1 worker
  curate-resize curate YOLO set with --image-size 1024 (reduced DCT decode + INTER_AREA), 1 worker
  naive-resize  the naive loop with PIL thumbnail(1024) before saving
  curate-N      curate-copy with N workers
and prints images/s and ratios against the naive baseline of the same kind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crop import make_source  # noqa: E402

from curate.detect import DetectParams, build_detect, prepare_detect  # noqa: E402


def naive(src: Path, out: Path, size: int | None) -> int:
    """What a notebook does: every image opened, turned upright, saved again; labels from the CSV."""
    df = pd.read_csv(src / "train" / "labels" / "detections.csv")
    classes = {"/m/01g317": 0, "/m/0jbk": 1}
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    n = 0
    for image_id, g in df.groupby("ImageID"):
        im = ImageOps.exif_transpose(Image.open(src / "train" / "data" / f"{image_id}.jpg")).convert("RGB")
        if size:
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
        im.save(out / "images" / f"{image_id}.jpg", quality=95)
        lines = [f"{classes[r.LabelName]} {(r.XMin + r.XMax) / 2:.6f} {(r.YMin + r.YMax) / 2:.6f} "
                 f"{r.XMax - r.XMin:.6f} {r.YMax - r.YMin:.6f}" for r in g.itertuples()]
        (out / "labels" / f"{image_id}.txt").write_text("\n".join(lines) + "\n")
        n += 1
    return n


def run_curate(src: Path, out: Path, workers: int, size: int | None) -> int:
    prep = prepare_detect("person,animal", source=src, quiet=True)
    res = build_detect(prep, out, DetectParams(label_format="yolo", image_size=size, shard_size=50),
                       workers=workers, quiet=True)
    return sum(c["images"] for c in res.counts.values())


def timed(fn, *args) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=80)
    ap.add_argument("--width", type=int, default=2400)
    ap.add_argument("--height", type=int, default=1800)
    ap.add_argument("--boxes", type=int, default=4)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-bench-detect-") as tmp:
        tmp = Path(tmp)
        src = make_source(tmp / "src", a.images, a.width, a.height, a.boxes)
        (src / "train" / "metadata" / "hierarchy.json").write_text('{"LabelName": "/m/0bl9f"}')
        rows = []
        for name, fn, args in [
            ("naive", naive, (src, tmp / "naive", None)),
            ("curate-copy", run_curate, (src, tmp / "copy", 1, None)),
            ("naive-resize", naive, (src, tmp / "naive-r", 1024)),
            ("curate-resize", run_curate, (src, tmp / "resize", 1, 1024)),
            (f"curate-{a.workers}", run_curate, (src, tmp / "copy-n", a.workers, None)),
        ]:
            secs, n = timed(fn, *args)
            rows.append((name, secs, n))
        base = {"naive": rows[0][1], "naive-resize": rows[2][1]}
        print(f"{a.images} images {a.width}x{a.height}, {a.boxes} boxes each (machine shared: compare ratios)")
        for name, secs, n in rows:
            ref = base["naive-resize"] if "resize" in name else base["naive"]
            print(f"{name:14s} {secs:7.2f} s  {n / secs:7.1f} images/s  x{ref / secs:5.2f} vs "
                  f"{'naive-resize' if 'resize' in name else 'naive'}")
        shutil.rmtree(tmp / "src")


if __name__ == "__main__":
    main()
