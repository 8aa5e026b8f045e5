"""Per-image statistics for every file of a tree, computed through the executor and cached.

The cache lives next to the hash cache, in tree.state_dir(root)/cache/, keyed by (path, size, mtime,
MEASURE_VERSION): a rerun measures only the files that changed. With `hashes`, the same pass also hashes
what it measures (curate.dedupe.hashing's rows, into its cache): the duplicate search then decodes nothing again.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.core.layout import TreeFile
from curate.core.storage import as_location, file_versions, state_dir_of
from curate.core.tree import atomic_write_bytes
from curate.dedupe.hashing import save_hashes
from curate.engine.executor import is_local, make_executor
from curate.report.measure import FIELDS, MEASURE_VERSION, measure_chunk

CACHE_NAME = "report-stats.parquet"
CHUNK = 32  # files per executor task
IN_PROCESS_BELOW = 64  # fewer files than this are measured in-process (no pool start-up)
KEY = ["path", "size_on_disk", "mtime_ns", "version"]


def cache_path(root: str | Path) -> Path:
    return state_dir_of(root) / "cache" / CACHE_NAME  # local cache dir for object-store trees


def _read_cache(p: Path) -> pd.DataFrame | None:
    try:
        return pq.read_table(p).to_pandas()
    except (OSError, pa.ArrowInvalid):
        return None  # missing or damaged: measure again


def _write_cache(p: Path, df: pd.DataFrame) -> bool:
    try:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink, compression="zstd")
        atomic_write_bytes(p, sink.getvalue())
        return True
    except OSError:
        return False  # a read-only tree still gets its report, just no cache


def image_stats(
    root: str | Path,
    files: list[TreeFile],
    *,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    use_cache: bool = True,
    hashes: bool = False,
) -> pd.DataFrame:
    """One row per file (sorted by path): path, split, label, FIELDS; `cached` tells reused rows.
    `hashes`: measured files are also hashed (curate.dedupe.hashing, phash 8) and cached for hash_files."""
    root = as_location(root)
    versions = file_versions(root, [f.path for f in files])  # (size, mtime_ns), or (size, ETag) for URLs
    keys = [(f.path, *versions[f.path], MEASURE_VERSION) for f in files]
    want = pd.DataFrame(keys, columns=KEY)
    cpath = cache_path(root)
    old = _read_cache(cpath) if use_cache else None
    if old is not None and set(KEY) <= set(old.columns) and set(FIELDS) <= set(old.columns):
        merged = want.merge(old[KEY + list(FIELDS)], on=KEY, how="left", indicator=True)
        hit = merged["_merge"] == "both"
        merged = merged.drop(columns="_merge")
    else:
        merged = want.assign(**{c: None for c in FIELDS})
        hit = pd.Series(False, index=merged.index)
    todo = merged.loc[~hit, "path"].tolist()
    if todo:
        jobs = [(str(root), todo[i : i + CHUNK], hashes) for i in range(0, len(todo), CHUNK)]
        few = is_local(engine) and len(todo) < IN_PROCESS_BELOW  # a pool costs more than it saves
        ex = make_executor(engine, workers=1 if few else workers, quiet=quiet)
        pairs = [r for chunk in ex.map(measure_chunk, jobs, desc="measuring", units=lambda j: len(j[1]),
                                        unit="images") for r in chunk]
        fresh = pd.DataFrame([row for row, _ in pairs], columns=list(FIELDS))
        if hashes:
            hashed = {p: h for p, (_, h) in zip(todo, pairs, strict=True) if h is not None}
            save_hashes(root, files, hashed, versions)
        merged = merged.astype({c: "object" for c in FIELDS})
        merged.loc[~hit, list(FIELDS)] = fresh.to_numpy(dtype=object)
    merged["cached"] = hit.to_numpy()
    out = merged.astype({c: "object" for c in FIELDS})
    for c in ("size", "width", "height"):
        out[c] = pd.array(out[c].tolist(), dtype="Int64")
    for c in ("brightness", "dark_p99", "bright_p5", "contrast", "entropy", "sharpness", "colorfulness"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    if use_cache and todo:
        present = out[out["size_on_disk"] >= 0]  # files that vanished mid-run are not cached
        _write_cache(cpath, present[KEY + list(FIELDS)])
    meta = pd.DataFrame([(f.path, f.split, f.label) for f in files], columns=["path", "split", "label"])
    out = meta.merge(out.drop(columns=["size_on_disk", "mtime_ns", "version"]), on="path", how="left")
    return out.sort_values("path", kind="stable").reset_index(drop=True)
