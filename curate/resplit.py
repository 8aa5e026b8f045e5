"""Stratified, group-aware re-splitting of a tree (`curate resplit`).

The files of the merged splits are pooled and dealt again, per label, into the target splits:
- groups never straddle splits: near-duplicate clusters (curate.dedupe.find, computed on the fly or read from
  the manifest's `cluster`) and crops of one source image (manifest `source_id`) move as one;
- per label, each target split gets ratio x n files (largest remainder), and evaluation splits (every
  target but train) at least --min-per-class;
- a label too small for that (fewer than 1 + min x evaluation splits, when train is a target) is dealt
  by a fixed rule: one file to train, then evaluation splits in order up to the minimum, the rest to
  train; such labels are listed in the plan;
- order comes from sha256(seed, group key), never from a global RNG: same seed, same split.
Moves go through curate.moves.journal (journaled, `undo`); the tree may be an object-store URL.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.core.errors import InputError
from curate.core.graph import smallest_member
from curate.core.layout import SPLIT_ORDER, canonical_split, sort_splits
from curate.core.manifest import read_info, read_manifest, to_parquet_bytes
from curate.core.storage import join, journal_copy, resolved, scan
from curate.core.tree import INFO_NAME, MANIFEST_NAME
from curate.dedupe.find import find_duplicates
from curate.detect.formats import refuse_detection_tree
from curate.moves.journal import Relocation, staged_info
from curate.moves.movers import FreeNames, files_for
from curate.moves.undo import UndoReport, undo


@dataclass
class ResplitPlan:
    root: Path | str  # a local folder or an object-store URL
    pool: list[str]  # canonical splits merged
    targets: list[str]  # canonical splits dealt into
    ratios: list[float]
    seed: int
    before: pd.DataFrame  # path, split, label, group
    after: dict[str, str]  # path -> new split
    small_labels: list[str] = field(default_factory=list)
    outside_groups: int = 0  # groups with members outside the pool (that leakage stays)
    group_source: str = ""
    min_per_class: int = 0
    split_dirs: dict[str, str] = field(default_factory=dict)  # canonical split -> its folder
    options: dict = field(default_factory=dict)  # what plan_resplit was asked (the journal keeps it)
    resume: Relocation | None = None  # the unfinished run this plan came from

    def moves(self) -> list[tuple[str, str, str]]:
        """(path, old split, new split) for every file that changes split."""
        b = self.before
        return [(p, s, self.after[p]) for p, s in zip(b["path"], b["split"], strict=True)
                if p in self.after and self.after[p] != s]

    def table(self) -> pd.DataFrame:
        """Counts per label: before and after, one column per split."""
        b = self.before[self.before["split"].isin(self.pool)]
        before = b.groupby(["label", "split"]).size().unstack(fill_value=0)
        a = b.assign(split=[self.after[p] for p in b["path"]])
        after = a.groupby(["label", "split"]).size().unstack(fill_value=0)
        cols = sort_splits(set(before.columns) | set(after.columns))
        before = before.reindex(columns=cols, fill_value=0).add_prefix("before:")
        after = after.reindex(columns=[c for c in cols if c in self.targets], fill_value=0).add_prefix("after:")
        return before.join(after, how="outer").fillna(0).astype(int).sort_index()


def parse_ratios(text: str | list[float]) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",")] if isinstance(text, str) else [float(x) for x in text]
    except ValueError:
        raise InputError(f"--ratios {text!r} is not a list of numbers", "e.g. --ratios 0.8,0.1,0.1") from None
    if not vals or not all(math.isfinite(v) and v >= 0 for v in vals) or sum(vals) <= 0:
        raise InputError(f"--ratios {text!r} must be finite, non-negative and not all zero", "e.g. 0.8,0.1,0.1")
    total = sum(vals)
    if abs(total - 1) > 1e-3 and not all(v.is_integer() for v in vals):
        raise InputError(f"--ratios {text!r} add up to {total:g}, not 1",
                         "give fractions that sum to 1 (0.8,0.1,0.1) or whole-number weights (8,1,1)")
    return [v / total for v in vals]


def _splits(names: str | list[str] | None) -> list[str] | None:
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else list(names)
    out = []
    for n in (x.strip() for x in items if x.strip()):
        c = canonical_split(n)
        if c is None:
            raise InputError(f"'{n}' is not a split name", "use train, val (valid, validation) or test")
        out.append(c)
    if len(set(out)) != len(out):
        raise InputError(f"split listed twice in {names!r}", "name each split once")
    return out


def quotas(n: int, ratios: list[float], targets: list[str], min_per_class: int) -> tuple[list[int], bool]:
    """Files per target split for a label of n files; True when the label was too small (fixed rule)."""
    evals = [k for k, s in enumerate(targets) if s != "train"]
    has_train = "train" in targets
    need = (1 if has_train else 0) + min_per_class * len(evals)
    q = [0] * len(targets)
    if min_per_class and n < need:
        left = n
        if has_train and left:
            q[targets.index("train")] += 1
            left -= 1
        while left and any(q[k] < min_per_class for k in evals):  # one at a time: every split gets some
            for k in evals:
                if left and q[k] < min_per_class:
                    q[k] += 1
                    left -= 1
        q[targets.index("train") if has_train else evals[0]] += left
        return q, True
    raw = [r * n for r in ratios]
    q = [int(x) for x in raw]
    for k in sorted(range(len(q)), key=lambda k: (-(raw[k] - q[k]), k))[: n - sum(q)]:
        q[k] += 1
    for k in evals:  # lift evaluation splits to the minimum, taking from the biggest other split
        while q[k] < min_per_class:
            donors = [d for d in range(len(q)) if d != k and q[d] > (min_per_class if d in evals else 1)]
            if not donors:
                break
            d = max(donors, key=lambda d: (q[d], -d))
            q[d] -= 1
            q[k] += 1
    return q, False


def below_minimum(plan: ResplitPlan) -> list[dict]:
    """The min-per-class rule's shortfalls: (label, evaluation split) pairs dealt fewer than
    --min-per-class files because the label has too few (or too few groups); what there is was dealt."""
    if not plan.min_per_class:
        return []
    pooled = plan.before[plan.before["split"].isin(plan.pool)]
    got: dict[tuple[str, str], int] = {}
    for p, label in zip(pooled["path"], pooled["label"], strict=True):
        got[(label, plan.after[p])] = got.get((label, plan.after[p]), 0) + 1
    evals = [s for s in plan.targets if s != "train"]
    return [{"label": lab, "split": s, "count": got.get((lab, s), 0), "minimum": plan.min_per_class}
            for lab in sorted(set(pooled["label"])) for s in evals if got.get((lab, s), 0) < plan.min_per_class]


def _key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def _components(paths: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    """path -> its group's id: the smallest path of its connected component."""
    index = {p: i for i, p in enumerate(paths)}
    rows = [index[a] for a, _ in edges]
    cols = [index[b] for _, b in edges]
    labels = smallest_member(len(paths), np.array(rows, np.int64), np.array(cols, np.int64))
    first: dict[int, str] = {}
    for p, lab in zip(paths, labels.tolist(), strict=True):
        first[lab] = min(first.get(lab, p), p)
    return {p: first[lab] for p, lab in zip(paths, labels.tolist(), strict=True)}


