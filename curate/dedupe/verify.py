"""Pixel verification of candidate duplicate pairs: is `b` a copy of the same photo as `a`?

A copy is the same photo after re-encoding, resizing, a few percent of cropping, a brightness or colour
shift or an added watermark; a look-alike is another photo of the same design (another specimen of a
coin, the other face, a different object on the same background). Plain pixel correlation cannot tell
them apart (centred coins on white correlate at 0.95+), and neither can a 64-bit hash. What differs is the
fine structure: scratches, wear, noise, reflections. So:

1. thumbnails keep the aspect ratio (a crop of a photo is then an isotropic zoom + shift of it);
2. coarse alignment: normalised cross-correlation of 96-px grayscale thumbnails, the centre of each image
   in turn shrunk by SCALES and slid over the other (also a cheap gate: GATE);
3. fine alignment on gradient magnitudes (Sobel, 128 px) at zooms within FINE of the coarse one;
4. the score: the median, over a 4 x 4 grid of blocks, of the aligned gradients' correlation. A shared
   outline (every coin's rim, a letterbox edge) sits in a few blocks and cannot carry the score; the
   fine structure inside decides. Only the centre (TEMPLATE of each side) is compared, so a watermark
   strip or border that all photos of a set share is never evidence.

docs/dedupe.md has the measurements that chose the method and VERIFY_MIN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curate.dedupe.small import TINY_SIDE, averages

THUMB_SIDE = 128  # longer side of the stored grayscale thumbnail (uint8)
COARSE_SIDE = 64
SCALES = (1.0, 0.96, 0.925, 0.89, 0.86)  # zooms of the coarse search (each image in turn shrunk)
FINE = (-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03)  # relative zoom steps around the coarse one
REACH = 4  # pixels (at THUMB_SIDE) the fine search moves around the coarse position
TEMPLATE = 0.8  # central share of the zoomed image matched against the other one
BLOCKS = 4  # block_ncc grid
BLOCK_QUANTILE = 15  # percentile of the block correlations that scores a pair (about the 3rd worst of 16)
LOW_ENERGY = 0.35  # blocks with less gradient energy than this share of the median block do not count
FLAT = 1e-3  # standard deviation below which an image or block counts as flat
GATE = 0.70  # coarse gray correlation below this is no copy (every edit tested scores >= 0.77)
TINY = 48  # images with fewer pixels of real detail than this (Thumb.detail) need near-identical gray too
DETAIL_LOSS = 0.15  # share of contrast a 2x downscale-upscale loses on an image with full detail
TINY_GRAY_MIN = 0.995  # aligned gray correlation a tiny image's copy needs (8-px scans of one digit: up to 0.994)
VERIFY_MIN = 0.78  # block gradient correlation a copy needs (block_ncc) (docs/dedupe.md: how it was measured)
MAX_CHROMA_SHIFT = 20.0  # mean CIELAB (a*, b*) distance a copy may have (colour edits measured: < 12)


@dataclass
class Thumb:
    """What verification keeps of one image: grayscale thumbnail (longer side <= THUMB_SIDE), the mean
    colour as CIELAB (a*, b*), the original size, and for a small image (curate.dedupe.small) its 8 x 8
    RGB averages."""

    gray: np.ndarray
    chroma: np.ndarray
    size: tuple[int, int]
    tiny: np.ndarray | None = None  # (8, 8, 3) uint8, small images only
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):  # the memo is rebuilt where it is needed, never shipped to workers
        return {"gray": self.gray, "chroma": self.chroma, "size": self.size, "tiny": self.tiny, "_memo": {}}

    def at(self, side: int) -> np.ndarray:
        """The thumbnail as float32 with its longer side `side`."""
        if ("fit", side) not in self._memo:
            self._memo[("fit", side)] = _fit(self.gray, side)
        return self._memo[("fit", side)]

    def detail(self, side: int) -> float:
        """How many pixels of real detail the image has at `side`: `side` scaled by how much a 2x
        downscale-upscale loses (an 8-px scan upscaled to 28 px has ~14; a photo keeps about all of it)."""
        if ("detail", side) not in self._memo:
            import cv2

            x = self.at(side)
            h, w = x.shape
            up = cv2.resize(cv2.resize(x, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA), (w, h),
                            interpolation=cv2.INTER_LINEAR)
            lost = float(np.linalg.norm(x - up)) / (float(np.linalg.norm(x - x.mean())) + 1e-6)
            self._memo[("detail", side)] = max(h, w) * min(1.0, lost / DETAIL_LOSS)
        return self._memo[("detail", side)]

    def centre(self, side: int, zoom: float) -> np.ndarray:
        """_centre(self.at(side), zoom), kept: the coarse search asks for the same few zooms per pair."""
        if ("centre", side, zoom) not in self._memo:
            self._memo[("centre", side, zoom)] = _centre(self.at(side), zoom)
        return self._memo[("centre", side, zoom)]

    def std(self, side: int) -> float:
        if ("std", side) not in self._memo:
            self._memo[("std", side)] = _std(self.at(side))
        return self._memo[("std", side)]

    def grad(self, side: int) -> np.ndarray:
        if ("grad", side) not in self._memo:
            self._memo[("grad", side)] = _grad(self.at(side))
        return self._memo[("grad", side)]

    @property
    def nbytes(self) -> int:
        return self.gray.nbytes + self.chroma.nbytes + (0 if self.tiny is None else self.tiny.nbytes)


def make_thumb(pixels: np.ndarray, size: tuple[int, int] | None = None, bgr: bool = False) -> Thumb:
    """Thumb of an RGB uint8 array (`bgr`: OpenCV's order; 2-D: grayscale; `size`: the original width,
    height when `pixels` is a reduced decode)."""
    import cv2

    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        chroma, gray = np.zeros(2, np.float32), pixels
    else:
        lab = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGR2LAB if bgr else cv2.COLOR_RGB2LAB)
        chroma = np.array(cv2.mean(lab)[1:3], np.float32) - 128.0  # cv2.mean: ~10x a numpy mean of a view
        gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    s = min(1.0, THUMB_SIDE / max(h, w))
    tiny = averages(pixels, bgr) if min(size or (w, h)) <= TINY_SIDE else None
    if s < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return Thumb(gray, chroma, size or (w, h), tiny)


def _fit(gray: np.ndarray, side: int) -> np.ndarray:
    """float32 image whose longer side is `side` (aspect kept)."""
    import cv2

    h, w = gray.shape
    s = side / max(h, w)
    x = gray.astype(np.float32)
    if s == 1.0:
        return x
    return cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _grad(x: np.ndarray, blur: float = 0.7) -> np.ndarray:
    import cv2

    x = cv2.GaussianBlur(x, (0, 0), blur)
    return cv2.magnitude(cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3))


def _std(x: np.ndarray) -> float:
    """Standard deviation (cv2: several times faster than numpy on small images)."""
    import cv2

    return float(cv2.meanStdDev(x)[1][0, 0])


def _centre(x: np.ndarray, zoom: float) -> np.ndarray:
    """The central TEMPLATE share of `x` zoomed by `zoom`, at the scale of `x` before the zoom."""
    import cv2

    h, w = x.shape
    zw, zh = max(1, round(w * zoom)), max(1, round(h * zoom))
    z = cv2.resize(x, (zw, zh), interpolation=cv2.INTER_LINEAR if zoom > 1 else cv2.INTER_AREA)
    tw, th = max(1, round(zw * TEMPLATE)), max(1, round(zh * TEMPLATE))
    ox, oy = (zw - tw) // 2, (zh - th) // 2
    return z[oy : oy + th, ox : ox + tw]


def _match(base: np.ndarray, templ: np.ndarray) -> float:
    """Best normalised cross-correlation of `templ` slid over `base` (-1 when it does not fit)."""
    import cv2

    if templ.shape[0] > base.shape[0] or templ.shape[1] > base.shape[1]:
        return -1.0
    if _std(templ) < FLAT or _std(base) < FLAT:  # flat: equal only to an equally flat image
        same = _std(templ) < FLAT and _std(base) < FLAT
        return 1.0 if same and abs(float(base.mean()) - float(templ.mean())) < 2 else 0.0
    return float(np.nanmax(cv2.matchTemplate(base, templ, cv2.TM_CCOEFF_NORMED)))


def _side(a: Thumb, b: Thumb, full: int) -> int:
    """Compare at `full` px, or at the smaller image's own longer side when that is less."""
    return max(16, min(full, max(a.size), max(b.size)))


