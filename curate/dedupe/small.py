"""Small images (at most hashing.TINY_SIDE px on the shorter side: thumbnail sets, icons): the small-image
test and the search for their pairs with each other.

At that size an image has too little detail for `score` to judge by structure (on 32-64 px generated discs
it accepted 3 % of the look-alike candidates and rejected most re-encodes). What tells a copy
from a look-alike there is the colour layout: the 8 x 8 RGB area averages of two copies (re-encodes,
resizes, a uniform colour shift), once the mean colour shift between them is taken out, agree within
TINY_MAX gray levels RMS. Two small images go on to `score` only then (the test is a gate of
curate.dedupe.candidates); a cropped or watermarked copy of a small image is not recognised.

Small images also stay dense under any 64-bit code (1.2 M code pairs among 60,000 generated discs), so
their pairs with each other are found from the averages instead (`Tiny.pairs`, one task of the search):
a k-d tree over the first SEARCH_DIMS principal components (a projection never lengthens a distance, so
nothing within the radius is missed), every pair it returns checked on all 192 values. docs/dedupe.md has the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TINY_SIDE = 64  # images this small (shorter side, px) are small images: hashing keeps their `tiny` averages
TINY_MAX = 4.0  # gray levels RMS: re-encodes and resizes of small images measured at <= 2.8 (docs/dedupe.md)
SEARCH_DIMS = 10  # principal components the pair search's k-d tree uses (60,000 discs: 8-12 the fastest)
VALUES = 192  # 8 x 8 x RGB


def averages(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(8, 8, 3) uint8: the 8 x 8 RGB area averages of an image (uint8 RGB, or BGR with `bgr`, or gray)."""
    import cv2

    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    elif bgr:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return cv2.resize(np.ascontiguousarray(pixels), (8, 8), interpolation=cv2.INTER_AREA)


def apart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(k,) bool for (k, 64, 3) (or (k, 8, 8, 3)) averages: more than TINY_MAX apart, mean shift removed."""
    d = x.reshape(len(x), 64, 3).astype(np.float32) - y.reshape(len(y), 64, 3)
    d -= d.mean(axis=1, keepdims=True)
    return np.einsum("kij,kij->k", d, d) > TINY_MAX**2 * VALUES


@dataclass
class Tiny:
    """The 8 x 8 RGB averages of the groups that have one (hash_files' `tiny` column)."""

    thumb: np.ndarray  # (k, 64, 3) uint8 (a quarter of float32's bytes in the search's shared payload)
    row: np.ndarray  # (groups,) index into thumb, -1: none (a larger image)
    _tree: tuple | None = field(default=None, repr=False)  # (centred values, projection, cKDTree), built on use

    def __getstate__(self):  # the tree is rebuilt where it is used, never shipped to workers
        return {**self.__dict__, "_tree": None}

    @classmethod
    def of(cls, raw) -> Tiny:
        raw = [] if raw is None else list(raw)
        have = [g for g, r in enumerate(raw) if isinstance(r, bytes) and len(r) == VALUES]
        thumb = np.frombuffer(b"".join(raw[g] for g in have), np.uint8).reshape(len(have), 64, 3)
        row = np.full(len(raw), -1, np.int64)
        row[have] = np.arange(len(have))
        return cls(thumb, row)

    def far(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pairs of two small images whose averages differ by more than TINY_MAX once the mean colour
        shift is taken out; False where either image is larger."""
        ra, rb = self.row[a], self.row[b]
        out = np.zeros(len(a), bool)
        both = np.flatnonzero((ra >= 0) & (rb >= 0))
        for k in range(0, len(both), 16384):  # bounded memory: (k, 64, 3) differences at a time
            at = both[k : k + 16384]
            out[at] = apart(self.thumb[ra[at]], self.thumb[rb[at]])
        return out

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) group pairs, a < b, of two small images that pass the test, each once, sorted."""
        if len(self.thumb) < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        x, _, tree = self._built()
        radius = TINY_MAX * np.sqrt(VALUES)
        found = tree.query_pairs(radius, output_type="ndarray")  # thumb rows; a superset (projected)
        keep = []
        for k in range(0, len(found), 65536):  # bounded memory: the differences of 65,536 pairs at a time
            f = found[k : k + 65536]
            d = x[f[:, 0]] - x[f[:, 1]]
            keep.append(f[np.einsum("kj,kj->k", d, d) <= radius**2])
        rows = np.concatenate(keep) if keep else np.zeros((0, 2), np.int64)
        group = np.flatnonzero(self.row >= 0)  # thumb row -> group
        a, b = group[rows.min(axis=1)], group[rows.max(axis=1)]
        order = np.lexsort((b, a))  # the tree's order depends on its build, not the run's: sorted
        return a[order], b[order]

    def _built(self) -> tuple:
        if self._tree is None:
            from scipy.spatial import cKDTree

            x = self.thumb.astype(np.float32)
            x -= x.mean(axis=1, keepdims=True)  # the mean colour shift taken out
            x = x.reshape(len(x), VALUES)
            centred = x - x.mean(axis=0)
            sample = centred[:: max(1, len(centred) // 20_000)].astype(np.float64)
            _, vecs = np.linalg.eigh(sample.T @ sample)
            proj = centred @ vecs[:, ::-1][:, :SEARCH_DIMS].astype(np.float32)
            self._tree = (x, proj, cKDTree(proj))
        return self._tree
