"""Precision and recall of `find_duplicates` on generated near-duplicates (curate.dupsynth).

Every distinct image (sample photos, 20-odd coins, letterboxed crops on one fill) is saved with each
edit of dupsynth.EDITS and its mirror image. Truth: files from one image are duplicates, except the
mirror. Counted over pairs of files: precision = true pairs clustered / pairs clustered, recall = true
pairs clustered / true pairs. Usage: python bench/dedupe_quality.py [--workers N] [--thresholds 6,8,10]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path


def build(root: Path) -> dict[str, str]:
    from curate.dupsynth import EDITS, flip, originals, save

    truth = {}
    for name, a in originals().items():
        save(root / "train" / "x" / f"{name}.png", a)
        truth[f"train/x/{name}.png"] = name
        for edit, fn in EDITS.items():
            save(root / "train" / "x" / f"{name}-{edit}.jpg", fn(a))
            truth[f"train/x/{name}-{edit}.jpg"] = name
        save(root / "train" / "x" / f"{name}-flip.png", flip(a))
        truth[f"train/x/{name}-flip.png"] = name + "-flip"
    return truth


def score(clusters, truth) -> tuple[float, float, int, int]:
    pred = set()
    for c in clusters:
        pred |= {tuple(sorted(p)) for p in itertools.combinations(c.members, 2)}
    by = {}
    for p, t in truth.items():
        by.setdefault(t, []).append(p)
    true = {tuple(sorted(p)) for g in by.values() for p in itertools.combinations(g, 2)}
    tp = len(pred & true)
    return tp / max(1, len(pred)), tp / max(1, len(true)), len(pred) - tp, len(true)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--thresholds", default="6,8,10,12,14")
    ap.add_argument("--min-similarity", default=None, help="comma-separated verification scores to try")
    args = ap.parse_args()
    from curate.dedupe import VERIFY_MIN, find_duplicates

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        truth = build(root)
        print(f"{len(truth)} files from {len(set(truth.values()))} distinct images")
        sims = [float(x) for x in args.min_similarity.split(",")] if args.min_similarity else [VERIFY_MIN]
        for t in [int(x) for x in args.thresholds.split(",")]:
            for verify, ms in [(False, None)] + [(True, m) for m in sims]:
                t0 = time.perf_counter()
                res = find_duplicates(root, threshold=t, verify=verify, workers=args.workers, quiet=True,
                                      min_similarity=ms or VERIFY_MIN)
                p, r, fp, n = score(res.clusters, truth)
                print(f"threshold {t:2d} verify {f'>= {ms:.2f}' if verify else 'off    '}: precision {p:.3f} "
                      f"recall {r:.3f} ({fp} false pairs of {n} true) {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
