"""Near-duplicate candidate pairs of a tree's exact groups, streamed in bounded batches, and the cheap
vectorised gates that turn most look-alikes away before pixel verification (curate.dedupe.verify.score).

A look-alike-dense set (coins on one white background, product shots) has hundreds of candidate pairs
per image within a 64-bit perceptual-hash threshold, almost all of them false. So the search runs on
the set-fitted centre code (curate.dedupe.centrecode), which has far fewer of them, and requires the hash
threshold on top; nothing holds every candidate pair at once: the Hamming search yields batches
(curate.dedupe.search.pair_batches), each batch goes through the gates at once, and only the survivors are
kept; the others are counted (`Counts`).

Gates, in order, each a necessary condition of `score` accepting the pair:
1. colour: mean CIELAB (a*, b*) from the hashing pass more than MAX_CHROMA_SHIFT + COLOUR_MARGIN apart
   (score's own first test, with a margin for the smaller decode the hashing pass uses);
2. prefilter: the mid-band similarity (curate.dedupe.midband) below midband.minimum: another photo of the same
   thing, or the same thing turned by a few degrees, agrees with it in the low frequencies that the
   search looks at, not in the next octave;
3. small: two images of at most hashing.TINY_SIDE px whose 8 x 8 colour averages disagree
   (curate.dedupe.small: at that size only re-encodes, resizes and a uniform colour shift count as
   copies; unlike the first two gates this one narrows what a copy is).

Pairs of two small images are not looked for in the code search (they stay dense under any 64-bit code):
they come from their averages (curate.dedupe.small.Tiny.pairs), and a small image's full code is matched
against the larger images' zoom codes on its own (a small centre crop of a large photo).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from curate.core.lazy import lazy
from curate.dedupe import midband
from curate.dedupe.centrecode import NCOEF, RADIUS, ZOOMS, fit
from curate.dedupe.search import distances, pack, pair_index
from curate.dedupe.small import Tiny
from curate.dedupe.verify import MAX_CHROMA_SHIFT

pd = lazy("pandas")  # parent-side only: pool workers never load it (their fork server starts faster)

STAR_ABOVE = 64  # larger groups of equal hashes are verified as stars (see dedupe._verify)
COLOUR_MARGIN = 3.0  # the hashing pass's mean colour vs the thumbnail's: measured within 1.5 (docs/dedupe.md)


@dataclass
class Counts:
    """What happened to the near candidate pairs of one run."""

    candidates: int = 0  # pairs within the threshold (full hash, or one's full against the other's centre)
    colour: int = 0  # turned away by the colour gate
    prefilter: int = 0  # turned away by the mid-band test
    small: int = 0  # turned away by the small-image test (both images at most hashing.TINY_SIDE px)
    scored: int = 0  # verified on pixels

    def to_dict(self) -> dict:
        return asdict(self)

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class Search:
    """The near candidates of a run. `batches()` yields (a, b, distance) arrays of group indices (a < b):
    pairs whose centre codes (curate.dedupe.centrecode) are within `radius`, full against full or full against a
    zoom, and whose perceptual hashes are within `threshold` (full against full, else one's full against
    the other's centre hash: a crop), that distance recorded. `big` lists the groups of equal hashes
    verified as stars instead, each in keep order; their pairs are left out of the batches."""

    hashes: np.ndarray  # (groups, W) full perceptual hashes
    zoom: np.ndarray  # (groups, W) centre hashes (zeros where missing)
    has_zoom: np.ndarray  # bool per group
    codes: np.ndarray  # (groups * (1 + len(ZOOMS)), 1) centre codes: every group's full region, then each zoom
    # (none where every group is a small image: there is no code search)
    threshold: int
    nbits: int
    radius: int
    big: list[list[int]]
    bucket: np.ndarray  # group -> index in big, or -1
    index: object = None  # curate.dedupe.search.pair_index of codes within radius (built here when None)
    small: Tiny | None = None  # the small images' averages: their pairs with each other come from these
    zoom_index: object = None  # pair_index of the larger images' zoom codes (for small images' full codes)
    small_pairs: tuple | None = None  # (a, b): those pairs, when found already (find.py: while it groups)

    def batches(self, part: tuple[int, int] | None = None):
        """The candidate batches; with `part` (lo, hi) only those found from groups lo .. hi - 1 (parts
        that cover every group find every pair once: see parts()), and with (SMALL_PART, s) only the pairs
        of two small images that Tiny.pairs' slab s finds (without `part`: all of them)."""
        n = len(self.hashes)
        if n < 2:
            return
        if part is None or part[0] == SMALL_PART:
            yield from self._small_pairs(None if part is None else part[1])
            if part is not None:
                return
        if not len(self.codes):  # every image small: their pairs are all found above
            return
        if self.index is None:
            self.index = pair_index(self.codes, self.radius, 64)
        small = None if self.small is None else self.small.row >= 0
        if small is not None and not small.any():
            small = None
        skip = None if small is None else np.r_[small, np.zeros(len(self.codes) - n, bool)]
        for i, j, _ in self.index.batches(n, part, skip):  # no pair of two small images
            yield from self._found(i, j)
        if small is None:
            return
        lo_q, hi_q = part or (0, n)
        mine = np.flatnonzero(small[lo_q:hi_q]) + lo_q
        larger_zooms = np.flatnonzero(~np.tile(small, len(ZOOMS))) + n  # their code rows
        if len(mine) and len(larger_zooms):  # a small image as the centre crop of a larger one
            if self.zoom_index is None:
                self.zoom_index = pair_index(self.codes[larger_zooms], self.radius, 64)
            for i, j, _ in self.zoom_index.batches(against=self.codes[mine]):
                yield from self._found(mine[i], larger_zooms[j])

    def _small_pairs(self, slab: int | None = None):
        if self.small_pairs is not None:
            if slab not in (None, 0):
                return
            a, b = self.small_pairs
        elif self.small is None or self.small.slabs() == 0:
            return
        else:
            a, b = self.small.pairs(slab)
        keep = (self.bucket[a] < 0) | (self.bucket[a] != self.bucket[b])
        a, b = a[keep], b[keep]
        d = self._hash_distance(a, b)
        ok = d <= self.threshold
        if ok.any():
            yield a[ok], b[ok], d[ok]

    def _found(self, i: np.ndarray, j: np.ndarray):
        """The candidate batch of code pairs (i, j) (rows of `codes`): group pairs, each once (its first
        combo of regions), outside the star buckets, within the hash threshold."""
        n = len(self.hashes)
        a, b, va, vb = i % n, j % n, i // n, j // n
        keep = (a != b) & ((va == 0) | (vb == 0))  # a zoom against a zoom is no evidence of a crop
        a, b, va, vb = a[keep], b[keep], va[keep], vb[keep]
        flip = a > b
        lo, hi = np.where(flip, b, a), np.where(flip, a, b)
        vlo, vhi = np.where(flip, vb, va), np.where(flip, va, vb)
        keep = self._first_combo(lo, hi, vlo, vhi) & ((self.bucket[lo] < 0) | (self.bucket[lo] != self.bucket[hi]))
        lo, hi = lo[keep], hi[keep]
        d = self._hash_distance(lo, hi)
        ok = d <= self.threshold
        if ok.any():
            yield lo[ok], hi[ok], d[ok]

    def _first_combo(self, lo, hi, vlo, vhi) -> np.ndarray:
        """True where (vlo, vhi) is the first of COMBOS within the radius for the pair: each pair once."""
        n = len(self.hashes)
        first = np.full(len(lo), -1)
        for k, (x, y) in enumerate(COMBOS):
            near = distances(self.codes[lo + x * n], self.codes[hi + y * n]) <= self.radius
            first[(first < 0) & near] = k
        combo = np.full(len(lo), -2)
        for k, (x, y) in enumerate(COMBOS):
            combo[(vlo == x) & (vhi == y)] = k
        return combo == first

    def _hash_distance(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Full-hash distance, or where that is beyond the threshold the closer crop distance."""
        d = distances(self.hashes[lo], self.hashes[hi])
        far = self.nbits + 1
        crop = np.minimum(np.where(self.has_zoom[hi], distances(self.hashes[lo], self.zoom[hi]), far),
                          np.where(self.has_zoom[lo], distances(self.zoom[lo], self.hashes[hi]), far))
        return np.where(d <= self.threshold, d, crop)


COMBOS = ((0, 0), (0, 1), (1, 0), (0, 2), (2, 0))  # (region of a, region of b): 0 full, k the k-th zoom


def search(ok: pd.DataFrame, groups: np.ndarray, threshold: int, nbits: int, rank: dict[int, int],
           small: Tiny | None = None, small_pairs: tuple | None = None) -> Search:
    """The Search over the representatives `groups` (rows of `ok`); `rank` orders groups for keeping;
    `small`: the groups' small-image averages (their pairs with each other are found from these, or are
    `small_pairs` when found already: curate.dedupe.small.start_search)."""
    ghash = ok["hash"].to_numpy()[groups]
    zh = ok["zhash"].to_numpy()[groups]
    has_zoom = np.asarray(pd.notna(zh), bool)
    hashes = pack(list(ghash), nbits)
    zoom = np.zeros_like(hashes)
    if has_zoom.any():
        zoom[has_zoom] = pack([zh[k] for k in np.flatnonzero(has_zoom)], nbits)
    uniq, inv = np.unique(ghash, return_inverse=True)
    count = np.bincount(inv, minlength=len(uniq))
    bucket = np.full(len(groups), -1)
    big = []
    for u in np.flatnonzero(count > STAR_ABOVE):
        m = np.flatnonzero(inv == u)
        bucket[m] = len(big)
        big.append(sorted(m.tolist(), key=lambda g: rank[g]))
    radius = max(RADIUS, round(threshold * 64 / nbits) + 2)
    if small is not None and len(groups) and (small.row >= 0).all():  # no larger image: no code search
        return Search(hashes, zoom, has_zoom, np.zeros((0, 1), np.uint64), threshold, nbits, radius, big, bucket,
                      None, small, small_pairs=small_pairs)
    coef = np.zeros((len(groups), 1 + len(ZOOMS), NCOEF), np.float16)
    raws = ok["centre"].to_numpy()[groups].tolist()
    have = [k for k, raw in enumerate(raws) if isinstance(raw, bytes) and len(raw) == coef[0].nbytes]
    coef[have] = np.frombuffer(b"".join(raws[k] for k in have), np.float16).reshape(len(have), *coef.shape[1:])
    f = fit(coef[:, 0])
    codes = np.concatenate([f.codes(coef[:, v]) for v in range(1 + len(ZOOMS))])
    return Search(hashes, zoom, has_zoom, codes, threshold, nbits, radius, big, bucket, pair_index(codes, radius, 64),
                  small, small_pairs=small_pairs)


def colour_far(chroma: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs whose mean colours are surely further apart than score's MAX_CHROMA_SHIFT (NaN: unknown, kept)."""
    dist = np.linalg.norm(chroma[a] - chroma[b], axis=1)
    return dist > MAX_CHROMA_SHIFT + COLOUR_MARGIN


def _floats(values) -> np.ndarray:
    """float64 array of a column's values, NaN where missing (None, NaN or pd.NA)."""
    return pd.array(list(values), dtype="Float64").to_numpy(np.float64, na_value=np.nan)


@dataclass
class Bands:
    """Mid-band signatures of the groups (curate.dedupe.midband), from hash_files' `band` bytes; only the
    groups that have one are stored (small images have none)."""

    sig: np.ndarray  # (groups with a signature, len(ZOOMS), NBAND) int8
    row: np.ndarray  # group -> its row of sig, or -1 where the test abstains (or the cache has none)
    inv: np.ndarray  # (rows, len(ZOOMS)) float32: midband.inverse_norms of sig
    side: np.ndarray  # (rows,) shorter side of the decode each signature came from (0: unknown)
    faint: np.ndarray  # (rows,) bool: a band under midband.FAINT (kept only from a decode over SHARP_SIDE)

    @classmethod
    def of(cls, raw, sides=None, rms=None) -> Bands:
        """From hash_files' `band`, `band_side` and `band_rms` columns (None: unknown; the lower minimum,
        no band faint)."""
        raw = [] if raw is None else list(raw)
        shape = (len(midband.ZOOMS), midband.NBAND)
        have = [g for g, r in enumerate(raw) if isinstance(r, bytes) and len(r) == shape[0] * shape[1]]
        sig = np.frombuffer(b"".join(raw[g] for g in have), np.int8).reshape(len(have), *shape)
        row = np.full(len(raw), -1, np.int64)
        row[have] = np.arange(len(have))
        side = np.zeros(len(have), np.int64)
        if sides is not None:
            side = np.nan_to_num(_floats(sides)[have], nan=0.0).astype(np.int64)
        faint = np.zeros(len(have), bool)
        if rms is not None:
            faint = _floats(rms)[have] < midband.FAINT  # NaN (unknown) compares False
        return cls(sig, row, midband.inverse_norms(sig), side, faint)

    def minimum(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Each pair's least similarity for a copy (midband.minimum of the two decodes' sides)."""
        ra, rb = self.row[a], self.row[b]
        out = np.full(len(a), midband.MIN, np.float32)
        both = (ra >= 0) & (rb >= 0)
        out[both] = midband.minimum(self.side[ra[both]], self.side[rb[both]])
        return out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Each pair's mid-band similarity; NaN where either image has no signature (the pair goes on)."""
        out = np.full(len(a), np.nan, np.float32)
        ra, rb = self.row[a], self.row[b]
        both = (ra >= 0) & (rb >= 0)
        if both.any():  # a faint band is evidence only against another sharp decode (else: abstain)
            ia, ib = ra[both], rb[both]
            sharp = np.minimum(self.side[ia], self.side[ib]) > midband.SHARP_SIDE
            both[both] = sharp | ~(self.faint[ia] | self.faint[ib])
        if both.any():
            out[both] = midband.similarity(self.sig, ra[both], rb[both], self.inv)
        return out


def gate(a: np.ndarray, b: np.ndarray, chroma: np.ndarray, bands: Bands, counts: Counts,
         use_prefilter: bool, tiny: Tiny | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pairs that go on to score, similarity to record for the others: 0 for colour and the small-image
    test, half the mid-band similarity for the prefilter, so a turned-away pair never reads as a near
    miss). The small-image test (`tiny`) runs with the prefilter."""
    sims = np.full(len(a), np.nan)
    far = colour_far(chroma, a, b)
    counts.colour += int(far.sum())
    sims[far] = 0.0
    go = ~far
    if use_prefilter and go.any():
        at = np.flatnonzero(go)
        pre = bands.similarity(a[at], b[at])
        low = pre < bands.minimum(a[at], b[at])  # NaN compares False: kept
        counts.prefilter += int(low.sum())
        sims[at[low]] = pre[low] * 0.5
        go[at[low]] = False
    if use_prefilter and tiny is not None and go.any():
        at = np.flatnonzero(go)
        far = tiny.far(a[at], b[at])
        counts.small += int(far.sum())
        sims[at[far]] = 0.0
        go[at[far]] = False
    return go, sims


PARTS = 16  # tasks the candidate search is cut into (by query group; never by the worker count)
SMALL_PART = -1  # (SMALL_PART, s): the task that finds the pairs of two small images of slab s (Tiny.pairs)


def parts(n: int, small: int = 0) -> list[tuple[int, int]]:
    """Query ranges (lo, hi) that cover n groups: Search.batches of each, together, find every pair once;
    first `small` tasks (SMALL_PART, s) that find the pairs of two small images (Tiny.slabs())."""
    edges = np.linspace(0, n, min(PARTS, max(1, n)) + 1).round().astype(np.int64).tolist()
    return [(SMALL_PART, s) for s in range(small)] + [
        (lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


@dataclass
class Gates:
    """What gated_part needs besides the Search: the groups' colours and mid-band signatures."""

    chroma: np.ndarray  # (groups, 2) mean CIELAB a*, b* (NaN: unknown)
    bands: Bands
    on: bool  # gate at all (verification on, with a positive minimum similarity)
    prefilter: bool  # the mid-band test too (the minimum similarity is at least VERIFY_MIN)
    tiny: Tiny | None = None  # the small-image test's averages (with the prefilter)


def gated_part(shared, part: tuple[int, int]) -> tuple[np.ndarray, Counts]:
    """A task: the candidate pairs found from the groups of `part` that pass the gates, as (k, 3) group a,
    group b, distance, with the counts. `shared`: a curate.engine.shared payload of (Search, Gates)."""
    srch, gates = shared.get()
    counts = Counts()
    out = [np.zeros((0, 3), np.int64)]
    for a, b, d in srch.batches(part):
        counts.candidates += len(a)
        go = gate(a, b, gates.chroma, gates.bands, counts, gates.prefilter, gates.tiny)[0] if gates.on else \
            np.ones(len(a), bool)
        if go.any():
            out.append(np.stack([a[go], b[go], d[go]], axis=1))
    return np.concatenate(out), counts
