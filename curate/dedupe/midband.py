"""The mid-band signature: a cheap test that turns away the close look-alikes the centre code lets through.

Two photos of one coin, or a coin turned by a few degrees, share their low frequencies (shape, layout,
tone): that is why the perceptual hash and the centre code (curate.dedupe.centrecode) find them. They differ in
the next octave, the engraving and the texture, where a copy (re-encoded, resized, cropped a few percent,
relit) still agrees with its original. So, per image, in the hashing pass:

- the central CENTRE share of the reduced grayscale decode (inside a coin's rim, a product's outline:
  the outline of an object that every photo of a set shows at about the same place and size would
  otherwise dominate the band), and that region zoomed by each of ZOOMS (a copy cropped by a few percent
  shows the original's centre larger), each resampled to SIDE x SIDE px (Lanczos-3, fractional boxes)
  and transformed by the 2-D DCT;
- the coefficients of the band LOW <= max(u, v) < K (4.5 to 9 cycles across the region, 7.5 to 15 across
  the image), as int8 (len(ZOOMS) x NBAND bytes).

A pair's similarity is the best cosine of one image's full region against the other's zooms (or both
full). Pixel verification (curate.dedupe.verify.score) accepts a pair only if it is at least MIN, and at
least MIN_SHARP where both reduced decodes are more than SHARP_SIDE px on their shorter side: there the
region holds more pixels than the band has samples, and a copy agrees more (measured on dupsynth's copies,
coins-dev's and the grown coins': lowest 0.876 at up to 80 px, 0.930 above; `minimum`). The test
abstains (no signature) where the band holds noise rather than structure: images whose central region
is under SIDE px in the original file (thumbnails, small icons, digit scans: JPEG noise fills that
octave), and images whose band is weaker than FAINT gray levels RMS (FAINT_SHARP for a decode over
SHARP_SIDE px, where such a band still holds: measured in docs/dedupe.md) (blank pages, smooth gradients,
mostly-letterbox crops: a heavy re-encode rewrites a band that weak).
The same matrix products also give curate.dedupe.centrecode its coefficients (REGIONS after the band's).
docs/dedupe.md has the measurements behind MIN.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from curate.dedupe.centrecode import CENTRE as CODE_CENTRE
from curate.dedupe.centrecode import ZOOMS as CODE_ZOOMS

CENTRE = 0.6  # central share of each side the band test looks at
ZOOMS = (1.0, 0.98, 0.96, 0.94, 0.92, 0.90, 0.88)  # further central shares of that region, for cropped copies
SIDE = 36
K = 18
LOW = 9
MIN = 0.85  # similarity below which score() never accepts a pair (docs/dedupe.md) ...
MIN_SHARP = 0.90  # ... and where both bands came from decodes of more than SHARP_SIDE px (shorter side)
SHARP_SIDE = 80
FAINT = 3.0  # band RMS (gray levels) below which the test abstains ...
FAINT_SHARP = 1.5  # ... or, for a decode over SHARP_SIDE px, this; such a faint band counts only against
# another decode over SHARP_SIDE px (curate.dedupe.candidates.Bands)
COMBOS = ((0, 0), *((0, z) for z in range(1, len(ZOOMS))), *((z, 0) for z in range(1, len(ZOOMS))))
# (share of the side, samples) of every region dct_stack transforms: the band's, then the centre code's
REGIONS = tuple((CENTRE * z, SIDE) for z in ZOOMS) + tuple((CODE_CENTRE * z, 48) for z in (1.0, *CODE_ZOOMS))
CODE_AT = len(ZOOMS)  # index of the centre code's first region

_U, _V = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
BAND = (np.maximum(_U, _V) >= LOW).ravel()
NBAND = int(BAND.sum())
_BAND_AT = np.flatnonzero(BAND)


def _dct(n: int) -> np.ndarray:
    """(K, n) rows of the orthonormal DCT-II."""
    x = np.arange(n)
    d = np.cos(np.pi * np.arange(K)[:, None] * (2 * x[None, :] + 1) / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


@lru_cache(maxsize=256)  # one per side length met (~70 KB each at 100 px): sets have few distinct sizes
def _rows(n: int) -> np.ndarray:
    """(len(REGIONS) * K, n) float32: for a side of n pixels, each region resampled to its samples
    (Lanczos-3, widened when shrinking) followed by the DCT rows: one matrix product per side."""
    out = []
    centres = np.arange(n) + 0.5
    for share, side in REGIONS:
        length = n * share
        scale = length / side  # input pixels per output sample
        at = (n - length) / 2 + (np.arange(side) + 0.5) * scale
        w = _lanczos((centres[None, :] - at[:, None]) / max(1.0, scale))
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        out.append(_dct(side) @ w)
    return np.concatenate(out).astype(np.float32)


def dct_stack(gray: np.ndarray) -> np.ndarray:
    """(len(REGIONS), K, K) float32: the orthonormal 2-D DCT (lowest K x K) of each region of a grayscale
    image: the band's regions, then (from CODE_AT) the centre code's, which takes its 8 x 8 from them.
    For an (n, h, w) stack of images, (n, len(REGIONS), K, K): the same products, image by image."""
    return _transform(gray, _rows, len(REGIONS), K)


def _transform(gray: np.ndarray, rows, regions: int, k: int) -> np.ndarray:
    x = np.asarray(gray, np.float32)
    h, w = x.shape[-2:]
    a = (rows(h) @ x).reshape(*x.shape[:-2], regions, k, w)
    return a @ rows(w).reshape(regions, k, w).transpose(0, 2, 1)


@lru_cache(maxsize=256)
def _code_rows(n: int) -> np.ndarray:
    """(len(REGIONS) - CODE_AT) * 8 rows of _rows(n): the centre code's regions, their 8 lowest DCT rows."""
    rows = _rows(n).reshape(len(REGIONS), K, n)[CODE_AT:, :8]
    return np.ascontiguousarray(rows.reshape(-1, n))


