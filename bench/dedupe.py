"""Dedupe speed, as ratios against baselines measured in the same run.

1. Hashing images/s, one core: curate.dedupe.hashing.hash_file (reduced-size JPEG decoding, sha256 included)
   vs. a plain `imagehash.phash(Image.open(p))` loop, on 640x480 and on 12-megapixel JPEGs made from
   the sample photos; also how many hash bits the reduced decoding changes.
2. Search, 20k hashes at threshold 10: curate.dedupe.search.hamming_pairs vs. imagededup's
   PHash().find_duplicates (brute_force_cython, one worker); the pair sets must be identical.
3. Scale: 100k hashes at threshold 8 and 1M hashes at threshold 4 (random 64-bit codes with planted
   near-duplicates, every planted pair must be found).
4. Whole run (issue 11): a whole `curate dedupe` (CLI, --workers 2, cold cache = a fresh tree of hard
   links with no state folder, --dry-run so the cached set is reused) vs a plain one-process md5 +
   imagehash.phash(Image.open(p)) loop over the same files, on two look-alike-dense sets generated from
   --seed (bench/dedupe_sets.py, cached under $TMPDIR/curate-bench-dedupe): 8,000 files grown from
   coins-dev at threshold 12 and 60,000 small discs at thresholds 8 and 12, with the candidate pairs,
   how many are true copies, and the peak RSS of the run (target: >= 1.5x, < 1 GiB, not growing with
   the candidate pairs). The loop and the run alternate --repeat times (default 3) and the best of each
   counts. --quick: 150 coin files and 600 discs.

Usage: python bench/dedupe.py [--quick] [--skip-imagededup] [--hashing-only] [--whole-only | --skip-whole]
       [--limit SECONDS] [--mem-cap-gib GIB] [--seed N] [--sets coins,discs] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_jpegs(folder: Path, size: tuple[int, int], n: int) -> list[Path]:
    from PIL import Image

    from curate.sources.samples import PHOTOS, load_photo

    names = [k for k in PHOTOS if k != "horse"]
    out = []
    for i in range(n):
        a = load_photo(names[i % len(names)])
        if i >= len(names):  # other content per file: a shifted crop
            o = (i // len(names)) * 7 % max(1, min(a.shape[:2]) // 4)
            a = a[o:, o:]
        p = folder / f"{size[0]}x{size[1]}-{i:03d}.jpg"
        Image.fromarray(a).resize(size, Image.BICUBIC).save(p, quality=90)
        out.append(p)
    return out


def bench_hashing(paths: list[Path], label: str) -> dict:
    import imagehash
    from PIL import Image

    from curate.dedupe.hashing import hash_file

    imagehash.phash(Image.open(paths[0]))  # warm imports
    hash_file(paths[0])
    tb = to = float("inf")
    for _ in range(3):  # best of three, alternating, so a busy machine hurts both sides alike
        t = time.perf_counter()
        base = [str(imagehash.phash(Image.open(p))) for p in paths]
        tb = min(tb, time.perf_counter() - t)
        t = time.perf_counter()
        ours = [hash_file(p)["hash"] for p in paths]
        to = min(to, time.perf_counter() - t)
    bits = [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in zip(base, ours, strict=True)]
    r = {"label": label, "n": len(paths), "base_ips": len(paths) / tb, "ours_ips": len(paths) / to,
         "ratio": tb / to, "max_bits": max(bits), "mean_bits": float(np.mean(bits))}
    print(f"hashing {label}: baseline {r['base_ips']:.1f} img/s, curate {r['ours_ips']:.1f} img/s "
          f"-> {r['ratio']:.1f}x per core; hash bits changed by reduced decoding: max {r['max_bits']}, "
          f"mean {r['mean_bits']:.2f} (of 64)")
    return r


def planted(n: int, t: int, n_plant: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """n random 64-bit codes; n_plant of them rewritten as copies of another with up to t bits flipped."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    codes ^= rng.integers(0, 2, size=n).astype(np.uint64)
    idx = rng.permutation(n)[: 2 * n_plant].reshape(-1, 2)
    flips = np.zeros(len(idx), dtype=np.uint64)
    for k in range(len(idx)):
        for bit in rng.choice(64, int(rng.integers(0, t + 1)), replace=False):
            flips[k] |= np.uint64(1) << np.uint64(int(bit))
    codes[idx[:, 1]] = codes[idx[:, 0]] ^ flips
    return codes, {(int(min(a, b)), int(max(a, b))) for a, b in idx}


