"""Per-image measurements for the report: a pure function of a file's bytes.

Runs inside executor workers. All measures are taken on a copy whose longest side is at most MEASURE_SIDE
pixels, so they do not depend on resolution and large JPEGs decode at reduced size. `measure_and_hash`
also gives curate.dedupe.hashing's row from the same read (and the same decode where hashing wants the same
reduced JPEG decode: large photos), so the report's duplicate search reads the hashes from its cache.
`dct_hash` stays its own: the mirror check compares a 256 px luma's hash with its mirror's.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from curate.core.errors import UnreadableImage
from curate.core.images import decode
from curate.core.storage import join, read_image_bytes
from curate.dedupe.hashing import hash_bytes

MEASURE_VERSION = 2  # bump when a measure changes: invalidates the stats cache
MEASURE_SIDE = 256  # longest side (px) that brightness, blur, entropy, ... are measured at

# Columns produced for every file (None where the file is unreadable).
FIELDS = (
    "size", "sha256", "width", "height", "format", "mode", "error",
    "brightness", "dark_p99", "bright_p5", "contrast", "entropy", "sharpness", "colorfulness",
    "phash", "phash_mirror",
)


def dct_hash(gray: np.ndarray) -> str:
    """64-bit DCT perceptual hash (like imagehash.phash: 32x32, low 8x8 coefficients vs their median), hex."""
    import cv2

    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def _luma_stats(gray: np.ndarray) -> dict:
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    n = hist.sum()
    cdf = np.cumsum(hist) / n
    levels = np.arange(256, dtype=np.float64)
    mean = float((hist * levels).sum() / n)
    var = float((hist * (levels - mean) ** 2).sum() / n)
    p = hist[hist > 0] / n
    return {
        "brightness": round(mean / 255.0, 5),
        "dark_p99": round(int(np.searchsorted(cdf, 0.99)) / 255.0, 5),
        "bright_p5": round(int(np.searchsorted(cdf, 0.05)) / 255.0, 5),
        "contrast": round(var**0.5 / 255.0, 5),
        "entropy": round(float(-(p * np.log2(p)).sum()), 5),
    }


def measure_pixels(rgb: np.ndarray) -> dict:
    """Quality measures of an RGB uint8 image (any size; shrunk to MEASURE_SIDE first)."""
    import cv2

    h, w = rgb.shape[:2]
    f = MEASURE_SIDE / max(h, w)
    if f < 1.0:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    stats = _luma_stats(gray)
    lap = cv2.Laplacian(gray, cv2.CV_64F, ksize=1) if min(gray.shape) >= 3 else np.zeros(1)
    stats["sharpness"] = round(float(lap.var()), 3)
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    stats["colorfulness"] = round(float(spread.mean()) / 255.0, 5)
    stats["phash"] = dct_hash(gray)
    stats["phash_mirror"] = dct_hash(np.ascontiguousarray(gray[:, ::-1]))  # finds left-right mirrored copies
    return stats


def measure_file(path: str | Path) -> dict:
    """All FIELDS for one file; an unreadable file gets its reason in `error`."""
    return measure_and_hash(path, hashes=False)[0]


def measure_and_hash(path: str | Path, hashes: bool = True) -> tuple[dict, dict | None]:
    """(measure_file's row, curate.dedupe.hashing.hash_bytes' row of the same bytes, or None when `hashes` is off
    or the file cannot be read)."""
    row: dict = dict.fromkeys(FIELDS)
    try:
        data = read_image_bytes(path)
    except (OSError, UnreadableImage) as e:  # permission denied, I/O error, missing: not read at all
        row["error"] = e.reason if isinstance(e, UnreadableImage) else "unreadable"
        try:
            row["size"] = os.path.getsize(path)
        except OSError:
            pass
        return row, None
    row["size"] = len(data)
    try:
        d = decode(data, min_scale=min(1.0, MEASURE_SIDE / max(1, _longest_side(data))))
    except UnreadableImage as e:
        row["error"], d = e.reason, None
    hashed = None
    if hashes:
        same = d is not None and d.format == "JPEG" and d.mode == "RGB"  # OpenCV's decode (images.decode)
        hashed = hash_bytes(data, decoded=(d.pixels, round(1 / d.scale)) if same else None)
    row["sha256"] = hashed["sha256"] if hashed else hashlib.sha256(data).hexdigest()
    if d is not None:
        row.update(width=d.width, height=d.height, format=d.format, mode=d.mode)
        row.update(measure_pixels(d.pixels))
    return row, hashed


def _longest_side(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as im:  # header only: picks the reduced JPEG decode size
            return max(im.size)
    except Exception:  # decode() names the problem
        return MEASURE_SIDE


def measure_chunk(job: tuple[str, list[str], bool]) -> list[tuple[dict, dict | None]]:
    """Executor task: (root, [relative paths], hashes) -> measure_and_hash of each path, in order."""
    import cv2

    cv2.setNumThreads(1)
    root, paths, hashes = job
    return [measure_and_hash(join(root, p), hashes) for p in paths]
