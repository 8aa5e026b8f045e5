"""Where the time of `find_duplicates` goes on look-alike-dense sets, and the ratio against a plain loop.

Two generated sets (cold cache: a fresh copy per run, so no state folder):
- coins: photos of ../shared/data/coins-dev rotated and relit (look-alikes: other photos of the same
  coins on the same white background), plus a few true copies (re-encoded, 3 % cropped);
- discs: small (32-64 px) generated discs with their own texture on one grey background, a few copies.
Printed per set and threshold: candidate pairs, pairs after the prefilter, pairs verified, seconds per
stage, the ratio of a one-process md5 + imagehash.phash(Image.open(p)) loop over the same files to the
whole find_duplicates(workers=2), and peak memory (RSS of the run and of its workers). Each measured run
is its own process so peak memory is its own.

Usage: python bench/dedupe_cost.py [--coins N] [--discs N] [--thresholds 8,12]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

COINS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coins-dev"


def make_coins(out: Path, n: int, seed: int = 0) -> int:
    """n files in out/train/<label>/ grown from coins-dev; returns how many are planted copies."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(seed)
    src = sorted(COINS.rglob("*.jpg"))
    copies = 0
    for i in range(n):
        p = src[i % len(src)]
        v = i // len(src)
        im = Image.open(p).convert("RGB")
        label = p.parent.name
        if v and i % 40 == 0:  # a true copy of the original: 3 % crop, re-encoded
            w, h = im.size
            im = im.crop((int(w * 0.03), 0, w, h))
            copies += 1
        elif v:  # a look-alike: the same coin rotated and relit on its white background
            im = im.rotate(float(rng.uniform(10, 350)), resample=Image.BICUBIC, fillcolor=(255, 255, 255))
            im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.85, 1.15)))
        d = out / "train" / label
        d.mkdir(parents=True, exist_ok=True)
        im.save(d / f"{v:03d}-{p.stem}.jpg", quality=int(rng.integers(80, 95)))
    return copies


def make_discs(out: Path, n: int, seed: int = 0) -> int:
    """n small look-alikes: a textured disc on one grey background; every 100th is a copy of the last."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    d = out / "train" / "disc"
    d.mkdir(parents=True, exist_ok=True)
    copies, last = 0, None
    for i in range(n):
        if i % 100 == 99 and last is not None:
            a = cv2.GaussianBlur(last, (3, 3), 0)  # a copy: blurred and re-encoded
            copies += 1
        else:
            side = int(rng.integers(32, 65))
            a = np.full((side, side, 3), 128, np.uint8)
            tex = rng.normal(0, 30, (side // 4 + 1, side // 4 + 1)).astype(np.float32)
            tex = cv2.resize(tex, (side, side), interpolation=cv2.INTER_CUBIC)
            mask = np.zeros((side, side), np.uint8)
            c = side // 2 + int(rng.integers(-2, 3))
            cv2.circle(mask, (c, c), int(side * rng.uniform(0.3, 0.42)), 1, -1)
            fill = np.clip(180 + tex, 0, 255).astype(np.uint8)
            a[mask > 0] = np.stack([fill] * 3, -1)[mask > 0]
            last = a
        Image.fromarray(a).save(d / f"{i:06d}.jpg", quality=90)
    return copies


def baseline(root: Path) -> float:
    """The plain loop: md5 of the bytes and imagehash.phash(Image.open(p)) of every file, one process."""
    import imagehash
    from PIL import Image

    t0 = time.perf_counter()
    for p in sorted(root.rglob("*.jpg")):
        hashlib.md5(p.read_bytes()).hexdigest()
        imagehash.phash(Image.open(p))
    return time.perf_counter() - t0


def _sample_rss(peak: list[int], done: threading.Event) -> None:
    """Peak summed RSS of this process and all its descendants (the executor's workers), every 0.1 s."""
    import psutil

    me = psutil.Process()
    while not done.wait(0.1):
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)


