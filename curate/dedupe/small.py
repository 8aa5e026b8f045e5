"""Small images (at most hashing.TINY_SIDE px on the shorter side: thumbnail sets, icons): the small-image
test and the search for their pairs with each other.

At that size an image has too little detail for `score` to judge by structure (on 32-64 px generated discs
it accepted 3 % of the look-alike candidates and rejected most re-encodes). What tells a copy
from a look-alike there is the colour layout: the 8 x 8 RGB area averages of two copies (re-encodes,
resizes, a uniform colour shift), once the mean colour shift between them is taken out, agree within
TINY_MAX gray levels RMS. Two small images go on to `score` only then (the test is a gate of
curate.dedupe.candidates); a cropped or watermarked copy of a small image is not recognised.

Small images also stay dense under any 64-bit code (1.2 M code pairs among 60,000 generated discs), so
their pairs with each other are found from the averages instead (`Tiny.pairs`, tasks of the search). The
averages, mean colour removed, are projected on their principal axes (a projection never lengthens a
distance, so nothing within the radius is missed) and cut into slabs of about SLAB images along the
first axis, one task each: a k-d tree over the first SEARCH_DIMS components finds the pairs inside a
slab and those across its upper edge (only images within the radius of that edge), every pair is then
checked on CHECK_DIMS components and finally by the test itself. docs/dedupe.md has the measurements.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

TINY_SIDE = 64  # images this small (shorter side, px) are small images: hashing keeps their `tiny` averages
TINY_MAX = 4.0  # gray levels RMS: re-encodes and resizes of small images measured at <= 2.8 (docs/dedupe.md)
SEARCH_DIMS = 8  # principal components the pair search's k-d trees use (60,000 discs: 8 the fastest of 6-12)
CHECK_DIMS = 32  # components every pair the trees return is checked on, before the test on all values
SLAB = 5000  # small images per task of the pair search (at most MAX_SLABS tasks)
MAX_SLABS = 16
FIT_ROWS = 4096  # images the principal axes are fitted on (evenly spaced)
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
    slab: int = SLAB  # images per slab, fixed where the Tiny is made (its workers cut the same slabs)
    _tree: tuple | None = field(default=None, repr=False)  # _built(): the projection and its slabs, built on use

    def __getstate__(self):  # the projection is rebuilt where it is used, never shipped to workers
        return {**self.__dict__, "_tree": None}

    @classmethod
    def of(cls, raw) -> Tiny:
        raw = [] if raw is None else list(raw)
        have = [g for g, r in enumerate(raw) if isinstance(r, bytes) and len(r) == VALUES]
        thumb = np.frombuffer(b"".join(raw[g] for g in have), np.uint8).reshape(len(have), 64, 3)
        row = np.full(len(raw), -1, np.int64)
        row[have] = np.arange(len(have))
        return cls(thumb, row, SLAB)

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

    def slabs(self) -> int:
        """How many tasks the pair search is cut into (0: fewer than two small images)."""
        n = len(self.thumb)
        return 0 if n < 2 else int(min(MAX_SLABS, -(-n // self.slab)))

    def pairs(self, slab: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) group pairs, a < b, of two small images that pass the test, each once, sorted: those
        found by the task `slab` (see slabs()), or (None) all of them."""
        if self.slabs() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = np.concatenate([self.slab_rows(s) for s in ([slab] if slab is not None else range(self.slabs()))])
        group = np.flatnonzero(self.row >= 0)  # thumb row -> group
        a, b = group[rows.min(axis=1)], group[rows.max(axis=1)]
        order = np.lexsort((b, a))  # the trees' order depends on their build, not the run's: sorted
        return a[order], b[order]

    def slab_rows(self, s: int) -> np.ndarray:
        """(k, 2) thumb rows: the pairs inside slab s, and from slab s to a later slab, that pass the test."""
        from scipy.spatial import cKDTree

        proj, edges, slab, _ = self._built()
        radius = TINY_MAX * np.sqrt(VALUES) * (1 + 1e-4)  # the slack covers float32 rounding of the projection
        mine = np.flatnonzero(slab == s)
        found = [np.zeros((0, 2), np.int64)]
        if len(mine) > 1:
            found.append(mine[cKDTree(proj[mine, :SEARCH_DIMS]).query_pairs(radius, output_type="ndarray")])
        if s < len(edges):  # across the upper edge: only images within the radius of it can pair
            edge = edges[s]
            lower, upper = mine[proj[mine, 0] > edge - radius], np.flatnonzero((slab > s) & (proj[:, 0] <= edge + radius))
            if len(lower) and len(upper):
                m = cKDTree(proj[lower, :SEARCH_DIMS]).sparse_distance_matrix(
                    cKDTree(proj[upper, :SEARCH_DIMS]), radius, output_type="ndarray")
                found.append(np.stack([lower[m["i"]], upper[m["j"]]], axis=1))
        found = np.concatenate(found)
        keep = []
        head = self._tree[3]
        for k in range(0, len(found), 65536):  # bounded memory: 65,536 pairs at a time
            f = found[k : k + 65536]
            for p in (head, proj):  # lower bounds of the distance: half the components, then all (most pairs go
                d = p[f[:, 0]] - p[f[:, 1]]  # at the first, for half the memory traffic)
                f = f[np.einsum("kj,kj->k", d, d) <= radius**2]
            keep.append(f[~apart(self.thumb[f[:, 0]], self.thumb[f[:, 1]])])
        return np.concatenate(keep) if keep else np.zeros((0, 2), np.int64)

    def _built(self) -> tuple:
        """(projection (k, CHECK_DIMS) float32, slab edges along its first component, slab of each row, the
        projection's first half as its own array);
        deterministic, so every worker that builds it cuts the same slabs."""
        if self._tree is None:
            x = self.thumb.reshape(len(self.thumb), VALUES)
            channel = np.arange(VALUES) % 3
            centre = np.eye(VALUES) - (channel[:, None] == channel[None, :]) / 64.0  # takes the mean colour out
            sample = x[:: max(1, len(x) // FIT_ROWS)].astype(np.float64)
            sample = (sample - sample.mean(axis=0)) @ centre
            _, vecs = np.linalg.eigh(sample.T @ sample)
            axes = (centre @ vecs[:, ::-1][:, :CHECK_DIMS]).astype(np.float32)
            proj = np.empty((len(x), CHECK_DIMS), np.float32)
            for k in range(0, len(x), 8192):  # no float copy of all the values (a fresh 46 MB for 60,000)
                proj[k : k + 8192] = x[k : k + 8192].astype(np.float32) @ axes
            n = self.slabs()
            edges = np.sort(proj[:, 0])[(np.arange(1, n) * len(proj)) // n] if n > 1 else np.zeros(0, np.float32)
            self._tree = (proj, edges, np.searchsorted(edges, proj[:, 0], side="left"),
                          np.ascontiguousarray(proj[:, : CHECK_DIMS // 2]))
        return self._tree


def slab_task(shared, slab: int) -> np.ndarray:
    """A task: Tiny.slab_rows(slab) of a shared Tiny (a curate.engine.shared payload)."""
    return shared.get().slab_rows(slab)


def start_search(ex, raw) -> Callable[[np.ndarray, Tiny], tuple[np.ndarray, np.ndarray]]:
    """Start Tiny.pairs over every file's averages `raw` (hash_files' `tiny`) in the executor's workers
    now: on a local pool of several workers from a thread, so that it runs while this process groups the
    files (without a progress bar beside the caller's). Returns collect(group, tiny): the (a, b) group
    pairs, a < b, sorted, of two small groups that pass the test (`group`: each file's group index;
    `tiny`: the groups' own averages, which decide: members of a group may differ slightly)."""
    files = Tiny.of(raw)
    n = files.slabs()
    found: dict = {}

    def run() -> None:
        try:
            quiet = copy.copy(ex)
            quiet.quiet = True
            with quiet.share(files) as ref:
                found["rows"] = list(quiet.map(partial(slab_task, ref), range(n), desc="pairing small images"))
        except BaseException as e:  # raised by collect(), in the caller's thread
            found["error"] = e

    thread = threading.Thread(target=run, daemon=True) if n and ex.name == "local" and ex.workers > 1 else None
    if thread is not None:
        thread.start()

    def collect(group: np.ndarray, tiny: Tiny) -> tuple[np.ndarray, np.ndarray]:
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if thread is None:
            run()
        else:
            thread.join()
        if "error" in found:
            raise found["error"]
        rows = np.concatenate([np.zeros((0, 2), np.int64), *found["rows"]])
        at = np.flatnonzero(files.row >= 0)  # thumb row -> file
        a, b = group[at[rows[:, 0]]], group[at[rows[:, 1]]]
        key = np.unique(np.minimum(a, b) * len(tiny.row) + np.maximum(a, b))  # each group pair once, sorted
        lo, hi = key // len(tiny.row), key % len(tiny.row)
        keep = (lo != hi) & ~tiny.far(lo, hi)
        return lo[keep], hi[keep]

    return collect


def looks_small(root, sample: int = 8) -> bool:
    """Whether most of the first `sample` PNG or JPEG files of a local tree (in walking order) are small
    images, from their headers: a hint for what the pool's workers will import (the pair search's k-d
    tree: scipy.spatial, ~0.2 s a worker), never a decision about the data."""
    import os

    from curate.core.layout import is_image_name

    sides: list[int] = []
    todo = [str(root)]
    while todo and len(sides) < sample:  # depth first, in listing order, stopping at the sample: a folder of
        try:  # a million files is not listed whole for a hint
            with os.scandir(todo.pop()) as entries:
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        todo.append(e.path)
                    elif is_image_name(e.name) and len(sides) < sample:
                        side = _header_side(e.path)
                        if side is not None:
                            sides.append(side)
                    if len(sides) >= sample:
                        break
        except OSError:
            continue
    return bool(sides) and 2 * sum(side <= TINY_SIDE for side in sides) > len(sides)


def _header_side(path: str) -> int | None:
    """The shorter side of a PNG or JPEG from its header; None for anything else or an unreadable file."""
    from curate.core.images import jpeg_frame

    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return None
    frame = jpeg_frame(head)
    if frame is None and head[:8] == b"\x89PNG\r\n\x1a\n":
        frame = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    return None if frame is None else min(frame[:2])