def file_groups(root, paths: list[str], *, dedupe_groups: bool, workers, engine, quiet,
                threshold: int | None = None) -> tuple[dict[str, str], str]:
    """path -> group id (the group's first path): near-duplicate clusters and shared source_id."""
    edges: list[tuple[str, str]] = []
    used = []
    man = read_manifest(root)
    present = set(paths)
    if man is not None:
        live = man[man["path"].isin(present)]
        for col in ("source_id", "cluster"):
            if col in live.columns:
                for _, g in live[live[col].notna()].groupby(col):
                    ps = sorted(g["path"])
                    edges += [(ps[0], p) for p in ps[1:]]
                used.append(f"manifest {col}")
    if dedupe_groups:
        res = find_duplicates(root, threshold=threshold, workers=workers, engine=engine, quiet=quiet)
        for c in res.clusters:
            edges += [(c.members[0], p) for p in c.members[1:] if p in present and c.members[0] in present]
        used.append("near-duplicate clusters")
    return _components(paths, edges), ", ".join(used) or "none"


def plan_resplit(
    root: str | Path,
    *,
    ratios: str | list[float],
    merge: str | list[str] | None = None,
    into: str | list[str] | None = None,
    min_per_class: int = 0,
    seed: int = 0,
    dedupe_groups: bool = True,
    threshold: int | None = None,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
) -> ResplitPlan:
    """Which split every pooled file goes to; reads only. After an interrupted run with the same options,
    that run's plan (finished by apply_resplit)."""
    root = resolved(root)
    refuse_detection_tree(root, "resplit")  # (an object-store tree is never one: sniff finds no files)
    tree = scan(root)
    if tree.single:
        raise InputError(f"{root} has no split folders (train/ val/ test/)",
                         "resplit moves files between split folders; create them first")
    ratios = parse_ratios(ratios)
    if min_per_class < 0:
        raise InputError("--min-per-class must be 0 or more")
    options = {"ratios": ratios, "merge": _splits(merge), "into": _splits(into), "min_per_class": min_per_class,
               "seed": seed, "dedupe_groups": dedupe_groups, "threshold": threshold}
    if rel := Relocation.resume(root, "resplit", options, _copy_to(root)):
        rel.outcome.resume = rel
        return rel.outcome
    pool = _splits(merge) or [s for s in tree.split_dirs]
    missing = [s for s in pool if s not in tree.split_dirs]
    if missing:
        raise InputError(f"no split folder for {', '.join(missing)} in {root}",
                         f"splits here: {', '.join(tree.split_dirs)}")
    targets = _targets(_splits(into), pool, ratios, tree.split_dirs)
    files = pd.DataFrame([(f.path, f.split, f.label) for f in tree.files], columns=["path", "split", "label"])
    groups, source = file_groups(root, files["path"].tolist(), dedupe_groups=dedupe_groups, workers=workers,
                                 engine=engine, quiet=quiet, threshold=threshold)
    files["group"] = [groups[p] for p in files["path"]]
    in_pool = files["split"].isin(pool)
    pooled = files[in_pool]
    outside_groups = len(set(pooled["group"]) & set(files.loc[~in_pool, "group"]))

    after, small, by_label = _deal(pooled, ratios, targets, min_per_class, seed)
    empty = [s for s in targets if after and s not in set(after.values())]
    if empty:  # a split is never emptied (or left out) silently
        raise InputError(f"this resplit would leave {', '.join(empty)} with no files: {len(after)} files in "
                         f"{len(by_label)} labels are too few for ratios {','.join(f'{r:g}' for r in ratios)}",
                         "pass --min-per-class 1 to give every split at least one file per label, "
                         "or use fewer splits")
    return ResplitPlan(root=root, pool=pool, targets=targets, ratios=ratios, seed=seed, before=files,
                       after=after, small_labels=small, outside_groups=outside_groups, group_source=source,
                       min_per_class=min_per_class, split_dirs=dict(tree.split_dirs), options=options)


