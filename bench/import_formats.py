"""Benchmark `curate import` on CIFAR-10 batches against the notebook baseline, measured in one run.

Writes a cifar-10-batches-py/ folder of N real 32x32 RGB crops of the sample photos (Python 2 pickles,
as the real archive), then times:
  baseline    unpickle + reshape + PIL PNG save into class folders (what a notebook does; no checks)
  curate -jK  the same read, PNG + sha256 + decode of every image, manifest + classes.json
  + val 0.1   curate -jK with --val-ratio 0.1 (perceptual hashes + the stratified, group-aware deal)
and prints each (best of 3) as a ratio of the baseline.
Usage: [BENCH_TMP=/dev/shm] python bench/import_formats.py [N] [WORKERS...]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from import_data import CIFAR10_NAMES, write_cifar10  # noqa: E402

from curate.sources.formats.cifar import load  # noqa: E402
from curate.sources.importer import import_source  # noqa: E402

REPEATS = 3  # best of, for each variant: the machine may be shared


def baseline(src: Path, out: Path) -> None:
    """The notebook way: unpickle each batch and save every image as PNG in its class folder."""
    names = [n.decode() for n in load(src / "batches.meta")["label_names"]]
    for b in sorted(p for p in src.iterdir() if p.name != "batches.meta"):
        d = load(b)
        imgs = d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        split = "test" if b.name.startswith("test") else "train"
        for i, (img, lab) in enumerate(zip(imgs, d["labels"], strict=True)):
            folder = out / split / names[lab]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img)).save(folder / f"{b.name}_{i:05d}.png")


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    workers = [int(w) for w in sys.argv[2:]] or [1, os.cpu_count() or 1]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        per = n // 3
        src, _ = write_cifar10(tmp / "src", per_batch=per, batches=2)
        print(f"{3 * per} CIFAR images ({len(CIFAR10_NAMES[:4])} classes) in 3 batches, in {tmp}")

        def fresh(name: str) -> Path:
            shutil.rmtree(tmp / name, ignore_errors=True)
            return tmp / name

        base = best(lambda: baseline(src, fresh("base")))
        total = 3 * per
        print(f"baseline (unpickle + PNG save, no checks): {base:6.2f} s  {total / base:7.0f} img/s  1.00x")
        for w in workers:
            dt = best(lambda w=w: import_source(src, fresh("c"), workers=w, quiet=True))
            print(f"curate import -j{w} (PNG + sha256 + decode): {dt:6.2f} s  {total / dt:7.0f} img/s  {dt / base:.2f}x")
        w = workers[-1]
        dt = best(lambda: import_source(src, fresh("v"), val_ratio=0.1, workers=w, quiet=True))
        print(f"curate import -j{w} --val-ratio 0.1:         {dt:6.2f} s  {total / dt:7.0f} img/s  {dt / base:.2f}x")


if __name__ == "__main__":
    main()