def bench_search(n: int, t: int, imagededup: bool) -> None:
    from curate.dedupe.search import choose, hamming_pairs

    codes, plants = planted(n, t, n // 100)
    t0 = time.perf_counter()
    i, j, d = hamming_pairs(codes[:, None], t)
    ours = time.perf_counter() - t0
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    method = choose(n, 64, t)
    line = (f"search {n:,} hashes, threshold {t}: curate {ours:.2f}s ({method[0]}"
            f"{'' if method[0] == 'brute' else f', m={method[1]}'}), {len(found)} pairs, "
            f"planted found {len(plants & found)}/{len(plants)}")
    if imagededup:
        try:
            from imagededup.methods import PHash
        except ImportError:
            print(line + "; imagededup not installed (pip install 'curate[bench]')", flush=True)
            return

        hexes = {str(k): f"{int(c):016x}" for k, c in enumerate(codes)}
        t0 = time.perf_counter()
        res = PHash(verbose=False).find_duplicates(encoding_map=hexes, max_distance_threshold=t,
                                                   num_dist_workers=1)
        base = time.perf_counter() - t0
        theirs = {(min(int(a), int(b)), max(int(a), int(b))) for a, bs in res.items() for b in bs}
        line += (f"; imagededup {base:.1f}s -> {base / ours:.0f}x faster, "
                 f"pairs {'identical' if theirs == found else 'DIFFER'} ({len(theirs)})")
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer images, skip the 1M search")
    ap.add_argument("--skip-imagededup", action="store_true")
    ap.add_argument("--hashing-only", action="store_true")
    ap.add_argument("--whole-only", action="store_true", help="only the whole-run ratio (section 4)")
    ap.add_argument("--skip-whole", action="store_true")
    ap.add_argument("--limit", type=float, default=600, help="seconds a whole dedupe run may take")
    ap.add_argument("--mem-cap-gib", type=float, default=4, help="address-space cap of a whole dedupe run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="whole runs: loop and run alternate, the best of each counts")
    ap.add_argument("--sets", default="coins,discs", help="whole-run sets: coins, discs or both")
    args = ap.parse_args()
    if not args.whole_only:
        sections_1_to_3(args)
    if not (args.skip_whole or args.hashing_only):
        bench_whole(args)


def bench_whole(args) -> list[dict]:
    from dedupe_sets import FULL, QUICK, coins_set, discs_set
    from dedupe_whole import bench_set

    n = QUICK if args.quick else FULL
    common = {"workers": 2, "limit_s": args.limit, "cap_gib": args.mem_cap_gib, "repeat": args.repeat}
    rows = []
    if "coins" in args.sets:
        rows += bench_set("coins grown from coins-dev", *coins_set(n["coins"], args.seed), [12], **common)
    if "discs" in args.sets:
        rows += bench_set("small discs", *discs_set(n["discs"], args.seed), [8, 12], **common)
    return rows


def sections_1_to_3(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench_hashing(make_jpegs(tmp, (640, 480), 26 if args.quick else 52), "640x480 JPEG")
        bench_hashing(make_jpegs(tmp, (4000, 3000), 4 if args.quick else 13), "12 MP JPEG")
    if args.hashing_only:
        return
    bench_search(20_000, 10, not args.skip_imagededup)
    bench_search(100_000, 8, False)
    if not args.quick:
        bench_search(1_000_000, 4, False)


if __name__ == "__main__":
    main()
