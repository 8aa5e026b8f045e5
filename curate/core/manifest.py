"""manifest.parquet (one row per file in the tree) and curate.json (what made the tree).

Core columns every command keeps are CORE_COLUMNS; stages add columns, never rename them.
Rows are sorted by path and written with fixed options, so equal content gives equal bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate import __version__
from curate.core import storage
from curate.core.errors import InputError
from curate.core.lazy import lazy
from curate.core.tree import INFO_NAME, MANIFEST_NAME, json_bytes

pd = lazy("pandas")  # on first use: a command reaches its worker pool before these load
pa = lazy("pyarrow")
pq = lazy("pyarrow.parquet")

SCHEMA_VERSION = 1
CORE_COLUMNS = ["path", "split", "label", "sha256", "width", "height", "source", "source_id", "status"]
CORE_DTYPES = {
    "path": "string", "split": "string", "label": "string", "sha256": "string",
    "width": "Int64", "height": "Int64", "source": "string", "source_id": "string", "status": "string",
}


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_NAME


def _read(root: str | Path, name: str) -> tuple[str, bytes | None]:
    """(location, bytes) of ROOT/name, a local folder or an object-store prefix; None when it is missing."""
    p = storage.join(root, name)
    try:
        return p, storage.read_bytes(p)
    except (FileNotFoundError, NotADirectoryError):
        return p, None


def read_manifest(root: str | Path) -> pd.DataFrame | None:
    p, data = _read(root, MANIFEST_NAME)
    if data is None:
        return None
    try:
        df = pq.read_table(pa.BufferReader(data)).to_pandas()
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


def write_manifest(root: str | Path, df: pd.DataFrame) -> str:
    """Atomic locally (temp + rename), one put on an object store."""
    p = storage.join(root, MANIFEST_NAME)
    storage.write_bytes(p, to_parquet_bytes(df))
    return p


def read_info(root: str | Path) -> dict[str, Any]:
    p, data = _read(root, INFO_NAME)
    if data is None:
        return {}
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
    storage.write_bytes(storage.join(root, INFO_NAME), json_bytes(info))
    return info
