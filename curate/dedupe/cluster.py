"""Clusters of duplicates and what each keeps: star clustering over exact groups, and the keep, leakage and
conflict policies (curate.dedupe.find.find_duplicates builds the edges; this module decides the clusters).

Clusters never chain: exact groups are taken in keep order (earliest split, then the keep policy); each
group not yet taken is a centre, and its cluster is the centre plus every group verified directly against
it.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from curate.core.errors import InputError
from curate.core.layout import sort_splits, split_rank
from curate.core.lazy import lazy

pd = lazy("pandas")  # parent-side only: pool workers never load it (their fork server starts faster)

KEEP_POLICIES = ("largest", "bytes", "first")
LEAKAGE_POLICIES = ("train", "report")
CONFLICT_POLICIES = ("keep", "drop")


@dataclass
class Cluster:
    id: int
    kind: str  # "exact" (all copies identical) or "near"
    members: list[str]  # tree-relative paths, sorted
    keep: str
    splits: list[str]
    labels: list[str]
    cross_split: bool
    label_conflict: bool
    max_distance: int
    remove: list[str] = field(default_factory=list)  # what the keep/leakage/conflict policies move out
    duplicate_of: dict[str, str] = field(default_factory=dict)  # removed path -> the copy it duplicates
    links: dict[str, dict] = field(default_factory=dict)  # member -> {distance, similarity} to `keep`


def _keep_key(row, keep: str) -> tuple:
    """Sort key of the keep policy for one hash_files row (smaller is kept first); ties by path."""
    px, sz = int(row.width) * int(row.height), int(row.size)
    if keep == "first":
        return (row.path,)
    return (-px, -sz, row.path) if keep == "largest" else (-sz, -px, row.path)


def pick_keep(rows: pd.DataFrame, keep: str) -> str:
    """The path a keep policy keeps among `rows` (hash_files rows); ties by path."""
    return min(rows.itertuples(index=False), key=lambda r: _keep_key(r, keep)).path


def _apply_policy(c: Cluster, rows: list, unit_of: dict[str, int], leakage: str, conflicts: str) -> None:
    """Which members go. `rows` are the cluster's hash_files rows (with .path, .split, .label), `c.keep` is set.

    - another split than the kept file's: leakage. With leakage="train" it goes, whatever its label (a
      test image that was trained on is not a test image); with "report" it stays, except exact copies of
      that split's own kept copy.
    - the kept file's split, same label: a duplicate, it goes.
    - the kept file's split, another label: a conflict. conflicts="keep" leaves it (reported);
      "drop" removes every copy in that split, the kept file too (it then names itself).
    """
    split_of = {r.path: r.split for r in rows}
    label_of = {r.path: r.label for r in rows}
    ks, kl = split_of[c.keep], label_of[c.keep]
    split_keep: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: (unit_of[r.path] != unit_of[c.keep], r.path)):
        split_keep.setdefault(r.split, r.path)
    conflict_here = any(split_of[p] == ks and label_of[p] != kl for p in c.members)
    out: dict[str, str] = {}
    for p in c.members:
        if p == c.keep:
            continue
        if split_of[p] != ks:
            if leakage == "train":
                out[p] = c.keep
            elif p != split_keep[split_of[p]] and unit_of[p] == unit_of[split_keep[split_of[p]]] \
                    and label_of[p] == label_of[split_keep[split_of[p]]]:
                out[p] = split_keep[split_of[p]]
        elif label_of[p] == kl and not (conflict_here and conflicts == "drop"):
            out[p] = c.keep
        elif conflicts == "drop":
            out[p] = c.keep
    if conflict_here and conflicts == "drop":
        out[c.keep] = c.keep
    c.duplicate_of = out
    c.remove = sorted(out)


def stars(order: list[int], edges: dict[int, list[tuple[int, int, float]]]) -> dict[int, list[tuple]]:
    """Greedy star clustering: each unit in `order` not yet taken becomes a centre and takes every untaken
    unit verified directly against it. Returns centre -> [(unit, distance, similarity), ...]."""
    taken: set[int] = set()
    out: dict[int, list[tuple]] = {}
    for u in order:
        if u in taken:
            continue
        taken.add(u)
        out[u] = []
        for v, d, sim in sorted(edges.get(u, ()), key=lambda e: (-e[2], e[1], e[0])):
            if v not in taken:
                taken.add(v)
                out[u].append((v, d, sim))
    return out


# ---------------------------------------------------------------- the analysis


def check_policies(keep: str, leakage: str, conflicts: str = "keep") -> None:
    if keep not in KEEP_POLICIES:
        raise InputError(f"unknown keep policy '{keep}'", f"choose one of: {', '.join(KEEP_POLICIES)}")
    if leakage not in LEAKAGE_POLICIES:
        raise InputError(f"unknown leakage policy '{leakage}'", f"choose one of: {', '.join(LEAKAGE_POLICIES)}")
    if conflicts not in CONFLICT_POLICIES:
        raise InputError(f"unknown conflicts policy '{conflicts}'",
                         f"choose one of: {', '.join(CONFLICT_POLICIES)}")


Row = namedtuple("Row", "path split label size width height")  # what a unit's rows hold of a file


@dataclass
class Units:
    """The exact groups (units) of a run in keep order, and each one's rows on demand: a run of 60,000
    files makes the rows of only the units that end up in a cluster."""

    order: list[int]  # units in keep order (split order first, then the keep policy)
    best_row: np.ndarray  # unit -> its best file (a row of the table)
    start: np.ndarray  # unit -> where its rows begin in `rows_in_unit` (ends at the next unit's start)
    rows_in_unit: np.ndarray  # table rows grouped by unit, in table order within a unit
    columns: tuple  # the table's Row columns, as lists

    def rows(self, u: int) -> list:
        return [self._row(i) for i in self.rows_in_unit[self.start[u] : self.start[u + 1]].tolist()]

    def size(self, u: int) -> int:
        return int(self.start[u + 1] - self.start[u])

    def best(self, u: int):
        return self._row(int(self.best_row[u]))

    def _row(self, i: int):
        return Row(*(c[i] for c in self.columns))


def unit_order(ok: pd.DataFrame, exact: np.ndarray, groups: np.ndarray, keep: str) -> Units:
    """The units (exact groups; `groups` are their representative rows, `exact` each row's group root) in
    keep order: split order first, then the keep policy (_keep_key), ties by path; each unit's best file
    is the first of its rows in that order."""
    n = len(ok)
    columns = tuple(ok[c].tolist() for c in Row._fields)
    paths = columns[0]
    by_path = np.arange(n)
    if any(a >= b for a, b in zip(paths[:-1], paths[1:], strict=True)):  # hash_files' rows come sorted by path
        by_path[np.array(sorted(range(n), key=paths.__getitem__), np.int64)] = np.arange(n)
    names, inv = np.unique(np.asarray(columns[1], dtype=object), return_inverse=True)
    srank = np.array([split_rank(x) for x in names], np.int64)[inv]
    px = ok["width"].to_numpy(np.int64) * ok["height"].to_numpy(np.int64)
    sz = ok["size"].to_numpy(np.int64)
    tie = (by_path,) if keep == "first" else (by_path, -sz, -px) if keep == "largest" else (by_path, -px, -sz)
    in_order = np.lexsort((*tie, srank))  # the rows in keep order
    pos = np.empty(n, np.int64)
    pos[in_order] = np.arange(n)
    unit_of_root = np.full(n, -1, np.int64)
    unit_of_root[exact[groups]] = np.arange(len(groups))
    unit = unit_of_root[exact]
    best_pos = np.full(len(groups), n, np.int64)
    np.minimum.at(best_pos, unit, pos)  # each unit's first row in keep order
    rows_in_unit = np.argsort(unit, kind="stable")
    start = np.searchsorted(unit[rows_in_unit], np.arange(len(groups) + 1))
    return Units(np.argsort(best_pos).tolist(), in_order[best_pos], start, rows_in_unit, columns)


def build_clusters(units: Units, edges: dict, leakage: str, conflicts: str) -> list[Cluster]:
    """Star clusters over exact groups (units), centres in keep order. A unit without edges is a cluster
    of its own copies (exact) when it has more than one file."""
    clusters: list[Cluster] = []
    linked = [u for u in units.order if u in edges]
    alone = [(u, []) for u in units.order if u not in edges and units.size(u) > 1]
    for centre, taken in [*stars(linked, edges).items(), *alone]:
        rows_of = {u: units.rows(u) for u in [centre] + [u for u, _, _ in taken]}
        members = sorted(r.path for rows in rows_of.values() for r in rows)
        if len(members) < 2:
            continue
        k = units.best(centre).path
        links = {r.path: {"distance": 0, "similarity": 1.0} for r in rows_of[centre] if r.path != k}
        for u, d, sim in taken:
            links.update({r.path: {"distance": int(d), "similarity": round(float(sim), 4)} for r in rows_of[u]})
        sub = [r for rows in rows_of.values() for r in rows]  # the members' rows
        splits = sort_splits({r.split for r in sub})
        labels = sorted({r.label for r in sub})
        c = Cluster(id=len(clusters), kind="exact" if len(rows_of) == 1 else "near", members=members, keep=k,
                    splits=splits, labels=labels, cross_split=len(splits) > 1, label_conflict=len(labels) > 1,
                    max_distance=max((v["distance"] for v in links.values()), default=0), links=links)
        unit_of = {r.path: u for u, rows in rows_of.items() for r in rows}
        _apply_policy(c, sub, unit_of, leakage, conflicts)
        clusters.append(c)
    clusters.sort(key=lambda c: c.members)
    for n, c in enumerate(clusters):
        c.id = n
    return clusters

