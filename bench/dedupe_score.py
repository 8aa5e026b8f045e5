"""Pair counting for the dedupe benches: which pairs of files a run put together, which pairs are truly
copies of one photo, precision and recall over them."""

from __future__ import annotations

import itertools


def cluster_pairs(clusters) -> set[tuple[str, str]]:
    """Every pair of files that share a cluster (the pairs a run treats as copies)."""
    return {p for c in clusters for p in itertools.combinations(sorted(c.members), 2)}


def true_pairs(photo: dict[str, str]) -> set[tuple[str, str]]:
    """Every pair of files that are copies of one photo; `photo` maps each file to its photo."""
    by: dict[str, list[str]] = {}
    for path, ph in photo.items():
        by.setdefault(ph, []).append(path)
    return {p for g in by.values() for p in itertools.combinations(sorted(g), 2)}


def photos_from_pairs(files: list[str], truth) -> dict[str, str]:
    """file -> photo from a table of copy pairs (columns a, b): copies of one photo are one group."""
    parent = {f: f for f in files}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    missing = sorted({p for p in itertools.chain(truth["a"], truth["b"]) if p not in parent})
    if missing:
        raise SystemExit(f"truth file names {len(missing)} files the tree lacks, e.g. {missing[0]}")
    for a, b in zip(truth["a"], truth["b"], strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {f: find(f) for f in files}


def score(pred: set, true: set) -> tuple[float, float, int, int]:
    """precision, recall, false pairs, true pairs."""
    tp = len(pred & true)
    return tp / max(1, len(pred)), tp / max(1, len(true)), len(pred) - tp, len(true)


def wrong_verified(pairs, photo: dict[str, str]) -> int:
    """Near pairs that passed verification although their files are two different photos."""
    near = pairs[(pairs["kind"] == "near") & pairs["verified"].astype(bool)]
    return sum(photo.get(a, a) != photo.get(b, b) for a, b in zip(near["a"], near["b"], strict=True))
