"""curate.dedupe.cluster: the keep order of the exact groups, and clusters made from only the units they need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.core.layout import split_rank
from curate.dedupe.cluster import _keep_key, build_clusters, unit_order


def _table(seed: int, n: int = 300, shuffled: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A hash_files-like table with many ties (sizes, splits), and exact groups of 1-4 rows."""
    rng = np.random.default_rng(seed)
    paths = sorted(f"{s}/c{rng.integers(3)}/f{k:04d}.png" for k, s in enumerate(rng.choice(
        ["train", "val", "test", "extra"], n)))
    ok = pd.DataFrame({"path": paths, "split": [p.split("/")[0] for p in paths], "label": [p.split("/")[1] for p in paths],
                       "size": rng.choice([100, 200, 300], n), "width": rng.choice([32, 64], n),
                       "height": rng.choice([32, 64], n)})
    for c in ("size", "width", "height"):
        ok[c] = ok[c].astype("Int64")
    if shuffled:
        ok = ok.sample(frac=1, random_state=seed).reset_index(drop=True)
    root = np.arange(n)
    for i in range(1, n):
        if rng.random() < 0.4:
            root[i] = root[rng.integers(max(0, i - 5), i)]
    root = root[root]  # every row points at its group's first row
    groups = np.array(sorted({int(r) for r in root}), np.int64)
    return ok, root, groups


def _reference(ok: pd.DataFrame, exact: np.ndarray, groups: np.ndarray, keep: str):
    """The keep order as a plain loop: each unit's best row by (split rank, keep key), units by their best."""
    rows = list(ok.itertuples(index=False))
    key = [(split_rank(r.split), _keep_key(r, keep)) for r in rows]
    unit_by_root = {int(exact[g]): k for k, g in enumerate(groups.tolist())}
    members: dict[int, list[int]] = {}
    for i, r in enumerate(exact.tolist()):
        members.setdefault(unit_by_root[r], []).append(i)
    best = {u: min(m, key=key.__getitem__) for u, m in members.items()}
    return sorted(best, key=lambda u: key[best[u]]), best, members


@pytest.mark.parametrize("keep", ["largest", "bytes", "first"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_keep_order_is_the_plain_loops(keep, shuffled):
    ok, exact, groups = _table(3, shuffled=shuffled)
    order, best, members = _reference(ok, exact, groups, keep)
    units = unit_order(ok, exact, groups, keep)
    assert units.order == order
    for u, m in members.items():
        assert units.best(u).path == ok["path"][best[u]]
        assert [r.path for r in units.rows(u)] == [ok["path"][i] for i in m] and units.size(u) == len(m)


def test_clusters_come_from_edges_and_multi_file_units_only():
    ok, exact, groups = _table(5)
    units = unit_order(ok, exact, groups, "largest")
    a, b, c = units.order[:3]
    clusters = build_clusters(units, {a: [(b, 3, 0.95)], b: [(a, 3, 0.95)]}, "train", "keep")
    exact_units = [u for u in range(len(groups)) if units.size(u) > 1 and u not in (a, b)]
    assert len(clusters) == 1 + len(exact_units)
    near = [cl for cl in clusters if cl.kind == "near"]
    assert len(near) == 1 and near[0].keep == units.best(a).path
    assert set(near[0].members) == {r.path for u in (a, b) for r in units.rows(u)}
    assert all(cl.kind == "exact" for cl in clusters if cl is not near[0])
    assert not any(r.path in cl.members for cl in clusters for r in units.rows(c)) or units.size(c) > 1
