"""`curate report` throughput (images/s) against a notebook baseline, measured in one run.

    python bench/report.py [--images 300] [--width 1280] [--height 960] [--workers N]

Writes N JPEGs (real photos from installed packages, cropped, resized, noised) into a train/val tree in a
temp folder, then times:
  naive        one process, full-resolution decode per file (PIL), sha256, luma mean/percentiles, histogram
               entropy, Laplacian variance and channel spread on the full image: what a notebook does
  measure      curate's measuring stage (reduced-size JPEG decode, measures at 256 px), no cache; 1 and N workers
  report-cold  the whole `build_report` (measures, dedupe hashes, checks, thumbnails, charts, HTML), empty caches
  report-warm  the same again: every statistic and hash comes from the caches
  cleanvision  (when installed) cleanvision's Imagelab.find_issues on the same folder, 1 and N jobs; it
               computes dark/light/blurry/low-information/grayscale/odd-size/aspect scores and hashes
and prints images/s and the ratio to the naive baseline (best of --repeats, the machine may be shared).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.core.layout import scan_tree
from curate.core.tree import state_dir
from curate.engine.executor import default_workers  # noqa: E402
from curate.report import build_report  # noqa: E402
from curate.report.stats import image_stats  # noqa: E402
from curate.sources.samples import load_photo  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle", "grace_hopper", "china", "flower"]


def make_tree(root: Path, n: int, w: int, h: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    bases = [load_photo(p) for p in PHOTOS]
    for i in range(n):
        k = i % len(bases)
        im = bases[k]
        ih, iw = im.shape[:2]
        ch, cw = int(ih * rng.uniform(0.5, 0.9)), int(iw * rng.uniform(0.5, 0.9))
        y, x = rng.integers(0, ih - ch + 1), rng.integers(0, iw - cw + 1)
        crop = cv2.resize(im[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_CUBIC)
        crop = np.clip(crop.astype(np.int16) + rng.integers(-6, 7, crop.shape, dtype=np.int16), 0, 255)
        split = "val" if i % 5 == 0 else "train"
        d = root / split / PHOTOS[k]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop.astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)
    return root


def naive(root: Path) -> int:
    n = 0
    for p in sorted(root.rglob("*.jpg")):
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        rgb = np.asarray(Image.open(p).convert("RGB"))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        np.percentile(gray, [5, 99])
        gray.mean(), gray.std()
        Image.fromarray(gray).entropy()
        cv2.Laplacian(gray, cv2.CV_64F).var()
        (rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)).mean()
        n += 1
    return n


def cleanvision(root: Path, jobs: int):
    def run():
        from cleanvision import Imagelab

        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            Imagelab(data_path=str(root)).find_issues(n_jobs=jobs, verbose=False)

    return run


def best(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=960)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-report-"))
    try:
        root = make_tree(tmp / "ds", args.images, args.width, args.height)
        files = scan_tree(root).files
        n = len(files)
        cache = state_dir(root)

        def clear():
            shutil.rmtree(cache, ignore_errors=True)

        def measure(workers):
            return lambda: image_stats(root, files, workers=workers, quiet=True, use_cache=False)

        def report(workers):
            return lambda: build_report(root, tmp / "out", workers=workers, quiet=True)

        rows = [("naive (1 process, full decode)", best(lambda: naive(root), args.repeats))]
        if importlib.util.find_spec("cleanvision"):  # pip install cleanvision (the `bench` extra)
            for j in sorted({1, args.workers}):
                rows.append((f"cleanvision find_issues n_jobs={j}", best(cleanvision(root, j), 1)))
        for j in sorted({1, args.workers}):
            rows.append((f"measure -j{j}", best(measure(j), args.repeats)))
        for j in sorted({1, args.workers}):
            rows.append((f"report-cold -j{j}", best(report(j), args.repeats, before=clear)))
            rows.append((f"report-warm -j{j}", best(report(j), args.repeats)))
        base = rows[0][1]
        print(f"{n} JPEGs of {args.width}x{args.height}, best of {args.repeats}")
        print(f"{'variant':34s} {'seconds':>8s} {'images/s':>9s} {'vs naive':>9s}")
        for name, sec in rows:
            print(f"{name:34s} {sec:8.2f} {n / sec:9.1f} {base / sec:8.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
