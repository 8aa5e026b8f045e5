"""The perceptual hash (imagehash's phash) as matrix products: bit for bit, or fast on a reduced decode.

imagehash.phash resizes an image to 4 x hash_size (Pillow, Lanczos), takes the lowest hash_size x
hash_size of its 2-D DCT (scipy) and sets the bits above their median. `phash_hex` does exactly that,
bit for bit on the same pixels: Pillow's fixed-point resize is emulated (weights x 2**22, rounded half
away from zero; sums rounded half up and clipped to 0..255 after each pass; Pillow 13 runs the vertical
pass first where the height shrinks more than twice as much as the width, which a one-time probe
detects), scipy's DCT is a matrix. `phash_pair` gives the hash and the crop hash (the central
ZOOM_SHARE) of one image together in floating point, without the roundings: for a reduced JPEG decode,
which no other tool hashes anyway, at a quarter of the cost; a coefficient within rounding of the
median may flip a bit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ZOOM_SHARE = 0.88  # the crop hash: the image's central 88 %, what a crop of a few percent per side shows

PRECISION = 22  # Pillow's fixed-point resampling: weights x 2**22, sums rounded half up and clipped to uint8


@lru_cache(maxsize=256)
def _pillow_lanczos(n: int, out: int) -> np.ndarray:
    """(out, n) float64: Pillow's integer Lanczos weights (x 2**PRECISION) resizing a side of n pixels to `out`
    (Image.resize: support widened by the scale, each row normalised, rounded half away from zero)."""
    scale = n / out
    x = (np.arange(n)[None, :] - (np.arange(out)[:, None] + 0.5) * scale + 0.5) / max(1.0, scale)
    w = np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    w /= w.sum(axis=1, keepdims=True)
    return np.trunc(w * (1 << PRECISION) + np.copysign(0.5, w))


def _pillow_pass(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8 of fixed-point sums (in place): rounded half up to whole gray levels, clipped to 0..255."""
    sums *= 1.0 / (1 << PRECISION)  # a power of two: exact
    sums += 0.5
    np.floor(sums, out=sums)
    np.minimum(sums, 255.0, out=sums)
    return np.maximum(sums, 0.0, out=sums)


@lru_cache(maxsize=1)
def _vertical_first_rule() -> bool:
    """Whether the installed Pillow resizes vertically first where the height shrinks more than twice as much
    as the width (Pillow 13 does; older ones always start horizontally): one 40 x 33 probe."""
    from PIL import Image

    g = (np.arange(40 * 33).reshape(40, 33) * 7919 % 251).astype(np.uint8)
    ref = np.asarray(Image.fromarray(g).resize((32, 32), Image.Resampling.LANCZOS)).astype(np.float64)
    vert = _pillow_pass(_pillow_pass(_pillow_lanczos(40, 32) @ g) @ _pillow_lanczos(33, 32).T)
    return bool((ref == vert).all())


@lru_cache(maxsize=8)
def _dct_rows(n: int, k: int) -> np.ndarray:
    """(k, n): the lowest k rows of scipy.fftpack.dct (type II, unnormalised)."""
    return 2 * np.cos(np.pi * np.arange(k)[:, None] * (2 * np.arange(n)[None, :] + 1) / (2 * n))


def phash_hex(gray: np.ndarray, hash_size: int = 8) -> str:
    """imagehash.phash of a uint8 grayscale array, bit for bit (Image.resize to 4 x hash_size, Lanczos,
    emulated in Pillow's own fixed-point steps; the DCT's lowest hash_size x hash_size, above their median)
    as matrix products: a fraction of the cost of a PIL image, a resize and two scipy DCTs per hash. Where
    imagehash's bits come from floating-point noise (the zero coefficients of a flat image) these are 0."""
    return phash_many(np.asarray(gray)[None], hash_size)[0]


def phash_many(gray: np.ndarray, hash_size: int = 8) -> list[str]:
    """phash_hex of each image of an (n, h, w) uint8 stack, with one matrix product per step for all of
    them (each image's products are those of phash_hex: the same hashes)."""
    side = hash_size * 4
    n, h, w = gray.shape
    x = np.asarray(gray, np.float64)  # integer sums stay exact in float64 (< 2**53)
    vertical_first = h > side and h - side > 2 * (w - side) and _vertical_first_rule()
    if vertical_first:
        x = _pillow_pass(_pillow_lanczos(h, side) @ x)
    if w != side:
        x = _pillow_pass(x @ _pillow_lanczos(w, side).T)
    if h != side and not vertical_first:
        x = _pillow_pass(_pillow_lanczos(h, side) @ x)
    d = _dct_rows(side, hash_size)
    low = (d @ x @ d.T).reshape(n, -1)
    low[np.abs(low) < 1e-9 * np.abs(low).max(axis=1, keepdims=True)] = 0.0  # exact zeros (a flat image)
    flat = np.sort(low, axis=1)  # np.median, without its overhead
    mid = low.shape[1] // 2
    med = flat[:, mid] if low.shape[1] % 2 else (flat[:, mid - 1] + flat[:, mid]) / 2
    bits = low > med[:, None]
    if bits.shape[1] % 8:
        return [bits_hex(b) for b in bits]
    return [row.tobytes().hex() for row in np.packbits(bits, axis=1)]  # whole bytes: bits_hex's digits


def bits_hex(bits: np.ndarray) -> str:
    """A boolean array as imagehash prints it: its bits as one big-endian number, ceil(n / 4) hex digits."""
    flat = bits.ravel().astype(np.uint8)
    pad = (-len(flat)) % 8
    raw = np.packbits(np.concatenate([np.zeros(pad, np.uint8), flat])).tobytes().hex()
    return raw[len(raw) - -(-len(flat) // 4):]




def crop_box(n: int) -> tuple[int, int]:
    """(first, end) pixel of the central ZOOM_SHARE of a side of n pixels (as hashing.zoom_hash crops)."""
    d = round(n * (1 - ZOOM_SHARE) / 2)
    return d, n - d


@lru_cache(maxsize=256)
def _pair_rows(n: int, hash_size: int) -> np.ndarray:
    """(2 * hash_size, n) float32: the lowest DCT rows (scipy's scaling) of a Lanczos resize to 4 x hash_size
    samples of the whole side, then of its central ZOOM_SHARE (Pillow's weights, without its roundings)."""
    side = hash_size * 4
    out = []
    for lo, hi in ((0, n), crop_box(n)):
        w = np.zeros((side, n))
        w[:, lo:hi] = _pillow_lanczos(hi - lo, side)
        out.append(_dct_rows(side, hash_size) @ w)
    return (np.concatenate(out) / (1 << PRECISION)).astype(np.float32)


def phash_pair(gray: np.ndarray, hash_size: int = 8) -> tuple[str, str]:
    """(phash, crop phash) of a uint8 grayscale array in floating point (see the module's note)."""
    h, w = gray.shape
    rh, rw = _pair_rows(h, hash_size), _pair_rows(w, hash_size)
    a = rh @ np.asarray(gray, np.float32)
    k = hash_size
    return _bits(a[:k] @ rw[:k].T), _bits(a[k:] @ rw[k:].T)


def _bits(low: np.ndarray) -> str:
    low = low.astype(np.float64)
    low[np.abs(low) < 1e-6 * np.abs(low).max()] = 0.0  # exact zeros (a flat image): never rounding noise
    flat = np.sort(low, axis=None)
    mid = len(flat) // 2
    med = flat[mid] if len(flat) % 2 else (flat[mid - 1] + flat[mid]) / 2
    return bits_hex(low > med)
