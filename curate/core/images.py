"""Decode images by content into RGB uint8 arrays, whatever their mode, orientation or size.

Handles EXIF orientation, grayscale, 16-bit, palette, alpha (composited on white) and CMYK.
Unreadable inputs raise `UnreadableImage(reason)` with reason one of REASONS; callers record it and go on.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from curate.core.errors import UnreadableImage

# A 12-megapixel photo is 12e6 pixels; anything above this is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 150_000_000
REASONS = ("empty", "not-an-image", "truncated", "corrupt", "too-large", "missing", "permission-denied", "io-error")

# We enforce our own pixel limit (configurable), so Pillow's global one must not fire first.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def _size_swaps(fmt: str | None, orient: int) -> bool:
    """Whether the upright size is the stored size transposed. Pillow's TIFF reader already reports (and
    loads) TIFFs upright, so only other formats swap."""
    return orient in _TRANSPOSED and fmt != "TIFF"


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # H x W x 3 uint8, upright, RGB (BGR when decoded with bgr=True)
    width: int  # upright size of the full-resolution image
    height: int
    scale: float  # pixels.shape / full size (1.0, or 1/2, 1/4, 1/8 after reduced JPEG decoding)
    format: str
    mode: str


def read_bytes(src: str | Path | bytes) -> bytes:
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
    else:
        try:
            with open(src, "rb") as f:  # (not Path.read_bytes: its path parsing costs more than a small read)
                data = f.read()
        except FileNotFoundError as e:
            raise UnreadableImage("missing", str(src)) from e
        except IsADirectoryError as e:
            raise UnreadableImage("not-an-image", "is a directory") from e
        except PermissionError as e:
            raise UnreadableImage("permission-denied", str(src)) from e
        except OSError as e:  # a failing disk or network mount: this file is lost, the run goes on
            raise UnreadableImage("io-error", f"{src}: {e.strerror or e}") from e
    if not data:
        raise UnreadableImage("empty", "zero bytes")
    return data


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise UnreadableImage("not-an-image", "unknown format") from e
    except Image.DecompressionBombError as e:
        raise UnreadableImage("too-large", str(e)) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableImage("corrupt", str(e)) from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise UnreadableImage("corrupt", "zero-sized image")
    if max_pixels and w * h > max_pixels:
        raise UnreadableImage("too-large", f"{w}x{h} is over the {max_pixels:,}-pixel limit")
    return im


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # malformed EXIF never makes an image unreadable
        return 1


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an H x W x 3 uint8 array (alpha composited on white)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        g = np.clip(np.rint(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
    elif mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK (Adobe-inverted handled by Pillow), YCbCr, LAB, HSV
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def decode(
    src: str | Path | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_scale: float | Callable[[int, int], float] = 1.0,
    bgr: bool = False,
) -> Decoded:
    """Decode an image upright as RGB.

    `min_scale` < 1 allows reduced-size JPEG decoding (DCT scaling by 1/2, 1/4 or 1/8): the result is
    at least `min_scale` times the full size in each dimension, which is all a caller that shrinks
    anyway needs, at a fraction of the decode cost. It may be a function of the upright full size
    (width, height), read from the header before any pixel is decoded. `bgr` gives OpenCV's channel
    order (what its JPEG decoder makes: no conversion for callers that encode with OpenCV).
    """
    data = read_bytes(src)
    im = _open(data, max_pixels)
    fmt = im.format or "?"
    mode = im.mode
    full_w, full_h = im.size
    orient = _orientation(im)
    if callable(min_scale):
        up_w, up_h = (full_h, full_w) if _size_swaps(fmt, orient) else (full_w, full_h)
        min_scale = float(min_scale(up_w, up_h))
    if fmt == "JPEG" and mode in ("RGB", "L") and _has_eoi(data):
        return _decode_jpeg_cv2(data, full_w, full_h, orient, min_scale, fmt, mode, bgr)
    if min_scale < 1.0 and fmt == "JPEG":
        want = (max(1, math.ceil(full_w * min_scale)), max(1, math.ceil(full_h * min_scale)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.draft("RGB", want)
    try:
        im.load()
    except Image.DecompressionBombError as e:
        raise UnreadableImage("too-large", str(e)) from e
    except OSError as e:
        msg = str(e)
        reason = "truncated" if "truncated" in msg or "image file is" in msg else "corrupt"
        raise UnreadableImage(reason, msg) from e
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise UnreadableImage("corrupt", str(e)) from e
    scale = 1.0 / 2 ** round(math.log2(full_w / im.size[0])) if im.size[0] != full_w else 1.0
    if orient != 1:
        im = ImageOps.exif_transpose(im)
    if _size_swaps(fmt, orient):
        full_w, full_h = full_h, full_w
    try:
        pixels = to_rgb_array(im)
    except (OSError, ValueError) as e:
        raise UnreadableImage("corrupt", str(e)) from e
    if bgr:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return Decoded(pixels, full_w, full_h, scale, fmt, mode)


def _has_eoi(data: bytes) -> bool:
    """A complete JPEG ends with the EOI marker (possibly followed by a little padding)."""
    return b"\xff\xd9" in data[-1024:]


def jpeg_frame(data: bytes) -> tuple[int, int, int, bool] | None:
    """(width, height, components, whether an EXIF segment came before) of a JPEG as stored (before any
    EXIF orientation), from its start-of-frame marker: what Pillow's header parsing gives, without
    reading every table in Python (the hashing pass's cost on small JPEGs). None for anything else: not
    a JPEG, a multi-picture (MPO) index, a header cut short, a frame whose height comes later (DNL);
    decode() then reads it."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n, exif = 2, len(data), False
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA or length < 2:  # a scan before any frame, or a broken segment
            return None
        if marker == 0xE2 and data[i + 4 : i + 8] == b"MPF\x00":  # Pillow decides JPEG or MPO
            return None
        exif = exif or (marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT, JPG, DAC)
            if i + 10 > n:
                return None
            h, w = int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h, data[i + 9], exif) if w and h else None
        i += 2 + length
    return None