def coarse(a: Thumb, b: Thumb, scales: tuple[float, ...] = SCALES) -> tuple[float, int, float, tuple[float, float]]:
    """Best gray alignment at COARSE_SIDE: (score, direction, zoom, centre). Direction 0 slides b's zoomed
    centre over a (1: a's over b); centre is where the template's centre lies in the base, as a fraction
    of the base's width and height. `scales`: the zooms tried (SCALES: crops of up to 14 %)."""
    import cv2

    side = _side(a, b, COARSE_SIDE)
    best = (-2.0, 0, 1.0, (0.5, 0.5))
    for d, (tb, to) in enumerate(((a, b), (b, a))):
        base = tb.at(side)
        for s in scales:
            t = to.centre(side, s)
            if t.shape[0] > base.shape[0] or t.shape[1] > base.shape[1]:
                continue
            if _std(t) < FLAT or tb.std(side) < FLAT:
                m, loc = _match(base, t), ((base.shape[1] - t.shape[1]) // 2, (base.shape[0] - t.shape[0]) // 2)
            else:
                _, m, _, loc = cv2.minMaxLoc(cv2.matchTemplate(base, t, cv2.TM_CCOEFF_NORMED))
            if m > best[0]:
                centre = ((loc[0] + t.shape[1] / 2) / base.shape[1], (loc[1] + t.shape[0] / 2) / base.shape[0])
                best = (float(m), d, s, centre)
    return best


def _fine(gbase: np.ndarray, gother: np.ndarray, zoom: float, centre: tuple[float, float],
          steps: tuple[float, ...] = FINE):
    """Best (correlation, zoom, top-left) of `gother`'s zoomed centre within REACH of the coarse position,
    trying the zoom steps `steps` around `zoom`."""
    import cv2

    h, w = gbase.shape
    best = (-2.0, zoom, (0, 0))
    for f in steps:
        t = _centre(gother, zoom * (1 + f))
        th, tw = t.shape
        if th > h or tw > w or _std(t) < FLAT:
            continue
        x0 = min(max(0, round(centre[0] * w - tw / 2) - REACH), w - tw)
        y0 = min(max(0, round(centre[1] * h - th / 2) - REACH), h - th)
        win = gbase[y0 : min(h, y0 + th + 2 * REACH), x0 : min(w, x0 + tw + 2 * REACH)]
        _, m, _, loc = cv2.minMaxLoc(cv2.matchTemplate(win, t, cv2.TM_CCOEFF_NORMED))
        if m > best[0]:
            best = (m, zoom * (1 + f), (x0 + loc[0], y0 + loc[1]))
    return best


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / den if den > 1e-6 else 0.0


def block_ncc(x: np.ndarray, y: np.ndarray, n: int = BLOCKS) -> float | None:
    """How well two aligned gradient images agree everywhere that has structure: over an n x n grid of
    blocks, the BLOCK_QUANTILE-th percentile of the blocks' correlations. A copy agrees in (almost) every
    block; a look-alike agrees on the shared outline (a coin's rim through the border blocks, a common
    backdrop) but not inside. Blocks with little gradient energy (below LOW_ENERGY of the median block:
    sky, paper, flat backgrounds whose noise JPEG rewrites) do not count; None if no block has structure."""
    h, w = x.shape
    if h < n or w < n:
        return None
    rows, cols = [i * h // n for i in range(n)], [j * w // n for j in range(n)]
    x, y = x.astype(np.float64), y.astype(np.float64)

    def sums(v: np.ndarray) -> np.ndarray:  # (n, n) sum of v over each block, all blocks at once
        return np.add.reduceat(np.add.reduceat(v, rows, axis=0), cols, axis=1)

    count = np.diff([*rows, h])[:, None] * np.diff([*cols, w])[None, :]
    mx, my = sums(x) / count, sums(y) / count
    vx, vy = sums(x * x) / count - mx * mx, sums(y * y) / count - my * my
    cov = sums(x * y) / count - mx * my
    live = (np.sqrt(np.maximum(vx, 0)) > FLAT) | (np.sqrt(np.maximum(vy, 0)) > FLAT)
    if not live.any():
        return None
    den = np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0)) * count
    vals = np.where(den > 1e-6, cov * count / np.maximum(den, 1e-300), 0.0)[live]
    e = (mx + my)[live]
    return float(np.percentile(vals[e >= LOW_ENERGY * np.median(e)], BLOCK_QUANTILE))


