"""The hashing pass's decodes (curate.dedupe.hashing): each file decoded once, as small as its features allow.

JPEGs are decoded by OpenCV's libjpeg-turbo at reduced size (DCT scaling by 2, 4 or 8) down to `side`
pixels on the shorter side (`jpeg_small`; the size and orientation from the frame header); plain 8-bit
PNGs by libspng (pyspng), which gives Pillow's pixels (`png_pixels`); anything else by curate.core.images.decode
(`decode_small`). `png_fast` and `jpeg_fast` give a hash row's size and format with the
curate.dedupe.features.Decode its features come from; `gray_small` is the reduced grayscale decode.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pyspng

from curate.core.images import DEFAULT_MAX_PIXELS, c_quiet, decode, jpeg_frame, png_plain
from curate.dedupe.features import Decode

HASH_DECODE_SIDE = 60  # reduced JPEG decoding keeps both sides at least this long: the mid-band test
# needs its central 80 % at 48 px (curate.dedupe.midband.SIDE / CENTRE)


def decode_small(data: bytes, side: int = HASH_DECODE_SIDE):
    """decode() with reduced-size JPEG decoding down to `side` pixels on the shorter side."""
    from PIL import Image

    if data[:2] != b"\xff\xd8":  # not a JPEG: no reduced decoding, no need to read the header twice
        return decode(data)
    try:
        with Image.open(io.BytesIO(data)) as im:  # header only: picks the reduced decode size
            small = min(im.size)
    except Exception:  # decode() below names the problem
        small = side
    return decode(data, min_scale=min(1.0, side / max(1, small)))


def jpeg_small(data: bytes, side: int, decoded: tuple[np.ndarray, int] | None = None):
    """Plain, complete JPEGs: (pixels decoded at reduced size by OpenCV's libjpeg-turbo (DCT scaling by 2, 4
    or 8), both sides >= `side` where the file allows, upright: BGR, or gray for a grayscale file; format,
    mode, original upright (width, height)). None when the file needs decode()'s general path (other
    formats, CMYK, damage, huge). The size comes from the frame header (images.jpeg_frame); OpenCV applies
    the EXIF orientation, and the decoded shape says whether it swapped the sides. `decoded`: (RGB pixels,
    factor) of images.decode's OpenCV decode of this colour JPEG, used where it is the same decode."""

    if b"\xff\xd9" not in data[-1024:]:  # not a complete JPEG: decode() says why
        return None
    frame = jpeg_frame(data)
    if frame is None or frame[2] not in (1, 3) or frame[0] * frame[1] > DEFAULT_MAX_PIXELS:
        return None
    w, h, components, exif = frame
    factor = 1
    while factor < 8 and -(-min(w, h) // (factor * 2)) >= side:
        factor *= 2
    try:
        if decoded is not None and decoded[1] == factor and components == 3:  # the same imdecode call
            pixels = cv2.cvtColor(decoded[0], cv2.COLOR_RGB2BGR)
        else:
            with c_quiet():
                pixels = cv2.imdecode(np.frombuffer(data, np.uint8), (_GRAY if components == 1 else _COLOR)[factor])
    except cv2.error:
        return None
    if pixels is None:
        return None
    stored, turned = (-(-h // factor), -(-w // factor)), (-(-w // factor), -(-h // factor))
    if pixels.shape[:2] == stored and (stored != turned or not exif or w == h):
        size = (w, h)
    elif pixels.shape[:2] == turned and stored != turned:
        size = (h, w)
    else:  # turned or not, the shape cannot tell (near-square, EXIF): decode() reads the orientation
        return None
    return pixels, "JPEG", "L" if components == 1 else "RGB", size


_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}
_GRAY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
         8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def png_pixels(data: bytes) -> np.ndarray | None:
    """A plain PNG (images.png_plain) decoded by libspng (pyspng): Pillow's pixels (RGB, or 2-D gray), in
    0.7-0.8 of OpenCV's time (and half of Pillow's) from 40 px to photo size; None: decode()'s general path
    (which names what is wrong with a damaged file)."""
    plain = png_plain(data)
    if plain is None or plain[0] * plain[1] > DEFAULT_MAX_PIXELS:
        return None
    w, h, channels = plain
    try:
        pixels = pyspng.load(data)  # no gamma or colour transforms: the stored samples, as Pillow gives them
    except Exception:  # a damaged stream: decode() says how
        return None
    if pixels.shape[:2] != (h, w) or (pixels.ndim == 3) != (channels == 3):
        return None
    return pixels


def png_fast(data: bytes) -> tuple[dict, Decode] | None:
    """hash_file's (row, decode) for a plain PNG (png_pixels): Pillow's pixels and gray, so the hash is
    imagehash's bit for bit; None: decode()'s general path."""
    pixels = png_pixels(data)
    if pixels is None:
        return None
    (h, w), gray = pixels.shape[:2], pixels.ndim == 2
    return ({"width": w, "height": h, "format": "PNG", "mode": "L" if gray else "RGB"},
            Decode(pixels if gray else None, pixels, (w, h)))  # None: Pillow's gray, made later


def jpeg_fast(data: bytes, side: int, decoded=None) -> tuple[dict, Decode] | None:
    """hash_file's (row, decode) for a plain JPEG from one reduced decode; None: decode()'s general path."""
    got = jpeg_small(data, side, decoded)
    if got is None:
        return None
    pixels, fmt, mode, (w, h) = got
    try:
        gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    except cv2.error:  # decode() names the problem
        return None
    return {"width": w, "height": h, "format": fmt, "mode": mode}, Decode(gray, pixels, (w, h), bgr=True, exact=False)


def gray_small(data: bytes, side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(grayscale uint8 array, original (width, height)) of an image file's bytes, decoded at reduced size
    (both sides >= `side` where the file allows). Raises UnreadableImage like decode()."""
    got = jpeg_small(data, side)
    if got is not None:
        return (got[0] if got[0].ndim == 2 else cv2.cvtColor(got[0], cv2.COLOR_BGR2GRAY)), got[3]
    d = decode_small(data, side)
    return cv2.cvtColor(np.ascontiguousarray(d.pixels), cv2.COLOR_RGB2GRAY), (d.width, d.height)
