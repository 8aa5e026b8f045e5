"""Crop throughput: curate (1 and N workers) vs. a naive notebook baseline, measured in one run.

    python bench/crop.py [--images 200] [--width 2400] [--height 1800] [--boxes 4] [--workers N]

Generates high-resolution JPEGs (real photos from installed packages, upscaled) in a temp folder with an
Open Images-layout detections.csv, then times:
  naive     pandas row loop, one cv2.imread per box, crop, INTER_AREA resize, corner-median letterbox, imwrite
  curate    decode once per image (+ reduced-size JPEG decoding), same crop/letterbox, 1 worker
  curate-full  the same without reduced-size decoding (isolates the decode-once gain)
  curate-N  N workers
and prints crops/s and ratios against the naive baseline.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.build import BuildParams  # noqa: E402
from curate.samples import load_photo  # noqa: E402
from curate.sources import openimages as oi  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle", "grace_hopper", "china", "flower"]


def make_source(root: Path, n: int, w: int, h: int, boxes: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sdir = root / "train"
    for sub in ("data", "labels", "metadata"):
        (sdir / sub).mkdir(parents=True, exist_ok=True)
    (sdir / "metadata" / "classes.csv").write_text("/m/01g317,Person\n/m/0jbk,Animal\n")
    bases = [cv2.resize(load_photo(p), (w, h), interpolation=cv2.INTER_CUBIC) for p in PHOTOS]
    rows = []
    for i in range(n):
        img = bases[i % len(bases)].copy()
        img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        iid = f"{i:016x}"
        cv2.imwrite(str(sdir / "data" / f"{iid}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        for _ in range(boxes):
            bw, bh = rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.6)
            x0, y0 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
            mid = "/m/01g317" if rng.random() < 0.5 else "/m/0jbk"
            rows.append([iid, "xclick", mid, 1, x0, x0 + bw, y0, y0 + bh, 0, 0, 0, 0, 0])
    with open(sdir / "labels" / "detections.csv", "w", newline="") as f:
        w_ = csv.writer(f)
        w_.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
                     "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"])
        w_.writerows(rows)
    return root


def naive(source: Path, out: Path, size: int = 224) -> int:
    """What a notebook does: one row at a time, re-reading the photo for every box."""
    import pandas as pd

    df = pd.read_csv(source / "train" / "labels" / "detections.csv", dtype={"ImageID": str})
    n = 0
    for i, row in df.iterrows():
        img = cv2.imread(str(source / "train" / "data" / f"{row.ImageID}.jpg"))
        h, w = img.shape[:2]
        x0, x1 = int(row.XMin * w), int(row.XMax * w)
        y0, y1 = int(row.YMin * h), int(row.YMax * h)
        crop = img[y0:y1, x0:x1]
        t = size / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * t)), max(1, round(crop.shape[0] * t))),
                          interpolation=cv2.INTER_AREA)
        corners = np.concatenate([crop[:4, :4].reshape(-1, 3), crop[:4, -4:].reshape(-1, 3),
                                  crop[-4:, :4].reshape(-1, 3), crop[-4:, -4:].reshape(-1, 3)])
        canvas = np.empty((size, size, 3), np.uint8)
        canvas[:] = np.median(corners, axis=0)
        oy = np.random.randint(0, size - crop.shape[0] + 1)
        ox = np.random.randint(0, size - crop.shape[1] + 1)
        canvas[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
        d = out / row.LabelName.replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{row.ImageID}_{i}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        n += 1
    return n


def run_curate(source: Path, out: Path, workers: int, reduced: bool) -> int:
    prep = oi.prepare("person,animal", source=source)
    res = oi.build(prep, out, BuildParams(reduced_decode=reduced, shard_size=64), workers=workers, quiet=True)
    return len(res.manifest)


def parse_args(doc: str, images: int) -> argparse.Namespace:
    """The options every crop benchmark takes (size of the generated source, workers)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=images)
    ap.add_argument("--width", type=int, default=2400)
    ap.add_argument("--height", type=int, default=1800)
    ap.add_argument("--boxes", type=int, default=4)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    return ap.parse_args()


def timed(fn, *args) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t, n


def main() -> None:
    a = parse_args(__doc__, images=200)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"generating {a.images} JPEGs of {a.width}x{a.height} with {a.boxes} boxes each …", flush=True)
        src = make_source(tmp / "src", a.images, a.width, a.height, a.boxes)
        rows = []
        t, n = timed(naive, src, tmp / "naive")
        rows.append(("naive (row loop, imread per box)", t, n))
        base = n / t
        t, n = timed(run_curate, src, tmp / "c1", 1, True)
        rows.append(("curate, 1 worker", t, n))
        t, n = timed(run_curate, src, tmp / "cf", 1, False)
        rows.append(("curate, 1 worker, full-size decode", t, n))
        if a.workers > 1:
            t, n = timed(run_curate, src, tmp / "cn", a.workers, True)
            rows.append((f"curate, {a.workers} workers", t, n))

        print(f"\n{'method':40s} {'crops':>6s} {'seconds':>8s} {'crops/s':>8s} {'vs naive':>9s}")
        for name, t, n in rows:
            print(f"{name:40s} {n:6d} {t:8.2f} {n / t:8.1f} {n / t / base:8.1f}x")
        one = rows[1][2] / rows[1][1]
        if a.workers > 1:
            print(f"\nscaling {a.workers} workers vs 1: {rows[-1][2] / rows[-1][1] / one:.2f}x "
                  "(includes starting the process pool, about a second per command)")


if __name__ == "__main__":
    main()
