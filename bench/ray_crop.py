"""Crop on the Ray engine vs. the local process pool, measured in one run (same source, same workers).

    python bench/ray_crop.py [--images 60] [--mode large|real] [--workers N]

Uses bench/crop.py's generated source (large: real photos upscaled to 2400x1800, 4 boxes each). Times:
  local-1   curate, local engine, 1 worker (the baseline)
  local-N   curate, local engine, N workers
  ray-N     curate, --engine ray on a local Ray cluster of N CPUs (cluster start timed separately)
and checks that the three manifests are byte-identical. Prints crops/s and ratios against local-1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crop import make_source  # noqa: E402

from curate.crop.build import BuildParams  # noqa: E402
from curate.sources import openimages as oi  # noqa: E402


def run(source: Path, out: Path, workers: int, engine: str) -> tuple[float, int]:
    prep = oi.prepare("person", source=source)
    t = time.perf_counter()
    res = oi.build(prep, out, BuildParams(shard_size=64), workers=workers, engine=engine, quiet=True)
    return time.perf_counter() - t, len(res.manifest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--mode", choices=["large", "real"], default="large")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"generating {a.images} photos ({a.mode} mode) …", flush=True)
        src = make_source(tmp / "src", a.images, a.mode)
        rows = [("local engine, 1 worker", *run(src, tmp / "l1", 1, "local")),
                (f"local engine, {a.workers} workers", *run(src, tmp / "ln", a.workers, "local"))]
        from curate.engine.ray_engine import connect

        t = time.perf_counter()
        connect(None, a.workers)
        start = time.perf_counter() - t
        rows.append((f"ray engine, {a.workers} CPUs (started)", *run(src, tmp / "rn", a.workers, "ray")))
        same = len({(tmp / d / "manifest.parquet").read_bytes() for d in ("l1", "ln", "rn")}) == 1
        base = rows[0][2] / rows[0][1]
        print(f"\n{'method':40s} {'crops':>6s} {'seconds':>8s} {'crops/s':>8s} {'vs local-1':>10s}")
        for name, t, n in rows:
            print(f"{name:40s} {n:6d} {t:8.2f} {n / t:8.1f} {n / t / base:9.2f}x")
        print(f"\nray local cluster start: {start:.1f} s (paid once per process; not in the rows above)")
        print(f"manifests byte-identical across engines: {same}")


if __name__ == "__main__":
    main()
