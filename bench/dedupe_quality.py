"""Precision and recall of `find_duplicates` on two sets with ground truth, counted over pairs of files.

1. coins-dev: a temp copy of ../shared/data/coins-dev (real world-coins photos) scored against the
   hand-checked copy pairs in bench/coins-dev-truth.csv (columns a,b: tree-relative paths of two copies
   of one photo; copies of one photo are all copies of each other). Also the number of verified pairs
   joining two different photos. Without the truth file only counts are printed, and the verified
   pairs across labels (different coins) stand in for the false ones.
2. dupsynth: curate.testing.dupsynth.build_set, generated copies (re-encodes, resizes, crops, brightness,
   colour shifts, a watermark strip) and look-alikes (mirror images, second shots, the other face of a
   coin, different coins on the same white background with the same watermark strip), with the recall
   of each copy case and the false joins of each look-alike case at the first threshold.

precision = true pairs clustered / pairs clustered, recall = true pairs clustered / true pairs.
Targets (issue 11): dupsynth recall >= 0.97 at precision >= 0.99; coins-dev no verified pair of two
different photos and recall >= 0.95.
Usage: python bench/dedupe_quality.py [--workers N] [--thresholds 12,8] [--unverified] [--only coins-dev|dupsynth]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dedupe_score import cluster_pairs, photos_from_pairs, score, true_pairs, wrong_verified  # noqa: E402

COINS_DEV = HERE.parent.parent / "shared" / "data" / "coins-dev"
TRUTH = HERE / "coins-dev-truth.csv"


def run(root: Path, threshold: int, verify: bool, workers: int):
    from curate.dedupe.find import find_duplicates

    t0 = time.perf_counter()
    res = find_duplicates(root, threshold=threshold, verify=verify, workers=workers, quiet=True)
    return res, time.perf_counter() - t0


def line(name: str, t: int, verify: bool, res, photo: dict[str, str], secs: float) -> str:
    p, r, fp, n = score(cluster_pairs(res.clusters), true_pairs(photo))
    wrong = wrong_verified(res.pairs, photo)
    return (f"{name} threshold {t:2d} verify {'on ' if verify else 'off'}: precision {p:.3f} recall {r:.3f} "
            f"({fp} false pairs clustered, {n} true pairs; {wrong} verified near pairs join two different "
            f"photos) {secs:.1f}s")


def coins_dev(args, tmp: Path) -> None:
    import pandas as pd

    if not COINS_DEV.is_dir():
        print(f"coins-dev: {COINS_DEV} not found, skipped")
        return
    root = tmp / "coins-dev"
    shutil.copytree(COINS_DEV, root)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    have_truth = TRUTH.is_file()
    if have_truth:
        truth = pd.read_csv(TRUTH)
        photo = photos_from_pairs(files, truth)
        print(f"coins-dev: {len(files)} files, {len(truth)} copy pairs in {TRUTH.name} "
              f"-> {len(true_pairs(photo))} true pairs")
    else:
        photo = {f: f.split("/")[1] for f in files}  # stand-in: the label, so cross-label pairs count
        print(f"coins-dev: {len(files)} files; {TRUTH.name} not present: no precision/recall, the counts "
              "below take every pair of two labels as two different photos")
    for t in args.thresholds:
        for verify in [True] + ([False] if args.unverified else []):
            res, secs = run(root, t, verify, args.workers)
            if have_truth:
                print(line("coins-dev", t, verify, res, photo, secs), flush=True)
                if "kind" in truth:  # recall of the listed pairs by kind (bytes, reencode, ...)
                    pred = cluster_pairs(res.clusters)
                    found = [tuple(sorted(p)) in pred for p in zip(truth["a"], truth["b"], strict=True)]
                    g = truth.assign(found=found).groupby("kind")["found"].agg(["sum", "count"])
                    print("  listed copy pairs clustered: " + ", ".join(f"{k} {int(a)}/{int(n)}"
                                                                         for k, (a, n) in g.iterrows()))
                continue
            pred = cluster_pairs(res.clusters)
            cross = sum(photo[a] != photo[b] for a, b in pred)
            near = res.pairs[(res.pairs["kind"] == "near") & res.pairs["verified"]]
            print(f"coins-dev threshold {t:2d} verify {'on ' if verify else 'off'}: {len(pred)} pairs clustered "
                  f"({cross} across labels); {len(near)} verified near pairs, {wrong_verified(res.pairs, photo)} "
                  f"across labels; {sum(c.label_conflict for c in res.clusters)} label conflicts "
                  f"{secs:.1f}s", flush=True)


def dupsynth(args, tmp: Path) -> None:
    from curate.testing.dupsynth import build_set

    root = tmp / "dupsynth"
    truth = build_set(root, seed=args.seed)
    photo = dict(zip(truth["path"], truth["photo"], strict=True))
    print(f"dupsynth: {len(truth)} files, {truth['photo'].nunique()} distinct photos "
          f"({(truth['kind'] == 'look-alike').sum()} look-alikes), {len(true_pairs(photo))} true pairs")
    for k, t in enumerate(args.thresholds):
        for verify in [True] + ([False] if args.unverified else []):
            res, secs = run(root, t, verify, args.workers)
            print(line("dupsynth", t, verify, res, photo, secs), flush=True)
            if k == 0 and verify:
                print_cases(truth, res)


def print_cases(truth, res) -> None:
    """Per copy case: share of copies clustered with their original; per look-alike case: share
    clustered with the photo it was made from."""
    cluster_of = {m: c.id for c in res.clusters for m in c.members}
    orig = dict(zip(truth.loc[truth["kind"] == "original", "source"], truth.loc[truth["kind"] == "original", "path"],
                    strict=True))
    rows = truth[truth["kind"] != "original"].copy()
    rows["joined"] = [cluster_of.get(p, -1) == cluster_of.get(orig[s], -2)
                      for p, s in zip(rows["path"], rows["source"], strict=True)]
    for kind, what in (("copy", "copies found with their original"),
                       ("look-alike", "look-alikes WRONGLY joined to their source")):
        g = rows[rows["kind"] == kind].groupby("case")["joined"].agg(["sum", "count"])
        print(f"  {what}: " + ", ".join(f"{c} {int(s)}/{int(n)}" for c, (s, n) in g.iterrows()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--thresholds", default="12", help="comma-separated Hamming thresholds (64-bit phash)")
    ap.add_argument("--unverified", action="store_true", help="also run without pixel verification")
    ap.add_argument("--only", choices=["coins-dev", "dupsynth"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.thresholds = [int(x) for x in args.thresholds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "dupsynth":
            coins_dev(args, Path(tmp))
        if args.only != "coins-dev":
            dupsynth(args, Path(tmp))


if __name__ == "__main__":
    main()