def _targets(targets: list[str] | None, pool: list[str], ratios: list[float], split_dirs) -> list[str]:
    """The splits files are dealt into: --into, else the merged ones (grown to train, val, test when more
    ratios than splits are given); one ratio each, never a split whose files are not merged."""
    if targets is None:
        ordered = sort_splits(pool)  # pool holds canonical names only
        grown = list(SPLIT_ORDER[: len(ratios)])  # more ratios than splits: add val, test
        targets = ordered if len(ordered) == len(ratios) else grown if set(ordered) <= set(grown) else ordered
    if len(targets) != len(ratios):
        raise InputError(f"{len(ratios)} ratios for {len(targets)} target splits ({', '.join(targets)})",
                         "give one ratio per split, or name the splits with --into")
    outside = [s for s in targets if s not in pool]
    if any(s in split_dirs for s in outside):
        raise InputError(f"target split {', '.join(outside)} is not merged",
                         "add it to --merge so its files are dealt too")
    return targets


def _deal(pooled: pd.DataFrame, ratios: list[float], targets: list[str], min_per_class: int,
          seed: int) -> tuple[dict[str, str], list[str], dict[str, list[str]]]:
    """(split of every pooled path, labels too small for the minimum, groups by label): a group belongs to
    its most common label (ties: label name), then each label's groups are dealt by quota, largest first."""
    glabel: dict[str, str] = {}
    gpaths: dict[str, list[str]] = {}
    for g, sub in pooled.groupby("group", sort=True):
        counts = sub["label"].value_counts()
        glabel[g] = min(counts.index[counts == counts.max()])
        gpaths[g] = sub["path"].tolist()
    by_label: dict[str, list[str]] = {}
    for g, lab in glabel.items():
        by_label.setdefault(lab, []).append(g)
    after: dict[str, str] = {}
    small = []
    for label in sorted(by_label):
        gs = by_label[label]
        n = sum(len(gpaths[g]) for g in gs)
        q, too_small = quotas(n, ratios, targets, min_per_class)
        if too_small:
            small.append(label)
        got = [0] * len(targets)
        # keyed by paths inside the split folders, so a re-run (or a resumed run) deals the same way
        inner = {g: min(p.split("/", 1)[1] for p in gpaths[g]) for g in gs}
        for g in sorted(gs, key=lambda g: (-len(gpaths[g]), _key(seed, inner[g]), inner[g], g)):
            k = max(range(len(targets)), key=lambda k: (q[k] - got[k], -k))
            got[k] += len(gpaths[g])
            for p in gpaths[g]:
                after[p] = targets[k]
    return after, small, by_label


