"""Assemble a report: scan the tree, measure every image, join the manifest, find duplicates, run checks."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from curate.core.errors import CurateError, InputError
from curate.core.layout import split_rank
from curate.core.manifest import CORE_COLUMNS, read_manifest
from curate.core.storage import as_location, require_dir, resolved, scan
from curate.dedupe import find as dedupe
from curate.report.checks import Check, Context, all_checks
from curate.report.checks.detection import detection_tree, retag_clusters
from curate.report.stats import image_stats


@dataclass
class Analysis:
    ctx: Context
    results: dict[str, tuple[Check, list[dict]]]  # check name -> (check, findings); applicable checks only
    duplicates_source: str  # "curate.dedupe", "sha256" (exact duplicates only) or "off"
    duplicates_warning: str = ""
    skipped: list[str] = field(default_factory=list)  # checks that do not apply to this tree


def kept_manifest(root: Path) -> pd.DataFrame | None:
    """manifest.parquet without rows for files no longer in the tree (status set and not 'kept')."""
    m = read_manifest(root)
    if m is None:
        return None
    if "status" in m.columns:
        st = m["status"].astype("string")
        m = m[st.isna() | (st == "kept")]
    return m.drop_duplicates("path").reset_index(drop=True)


def join_manifest(images: pd.DataFrame, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """Add the manifest's non-core columns (source, crop geometry, flags ...) to the per-image table."""
    if manifest is None:
        return images
    extra = [c for c in manifest.columns if c not in images.columns and c not in CORE_COLUMNS]
    keep = manifest[["path", *extra, *[c for c in ("source", "source_id") if c in manifest.columns]]]
    return images.merge(keep.loc[:, ~keep.columns.duplicated()], on="path", how="left")


def exact_clusters(images: pd.DataFrame) -> list[dict]:
    """Groups of byte-identical readable files, shaped like curate.dedupe.find's Cluster."""
    df = images[images["error"].isna() & images["sha256"].notna()]
    out = []
    for _sha, g in sorted(df.groupby("sha256"), key=lambda kv: sorted(kv[1]["path"])[0]):
        if len(g) < 2:
            continue
        g = g.sort_values("path")
        keep = min(g.itertuples(index=False), key=lambda r: (split_rank(r.split), r.path)).path
        splits, labels = sorted(set(g["split"])), sorted(set(g["label"]))
        out.append({"id": len(out), "kind": "exact", "members": g["path"].tolist(), "keep": keep,
                    "splits": splits, "labels": labels, "cross_split": len(splits) > 1,
                    "label_conflict": len(labels) > 1, "max_distance": 0})
    return out


def find_clusters(root: Path, images: pd.DataFrame, *, workers, engine, quiet) -> tuple[list[dict], str, str]:
    """(clusters, source, warning): curate.dedupe.find's exact + near clusters, or exact sha256 groups when
    the duplicate search fails unexpectedly (a report still gets written; the warning says why)."""
    try:
        res = dedupe.find_duplicates(root, workers=workers, engine=engine, quiet=quiet)
    except CurateError:
        raise
    except Exception as e:  # a dedupe bug must not cost the whole report
        return exact_clusters(images), "sha256", f"duplicate search failed ({type(e).__name__}: {e}): exact only"
    clusters = [asdict(c) if not isinstance(c, dict) else dict(c) for c in res.clusters]
    return clusters, "curate.dedupe", ""


MAX_GRID = 1500  # thumbnails in the per-label grid at most (keeps report.html under ~10 MB)


def sample_paths(images: pd.DataFrame, per_label: int, seed: int = 0) -> dict[str, list[str]]:
    """A deterministic sample of readable files per label (same tree + seed -> same sample).

    With many labels each gets fewer (at least 2) so the grid stays under MAX_GRID thumbnails."""
    df = images[images["error"].isna()]
    labels = df["label"].nunique()
    if labels:
        per_label = min(per_label, max(2, MAX_GRID // labels))
    out = {}
    for label, g in df.groupby("label", sort=True):
        key = sorted(g["path"], key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
        out[str(label)] = sorted(key[:per_label])
    return out


def analyse(
    root: str | Path,
    *,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    params: dict[str, dict[str, float]] | None = None,
    duplicates: bool = True,
) -> Analysis:
    root = as_location(root)
    require_dir(root, "pass the root of an image tree")
    tree = detection_tree(root) or scan(root)  # a YOLO/COCO set (local): images filed by main label
    if not tree.files and not tree.empty_labels:
        raise InputError(f"no images found under {root}",
                         "expected ROOT/<split>/<label>/<image> or ROOT/<label>/<image>")
    images = image_stats(root, tree.files, workers=workers, engine=engine, quiet=quiet, hashes=duplicates)
    manifest = kept_manifest(root)
    images = join_manifest(images, manifest)
    if duplicates:
        clusters, source, warning = find_clusters(root, images, workers=workers, engine=engine, quiet=quiet)
    else:
        clusters, source, warning = [], "off", ""
    clusters = retag_clusters(clusters, tree)
    ctx = Context(str(resolved(root)), tree, images, manifest, clusters, params or {})
    results, skipped = {}, []
    for name, cls in sorted(all_checks().items()):
        check = cls(ctx.params.get(name))
        if (cls.group == "duplicates" and not duplicates) or not check.applies(ctx):
            skipped.append(name)
            continue
        results[name] = (check, check.run(ctx))
    return Analysis(ctx, results, source, warning, skipped)
