"""All pairs of binary codes within a Hamming distance, without comparing all pairs in Python.

Codes are packed as (n, W) uint64 arrays. Two exact methods, chosen by a cost estimate:
- brute: vectorised XOR + popcount over the upper triangle, in blocks (small sets);
- mih: multi-index hashing. The bits are cut into m chunks; by pigeonhole two codes within distance t
  agree to within floor(t/m) bits on at least one chunk, so probing every chunk bucket within that
  radius (direct-addressed tables for chunks of at most MAX_CHUNK_BITS bits, binary search above)
  finds every pair, and each candidate is then checked on the full code.
Both return the same pairs (i < j), sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from math import comb

import numpy as np

MAX_CHUNK_BITS = 22
BATCH = 4_000_000  # candidate pairs handled at once (bounds memory)


def pack(hexes: Sequence[str], bits: int | None = None) -> np.ndarray:
    """Hex hash strings (as imagehash prints them) -> (n, W) uint64, big-endian bit order, zero padded."""
    if bits is None:
        bits = 4 * max((len(h) for h in hexes), default=16)
    nbytes = (bits + 7) // 8
    words = max(1, (nbytes + 7) // 8)
    buf = np.zeros((len(hexes), words * 8), dtype=np.uint8)
    if len(hexes):
        raw = b"".join(bytes.fromhex(h.rjust(nbytes * 2, "0")) for h in hexes)
        buf[:, :nbytes] = np.frombuffer(raw, dtype=np.uint8).reshape(len(hexes), nbytes)
    return buf.view(">u8").astype(np.uint64)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two (n, W) code arrays."""
    return np.bitwise_count(a ^ b).sum(axis=-1, dtype=np.int64)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    return z, z.copy(), z.copy()


def _finish(i: np.ndarray, j: np.ndarray, d: np.ndarray):
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def brute_pairs(codes: np.ndarray, threshold: int):
    return _collect(_brute_batches(codes, threshold))