def _copy_to(root) -> str | None:
    """Object stores: where the journal's copy goes (beside the tree; curate.core.storage.journal_copy)."""
    return journal_copy(root)


def apply_resplit(plan: ResplitPlan, quiet: bool = False) -> tuple[int, Path | None]:
    """Move the files of a plan (journaled; a progress bar unless `quiet`) and update manifest.parquet and
    curate.json."""
    if plan.resume is not None:  # an interrupted run: finish its own plan
        rel, plan.resume = plan.resume, None
        return len(plan.moves()), rel.run(quiet)
    root = plan.root
    moves = plan.moves()
    if not moves:
        return 0, None
    folders = {s: plan.split_dirs.get(s, s) for s in set(plan.targets) | set(plan.pool)}
    free = FreeNames(files_for(root), str(root))
    new_path: dict[str, str] = {}
    for p, old, new in moves:
        inner = p[len(folders[old]) + 1:]
        new_path[p] = free(join(root, folders[new], inner))[len(str(root)) + 1:]
    manifest = to_parquet_bytes(_manifest(plan, new_path))  # a broken manifest or curate.json
    read_info(root)  # stops the run here, before anything moves
    info = staged_info(root, "resplit", {"merge": plan.pool, "into": plan.targets, "ratios": plan.ratios,
                                         "seed": plan.seed, "moved": len(moves), "groups": plan.group_source,
                                         "min_per_class": plan.min_per_class})
    rel = Relocation(root, "resplit", options=plan.options, copy_to=_copy_to(root))
    rel.start([(join(root, p), join(root, dst), None) for p, dst in new_path.items()],
              [(join(root, MANIFEST_NAME), manifest), (join(root, INFO_NAME), info)], outcome=plan)
    return len(moves), rel.run(quiet)


def _manifest(plan: ResplitPlan, new_path: dict[str, str]) -> pd.DataFrame:
    b = plan.before
    df = read_manifest(plan.root)
    base = pd.DataFrame({"path": b["path"], "split": b["split"], "label": b["label"], "source": "folder",
                         "source_id": b["path"], "status": "kept"})
    if df is None:
        df = base
    else:
        new = base[~base["path"].isin(set(df["path"]))]
        df = pd.concat([df, new], ignore_index=True) if len(new) else df.copy()
    moved = df["path"].isin(set(new_path))
    df.loc[moved, "split"] = [plan.after[p] for p in df.loc[moved, "path"]]
    df.loc[moved, "path"] = [new_path[p] for p in df.loc[moved, "path"]]
    return df


def undo_resplit(root: str | Path, force: bool = False) -> UndoReport:
    return undo(root, "resplit", force, _copy_to(str(root).rstrip("/")))
