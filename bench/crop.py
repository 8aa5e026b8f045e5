"""Crop throughput: curate's whole command vs. a notebook loop and a decode-once reference, in one run.

    python bench/crop.py [--images 1100] [--workers 2] [--repeats 1]          # real-photo-like (default)
    python bench/crop.py --mode large [--images 200]                          # 2400x1800, 4 boxes each
    python bench/crop.py --source ~/fiftyone/open-images-v7 --split validation --classes person

Modes (a temp folder in Open Images layout, real class list and hierarchy):
  real   ~1024 px JPEGs at quality 90 tiled from real package photos at their own resolution, 1 + Poisson(1)
         Person boxes per photo (2.0 on average), the box's longer side drawn from the Open Images validation
         percentiles 55 / 127 / 320 / 635 / 951 px (10/25/50/75/90th)
  large  the sample photos upscaled to 2400x1800, 4 random boxes per photo (the older bench)
  --source DIR  a real Open Images copy in FiftyOne's layout (DIR/<split>/labels/detections.csv, metadata/,
         data/<ImageID>.jpg): the boxes curate selects for --classes are given to the loops as a small CSV

Rows, each timed in this run:
  notebook     pandas iterrows, one cv2.imread per box, crop, INTER_AREA resize, corner-median fill, random
               offset, cv2.imwrite at quality 95
  reference    each photo decoded once at full size (libjpeg-turbo via OpenCV), one 224 px JPEG per crop
  curate -j1   `python -m curate openimages … -j 1` as a subprocess: the whole command (imports, classes,
               CSV, planning, crops, manifest)
  curate -jN   the same with N workers (pool start included)
  fixed cost   `curate openimages --dry-run` on a 10-photo source (imports, classes, CSV, planning)
Targets (issue 15) are printed with their measured ratios; run on an idle machine to judge them.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.sources.samples import load_photo  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle", "grace_hopper", "china", "flower"]
PERSON = "/m/01g317"
# longer side of an Open Images Person box (px in ~1024 px photos) at these quantiles
BOX_QUANTILES = ([0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0], [20, 55, 127, 320, 635, 951, 1024])
HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
          "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
SIZE, MIN_SIZE, QUALITY = 224, 32, 95


def _metadata(sdir: Path) -> None:
    """The real Open Images class list and hierarchy when ../shared has them, else the demo subset."""
    shared = ROOT.parent / "shared" / "openimages"
    meta = sdir / "metadata"
    if (shared / "class-descriptions-boxable.csv").exists():
        shutil.copy(shared / "class-descriptions-boxable.csv", meta / "classes.csv")
        shutil.copy(shared / "fiftyone-hierarchy.json", meta / "hierarchy.json")
    else:
        shutil.copy(ROOT / "manifests" / "demo" / "classes.csv", meta / "classes.csv")
        shutil.copy(ROOT / "manifests" / "demo" / "hierarchy.json", meta / "hierarchy.json")


def _tiled_photo(rng, bases: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """A w x h photo of 2 x 2 tiles, each a random crop of a real photo at about its own resolution."""
    img = np.empty((h, w, 3), np.uint8)
    xs, ys = [0, w // 2, w], [0, h // 2, h]
    for i in range(2):
        for j in range(2):
            tw, th = xs[j + 1] - xs[j], ys[i + 1] - ys[i]
            base = bases[rng.integers(len(bases))]
            s = max(tw / base.shape[1], th / base.shape[0]) * rng.uniform(1.0, 1.3)
            big = cv2.resize(base, (max(tw, round(base.shape[1] * s)), max(th, round(base.shape[0] * s))),
                             interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
            y0 = rng.integers(big.shape[0] - th + 1)
            x0 = rng.integers(big.shape[1] - tw + 1)
            tile = big[y0:y0 + th, x0:x0 + tw]
            img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = tile[:, ::-1] if rng.random() < 0.5 else tile
    return img


def _box_sizes(rng, n: int) -> list[np.ndarray]:
    """Longer sides of each photo's boxes: 1 + Poisson(1) boxes a photo, sizes drawn from BOX_QUANTILES and
    dealt (largest first, with a little noise) to the photos with fewest boxes, as in Open Images, where
    a photo with one person shows them large: about half the photos then need at most 1/2 resolution."""
    k = 1 + rng.poisson(1.0, n)
    sizes = np.interp(rng.random(k.sum()), *BOX_QUANTILES)
    sizes = sizes[np.argsort(-(np.log(sizes) + rng.normal(0, 0.15, len(sizes))))]
    order = np.argsort(k + rng.random(n), kind="stable")  # fewest boxes first
    dealt = np.split(sizes, np.cumsum(k[order])[:-1])
    out: list[np.ndarray] = [np.empty(0)] * n
    for photo, s in zip(order, dealt, strict=True):
        out[photo] = s
    return out


def _real_box(rng, long_side: float, w: int, h: int) -> list[float]:
    short = long_side * rng.uniform(0.35, 1.0)
    tall = rng.random() < 0.7 if long_side <= min(w, h) else h > w  # people stand, unless it cannot fit
    bw, bh = (short, long_side) if tall else (long_side, short)
    bw, bh = min(bw, w), min(bh, h)
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return [x0 / w, (x0 + bw) / w, y0 / h, (y0 + bh) / h]


def make_source(root: Path, n: int, mode: str, seed: int = 0) -> Path:
    """Open Images layout under root/train: n JPEGs (q90) and their Person boxes."""
    rng = np.random.default_rng(seed)
    sdir = root / "train"
    for sub in ("data", "labels", "metadata"):
        (sdir / sub).mkdir(parents=True, exist_ok=True)
    _metadata(sdir)
    bases = [load_photo(p) for p in PHOTOS]
    if mode == "large":
        bases = [cv2.resize(b, (2400, 1800), interpolation=cv2.INTER_CUBIC) for b in bases]
    rows, sizes = [], _box_sizes(rng, n)
    for i in range(n):
        iid = f"{i:016x}"
        if mode == "large":
            img, w, h = bases[i % len(bases)], 2400, 1800
            boxes = []
            for _ in range(4):
                bw, bh = rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.6)
                x0, y0 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
                boxes.append([x0, x0 + bw, y0, y0 + bh])
        else:
            w, h = [(1024, 768), (768, 1024), (1024, 683), (1024, 576)][rng.integers(4)]
            img = _tiled_photo(rng, bases, w, h)
            boxes = [_real_box(rng, side, w, h) for side in sizes[i]]
        cv2.imwrite(str(sdir / "data" / f"{iid}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows += [[iid, "xclick", PERSON, 1, *b, 0, 0, 0, 0, 0] for b in boxes]
    _write_csv(sdir / "labels" / "detections.csv", rows)
    return root


def _write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def describe(source: Path, split: str, classes: str, work: Path) -> tuple[Path, Path, str]:
    """(data folder, CSV of the boxes curate selects, summary): what the loops get for this source."""
    from curate.crop import letterbox as C
    from curate.sources import openimages as oi

    prep = oi.prepare(classes, source=source, split=split)
    boxes = prep.chosen.boxes
    rows = [[r.ImageID, "", r.LabelName, 1, r.XMin, r.XMax, r.YMin, r.YMax, 0, 0, 0, 0, 0]
            for r in boxes.itertuples()]
    sel = work / "selected.csv"
    _write_csv(sel, rows)
    data = Path(prep.layout.data_dir)
    half = quarter = 0
    for iid, g in boxes.groupby("ImageID"):
        with open(data / f"{iid}.jpg", "rb") as f:
            from PIL import Image

            w, h = Image.open(f).size
        need = max(C.needed_scale(C.pixel_box(b.XMin, b.XMax, b.YMin, b.YMax, w, h), SIZE) for b in g.itertuples())
        half += need <= 0.5
        quarter += need <= 0.25
    n_img = boxes.ImageID.nunique()
    mb = sum((data / f"{i}.jpg").stat().st_size for i in boxes.ImageID.unique()) / 2**20
    text = (f"{n_img} photos ({mb / max(n_img, 1) * 1024:.0f} KB each), {len(boxes)} boxes "
            f"({len(boxes) / max(n_img, 1):.2f} per photo); photos needing at most 1/2 resolution: "
            f"{half / max(n_img, 1):.0%}, at most 1/4: {quarter / max(n_img, 1):.0%}")
    return data, sel, text


def _letterbox(crop: np.ndarray, rng) -> np.ndarray:
    t = SIZE / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * t)), max(1, round(crop.shape[0] * t))),
                      interpolation=cv2.INTER_AREA if t <= 1 else cv2.INTER_CUBIC)
    corners = np.concatenate([crop[:4, :4].reshape(-1, 3), crop[:4, -4:].reshape(-1, 3),
                              crop[-4:, :4].reshape(-1, 3), crop[-4:, -4:].reshape(-1, 3)])
    canvas = np.empty((SIZE, SIZE, 3), np.uint8)
    canvas[:] = np.median(corners, axis=0)
    oy = rng.integers(0, SIZE - crop.shape[0] + 1)
    ox = rng.integers(0, SIZE - crop.shape[1] + 1)
    canvas[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return canvas


def _pixels(row, w: int, h: int) -> tuple[int, int, int, int] | None:
    x0, x1, y0, y1 = int(row.XMin * w), int(row.XMax * w), int(row.YMin * h), int(row.YMax * h)
    return None if min(x1 - x0, y1 - y0) < MIN_SIZE else (x0, x1, y0, y1)


def notebook(data: Path, boxes_csv: Path, out: Path) -> int:
    """What a notebook does: one row at a time, re-reading the photo for every box."""
    import pandas as pd

    df = pd.read_csv(boxes_csv, dtype={"ImageID": str})
    rng, n = np.random.default_rng(0), 0
    for i, row in df.iterrows():
        img = cv2.imread(str(data / f"{row.ImageID}.jpg"))
        box = _pixels(row, img.shape[1], img.shape[0])
        if box is None:
            continue
        x0, x1, y0, y1 = box
        d = out / row.LabelName.replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{row.ImageID}_{i}.jpg"), _letterbox(img[y0:y1, x0:x1], rng),
                    [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        n += 1
    return n


def reference(data: Path, boxes_csv: Path, out: Path) -> int:
    """Decode each photo once at full size (libjpeg-turbo), then one 224 px JPEG per crop."""
    import pandas as pd

    df = pd.read_csv(boxes_csv, dtype={"ImageID": str})
    rng, n = np.random.default_rng(0), 0
    out.mkdir(parents=True, exist_ok=True)
    for iid, g in df.groupby("ImageID", sort=False):
        img = cv2.imread(str(data / f"{iid}.jpg"))
        for k, row in enumerate(g.itertuples()):
            box = _pixels(row, img.shape[1], img.shape[0])
            if box is None:
                continue
            x0, x1, y0, y1 = box
            cv2.imwrite(str(out / f"{iid}_{k}.jpg"), _letterbox(img[y0:y1, x0:x1], rng),
                        [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            n += 1
    return n


def curate_cli(source: Path, split: str, classes: str, out: Path, workers: int, *extra: str,
               tree: Path = ROOT) -> int:
    """The whole command in a fresh interpreter (curate from `tree`); returns the number of crops."""
    cmd = [sys.executable, "-m", "curate", "-q", "openimages", "--classes", classes, "--source", str(source),
           "--split", split, "-j", str(workers), *extra]
    cmd += ["--dry-run"] if out is None else ["--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)  # -m puts the cwd first on sys.path
    if r.returncode != 0:
        raise SystemExit(f"curate failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    if out is None:
        return 0
    import pyarrow.parquet as pq

    return pq.read_metadata(out / "manifest.parquet").num_rows


def _cpu() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# where the time of `curate openimages -j 1` goes: cProfile functions -> stage (first match wins)
STAGES = [("JPEG decode (imdecode)", ["<imdecode>"]), ("resize (INTER_AREA)", ["<resize>"]),
          ("JPEG encode (imencode)", ["<imencode>"]), ("sha256", ["openssl_sha256"]),
          ("letterbox fill + paste", ["copyMakeBorder", "corner_fill", "partition", "median", "letterbox"]),
          ("colour conversion", ["<cvtColor>"]),
          ("file I/O (read, write, mkdir, rename, fsync)", ["io.open", "'read' of", "'write' of", "posix.mkdir",
                                                            "posix.replace", "posix.fsync", "posix.stat"]),
          ("imports", ["_imp.", "marshal.loads", "builtins.compile", "__build_class__", "_find_and_load"])]


def profile(source: Path, split: str, classes: str, out: Path, tree: Path = ROOT) -> list[tuple[str, float]]:
    """cProfile of the whole command with one worker, grouped into STAGES (seconds of own time)."""
    import pstats

    prof = out.with_suffix(".prof")
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "curate", "-q", "openimages", "--classes",
           classes, "--source", str(source), "--split", split, "-j", "1", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    stats = pstats.Stats(str(prof)).stats
    sums = dict.fromkeys([name for name, _ in STAGES] + ["everything else (Python)"], 0.0)
    total = 0.0
    for (file, line, fn), (_, _, own, _, _) in stats.items():
        total += own
        where = f"{file}:{line}({fn})"
        stage = next((name for name, keys in STAGES if any(k in where for k in keys)), "everything else (Python)")
        sums[stage] += own
    return [*sums.items(), ("total (under cProfile)", total)]


def timed(fn, *args) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, crops). On a shared machine CPU seconds are the steadier measure."""
    t, c = time.perf_counter(), _cpu()
    n = fn(*args)
    return time.perf_counter() - t, _cpu() - c, n


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["real", "large"], default="real")
    ap.add_argument("--images", type=int, default=None, help="photos to generate (real: 1100, large: 200)")
    ap.add_argument("--source", type=Path, help="a real Open Images copy (FiftyOne layout) instead")
    ap.add_argument("--split", default="validation", help="with --source")
    ap.add_argument("--classes", default="person")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="run every row this many times (spread of ratios)")
    ap.add_argument("--profile", action="store_true", help="only print where `curate -j 1` spends its time")
    ap.add_argument("--compare", type=Path, help="another curate checkout (e.g. `git worktree add /tmp/old main`): "
                    "its -j1 and -jN rows too, and its fixed cost")
    return ap.parse_args()


