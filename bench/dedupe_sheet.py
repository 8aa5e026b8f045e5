"""`curate dedupe --sheet`: what the contact sheet costs, against a notebook baseline measured in one run.

    python bench/dedupe_sheet.py [--workers 2] [--repeats 3] [--clusters 5000]

On a temp copy of the real coins-dev slice (../shared/data/coins-dev), after one `find_duplicates`:
  notebook   one process: for every file the sheet shows, PIL open + full decode + thumbnail + JPEG +
             base64 (the thumbnails alone, no page)
  sheet      curate.dedupe.sheet.write_sheet: reduced-size decoding in parallel, the page rendered and
             written (1 and N workers)
  dedupe     the find_duplicates run itself, for scale (the sheet's share of a dedupe --sheet run)
Then a synthetic result with --clusters clusters over the same files (half near, half exact, a third
of them label conflicts) shows that the page stays bounded (caps per section) however many clusters there
are. Prints seconds (best of --repeats; the machine may be shared) and ratios to the notebook baseline.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.dedupe.find import Cluster, find_duplicates  # noqa: E402
from curate.dedupe.sheet import THUMB_SIDE, shown_paths, write_sheet  # noqa: E402

COINS = REPO.parent / "shared" / "data" / "coins-dev"


def notebook(root: Path, paths: list[str]) -> float:
    t = time.perf_counter()
    for p in sorted(set(paths)):  # each file once, as the sheet does
        with Image.open(root / p) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            base64.b64encode(buf.getvalue())
    return time.perf_counter() - t


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def synthetic(res, n: int):
    """A result with n clusters over the real files: the shape of a big, look-alike-dense set."""
    paths = sorted(res.files["path"])
    clusters = []
    for i in range(n):
        members = sorted({paths[(i * 7 + k * 13) % len(paths)] for k in range(2 + i % 4)})
        labels = ["a", "b"] if i % 3 == 0 else ["a"]
        kind = "near" if i % 2 else "exact"
        keep, rest = members[0], members[1:]
        links = {m: {"distance": (i + k) % 13, "similarity": 0.9 + (k % 10) / 100} for k, m in enumerate(rest)}
        clusters.append(Cluster(id=i, kind=kind, members=members, keep=keep, splits=["train", "val"][: 1 + i % 2],
                                labels=labels, cross_split=bool(i % 2), label_conflict=len(labels) > 1,
                                max_distance=12, remove=rest, duplicate_of={m: keep for m in rest}, links=links))
    return replace(res, clusters=clusters)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clusters", type=int, default=5000)
    args = ap.parse_args()
    if not (COINS / "train").is_dir():
        sys.exit(f"coins-dev not found at {COINS}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "coins"
        shutil.copytree(COINS, root)
        t = time.perf_counter()
        res = find_duplicates(root, workers=args.workers, quiet=True)
        dedupe_s = time.perf_counter() - t
        paths = shown_paths(res.clusters)
        print(f"coins-dev: {len(res.files)} files, {len(res.clusters)} clusters, {len(paths)} thumbnails on the sheet")
        base = best(lambda: notebook(root, paths), args.repeats)
        print(f"notebook (PIL, 1 process)        {base:6.2f} s  1.00x")
        for w in sorted({1, args.workers}):
            s = best(lambda w=w: write_sheet(res, root, Path(tmp) / "s.html", workers=w, quiet=True), args.repeats)
            print(f"write_sheet, {w} worker(s)          {s:6.2f} s  {base / s:4.2f}x")
        size = (Path(tmp) / "s.html").stat().st_size
        print(f"find_duplicates (cold, {args.workers} workers)   {dedupe_s:6.2f} s  (the sheet adds "
              f"{s / dedupe_s:.0%} to a dedupe --sheet run); sheet {size / 1e6:.2f} MB")
        big = synthetic(res, args.clusters)
        n = len(shown_paths(big.clusters))
        base = notebook(root, shown_paths(big.clusters))
        print(f"{args.clusters} synthetic clusters: {n} thumbnails shown (capped), "
              f"{len(set(shown_paths(big.clusters)))} distinct files; notebook {base:.2f} s")
        for w in sorted({1, args.workers}):
            s = best(lambda w=w: write_sheet(big, root, Path(tmp) / "big.html", workers=w, quiet=True), 1)
            size = (Path(tmp) / "big.html").stat().st_size
            print(f"write_sheet, {w} worker(s)          {s:6.2f} s  {base / s:4.2f}x  sheet {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
