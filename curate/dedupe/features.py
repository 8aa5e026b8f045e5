"""What the hashing pass keeps of one decode (curate.dedupe.hashing's columns after the file's own), computed
for many decodes at once.

`features(decodes)` gives each decode's hash, band, zhash, chroma, centre, band_side, band_rms and tiny.
Decodes of one gray shape and kind share their matrix products (the perceptual hash, the centre code's
DCT stack): each image's products are those it would get alone, so its row is the same, but the fixed
cost of a numpy call is paid once per shape instead of once per image. On small images that cost is
most of the work (60,000 generated discs of 32-64 px: 184 -> 117 us per file; bench/dedupe.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from curate.core.images import pil_gray
from curate.dedupe.centrecode import coefficients
from curate.dedupe.midband import abstains, code_stack, dct_stack, signature
from curate.dedupe.midband import rms as midband_rms
from curate.dedupe.phash import crop_box, phash_many, phash_pair
from curate.dedupe.small import TINY_SIDE, averages

HASHES = ("phash", "dhash", "ahash", "whash")
BATCH_PIXELS = 128 * 128  # decodes up to this size wait for their shard's batch (bounded memory)


@dataclass
class Decode:
    """One file's decode, as the features need it."""

    gray: np.ndarray | None  # (h, w) uint8: Pillow's gray of `pixels` (OpenCV's for a reduced JPEG decode);
    # None: Pillow's gray of the colour `pixels`, made by features() for all decodes of one shape at once
    pixels: np.ndarray  # uint8 RGB (BGR with `bgr`) or gray
    size: tuple[int, int]  # the original (width, height): a reduced decode is smaller
    bgr: bool = False
    exact: bool = True  # False: a reduced JPEG decode, whose phash pair comes from phash.phash_pair


def features(decodes: list[Decode], hash_name: str = "phash", hash_size: int = 8) -> list[dict]:
    """The feature columns of each decode, in order (see the module's note)."""
    out: list[dict] = [{} for _ in decodes]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, d in enumerate(decodes):
        key = (d.pixels.shape, d.gray is None, d.bgr, abstains(d.size), min(d.size) <= TINY_SIDE, d.exact)
        groups[key].append(k)
    for (_, no_gray, bgr, no_band, small, exact), ks in groups.items():
        pixels = np.stack([decodes[k].pixels for k in ks])
        gray = pil_gray(pixels[..., ::-1] if bgr else pixels) if no_gray else np.stack([decodes[k].gray for k in ks])
        chroma = chroma_many(pixels, bgr)
        tiny = averages_many(pixels, bgr) if small else None
        stack = code_stack(gray) if no_band else dct_stack(gray)  # no band: the centre code's regions only
        centre = coefficients(gray, stack)
        if hash_name == "phash" and not exact:
            full, crop = zip(*(phash_pair(g, hash_size) for g in gray), strict=True)
        else:  # no crop hash for a small image: a crop of it is not a copy (curate.dedupe.small)
            full = hash_many(gray, hash_name, hash_size)
            crop = [None] * len(ks) if small else zoom_many(gray, hash_name, hash_size)
        for i, k in enumerate(ks):
            d = decodes[k]
            band = None if no_band else signature(gray[i], d.size, stack[i])
            out[k] = {"hash": full[i], "band": None if band is None else band.tobytes(),
                      "zhash": None if small else crop[i], "chroma_a": chroma[i][0], "chroma_b": chroma[i][1],
                      "centre": centre[i].tobytes(), "band_side": None if band is None else int(min(gray[i].shape)),
                      "band_rms": None if band is None else round(midband_rms(gray[i], stack[i]), 3),
                      "tiny": None if tiny is None else tiny[i].tobytes()}
    return out


def hash_many(gray: np.ndarray, hash_name: str = "phash", hash_size: int = 8) -> list[str]:
    """hash_gray of each image of an (n, h, w) uint8 stack."""
    if hash_name == "phash":
        return phash_many(gray, hash_size)
    return [hash_gray(g, hash_name, hash_size) for g in gray]


def zoom_many(gray: np.ndarray, hash_name: str = "phash", hash_size: int = 8) -> list[str]:
    """zoom_hash of each image of an (n, h, w) uint8 stack."""
    (y0, y1), (x0, x1) = crop_box(gray.shape[-2]), crop_box(gray.shape[-1])
    return hash_many(gray[:, y0:y1, x0:x1], hash_name, hash_size)


