"""`curate dedupe` as an action: quarantine what find_duplicates removes, journaled and undoable.

Writes dedupe.json (policy, clusters, kept/removed) and dedupe-pairs.csv beside the manifest, updates
manifest.parquet (status, cluster, duplicate_of, distance, phash) and curate.json. --dry-run writes none
of them (only the hash cache in the state folder).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from curate.core.errors import InputError
from curate.core.layout import sort_splits
from curate.core.lazy import lazy
from curate.core.manifest import read_info, read_manifest, to_parquet_bytes
from curate.core.storage import (
    as_location,
    is_url,
    join,
    journal_copy,
    require_dir,
    resolved,
    split_dirs,
    with_suffix,
    write_many,
)
from curate.core.tree import INFO_NAME, MANIFEST_NAME, json_bytes
from curate.dedupe.find import DedupeResult, find_duplicates
from curate.detect.formats import refuse_detection_tree
from curate.moves.journal import Relocation, staged_info
from curate.moves.movers import FreeNames, check_outside_splits, files_for
from curate.moves.undo import UndoReport, undo

pd = lazy("pandas")  # on first use: the hashing pool starts first

REPORT_NAME = "dedupe.json"
PAIRS_NAME = "dedupe-pairs.csv"
RUN_ONLY = {"workers", "engine", "quiet"}  # options that do not change a run's plan


@dataclass
class DedupeOutcome:
    result: DedupeResult
    quarantine: Path
    dry_run: bool
    moved: int = 0
    journal: Path | None = None
    splits: list[dict] = field(default_factory=list)  # per split: files, kept, removed, clusters, unreadable

    @property
    def leakage(self) -> int:
        return sum(c.cross_split for c in self.result.clusters)

    @property
    def label_conflicts(self) -> int:
        return sum(c.label_conflict for c in self.result.clusters)


def split_summary(result: DedupeResult) -> list[dict]:
    files = result.files
    removed = result.removals()
    rows = []
    splits = sort_splits(set(files["split"]))
    for s in splits:
        paths = set(files.loc[files["split"] == s, "path"])
        gone = paths & set(removed)
        clusters = {c.id for c in result.clusters if set(c.remove) & gone}
        bad = sum(1 for p, _ in result.unreadable if p in paths)
        rows.append({"split": s, "files": len(paths), "kept": len(paths) - len(gone), "removed": len(gone),
                     "clusters": len(clusters), "unreadable": bad})
    return rows


def updated_manifest(root: Path, result: DedupeResult) -> pd.DataFrame:
    """The manifest after dedupe: every tree file present, with status/cluster/duplicate_of/distance/similarity/
    conflict/phash. distance and similarity always refer to the cluster's kept file (measured directly
    against it); conflict is the policy applied to a label-conflict cluster's members (keep or drop)."""
    files = result.files
    old = read_manifest(root)
    base = pd.DataFrame({
        "path": files["path"], "split": files["split"], "label": files["label"], "sha256": files["sha256"],
        "width": files["width"], "height": files["height"], "source": "folder", "source_id": files["path"],
        "status": "kept",
    })
    if old is None:
        df = base
    else:
        df = old.copy()
        new = base[~base["path"].isin(set(df["path"]))]
        df = pd.concat([df, new], ignore_index=True) if len(new) else df
    byhash = dict(zip(files["path"], files["hash"], strict=True))
    removed = result.removals()
    cluster_of = {m: c.id for c in result.clusters for m in c.members}
    bad = dict(result.unreadable)
    in_tree = df["path"].isin(set(files["path"])).tolist()
    links = {m: link for c in result.clusters for m, link in c.links.items()}
    dist = {m: link["distance"] for m, link in links.items()}
    sim = {m: link["similarity"] for m, link in links.items()}
    policy = result.params.get("conflicts", "keep")
    conflict = {m: policy for c in result.clusters if c.label_conflict for m in c.members}
    for col, values, dtype in (("phash", byhash, "string"), ("cluster", cluster_of, "Int64"),
                               ("duplicate_of", removed, "string"), ("distance", dist, "Int64"),
                               ("similarity", sim, "Float64"), ("conflict", conflict, "string")):
        prev = df[col].tolist() if col in df.columns else [None] * len(df)
        df[col] = pd.array([values.get(p) if t else (None if pd.isna(o) else o)
                            for p, t, o in zip(df["path"], in_tree, prev, strict=True)], dtype=dtype)
    status = df["status"].astype("string").tolist()
    for i, (p, t) in enumerate(zip(df["path"], in_tree, strict=True)):
        if not t:
            continue
        status[i] = "removed" if p in removed else "unreadable" if p in bad else "kept"
    df["status"] = status
    return df