def one_round(data, sel, source, split, classes, workers, tmp: Path, compare: Path | None
              ) -> dict[str, tuple[float, float, int]]:
    rows = {"notebook": timed(notebook, data, sel, tmp / "nb"), "reference": timed(reference, data, sel, tmp / "ref")}
    trees = [("curate", ROOT)] + ([("compared", compare)] if compare else [])
    for j in (1, workers):
        for name, tree in trees:
            out = tmp / f"{name}-j{j}"
            rows[f"{name} -j{j}"] = timed(lambda o=out, j=j, t=tree: curate_cli(source, split, classes, o, j, tree=t))
    for p in tmp.iterdir():
        if p.name != "src" and p.name != "ten" and p.is_dir():
            shutil.rmtree(p)
    return rows


def fixed_cost(tmp: Path, classes: str, tree: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU seconds of `curate openimages --dry-run` on a 10-photo source (best of 3)."""
    src = tmp / "ten" if (tmp / "ten").exists() else make_source(tmp / "ten", 10, "real", seed=1)
    runs = [timed(lambda: curate_cli(src, "train", classes, None, 1, tree=tree)) for _ in range(3)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    a = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # every command runs from compiled bytecode, as an installed package does (a checkout run with
        # PYTHONDONTWRITEBYTECODE=1 would recompile curate's modules in each run: ~0.06 s)
        for tree in (ROOT, a.compare) if a.compare else (ROOT,):
            compileall.compile_dir(str(Path(tree) / "curate"), quiet=1)
        if a.source:
            source, split = a.source.expanduser(), a.split
        else:
            n = a.images or (1100 if a.mode == "real" else 200)
            print(f"generating {n} photos ({a.mode} mode) …", flush=True)
            source, split = make_source(tmp / "src", n, a.mode), "train"
        data, sel, text = describe(source, split, a.classes, tmp)
        print(text, flush=True)
        if a.profile:
            trees = [("curate", ROOT)] + ([("compared", a.compare)] if a.compare else [])
            got = {name: profile(source, split, a.classes, tmp / f"prof-{name}", tree) for name, tree in trees}
            print(f"\n{'stage (own time, s)':46s}" + "".join(f"{name:>10s}" for name in got))
            for k, (stage, _) in enumerate(got["curate"]):
                print(f"{stage:46s}" + "".join(f"{rows[k][1]:10.2f}" for rows in got.values()))
            return
        rounds = [one_round(data, sel, source, split, a.classes, a.workers, tmp, a.compare)
                  for _ in range(a.repeats)]
        fixed = {"curate": fixed_cost(tmp, a.classes)}
        if a.compare:
            fixed["compared"] = fixed_cost(tmp, a.classes, a.compare)
    report(rounds, a.workers, fixed)


def spread(v: list[float]) -> str:
    return f"{min(v):.2f}–{max(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def report(rounds: list[dict], workers: int, fixed: dict[str, tuple[float, float]]) -> None:
    print(f"\n{'method':16s} {'crops':>6s} {'wall s':>7s} {'crops/s':>8s} {'vs notebook':>11s} {'vs reference':>12s}"
          f" {'CPU s':>7s} {'crops/CPU-s':>11s} {'vs reference':>12s}")
    for k, rows in enumerate(rounds):
        nb, ref = (rows[m][2] / rows[m][0] for m in ("notebook", "reference"))
        ref_cpu = rows["reference"][2] / rows["reference"][1]
        for name, (t, c, n) in rows.items():
            cpu = f" {c:7.2f} {n / c:11.1f} {n / c / ref_cpu:11.2f}x" if name.endswith("-j1") or "-j" not in name \
                else f" {'n/a':>7s}"  # pool workers are children of the fork server, not counted here
            print(f"{name:16s} {n:6d} {t:7.2f} {n / t:8.1f} {n / t / nb:10.2f}x {n / t / ref:11.2f}x" + cpu)
        if k < len(rounds) - 1:
            print()
    def ratio(a: str, b: str, col: int) -> list[float]:  # (crops per second of a) / (of b), each round
        return [(r[a][2] / r[a][col]) / (r[b][2] / r[b][col]) for r in rounds]

    crops = rounds[0]["curate -j1"][2]
    jn = f"curate -j{workers}"
    print("\ntargets (issue 15; judge wall-clock ratios on an idle machine, CPU ones hold under load too):")
    print(f"  curate -j1, whole command >= 0.90 of the decode-once reference: wall {spread(ratio('curate -j1', 'reference', 0))}"
          f", CPU {spread(ratio('curate -j1', 'reference', 1))}"
          f"{'' if crops >= 1500 else f'  (only {crops} crops: the target is for ~2,000)'}")
    for name, (t, c) in fixed.items():
        print(f"  fixed cost ({name}: --dry-run, 10 photos) <= 0.50 s: wall {t:.2f} s, CPU {c:.2f} s")
    print(f"  -j{workers} >= 1.6x -j1, pool start included, on >= 4,000 crops: wall {spread(ratio(jn, 'curate -j1', 0))}"
          f"{'' if crops >= 4000 else f'  (only {crops} crops: use --images 2300)'}")


if __name__ == "__main__":
    main()