def code_stack(gray: np.ndarray) -> np.ndarray:
    """(len(REGIONS) - CODE_AT, 8, 8) float32: dct_stack's centre-code regions, lowest 8 x 8 only (what
    curate.dedupe.centrecode.coefficients reads), for an image whose band test abstains anyway; for an
    (n, h, w) stack, one per image."""
    return _transform(gray, _code_rows, len(REGIONS) - CODE_AT, 8)


def abstains(size: tuple[int, int]) -> bool:
    """Whether `signature` abstains for an image of `size` whatever its pixels (its centre is too small)."""
    return min(size) * CENTRE < SIDE


def signature(gray: np.ndarray, size: tuple[int, int] | None = None,
              stack: np.ndarray | None = None) -> np.ndarray | None:
    """(len(ZOOMS), NBAND) int8 band coefficients (x 127 / largest) of a uint8 grayscale image (possibly a
    reduced decode of an original of `size` (width, height); `stack`: its dct_stack when already made);
    None where the test abstains."""
    if abstains(size or gray.shape):
        return None
    c = (dct_stack(gray) if stack is None else stack)[: len(ZOOMS)].reshape(len(ZOOMS), K * K).take(_BAND_AT, axis=1)
    norm = np.sqrt(np.einsum("ij,ij->i", c, c))
    if norm[0] / SIDE < (FAINT_SHARP if min(gray.shape) > SHARP_SIDE else FAINT):  # RMS over the region, gray levels
        return None
    peak = np.maximum(c.max(axis=1), -c.min(axis=1))
    c *= (127 / np.maximum(peak, 1e-12))[:, None]
    c[norm <= 1e-6] = 0
    return np.rint(c, out=c).astype(np.int8)


def rms(gray: np.ndarray, stack: np.ndarray | None = None) -> float:
    """The band's RMS amplitude over the central region (gray levels): what `signature` abstains under."""
    c = (dct_stack(gray) if stack is None else stack)[0].ravel().take(_BAND_AT)
    return float(np.sqrt(np.dot(c, c))) / SIDE


def minimum(side_a: np.ndarray, side_b: np.ndarray) -> np.ndarray:
    """The least similarity a copy has, per pair, from the shorter sides of the two decodes its signatures
    came from: MIN_SHARP where both exceed SHARP_SIDE, else MIN."""
    return np.where(np.minimum(side_a, side_b) > SHARP_SIDE, MIN_SHARP, MIN).astype(np.float32)


def inverse_norms(sig: np.ndarray) -> np.ndarray:
    """(n, len(ZOOMS)) float32: 1 / the length of each signature row (0 for an all-zero row)."""
    norm = np.sqrt(np.einsum("nzd,nzd->nz", sig, sig, dtype=np.float32))
    return np.where(norm > 0, 1 / np.maximum(norm, 1e-12), 0).astype(np.float32)


def similarity(sig: np.ndarray, a: np.ndarray, b: np.ndarray, inv: np.ndarray | None = None,
               chunk: int = 4096) -> np.ndarray:
    """Best cosine over COMBOS of pairs (a[k], b[k]) of rows of `sig` ((n, len(ZOOMS), NBAND) int8);
    `inv`: its inverse_norms when already made."""
    inv = inverse_norms(sig) if inv is None else inv
    out = np.empty(len(a), np.float32)
    for k in range(0, len(a), chunk):
        ia, ib = a[k : k + chunk], b[k : k + chunk]
        x, y = sig[ia], sig[ib]  # int8 dot products summed in int32: exact, and a quarter of the memory
        full_a = np.einsum("nd,nzd->nz", x[:, 0], y, dtype=np.int32) * inv[ib] * inv[ia, :1]  # a's full vs b's zooms
        full_b = np.einsum("nd,nzd->nz", y[:, 0], x[:, 1:], dtype=np.int32) * inv[ia, 1:] * inv[ib, :1]  # reverse
        out[k : k + chunk] = np.maximum(full_a.max(axis=1), full_b.max(axis=1))
    return out
