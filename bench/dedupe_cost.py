"""Where the time of one cold `find_duplicates` goes, stage by stage, on the look-alike-dense sets.

The sets are bench/dedupe_sets.py's (coins grown from ../shared/data/coins-dev, small generated discs),
each run on a fresh hard-link copy (no state folder: a cold cache) with `workers` processes. Printed per
set: seconds in each stage (hashing, the exact-pixel check, fitting the search code, the search's own
batches, the cheap gates, pixel verification, clusters) and what the search proposed and the gates
turned away. bench/dedupe.py gives the whole command against the plain loop; this says where a run's
time went, so a change can be aimed at the stage that costs.

Usage: python bench/dedupe_cost.py [--sets coins,discs] [--quick] [--threshold 12] [--workers 2]
(the full disc set does not finish: about a million candidate pairs reach pixel verification).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dedupe_sets  # noqa: E402

import curate.dedupe.find as dd  # noqa: E402
from curate.dedupe import candidates as dupcandidates  # noqa: E402

STAGES = ("hashing", "exact pixels", "search code", "search batches", "gates", "verification", "clusters")


def timed(spent: dict, stage: str, fn):
    def wrap(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[stage] += time.perf_counter() - t
    return wrap


def timed_batches(spent: dict, batches):
    """Search.batches, its own time counted (what the caller does between batches is not)."""
    def wrap(self):
        it = batches(self)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                spent["search batches"] += time.perf_counter() - t
                return
            spent["search batches"] += time.perf_counter() - t
            yield item
    return wrap


def run(name: str, n: int, threshold: int, workers: int) -> None:
    make = dedupe_sets.coins_set if name == "coins" else dedupe_sets.discs_set
    src, truth = make(n)
    spent = dict.fromkeys(STAGES, 0.0)
    saved = (dd.hash_files, dd._exact_groups, dd.search, dd.gate, dd.build_clusters, dupcandidates.Search.batches)
    dd.hash_files = timed(spent, "hashing", dd.hash_files)
    dd._exact_groups = timed(spent, "exact pixels", dd._exact_groups)
    dd.search = timed(spent, "search code", dd.search)
    dd.gate = timed(spent, "gates", dd.gate)
    dd.build_clusters = timed(spent, "clusters", dd.build_clusters)
    dupcandidates.Search.batches = timed_batches(spent, dupcandidates.Search.batches)
    verify = dd._verify
    dd._verify = timed(spent, "verification", verify)
    try:
        with tempfile.TemporaryDirectory(prefix="dedupe-cost-") as tmp:
            root = dedupe_sets.hardlink_copy(src, Path(tmp) / "tree")
            t0 = time.perf_counter()
            res = dd.find_duplicates(root, threshold=threshold, workers=workers, quiet=True)
            total = time.perf_counter() - t0
    finally:
        (dd.hash_files, dd._exact_groups, dd.search, dd.gate, dd.build_clusters,
         dupcandidates.Search.batches) = saved
        dd._verify = verify
    # the verification stage contains the search batches and the gates (they stream through it)
    spent["verification"] -= spent["search batches"] + spent["gates"]
    c = res.counts
    print(f"{name}: {len(truth):,} files, threshold {threshold}, {workers} workers: find_duplicates {total:.2f} s")
    print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items())
          + f", other {total - sum(spent.values()):.2f} s")
    print(f"  candidates {c.candidates:,}; turned away by colour {c.colour:,}, by the mid-band test "
          f"{c.prefilter:,}, by the small-image test {c.small:,}; verified on pixels {c.scored:,}; "
          f"{len(res.clusters):,} clusters")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="coins", help="coins, discs or both (comma-separated)")
    ap.add_argument("--quick", action="store_true", help="the small sets (150 coins, 600 discs)")
    ap.add_argument("--threshold", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sizes = dedupe_sets.QUICK if args.quick else dedupe_sets.FULL
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        if name not in sizes:
            sys.exit(f"unknown set {name!r}: use coins or discs")
        run(name, sizes[name], args.threshold, args.workers)


if __name__ == "__main__":
    main()
