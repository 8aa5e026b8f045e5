"""Benchmark `curate kaggle --source ZIP` against the notebook baseline (unzip + copy, no checks).

Builds a world-coins-shaped zip of N real JPEGs (crops of the sample photos, ~200-400 px like the
coin photos), then times, in the same run:
  baseline   zipfile.extractall + shutil.copytree of the split folders (no verification at all)
  verifying  the same, then Pillow open + full decode + sha256 of every file (a careful notebook)
  curate -jK safe extract + layout detection + sha256 + full decode of every image + manifest
and prints each (best of 3) as a ratio of the baseline. Usage: [BENCH_TMP=/dev/shm] python bench/kaggle_import.py [N] [WORKERS...]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from PIL import Image

from curate.sources.kaggle import import_dataset
from curate.sources.samples import PHOTOS, load_photo

REPEATS = 3  # best of, for each variant: the machine may be shared


def build_zip(path: Path, n: int) -> None:
    photos = [load_photo(name) for name in PHOTOS if name not in ("horse",)]
    splits = ["train"] * 8 + ["validation", "test"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # Kaggle zips of JPEGs barely compress
        for i in range(n):
            arr = photos[i % len(photos)]
            h, w = arr.shape[:2]
            side = min(h, w) // 2 + (i * 7) % (min(h, w) // 2)
            y, x = (i * 13) % (h - side + 1), (i * 29) % (w - side + 1)
            buf = io.BytesIO()
            Image.fromarray(arr[y:y + side, x:x + side]).save(buf, "JPEG", quality=90)
            cid = i % 50 + 1
            z.writestr(f"coins/data/{splits[i % 10]}/{cid}/{i:05d}.jpg", buf.getvalue())
        z.writestr("coins/data/cat_to_name.json", json.dumps({str(c): f"{c} Cents,Test dollar,land" for c in range(1, 51)}))


def baseline(zpath: Path, work: Path) -> float:
    t = time.perf_counter()
    with zipfile.ZipFile(zpath) as z:
        z.extractall(work / "x")
    for split in ("train", "validation", "test"):
        shutil.copytree(work / "x" / "coins" / "data" / split, work / "tree" / split)
    return time.perf_counter() - t


def baseline_verified(zpath: Path, work: Path) -> float:
    """The careful notebook: unzip, copy, then open + fully decode + hash every image with Pillow."""
    t = time.perf_counter()
    baseline(zpath, work)
    for f in sorted((work / "tree").rglob("*.jpg")):
        data = f.read_bytes()
        hashlib.sha256(data)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    workers = [int(w) for w in sys.argv[2:]] or [1, 2]
    tmp_root = os.environ.get("BENCH_TMP") or None  # e.g. /dev/shm to leave disk noise out
    with tempfile.TemporaryDirectory(dir=tmp_root) as d:
        d = Path(d)
        zpath = d / "coin-images.zip"
        build_zip(zpath, n)
        mb = zpath.stat().st_size / 1e6
        base = min(baseline(zpath, d / f"base{r}") for r in range(REPEATS))
        print(f"{n} JPEGs, {mb:.1f} MB zip, in {d.parent}")
        base_v = min(baseline_verified(zpath, d / f"basev{r}") for r in range(REPEATS))
        print(f"baseline (unzip + copy, no checks): {base:6.2f} s  {n / base:7.0f} img/s  1.00x")
        print(f"baseline + Pillow decode + sha256:  {base_v:6.2f} s  {n / base_v:7.0f} img/s  {base_v / base:.2f}x")
        for w in workers:
            times = []
            for r in range(REPEATS):
                t = time.perf_counter()
                res = import_dataset("bench/coins", d / f"out{w}-{r}", source=zpath, label_names=True, workers=w,
                                     quiet=True)
                times.append(time.perf_counter() - t)
            dt = min(times)
            assert sum(res.counts.values()) == n and not res.problems, res.problems[:3]
            print(f"curate kaggle -j{w} (verified):       {dt:6.2f} s  {n / dt:7.0f} img/s  {dt / base:.2f}x"
                  f"  ({dt / base_v:.2f}x the verifying baseline)")


if __name__ == "__main__":
    main()