def zoom_hash(gray: np.ndarray, hash_name: str = "phash", hash_size: int = 8) -> str:
    """The hash of the central ZOOM_SHARE of a grayscale image: a copy cropped by a few percent per side
    hashes close to it, where its full hash may have drifted past the threshold (dedupe compares both)."""
    return zoom_many(np.asarray(gray)[None], hash_name, hash_size)[0]


def hash_gray(gray: np.ndarray, hash_name: str = "phash", hash_size: int = 8) -> str:
    """hash_image of a uint8 grayscale array."""
    from PIL import Image

    if hash_name == "phash":
        return phash_many(np.asarray(gray)[None], hash_size)[0]
    return hash_image(Image.fromarray(np.ascontiguousarray(gray)), hash_name, hash_size)


def hash_image(im, hash_name: str = "phash", hash_size: int = 8) -> str:
    """The perceptual hash (hex string) of a grayscale PIL image."""
    import imagehash

    if hash_name == "phash":
        return phash_many(np.asarray(im.convert("L"))[None], hash_size)[0]
    elif hash_name == "dhash":
        h = imagehash.dhash(im, hash_size=hash_size)
    elif hash_name == "ahash":
        h = imagehash.average_hash(im, hash_size=hash_size)
    else:  # fixed wavelet scale so the hash never depends on the decode size
        h = imagehash.whash(im, hash_size=hash_size, image_scale=hash_size * 8)
    return str(h)


def chroma_of(pixels: np.ndarray, bgr: bool = False) -> tuple[float, float]:
    """Mean CIELAB (a*, b*) of an RGB (or grayscale: 0, 0) uint8 array, as curate.dedupe.verify.Thumb.chroma has
    it, from an area-averaged copy of about 24 px (within 0.61 of the full-size mean on 1,854 coins-dev and
    dupsynth files; the colour gate allows for 3). `bgr`: OpenCV's channel order."""
    if pixels.ndim == 2:
        return 0.0, 0.0
    h, w = pixels.shape[:2]
    f = max(1, min(h, w) // 24)
    if f > 1:
        pixels = cv2.resize(pixels, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    lab = cv2.mean(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGR2LAB if bgr else cv2.COLOR_RGB2LAB))
    return lab[1] - 128.0, lab[2] - 128.0


def chroma_many(pixels: np.ndarray, bgr: bool = False) -> list[tuple[float, float]]:
    """chroma_of of each image of an (n, h, w[, 3]) uint8 stack: where the ~24 px copy is a whole-block
    average, one resize and one conversion for all of them (the same blocks, the same values)."""
    n, h, w = pixels.shape[:3]
    f = max(1, min(h, w) // 24)
    if pixels.ndim == 3:
        return [(0.0, 0.0)] * n
    if h % f or w % f:
        return [chroma_of(p, bgr) for p in pixels]
    tall = pixels.reshape(n * h, w, 3)
    if f > 1:
        tall = cv2.resize(tall, (w // f, n * h // f), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(tall, cv2.COLOR_BGR2LAB if bgr else cv2.COLOR_RGB2LAB)
    means = [cv2.mean(one) for one in lab.reshape(n, -1, *lab.shape[1:])]
    return [(m[1] - 128.0, m[2] - 128.0) for m in means]


def averages_many(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(n, 8, 8, 3) uint8: curate.dedupe.small.averages of each image of an (n, h, w[, 3]) uint8 stack, in
    one resize where each image's 8 x 8 blocks are whole (sides that are multiples of 8)."""
    n, h, w = pixels.shape[:3]
    if h % 8 or w % 8:
        return np.stack([averages(p, bgr) for p in pixels])
    tall = cv2.resize(np.ascontiguousarray(pixels.reshape(n * h, w, *pixels.shape[3:])), (8, n * 8),
                      interpolation=cv2.INTER_AREA)
    if tall.ndim == 2:
        return np.repeat(tall.reshape(n, 8, 8, 1), 3, axis=3)
    return tall.reshape(n, 8, 8, 3)[..., ::-1] if bgr else tall.reshape(n, 8, 8, 3)


def tiny_of(pixels: np.ndarray, bgr: bool = False) -> bytes:
    """The 8 x 8 RGB area average of an image (uint8 RGB or gray, or BGR with `bgr`), as 192 bytes."""
    return averages(pixels, bgr).tobytes()
