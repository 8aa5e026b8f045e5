"""Perceptual hashes of every image of a tree, computed in parallel and cached.

`hash_files(root)` gives one row per image: path, split, label, sha256, size, width, height, format,
mode, hash (hex, as imagehash prints it), error (reason or None), band (curate.dedupe.midband.signature of the
same reduced decode, as bytes; None where that test abstains), zhash (the hash of the central
ZOOM_SHARE; None for an image of at most TINY_SIDE px, whose crops are not copies), chroma_a and chroma_b (mean CIELAB a*, b*, as curate.dedupe.verify.Thumb.chroma: the colour gate),
centre (curate.dedupe.centrecode.coefficients as float16 bytes: what dedupe's search code is fitted on),
band_side (the shorter side of the decode the band came from: how strict its test is, midband.minimum) and
band_rms (the band's strength: a faint band counts only between sharp decodes) and tiny (for an image of at most
TINY_SIDE px on its shorter side: its 8 x 8 RGB area average as 192 bytes, the small-image copy test of
curate.dedupe.candidates; None for larger images).
Each file is decoded once (curate.dedupe.decoding). JPEGs are decoded by OpenCV's libjpeg-turbo at reduced size (DCT scaling) down
to max(HASH_DECODE_SIDE, 6 x hash_size) pixels: the hash only looks at a 32x32 (or smaller) thumbnail, so
this moves a photo's hash by a bit or two of 64 (bench/dedupe.py), at a fraction of the cost; on images
whose DCT coefficients crowd the median (a centred coin on white) up to 8 (coins-dev, JPEG vs a PNG of its
pixels), which dedupe's exact-pixel check allows for; a reduced decode's hash pair is computed in
floating point (curate.dedupe.phash.phash_pair). Plain 8-bit PNGs are decoded by libspng (pyspng) with Pillow's gray,
other files by decode(): there the perceptual hash is imagehash's, bit for bit (phash.phash_hex).
Results are cached in state_dir(root)/cache keyed by (path, size, mtime, hash params). `root` may be an
object-store URL (s3://…): files are read through curate.core.storage and the cache lives in the local user
cache dir (storage.url_state_dir), keyed by (path, size, ETag).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import numpy as np

from curate.core import storage
from curate.core.errors import InputError, UnreadableImage
from curate.core.layout import TreeFile
from curate.core.lazy import lazy, prefetch
from curate.core.storage import read_image_bytes  # noqa: F401  (re-exported for dedupe and report)
from curate.core.tree import atomic_write_bytes
from curate.dedupe.decoding import (  # noqa: F401  (HASH_DECODE_SIDE .. png_pixels: re-exported)
    HASH_DECODE_SIDE,
    decode_small,
    gray_small,
    jpeg_fast,
    jpeg_small,
    png_fast,
    png_pixels,
)
from curate.dedupe.features import (  # noqa: F401  (chroma_of .. zoom_hash: re-exported)
    BATCH_PIXELS,
    HASHES,
    Decode,
    chroma_of,
    features,
    hash_gray,
    hash_image,
    tiny_of,
    zoom_hash,
)
from curate.dedupe.phash import ZOOM_SHARE, phash_hex  # noqa: F401  (re-exported)
from curate.dedupe.small import TINY_SIDE  # noqa: F401  (re-exported)
from curate.engine.executor import make_executor

pd = lazy("pandas")  # parent-side only: pool workers never load it (their fork server starts faster)

COLUMNS = ["path", "split", "label", "sha256", "size", "width", "height", "format", "mode", "hash", "error", "band",
           "zhash", "chroma_a", "chroma_b", "centre", "band_side", "band_rms", "tiny"]
CACHE_VERSION = 14  # 2: prefilter descriptor; 3: zhash; 4: chroma, centre; 5: band; 6: centre from its DCT; 7: 60 px;
# 8: the band from the central 60 %, colour from ~24 px; 9: JPEGs decoded by OpenCV; 10: their hash pair in floats;
# 11: band_side; 12: band_rms; 13: tiny; 14: no zhash for small images
SHARD = (16, 128)  # files per executor task: at least 8 tasks a worker, within these bounds (a larger
# shard shares more of its features' matrix products: curate.dedupe.features)
NOT_CACHED = ("permission-denied", "io-error", "missing")  # about access, not content: may pass unseen by mtime


def check_params(hash_name: str, hash_size: int) -> None:
    if hash_name not in HASHES:
        raise InputError(f"unknown hash '{hash_name}'", f"choose one of: {', '.join(HASHES)}")
    if not 4 <= hash_size <= 32:
        raise InputError(f"--hash-size {hash_size} is out of range", "use 4 to 32 (8 gives 64 bits)")
    if hash_name == "whash" and hash_size & (hash_size - 1):
        raise InputError("whash needs a power-of-two --hash-size", "use 4, 8, 16 or 32")


def hash_file(path: str | Path, hash_name: str = "phash", hash_size: int = 8) -> dict:
    """One row of hash_files (without path/split/label); an unreadable file gets its reason in `error`."""
    return _hash_paths([path], hash_name, hash_size)[0]


def _read(path: str) -> tuple[bytes | None, dict | None]:
    """(the file's bytes, None) or (None, its error row)."""
    row: dict = {k: None for k in COLUMNS[3:]}
    try:
        try:
            return storage.read_image_bytes(path), None
        except PermissionError as e:
            raise UnreadableImage("unreadable", str(e)) from e
    except UnreadableImage as e:
        row["error"] = e.reason
    except Exception:  # an odd failure is still one bad file, never a stopped run
        row["error"] = "corrupt"
    try:
        row["size"] = os.path.getsize(path)
    except OSError:
        pass
    return None, row


def hash_bytes(data: bytes, hash_name: str = "phash", hash_size: int = 8, decoded=None) -> dict:
    """hash_file's row from a file's bytes. `decoded`: see jpeg_small (the report measures and hashes a
    file from one read, and from one decode where both want the same reduced JPEG decode)."""
    row, dec = _decoded(data, hash_name, hash_size, decoded)
    return _finish([(row, dec)], hash_name, hash_size)[0]


def _decoded(data: bytes, hash_name: str, hash_size: int, decoded=None) -> tuple[dict, Decode | None]:
    """(the row so far, the decode its features come from; None: the row is complete, an error)."""
    row: dict = {k: None for k in COLUMNS[3:]}
    row["size"] = len(data)
    row["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        side = max(HASH_DECODE_SIDE, 6 * hash_size)
        fast = jpeg_fast(data, side, decoded) or png_fast(data)
        if fast is None:
            from PIL import Image

            d = decode_small(data, side)
            gray = np.asarray(Image.fromarray(d.pixels).convert("L"))  # Pillow's gray: imagehash's exactly
            fast = ({"width": d.width, "height": d.height, "format": d.format, "mode": d.mode},
                    Decode(gray, d.pixels, (d.width, d.height)))
        row.update(fast[0])
        return row, fast[1]
    except UnreadableImage as e:
        row["error"] = e.reason
    except Exception:  # an odd decoder failure is still one bad file, never a stopped run
        row["error"] = "corrupt"
    return row, None


def _finish(rows: list[tuple[dict, Decode | None]], hash_name: str, hash_size: int) -> list[dict]:
    """The rows, each with the features of its decode (curate.dedupe.features, all at once)."""
    todo = [k for k, (_, dec) in enumerate(rows) if dec is not None]
    try:
        got = features([rows[k][1] for k in todo], hash_name, hash_size)
    except Exception:  # one image broke the batch: each alone, an odd failure is one bad file
        got = []
        for k in todo:
            try:
                got += features([rows[k][1]], hash_name, hash_size)
            except Exception:
                rows[k][0]["error"] = "corrupt"
                got.append({})
    for k, feats in zip(todo, got, strict=True):
        rows[k][0].update(feats)
    return [row for row, _ in rows]


def _hash_paths(paths: list[str], hash_name: str, hash_size: int) -> list[dict]:
    """hash_file of each path: small decodes wait to have their features computed together (bounded
    memory: a larger decode gets its own at once)."""
    out: list = []
    waiting: list[int] = []
    for path in paths:
        data, row = _read(path)
        if data is None:
            out.append(row)
            continue
        row, dec = _decoded(data, hash_name, hash_size)
        if dec is not None and dec.pixels.shape[0] * dec.pixels.shape[1] <= BATCH_PIXELS:
            waiting.append(len(out))
            out.append((row, dec))
        else:
            out.append(_finish([(row, dec)], hash_name, hash_size)[0])
    for k, row in zip(waiting, _finish([out[k] for k in waiting], hash_name, hash_size), strict=True):
        out[k] = row
    return out


def _hash_shard(task: tuple[str, list[str], str, int, bool]) -> tuple[list[dict], dict | None]:
    """A task: the rows of `paths`, and with `versions` their storage.file_versions, taken before the reads."""
    root, paths, hash_name, hash_size, versions = task
    stats = storage.file_versions(root, paths) if versions else None
    return _hash_paths(storage.join_each(root, paths), hash_name, hash_size), stats


def cache_path(root: str | Path, hash_name: str, hash_size: int) -> Path:
    return storage.state_dir_of(root) / "cache" / f"hashes-{hash_name}{hash_size}-v{CACHE_VERSION}.parquet"


def _read_cache(p: Path) -> dict[str, dict]:
    wait_for_cache()  # a cache being written (or left to write) is read whole
    if not p.exists():
        return {}
    try:
        df = pd.read_parquet(p)
    except Exception:  # a broken cache is only a slower run
        return {}
    if not {"path", "_size", "_mtime", *COLUMNS[3:]} <= set(df.columns):
        return {}  # written by another version of the columns
    return {r["path"]: r for r in df.to_dict("records")}


def hash_files(
    root: str | Path,
    files: list[TreeFile] | None = None,
    *,
    hash_name: str = "phash",
    hash_size: int = 8,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    cache_later: bool = False,
) -> pd.DataFrame:
    """One row per image of scan_tree(root) (or `files`), sorted by path; reruns hash only what changed.
    `cache_later`: the cache of the new rows is written by write_cache_now() instead (a caller that has
    idle time later, e.g. while its workers search), or at the latest by the next read of the cache."""

    check_params(hash_name, hash_size)
    root = storage.as_location(root)
    if files is None:
        files = storage.scan(root).files
    files = sorted(files, key=lambda f: f.path)
    cpath = cache_path(root, hash_name, hash_size)
    cache = _read_cache(cpath)
    # no cache to check against: each file's version is taken by the worker that reads it, not here first
    late = not cache and not storage.is_url(root)
    stats = {} if late else storage.file_versions(root, [f.path for f in files])
    results: dict[str, dict] = {}
    todo: list[str] = []
    isna = pd.isna if cache else None  # once (pd is a lazy module), and only for a cache that was read
    for f in files:
        size, mtime = stats.get(f.path, (-1, -1))
        hit = cache.get(f.path)
        if hit is not None and size >= 0 and hit["_size"] == size and hit["_mtime"] == mtime:
            results[f.path] = {k: (None if isna(hit[k]) else hit[k]) for k in COLUMNS[3:]}
        else:
            todo.append(f.path)
    if todo:
        ex = make_executor(engine, workers, quiet)
        size = max(SHARD[0], min(SHARD[1], len(todo) // (8 * max(1, getattr(ex, "workers", 1)))))
        shards = [todo[i : i + size] for i in range(0, len(todo), size)]
        tasks = [(str(root), s, hash_name, hash_size, late) for s in shards]
        if getattr(ex, "workers", 1) > 1:
            # loaded while the workers hash: what collects and caches the rows
            prefetch("pandas", "pyarrow.parquet")
        for shard, (rows, versions) in zip(
            shards, ex.map(_hash_shard, tasks, desc="hashing", units=lambda t: len(t[1]), unit="images"),
            strict=True,
        ):
            results.update(zip(shard, rows, strict=True))
            stats.update(versions or {})
    df = _frame(files, results)
    if todo:
        _PENDING[cpath] = (df.copy(deep=False), stats, cache)
        if not cache_later:
            write_cache_now()
    return df


_PENDING: dict = {}  # cache file -> (rows, stats, old cache) not written yet (hash_files' cache_later)
_WRITING: list[threading.Thread] = []


def write_cache_now(background: bool = False) -> None:
    """Write the caches hash_files left to write (cache_later); `background`: in a thread, which
    wait_for_cache() (and the next read of a cache) waits for."""
    todo = [(p, *rest) for p, rest in _PENDING.items()]
    _PENDING.clear()
    if not background:
        for args in todo:
            _write_cache(*args)
    elif todo:
        _WRITING.append(threading.Thread(target=_write_quietly, args=(todo,)))
        _WRITING[-1].start()


def wait_for_cache() -> None:
    """Every cache hash_files has made is on disk when this returns."""
    write_cache_now()
    while _WRITING:
        _WRITING.pop().join()


def _write_quietly(todo: list) -> None:
    for args in todo:
        try:
            _write_cache(*args)
        except Exception:  # a cache not written only costs the next run time (never a traceback)
            pass


_FEATURES = ("hash", "band", "zhash", "chroma_a", "chroma_b", "centre", "band_side", "band_rms", "tiny")


def _frame(files: list[TreeFile], results: dict[str, dict]) -> pd.DataFrame:
    """hash_files' table of `files` (sorted by path) from their hash_file rows."""
    rows = [results[f.path] for f in files]
    columns = {"path": [f.path for f in files], "split": [f.split for f in files], "label": [f.label for f in files]}
    bad = [r["error"] is not None for r in rows]
    for c in COLUMNS[3:]:  # column by column: a third faster than a frame of 60,000 dicts
        values = [r[c] for r in rows]
        if c in _FEATURES and any(bad):  # an unreadable file has no features, whatever its row holds
            values = [None if b else v for v, b in zip(values, bad, strict=True)]
        columns[c] = values
    df = pd.DataFrame(columns, columns=COLUMNS)
    for c in ("size", "width", "height", "band_side"):
        df[c] = df[c].astype("Int64")
    for c in ("chroma_a", "chroma_b", "band_rms"):
        df[c] = df[c].astype("float64")
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


def save_hashes(root: str | Path, files: list[TreeFile], rows: dict[str, dict],
                versions: dict[str, tuple[int, int | str]]) -> None:
    """Cache hash_bytes rows (default phash, 8) of `files` made elsewhere, as hash_files would have: its
    next call reads them instead of decoding again. `versions`: storage.file_versions from before the reads."""
    root = storage.as_location(root)
    files = sorted((f for f in files if f.path in rows), key=lambda f: f.path)
    if not files:
        return
    cpath = cache_path(root, "phash", 8)
    _write_cache(cpath, _frame(files, rows), {f.path: versions[f.path] for f in files}, _read_cache(cpath))


def _write_cache(cpath: Path, df: pd.DataFrame, stats: dict[str, tuple[int, int | str]], old: dict) -> None:
    version = [stats[p] for p in df["path"].tolist()]
    cacheable = [v[0] >= 0 and e not in NOT_CACHED for v, e in zip(version, df["error"].tolist(), strict=True)]
    keep = df[cacheable].drop(columns=["split", "label"])
    keep["_size"] = [v[0] for v, c in zip(version, cacheable, strict=True) if c]
    keep["_mtime"] = [v[1] for v, c in zip(version, cacheable, strict=True) if c]
    others = [r for p, r in old.items() if p not in stats]  # files outside this call stay cached
    if others:  # (df is sorted by path already)
        keep = pd.concat([keep, pd.DataFrame(others, columns=keep.columns)], ignore_index=True).sort_values("path")
    buf = io.BytesIO()
    keep.to_parquet(buf, index=False)
    try:
        atomic_write_bytes(cpath, buf.getvalue())
    except OSError:  # a read-only tree still gets its answer, just without a cache
        pass
