"""What every importer shares: copy-and-verify workers, source fingerprints, the OUT checks and slugs.

`curate kaggle` and `curate import` both turn a source into OUT/<split>/<class>/<file> plus
manifest.parquet and classes.json; the per-file work here runs in executor workers (no torch).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from curate.core.errors import InputError, UnreadableImage
from curate.core.images import decode, extension_matches
from curate.core.manifest import read_manifest
from curate.core.tree import INFO_NAME


def slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def id_key(cid: str) -> tuple:
    """Sort key for class ids: numbers in numeric order first, then text."""
    return (0, int(cid), "") if cid.isdigit() else (1, 0, cid)


# ---------------------------------------------------------------- per-file work (runs in workers)


def ingest_batch(batch: list[tuple[str, str, str, bool]]) -> list[dict[str, Any]]:
    """Copy (or hard-link) each (src, dst, quarantine, link) unchanged and verify it."""
    return [ingest_file(*item) for item in batch]


def ingest_file(src: str, dst: str, quarantine: str, link: bool) -> dict[str, Any]:
    return ingest_bytes(Path(src).read_bytes(), dst, quarantine, src if link else None)


def ingest_bytes(data: bytes, dst: str, quarantine: str, link_from: str | None = None) -> dict[str, Any]:
    """Hash and decode `data`, then place it at dst (or at quarantine when it does not decode)."""
    row: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    try:
        # every byte is entropy-decoded (truncation and corruption show), the IDCT at 1/8 scale only
        p = decode(data, min_scale=0.125)
        row.update(width=p.width, height=p.height, format=p.format, status="kept")
        row["problem"] = None if extension_matches(dst, p.format) else f"extension-mismatch: {p.format} bytes"
        target = Path(dst)
    except UnreadableImage as e:
        row.update(width=None, height=None, format=None, status="unreadable", problem=f"unreadable: {e.reason}")
        target = Path(quarantine)
    place(target, data, link_from)
    return row


def png_bytes(pixels: np.ndarray) -> bytes:
    """Lossless PNG of a HxW (grayscale) or HxWx3 (RGB) uint8 array; same pixels, same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def place(target: Path, data: bytes, link_from: str | None = None) -> None:
    """Write data to target atomically (a hard link to link_from when possible); skip when already there."""
    if target.is_file() and target.stat().st_size == len(data) and _same(target, data):
        return  # resumed
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if link_from is not None:
            try:
                os.link(link_from, tmp)
            except OSError:
                tmp.write_bytes(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _same(path: Path, data: bytes) -> bool:
    return hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


# ---------------------------------------------------------------- sources and OUT


def check_out(out: Path, source: Path | None, step: str, flag: str = "--source") -> dict[str, Any]:
    """OUT must be new, empty, or a previous `curate STEP` build. Returns that build's record."""
    out_r = out.resolve()
    if source is not None:
        src_r = source.resolve()
        if out_r == src_r or src_r in out_r.parents or (out_r in src_r.parents and source.is_dir()):
            raise InputError(f"--out {out} and {flag} {source} overlap", "write the tree to a separate folder")
    if not out.exists():
        above = next((p for p in out.absolute().parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise InputError(f"--out {out} cannot be created: {above} is a file", "choose another --out")
        return {}
    if not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder", "choose another --out")
    info_p = out / INFO_NAME
    record: dict[str, Any] = {}
    if info_p.is_file():
        try:
            record = json.loads(info_p.read_text(encoding="utf-8")).get("steps", {}).get(step, {})
        except (OSError, ValueError):
            record = {}
    if not record and any(p.name != ".curate" for p in out.iterdir()):
        raise InputError(f"--out {out} is not empty and was not made by `curate {step}`", "choose a new or empty folder")
    return record


def clear_import(out: Path) -> None:
    """Remove what an earlier import wrote into OUT (its split folders, manifest, records)."""
    import shutil

    for split in ("train", "val", "test"):
        if (out / split).is_dir():
            shutil.rmtree(out / split)
    for name in ("manifest.parquet", "classes.json", INFO_NAME):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ".curate", ignore_errors=True)


def tree_complete(out: Path) -> bool:
    """manifest.parquet and classes.json are there, and so is every kept file."""

    try:
        df = read_manifest(out)
    except InputError:
        return False
    if df is None or not (out / "classes.json").is_file():
        return False
    kept = df[df["status"] == "kept"]
    return all((out / p).is_file() for p in kept["path"])