def run_once(root: str, threshold: int, mode: str = "full") -> dict:
    """One cold find_duplicates(workers=2), with each stage timed (called in a child process). Modes:
    "full"; "no-prefilter": every candidate pair is scored (the prefilter still runs, its answer is
    ignored); "second-decode": descriptors made in their own pass, not taken from the hashing pass."""
    import curate.dedupe as dd
    import curate.dupverify as dv

    if mode == "no-prefilter":
        dd.PRE_MIN = -np.inf
    if mode == "second-decode":
        verify = dd._verify
        dd._verify = lambda *a: verify(*a[:6])

    times: dict[str, float] = {}
    counts: dict[str, int] = {}

    def timed(name, fn):
        def wrap(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            return out
        return wrap

    def counted(fn):
        def wrap(*a, **k):
            out = fn(*a, **k)
            counts["candidates"] = counts.get("candidates", 0) + len(a[1])
            counts["prefiltered"] = counts.get("prefiltered", 0) + int(np.count_nonzero(out >= dv.PRE_MIN))
            return out
        return wrap

    dd.hash_files = timed("hash", dd.hash_files)
    dd._exact_groups = timed("exact", dd._exact_groups)
    dd._candidates = timed("search", dd._candidates)
    dd._verify = timed("verify", dd._verify)
    dd.prefilter_scores = timed("prefilter", counted(dd.prefilter_scores))
    dd._score_pairs = timed("thumbs+score", dd._score_pairs)
    peak, done = [0], threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(peak, done), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    res = dd.find_duplicates(root, threshold=threshold, workers=2, quiet=True)
    total = time.perf_counter() - t0
    done.set()
    sampler.join()
    near = res.pairs[res.pairs["kind"] == "near"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = peak[0] / 2**20
    return {"total": total, **{f"s_{k}": v for k, v in times.items()}, **counts,
            "scored": int(near["similarity"].notna().sum()) if len(near) else 0,
            "verified": int(near["verified"].sum()) if len(near) else 0,
            "clusters": len(res.clusters), "rss_mib": rss, "worker_rss_mib": kids}


def measure(src: Path, threshold: int, mode: str = "full") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        shutil.copytree(src, root)
        here = str(Path(__file__).parent)
        code = (f"import json,sys; sys.path.insert(0, {here!r}); import dedupe_cost as b; "
                f"print(json.dumps(b.run_once({str(root)!r}, {threshold}, {mode!r})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", type=int, default=3000, help="files grown from coins-dev")
    ap.add_argument("--discs", type=int, default=10000, help="small generated look-alikes")
    ap.add_argument("--thresholds", default="8,12")
    ap.add_argument("--compare", action="store_true",
                    help="also run without the prefilter (slow) and with descriptors in a second decode pass")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        if args.coins:
            planted = make_coins(Path(tmp) / "coins", args.coins)
            sets.append(("coins", Path(tmp) / "coins", args.coins, planted))
        if args.discs:
            planted = make_discs(Path(tmp) / "discs", args.discs)
            sets.append(("discs", Path(tmp) / "discs", args.discs, planted))
        for name, root, n, planted in sets:
            base = baseline(root)
            print(f"{name}: {n} files, {planted} planted copies; md5+phash loop {base:.1f} s")
            modes = ["full", "second-decode", "no-prefilter"] if args.compare else ["full"]
            for mode in modes:
                for t in (int(x) for x in args.thresholds.split(",")):
                    r = measure(root, t, mode)
                    stages = " ".join(f"{k[2:]} {v:.1f}" for k, v in r.items() if k.startswith("s_"))
                    stages += " (verify = descriptors + prefilter + thumbs+score)"
                    print(f"  t={t}{'' if mode == 'full' else ' ' + mode}: candidates {r.get('candidates', 0)}, after prefilter {r.get('prefiltered', 0)}, "
                          f"pairs recorded {r['scored']}, verified {r['verified']}, clusters {r['clusters']} | "
                          f"total {r['total']:.1f} s ({stages}) | ratio {base / r['total']:.2f}x | "
                          f"peak RSS {r['rss_mib']:.0f} MiB, with workers {r['worker_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