def _brute_batches(codes: np.ndarray, threshold: int, queries: int | None = None,
                   part: tuple[int, int] | None = None, skip: np.ndarray | None = None):
    n = len(codes)
    nq = n if queries is None else queries
    lo, hi = part or (0, nq)
    block = max(1, min(n, 4_000_000 // max(1, n * codes.shape[1])))
    for s in range(lo, min(hi, nq), block):
        e = min(hi, nq, s + block)
        first = s if skip is None else 0  # a skipped code's pairs come from the other end, earlier or not
        d = np.bitwise_count(codes[s:e, None, :] ^ codes[None, first:, :]).sum(axis=-1, dtype=np.int64)
        ii, jj = np.nonzero(d <= threshold)
        dd = d[ii, jj]
        ii, jj = ii + s, jj + first
        keep = jj > ii
        if skip is not None:
            keep = ~skip[ii] & (keep | ((jj != ii) & skip[jj] & (jj < nq)))
        yield ii[keep], jj[keep], dd[keep]


def _collect(batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    got = [b for b in batches if len(b[0])]
    if not got:
        return _empty()
    return _finish(*(np.concatenate([b[k] for b in got]) for k in range(3)))


def _bits(codes: np.ndarray) -> np.ndarray:
    """(n, W*64) bool, most significant bit of word 0 first."""
    return np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(len(codes), -1), axis=1)


def _chunks(nbits: int, m: int) -> list[tuple[int, int]]:
    edges = [round(k * nbits / m) for k in range(m + 1)]
    return [(edges[k], edges[k + 1]) for k in range(m)]


def _flips(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for pos in combinations(range(width), r):
            masks.append(sum(1 << p for p in pos))
    return np.array(masks, dtype=np.int64)


def mih_cost(n: int, nbits: int, threshold: int, m: int) -> float:
    """Rough seconds for mih with m chunks on n uniform codes (for choosing m and the method)."""
    width = -(-nbits // m)
    if width > MAX_CHUNK_BITS:
        return float("inf")
    probes = m * sum(comb(width, r) for r in range(threshold // m + 1))
    candidates = probes * n * (n / 2.0**width)
    return probes * (n * 3e-8 + 8e-5) + candidates * 1.6e-8 + m * (1 << width) * 2e-9


def brute_cost(n: int, words: int) -> float:
    return n * n / 2 * words * 5e-9


def choose(n: int, nbits: int, threshold: int) -> tuple[str, int]:
    """('brute', 0) or ('mih', m), whichever the cost model says is faster."""
    best = ("brute", 0, brute_cost(n, -(-nbits // 64)))
    for m in range(max(1, -(-nbits // MAX_CHUNK_BITS)), min(nbits, threshold + 1) + 1):
        c = mih_cost(n, nbits, threshold, m)
        if c < best[2]:
            best = ("mih", m, c)
    return best[0], best[1]


def mih_pairs(codes: np.ndarray, threshold: int, m: int, nbits: int | None = None):
    return _collect(_mih_batches(codes, threshold, m, nbits))


def _mih_batches(codes: np.ndarray, threshold: int, m: int, nbits: int | None = None, queries: int | None = None,
                 part: tuple[int, int] | None = None):
    """Batches (i, j, distance) of the pairs within `threshold`, each pair exactly once (MihIndex)."""
    if len(codes) < 2:
        return iter(())
    return MihIndex(codes, threshold, m, nbits).batches(queries, part)


class MihIndex:
    """Multi-index hashing tables of `codes` (built once; `batches` probes them, so query ranges can be
    separate tasks that share one index)."""

    def __init__(self, codes: np.ndarray, threshold: int, m: int, nbits: int | None = None):
        self.codes, self.threshold = codes, threshold
        nbits = nbits or codes.shape[1] * 64
        self.chunks = _chunks(nbits, m)
        self.radius = threshold // m
        self.nbits = nbits
        self.keys = self._keys(codes)
        self.tables = []  # per chunk: (order, bucket counts, bucket starts) or (order, sorted keys) when wide
        for c, (lo, hi) in enumerate(self.chunks):
            key = self.keys[:, c]
            order = np.argsort(key, kind="stable")
            if hi - lo <= MAX_CHUNK_BITS:  # direct-addressed bucket table
                cnt = np.bincount(key, minlength=1 << (hi - lo))
                self.tables.append((order, cnt, np.concatenate(([0], np.cumsum(cnt)[:-1]))))
            else:
                self.tables.append((order, key[order]))

    def _keys(self, codes: np.ndarray) -> np.ndarray:
        """(n, m) int64: each code's value on each chunk."""
        bits = _bits(codes)[:, : self.nbits]
        return np.stack([bits[:, lo:hi].astype(np.int64) @ (1 << np.arange(hi - lo - 1, -1, -1, dtype=np.int64))
                         for lo, hi in self.chunks], axis=1).reshape(len(codes), len(self.chunks))

    def _bucket(self, c: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start in the chunk's order, count) of each key of `q` in chunk c's table."""
        table = self.tables[c]
        if len(table) == 3:
            return table[2][q], table[1][q]
        s = np.searchsorted(table[1], q, side="left")
        return s, np.searchsorted(table[1], q, side="right") - s

    def batches(self, queries: int | None = None, part: tuple[int, int] | None = None,
                skip: np.ndarray | None = None, against: np.ndarray | None = None):
        """Batches (i, j, distance) of the pairs within the threshold, each pair exactly once: from the
        first chunk where the two codes agree within the radius (so memory never holds more than one
        batch). With `queries`, only pairs with i < queries (pairs among the later codes are never looked
        for); with `part` (lo, hi), only the pairs with lo <= i < hi; with `skip` (bool per code), skipped
        codes are never queries: their pairs with each other are not looked for, their other pairs come
        from the other end. With `against` ((k, W) codes), instead the pairs (i, j) of those codes (i, rows
        of `against`, within `part`) with the index's codes (j), every one."""
        codes, keys, radius = self.codes, self.keys, self.radius
        qcodes, qkeys = (codes, keys) if against is None else (against, self._keys(against))
        n = len(codes)
        nq = len(qcodes) if queries is None or against is not None else queries
        lo_q, hi_q = part or (0, nq)
        hi_q = min(hi_q, nq)
        if n < 1 or (against is None and n < 2) or hi_q <= lo_q:
            return
        qs = np.arange(lo_q, hi_q)
        if skip is not None:
            qs = qs[~skip[lo_q:hi_q]]
        not_query = np.zeros(n, bool) if skip is None else skip.copy()
        not_query[nq:] = True  # a later code is never a query
        if against is not None:
            not_query[:] = True  # every pair comes from its (outside) query
        one = (codes[:, 0], qcodes[:, 0]) if codes.shape[1] == 1 else None  # one word: no per-row sum
        idt = np.int32 if n < 2**31 else np.int64  # half the memory traffic of every index array
        for c, (lo, hi) in enumerate(self.chunks):
            order, flips = self.tables[c][0].astype(idt), _flips(hi - lo, radius)
            # every query's every probe at once (query-major), empty buckets dropped, in slices of at
            # most BATCH candidates
            s, cn = self._bucket(c, (qkeys[qs, c][:, None] ^ flips[None, :]).ravel())
            hit = cn > 0
            s, cn = s[hit].astype(idt), cn[hit]
            q = qs[np.flatnonzero(hit) // len(flips)].astype(idt)
            cum = np.cumsum(cn)
            b0 = 0
            while b0 < len(cn):
                b1 = int(np.searchsorted(cum, (cum[b0 - 1] if b0 else 0) + BATCH, side="right"))
                b1 = min(len(cn), max(b1, b0 + 1))
                cc = cn[b0:b1]
                tot = int(cc.sum())
                ii = np.repeat(q[b0:b1], cc)
                jj = order[np.repeat(s[b0:b1] - (np.cumsum(cc) - cc).astype(idt), cc) + np.arange(tot, dtype=idt)]
                keep = (ii < jj) | not_query[jj]  # each pair from its smaller end, or from its one query end
                ii, jj = ii[keep], jj[keep]
                d = np.bitwise_count(one[1][ii] ^ one[0][jj]) if one is not None else distances(qcodes[ii], codes[jj])
                ok = d <= self.threshold
                ii, jj, d = ii[ok], jj[ok], d[ok]
                if c and len(ii):  # drop the pairs an earlier chunk found
                    ok = ~(np.bitwise_count(qkeys[ii, :c] ^ keys[jj, :c]) <= radius).any(axis=1)
                    ii, jj, d = ii[ok], jj[ok], d[ok]
                if len(ii):
                    yield ii.astype(np.int64), jj.astype(np.int64), d.astype(np.int64)
                b0 = b1


def hamming_pairs(codes: np.ndarray, threshold: int, nbits: int | None = None, method: str = "auto"):
    """All (i, j, distance) with i < j and distance <= threshold, sorted by (i, j)."""
    return _collect(pair_batches(codes, threshold, nbits, method))


def pair_batches(codes: np.ndarray, threshold: int, nbits: int | None = None, method: str = "auto",
                 queries: int | None = None, part: tuple[int, int] | None = None):
    """hamming_pairs in unsorted batches (i, j, distance), each pair once, at most BATCH pairs held at a
    time: memory does not grow with the number of pairs. With `queries`, only the pairs with
    i < queries: the first codes against each other and against the rest, not the rest among themselves.
    With `part` (lo, hi), only the pairs with lo <= i < hi: parts that cover the queries find every pair
    once, so they can run as separate tasks (on one pair_index)."""
    return pair_index(codes, threshold, nbits, method).batches(queries, part)


class BruteIndex:
    """pair_index's brute-force method: nothing to build."""

    def __init__(self, codes: np.ndarray, threshold: int):
        self.codes, self.threshold = codes, threshold

    def batches(self, queries: int | None = None, part: tuple[int, int] | None = None,
                skip: np.ndarray | None = None, against: np.ndarray | None = None):
        if against is not None:
            return _brute_against(self.codes, self.threshold, against, part)
        return _brute_batches(self.codes, self.threshold, queries, part, skip) if len(self.codes) > 1 else iter(())


def _brute_against(codes: np.ndarray, threshold: int, against: np.ndarray, part: tuple[int, int] | None):
    """Every pair (i, j) of `against` rows (within `part`) and `codes` rows within the threshold."""
    lo, hi = part or (0, len(against))
    block = max(1, 4_000_000 // max(1, len(codes) * codes.shape[1]))
    for s in range(lo, min(hi, len(against)), block):
        e = min(hi, len(against), s + block)
        d = np.bitwise_count(against[s:e, None, :] ^ codes[None, :, :]).sum(axis=-1, dtype=np.int64)
        ii, jj = np.nonzero(d <= threshold)
        yield ii + s, jj, d[ii, jj]


def pair_index(codes: np.ndarray, threshold: int, nbits: int | None = None, method: str = "auto"):
    """What pair_batches searches with (a MihIndex, or brute force where the cost model says so), built once:
    its `batches(queries, part)` may then run for several parts, in separate tasks."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    if codes.ndim == 1:
        codes = codes[:, None]
    nbits = nbits or codes.shape[1] * 64
    if method == "auto":
        method, m = choose(len(codes), nbits, threshold)
    else:
        m = choose(len(codes), nbits, threshold)[1] if method == "mih" else 0
        if method == "mih" and m == 0:
            m = max(1, -(-nbits // MAX_CHUNK_BITS), min(threshold + 1, 4))
    if method == "brute" or len(codes) < 2:
        return BruteIndex(codes, threshold)
    return MihIndex(codes, threshold, m, nbits)