@contextmanager
def c_quiet():
    """Keep what C decoders print on stderr (libjpeg's "Corrupt JPEG data", libpng's errors) off the
    terminal while OpenCV decodes: such a file still decodes, or goes to decode()'s own reasons. One
    thread at a time (file descriptor 2 is the process's)."""
    global _DEVNULL
    with _QUIET:
        try:
            if _DEVNULL is None:
                _DEVNULL = os.open(os.devnull, os.O_WRONLY)
            saved = os.dup(2)
        except OSError:  # no stderr to guard
            yield
            return
        try:
            os.dup2(_DEVNULL, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_DEVNULL: int | None = None
_QUIET = threading.Lock()


def png_plain(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, channels) of a plain PNG: 8-bit gray or RGB, not interlaced, no transparency and
    no EXIF before its pixels, which OpenCV and libspng decode to exactly Pillow's pixels; None for anything else
    (palette, alpha, 16-bit, tRNS, eXIf, a damaged header: decode() then reads it with Pillow)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or b"IEND" not in data[-12:]:
        return None  # not a PNG, or cut short (decode() says so)
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlace = data[24], data[25], data[28]
    if depth != 8 or colour not in (0, 2) or interlace or not (w and h):
        return None
    i = 33
    while i + 8 <= len(data):
        kind = data[i + 4 : i + 8]
        if kind in (b"IDAT", b"IEND"):
            return w, h, 1 if colour == 0 else 3
        if kind in (b"tRNS", b"eXIf"):
            return None
        i += 12 + int.from_bytes(data[i : i + 4], "big")
    return None


_GRAY = np.array([19595, 38470, 7471], np.float32)
_GRAY_BGR = np.ascontiguousarray(_GRAY[::-1])  # (a reversed view would take numpy's slow matmul path)


def pil_gray(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Pillow's convert("L") of an RGB (or with `bgr` BGR) uint8 array of any leading shape, exactly:
    (R 19595 + G 38470 + B 7471 + 2**15) >> 16. In float32, where every partial sum is an integer below
    2**24 and so exact (checked on all 2**24 colours); half the time of uint32 arithmetic."""
    x = np.ascontiguousarray(pixels).astype(np.float32) @ (_GRAY_BGR if bgr else _GRAY)
    x += 32768.0
    x *= np.float32(1 / 65536)
    return x.astype(np.uint8)


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def _decode_jpeg_cv2(data: bytes, full_w: int, full_h: int, orient: int, min_scale: float,
                     fmt: str, mode: str, bgr: bool = False) -> Decoded:
    """libjpeg-turbo through OpenCV: the same pixels as Pillow, about twice as fast, and DCT-domain
    downscaling by 2, 4 or 8. OpenCV applies the EXIF orientation itself."""
    factor = 1
    while factor < 8 and min_scale <= 1.0 / (factor * 2):
        factor *= 2
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[factor])
    if arr is None:
        raise UnreadableImage("corrupt", "JPEG data could not be decoded")
    pixels = arr if bgr else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if orient in _TRANSPOSED:
        full_w, full_h = full_h, full_w
    return Decoded(pixels, full_w, full_h, 1.0 / factor, fmt, mode)


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    format: str
    mode: str


def probe(src: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, verify: bool = True) -> Probe:
    """Size (upright), format and mode; with `verify`, the whole image is decoded to catch truncation."""
    if verify:
        d = decode(src, max_pixels=max_pixels)
        return Probe(d.width, d.height, d.format, d.mode)
    im = _open(read_bytes(src), max_pixels)
    w, h = im.size
    if _size_swaps(im.format, _orientation(im)):
        w, h = h, w
    return Probe(w, h, im.format or "?", im.mode)


EXTENSIONS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "PNG": {".png"},
    "GIF": {".gif"},
    "BMP": {".bmp"},
    "WEBP": {".webp"},
    "TIFF": {".tif", ".tiff"},
    "PPM": {".ppm", ".pgm", ".pbm", ".pnm"},
    "MPO": {".jpg", ".jpeg", ".mpo"},
}


def extension_matches(path: str | Path, fmt: str) -> bool:
    """True when a file's extension fits the format its bytes say it is."""
    return Path(path).suffix.lower() in EXTENSIONS.get(fmt, {"." + fmt.lower()})
