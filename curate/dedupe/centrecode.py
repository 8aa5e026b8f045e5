"""The centre code: a 64-bit code fitted to each set, which dedupe searches instead of the perceptual hash.

A perceptual hash thresholds each image's low frequencies against that image's own median. On a set
whose photos share a layout (coins centred on one white background, products on a studio backdrop) most
bits come out alike for every photo, so every image has hundreds of "candidates" within 12 bits, nearly
all of them look-alikes (the grown coins set: 1.7 million candidate pairs among 8,000 files). The centre
code keeps the same low frequencies but spends its bits where the set varies:

- per image (`coefficients`, in the hashing pass): the 63 lowest 2-D DCT coefficients (8 x 8 without
  DC) of the central CENTRE share (resampled to 48 x 48 px with curate.dedupe.midband's DCT stack, which the
  hashing pass makes anyway), unit norm (brightness and contrast do not count), also
  for that region zoomed by ZOOMS (a copy cropped by a few percent shows the original's centre larger).
  Only the centre: a watermark strip or a border along an edge does not move it;
- per set (`fit`): the principal axes of the images' coefficients and the set's median on each, so
  each bit splits this set in half and bits are uncorrelated. Sets smaller than MIN_FIT have too few
  images to fit: there each image's coefficients are thresholded at their own median, as a perceptual
  hash does;
- a pair is a search candidate when its codes, full against full or full against a zoom, are within a
  radius (dedupe: RADIUS bits); its perceptual-hash distance must still be within `--threshold`.

docs/dedupe.md has the measurements (candidates and recall on coins-dev, dupsynth and the benches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.core.lazy import lazy

midband = lazy("curate.dedupe.midband")  # it imports this module's constants at its top

CENTRE = 0.8  # central share of each side that the code describes
ZOOMS = (0.94, 0.88)  # further central shares of that region, for cropped copies
MIN_FIT = 256  # images needed to fit principal axes
FIT_SAMPLE = 20_000  # images the fit looks at (evenly spaced rows)
NCOEF = 63
RADIUS = 14  # bits (of 64) within which two codes make a search candidate


def coefficients(gray: np.ndarray, stack: np.ndarray | None = None) -> np.ndarray:
    """(1 + len(ZOOMS), NCOEF) float16: unit-norm low DCT coefficients of the central region of a uint8
    grayscale image and of its zooms (zeros for a flat region), taken from curate.dedupe.midband.dct_stack
    (Lanczos-3 with fractional boxes; `stack`: that stack, or midband.code_stack, when already made). The
    plain cosine basis: first row and column weigh sqrt(2) more than in the orthonormal one. For an
    (n, h, w) stack of images (and their stacks), (n, 1 + len(ZOOMS), NCOEF)."""
    s = midband.dct_stack(gray) if stack is None else stack
    regions = 1 + len(ZOOMS)
    if s.shape[-3] > regions:  # the whole stack, not midband.code_stack's
        s = s[..., midband.CODE_AT : midband.CODE_AT + regions, :8, :8]
    c = (s * _PLAIN).reshape(*s.shape[:-3], regions, 64)[..., 1:]
    norm = np.sqrt(np.einsum("...ij,...ij->...i", c, c, dtype=np.float64))
    c = c / np.maximum(norm, 1e-12)[..., None]
    c[norm <= 0.048] = 0.0  # flat: under 0.001 gray level at 48 px
    return c.astype(np.float16)


_R = np.r_[np.sqrt(2.0), np.ones(7)]
_PLAIN = np.outer(_R, _R)


@dataclass
class Fit:
    mean: np.ndarray | None  # (NCOEF,); None: too few images, each thresholded at its own median
    axes: np.ndarray | None  # (NCOEF, NCOEF): rows are the axes
    median: np.ndarray | None  # (NCOEF,)

    def codes(self, coef: np.ndarray) -> np.ndarray:
        """(n, 1) uint64 codes of (n, NCOEF) coefficients (the 64th bit is always 0)."""
        x = coef.astype(np.float64)
        if self.axes is None:
            bits = x > np.median(x, axis=1, keepdims=True)
        else:
            bits = (x - self.mean) @ self.axes.T > self.median
        packed = np.packbits(np.pad(bits, ((0, 0), (0, 64 - NCOEF))), axis=1)
        return packed.view(">u8").astype(np.uint64)


def fit(coef: np.ndarray) -> Fit:
    """The set's axes and medians, from (n, NCOEF) full-region coefficients; deterministic."""
    x = coef.astype(np.float64)
    if len(x) < MIN_FIT:
        return Fit(None, None, None)
    if len(x) > FIT_SAMPLE:
        x = x[np.linspace(0, len(x) - 1, FIT_SAMPLE).round().astype(np.int64)]
    mean = x.mean(axis=0)
    centred = x - mean
    # the covariance's eigenvectors, largest first: the SVD's axes (same codes on coins-dev and the grown
    # coins set) from a 63 x 63 matrix, ~5 ms instead of 0.3-1 s for the SVD of 8,000 x 63
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axes = np.ascontiguousarray(vectors[:, ::-1].T)
    axes *= np.where(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return Fit(mean, axes, np.median((x - mean) @ axes.T, axis=0))