def score(a: Thumb, b: Thumb) -> float:
    """How surely `a` and `b` are copies of one photo (1.0 for identical pixels): aligned on gradients
    (zoom near the coarse one, shift near its position), the median block correlation of their gradients.
    0 for a pair that fails the colour gate; half the gray score for one below GATE."""
    if float(np.linalg.norm(a.chroma - b.chroma)) > MAX_CHROMA_SHIFT:
        return 0.0  # alike in gray, not in colour: a red and a blue patch, a gold and a silver coin
    # two small images: a crop of one is no copy of it (curate.dedupe.small), so only the whole frame aligns
    whole = a.tiny is not None and b.tiny is not None
    c, d, s, centre = coarse(a, b, (1.0,) if whole else SCALES)
    if c < GATE:
        return max(0.0, c * 0.5)  # far below any copy; scaled so it never reads as a near miss
    side = _side(a, b, THUMB_SIDE)
    base, other = (a, b) if d == 0 else (b, a)
    m, z, (x, y) = _fine(base.grad(side), other.grad(side), s, centre, (0.0,) if whole else FINE)
    if m == -2.0:  # flat or too small to slide: the gray match decides
        return c
    t = _centre(other.at(side), z)
    win = base.at(side)[y : y + t.shape[0], x : x + t.shape[1]]
    v = block_ncc(_grad(win), _grad(t))
    v = c if v is None else max(0.0, v)
    if min(a.detail(side), b.detail(side)) < TINY:  # too little detail to tell another photo by structure
        v = min(v, _ncc(win, t) - (TINY_GRAY_MIN - VERIFY_MIN))  # the gray match must be all but exact
    return v


def mirrored(a: Thumb, b: Thumb) -> Thumb:
    """`b` flipped left-right (for the report's mirrored-copy check)."""
    tiny = None if b.tiny is None else np.ascontiguousarray(b.tiny[:, ::-1])
    return Thumb(np.ascontiguousarray(b.gray[:, ::-1]), b.chroma, b.size, tiny)


def score_batch(thumbs: list[Thumb | None], pairs: list[tuple[int, int]]) -> list[float]:
    """score() of each pair of indices into `thumbs`; -1 where a thumbnail is missing (unreadable)."""
    out = []
    for i, j in pairs:
        a, b = thumbs[i], thumbs[j]
        out.append(-1.0 if a is None or b is None else score(a, b))
    return out
