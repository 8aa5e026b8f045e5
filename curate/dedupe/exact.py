"""Exact copies: files with the same bytes, then files with the same decoded pixels (a PNG of a JPEG's
pixels, a JPEG with its metadata stripped), found without decoding the look-alikes of a dense set.

Same bytes: one sha256 each (from the hashing pass). Same pixels: same-size files of different bytes
that may hold equal pixels have their full decodes compared by digest in the workers. The candidates: in
one format, files with the same hash and centre coefficients (one decode gives both); across formats,
files whose perceptual hashes are within `close` bits (the two decode paths move a hash by up to 8 on
coins-dev) and whose centre coefficients (curate.dedupe.centrecode) agree to SAME_CENTRE. docs/dedupe.md
has the measurements.
"""

from __future__ import annotations

import hashlib

import numpy as np

from curate.core import storage
from curate.core.errors import UnreadableImage
from curate.core.graph import smallest_member
from curate.core.images import decode
from curate.core.lazy import lazy
from curate.core.storage import read_image_bytes
from curate.dedupe.centrecode import NCOEF, ZOOMS
from curate.dedupe.search import pack, pair_batches

pd = lazy("pandas")  # parent-side only: pool workers never load it (their fork server starts faster)

SAME_CENTRE = 0.995  # centre cosine above which same-size images may hold equal pixels (a JPEG and a PNG
# of its decoded pixels, two decode paths: >= 0.9959 on coins-dev and the sample photos)
LOCAL_PIXELS = 4_000_000  # candidates' decoded pixels up to which they are compared in this process


def _pixel_digest(path: str) -> str | None:

    try:
        d = decode(read_image_bytes(path))
    except (UnreadableImage, OSError):
        return None
    return hashlib.sha256(d.pixels.tobytes()).hexdigest() + f":{d.pixels.shape}"


def _digest_shard(paths: list[str]) -> list[str | None]:
    return [_pixel_digest(p) for p in paths]


def exact_groups(root, ok: pd.DataFrame, nbits: int, close: int, ex) -> np.ndarray:
    """Exact group (index of one member) of every row: same bytes, then same decoded pixels (checked on
    the candidates of _same_pixel_candidates)."""

    paths = ok["path"].tolist()
    sha_first: dict[str, int] = {}
    unit = np.array([sha_first.setdefault(sha, i) for i, sha in enumerate(ok["sha256"])], np.int64)
    cand_set = _same_pixel_candidates(ok.iloc[np.unique(unit)], _centre_full(ok), nbits, close)
    cand = sorted(cand_set)
    if cand:
        shards = [cand[k : k + 16] for k in range(0, len(cand), 16)]
        tasks = [[storage.join(root, paths[i]) for i in s] for s in shards]
        area = (ok["width"].to_numpy()[cand].astype(np.float64) * ok["height"].to_numpy()[cand]).sum()
        # a few small decodes (~0.05 s) cost less here than behind the tasks the pool is running
        digests = [d for ds in (map(_digest_shard, tasks) if area <= LOCAL_PIXELS else ex.map(
            _digest_shard, tasks, desc="comparing pixels", units=len, unit="images")) for d in ds]
        first: dict[str, int] = {}
        pix = [(i, first.setdefault(d, i)) for i, d in zip(cand, digests, strict=True) if d is not None]
        if pix:
            a, b = np.array(pix, np.int64).T
            unit = smallest_member(len(ok), np.r_[np.arange(len(ok)), a], np.r_[unit, b])
    return unit


def _same_pixel_candidates(reps: pd.DataFrame, centre: np.ndarray, nbits: int, close: int) -> set[int]:
    """Rows of `reps` (one per byte group) that may share their decoded pixels with another of the same
    size. In one format, equal pixels come from one decode: the hashing pass gave both the same hash
    and the same centre coefficients, so equal keys find them without a search. Across formats (a PNG
    of a JPEG's pixels: the JPEG's reduced decode moves its hash a few bits), the pairs whose hashes are
    within `close` and whose centre coefficients agree to SAME_CENTRE (look-alikes with close hashes are
    not decoded in full)."""
    cand: set[int] = set()
    keyed = reps.assign(_centre=[centre[i].tobytes() for i in reps.index])
    key = ["width", "height", "format", "hash", "_centre"]
    cand.update(keyed.index[keyed.groupby(key, sort=False)["path"].transform("size") > 1].tolist())
    head, flat = np.ascontiguousarray(centre[:, :8]), ~centre.any(axis=1)
    mixed = reps[reps.groupby(["width", "height"], sort=True)["format"].transform("nunique") > 1]
    for _, g in mixed.groupby(["width", "height"], sort=True):
        gi, gj = _cross_format_pairs(g, nbits, close)
        # unit vectors with a cosine >= SAME_CENTRE are within sqrt(2 (1 - SAME_CENTRE)) (float16: 0.02):
        # first that bound on 8 of the 63 coefficients
        d = head[gi] - head[gj]
        near = (np.einsum("nd,nd->n", d, d) <= 0.02) | flat[gi] | flat[gj]
        gi, gj = gi[near], gj[near]
        same = (np.einsum("nd,nd->n", centre[gi], centre[gj]) >= SAME_CENTRE) | flat[gi] | flat[gj]
        cand.update(gi[same].tolist())
        cand.update(gj[same].tolist())
    return cand


def _cross_format_pairs(g: pd.DataFrame, nbits: int, close: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs of `g` in two formats whose hashes are within `close`: each format, rarest first,
    searched against the formats after it (a few PNG copies among many JPEGs cost a few queries)."""
    fmt = g["format"].to_numpy()
    names, counts = np.unique(fmt, return_counts=True)
    order = names[np.argsort(counts, kind="stable")]
    out_i, out_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for k, name in enumerate(order[:-1]):
        query, rest = np.flatnonzero(fmt == name), np.flatnonzero(np.isin(fmt, order[k + 1 :]))
        rows = np.r_[query, rest]
        codes = pack(g["hash"].to_numpy()[rows].tolist(), nbits)
        for i, j, _ in pair_batches(codes, close, nbits, queries=len(query)):
            keep = j >= len(query)  # a query against the later formats, not against its own
            out_i.append(g.index.to_numpy()[rows[i[keep]]])
            out_j.append(g.index.to_numpy()[rows[j[keep]]])
    return np.concatenate(out_i), np.concatenate(out_j)


def _centre_full(ok: pd.DataFrame) -> np.ndarray:
    """(rows, NCOEF) float32 unit centre coefficients of each row's full region (curate.dedupe.centrecode); zeros
    where there are none (a flat image, an old cache): such a row's pairs are compared on pixels."""

    out = np.zeros((len(ok), NCOEF), np.float32)
    width = (1 + len(ZOOMS)) * NCOEF * 2
    raw = ok["centre"].tolist() if "centre" in ok.columns else [None] * len(ok)
    have = [i for i, r in enumerate(raw) if isinstance(r, bytes) and len(r) == width]
    out[have] = np.frombuffer(b"".join(raw[i] for i in have), np.float16).reshape(len(have), width // 2)[:, :NCOEF]
    return out