def report_json(outcome: DedupeOutcome) -> dict:
    res = outcome.result
    return {**res.to_json(), "splits": outcome.splits, "quarantine": str(outcome.quarantine),
            "leakage_clusters": outcome.leakage, "label_conflicts": outcome.label_conflicts,
            "removed": res.removals()}


def pairs_csv(result: DedupeResult) -> bytes:
    buf = io.StringIO()
    result.pairs.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def dedupe(
    root: str | Path,
    *,
    quarantine: str | Path | None = None,
    dry_run: bool = False,
    json_path: str | Path | None = None,
    **find_kwargs,
) -> DedupeOutcome:
    """find_duplicates, then (unless dry_run) move every removed copy to the quarantine, journaled (curate.moves.journal).
    `root` (and `quarantine`, `json_path`) may be object-store URLs (s3://…): moves are then copy → verify →
    delete. A rerun after an interrupted run finishes that run's plan."""
    root, qdir = _locations(root, quarantine)
    check_outside_splits(str(root), split_dirs(root), str(qdir))
    options = {"quarantine": str(qdir), **{k: v for k, v in find_kwargs.items() if k not in RUN_ONLY}}
    copy_to = journal_copy(qdir)
    if not dry_run and (rel := Relocation.resume(root, "dedupe", options, copy_to)):
        out = rel.outcome
        out.journal = rel.run(quiet=find_kwargs.get("quiet", False))
        return out
    out = _analyse(root, qdir, dry_run, json_path, find_kwargs)
    result = out.result
    if dry_run:
        return out
    manifest = to_parquet_bytes(updated_manifest(root, result))  # a broken manifest or curate.json
    read_info(root)  # stops the run here, before anything moves
    sha = dict(zip(result.files["path"], result.files["sha256"], strict=True))
    free = FreeNames(files_for(root), str(qdir))
    moves = [(join(root, p), free(join(qdir, p)), sha[p]) for p in sorted(result.removals())]
    out.moved = len(moves)
    info = staged_info(root, "dedupe", {**result.params, "removed": out.moved, "clusters": len(result.clusters),
                                         "quarantine": str(qdir)})
    writes = [(join(root, MANIFEST_NAME), manifest), (join(root, REPORT_NAME), json_bytes(report_json(out))),
              (join(root, PAIRS_NAME), pairs_csv(result)), (join(root, INFO_NAME), info)]
    rel = Relocation(root, "dedupe", options=options, copy_to=copy_to)
    rel.start(moves, writes, outcome=out)
    out.journal = rel.run(quiet=find_kwargs.get("quiet", False))
    return out


def _locations(root, quarantine) -> tuple[str | Path, str | Path]:
    """The tree and its quarantine (default ROOT.quarantine beside it): URLs on one store, or resolved
    local paths."""
    root = resolved(root)
    require_dir(root, "pass the root of an image tree (ROOT/<split>/<label>/<image> or ROOT/<label>/<image>)")
    refuse_detection_tree(root, "dedupe")
    qdir = resolved(quarantine) if quarantine else as_location(f"{root}.quarantine")
    if is_url(qdir) != is_url(root):  # moves copy within one store, or rename on one disk
        raise InputError(f"--quarantine {qdir} must be on the same {'object store' if is_url(root) else 'machine'} "
                         f"as {root}", f"leave it out (default {root}.quarantine) or pass a "
                         f"{'URL prefix' if is_url(root) else 'local folder'}")
    return root, qdir


def _analyse(root, qdir, dry_run: bool, json_path, find_kwargs: dict) -> DedupeOutcome:
    """The read-only half shared by local and object-store trees: clusters, outcome, optional JSON report."""
    result = find_duplicates(root, **find_kwargs)
    _require_images(root, result)
    out = DedupeOutcome(result=result, quarantine=qdir, dry_run=dry_run, splits=split_summary(result))
    if json_path:
        _write_json_report(json_path, out)
    return out


def _require_images(root, result: DedupeResult) -> None:
    """A folder with no images (a typo, a class folder) gets an error, not a manifest written into it."""
    if len(result.files) == 0:
        raise InputError(f"no images found under {root}",
                         "expected ROOT/<split>/<label>/<image> or ROOT/<label>/<image>")


def _write_json_report(json_path: str | Path, out: DedupeOutcome) -> None:
    """JSON_PATH plus JSON_PATH's stem + -pairs.csv beside it (local path or URL)."""
    js = as_location(json_path)
    write_many({str(js): json_bytes(report_json(out)), f"{with_suffix(js, '')}-pairs.csv": pairs_csv(out.result)})


def undo_dedupe(root: str | Path, force: bool = False) -> UndoReport:
    return undo(root, "dedupe", force, journal_copy(root, ".quarantine.journal"))
