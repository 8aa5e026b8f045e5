"""manifest.parquet (one row per file in the tree) and curate.json (what made the tree).

Core columns every command keeps are CORE_COLUMNS; stages add columns, never rename them.
Rows are sorted by path and written with fixed options, so equal content gives equal bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate import __version__
from curate.errors import InputError
from curate.tree import INFO_NAME, MANIFEST_NAME, atomic_write_bytes, atomic_write_json, json_bytes

SCHEMA_VERSION = 1
CORE_COLUMNS = ["path", "split", "label", "sha256", "width", "height", "source", "source_id", "status"]
CORE_DTYPES = {
    "path": "string", "split": "string", "label": "string", "sha256": "string",
    "width": "Int64", "height": "Int64", "source": "string", "source_id": "string", "status": "string",
}


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_NAME


def _read_url(root: str, name: str) -> bytes | None:
    """Bytes of ROOT/name on an object store, None when it does not exist."""
    from curate import storage

    try:
        return storage.read_bytes(storage.join(root, name))
    except FileNotFoundError:
        return None


def read_manifest(root: str | Path) -> pd.DataFrame | None:
    from curate.storage import is_url, join

    if is_url(root):  # object-store tree (s3://…)
        p, data = join(root, MANIFEST_NAME), _read_url(str(root), MANIFEST_NAME)
        if data is None:
            return None
        src = pa.BufferReader(data)
    else:
        p = src = manifest_path(root)
        if not p.exists():
            return None
    try:
        df = pq.read_table(src).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{p} is not a readable parquet file: {e}", "delete it to rebuild from the tree") from e
    missing = [c for c in ("path", "split", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{p} lacks columns {missing}", "it was not written by curate")
    return df


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Core columns first with fixed dtypes, other columns sorted by name, rows sorted by path."""
    df = df.copy()
    for col in CORE_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    for col, dt in CORE_DTYPES.items():
        df[col] = df[col].astype(dt)
    extra = sorted(c for c in df.columns if c not in CORE_COLUMNS)
    df = df[CORE_COLUMNS + extra]
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(normalise(df), preserve_index=False)
    table = table.replace_schema_metadata({"curate_schema": str(SCHEMA_VERSION)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=False)
    return sink.getvalue().to_pybytes()


def write_manifest(root: str | Path, df: pd.DataFrame) -> Path:
    p = manifest_path(root)
    atomic_write_bytes(p, to_parquet_bytes(df))
    return p


def read_info(root: str | Path) -> dict[str, Any]:
    from curate.storage import is_url, join

    if is_url(root):
        p, data = join(root, INFO_NAME), _read_url(str(root), INFO_NAME)
        if data is None:
            return {}
    else:
        p = Path(root) / INFO_NAME
        if not p.exists():
            return {}
        data = p.read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p} is not valid JSON: {e}", "fix or delete it") from e


def update_info(root: str | Path, step: str, record: dict[str, Any], **top: Any) -> dict[str, Any]:
    """Merge one step's record into curate.json (under steps.<step>) and set top-level keys."""
    info = read_info(root)
    info.setdefault("tool", "curate")
    info["version"] = __version__
    info["schema_version"] = SCHEMA_VERSION
    info.setdefault("steps", {})[step] = record
    info.update(top)
    from curate import storage

    if storage.is_url(root):
        storage.write_bytes(storage.join(root, INFO_NAME), json_bytes(info))
    else:
        atomic_write_json(Path(root) / INFO_NAME, info)
    return info
