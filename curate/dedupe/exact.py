"""Exact copies: files with the same bytes, then files with the same decoded pixels (a PNG of a JPEG's
pixels, a JPEG with its metadata stripped), found without decoding the look-alikes of a dense set.

Same bytes: one sha256 each (from the hashing pass). Same pixels: among same-size files of different
bytes whose perceptual hashes are within `close` bits (the two decode paths move a hash by up to 8 on
coins-dev) and whose centre coefficients (curate.dedupe.centrecode) agree to SAME_CENTRE, the full decodes
are compared by their digest in the workers. docs/dedupe.md has the measurements.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from curate.core import storage
from curate.core.errors import UnreadableImage
from curate.core.images import decode
from curate.core.storage import read_image_bytes
from curate.dedupe.centrecode import NCOEF, ZOOMS
from curate.dedupe.search import hamming_pairs, pack

SAME_CENTRE = 0.995  # centre cosine above which same-size images may hold equal pixels (a JPEG and a PNG
# of its decoded pixels, two decode paths: >= 0.9959 on coins-dev and the sample photos)


def _pixel_digest(path: str) -> str | None:

    try:
        d = decode(read_image_bytes(path))
    except (UnreadableImage, OSError):
        return None
    return hashlib.sha256(d.pixels.tobytes()).hexdigest() + f":{d.pixels.shape}"


def _digest_shard(paths: list[str]) -> list[str | None]:
    return [_pixel_digest(p) for p in paths]


def _smallest_member(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each of n items joined by edges (a[k], b[k]): the smallest index of its connected group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max(initial=-1) + 1, n, np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


def exact_groups(root, ok: pd.DataFrame, nbits: int, close: int, ex) -> np.ndarray:
    """Exact group (index of one member) of every row: same bytes, then same decoded pixels among byte
    groups of the same size whose hashes are close (a PNG of a JPEG's pixels hashes a few bits away)."""

    paths = ok["path"].tolist()
    sha_first: dict[str, int] = {}
    unit = np.array([sha_first.setdefault(sha, i) for i, sha in enumerate(ok["sha256"])], np.int64)
    rep_df = ok.iloc[np.unique(unit)]
    same_size = rep_df[rep_df.groupby(["width", "height"], sort=True)["path"].transform("size") > 1]
    cand_set: set[int] = set()
    centre = _centre_full(ok)
    head, flat = np.ascontiguousarray(centre[:, :8]), ~centre.any(axis=1)
    for _, g in same_size.groupby(["width", "height"], sort=True):
        gi, gj, _ = hamming_pairs(pack(g["hash"].tolist(), nbits), close, nbits)
        at = g.index.to_numpy()
        gi, gj = at[gi], at[gj]
        # equal pixels have equal centre coefficients (up to the decode path: a JPEG's reduced decode vs a
        # PNG's): look-alikes with close hashes are not decoded in full. First a bound on 8 of the 63
        # (unit vectors with a cosine >= SAME_CENTRE are within sqrt(2 (1 - SAME_CENTRE)); float16: 0.02)
        d = head[gi] - head[gj]
        near = (np.einsum("nd,nd->n", d, d) <= 0.02) | flat[gi] | flat[gj]
        gi, gj = gi[near], gj[near]
        same = (np.einsum("nd,nd->n", centre[gi], centre[gj]) >= SAME_CENTRE) | flat[gi] | flat[gj]
        gi, gj = gi[same], gj[same]
        cand_set.update(gi.tolist())
        cand_set.update(gj.tolist())
    cand = sorted(cand_set)
    if cand:
        shards = [cand[k : k + 16] for k in range(0, len(cand), 16)]
        tasks = [[storage.join(root, paths[i]) for i in s] for s in shards]
        digests = [d for ds in ex.map(_digest_shard, tasks, desc="comparing pixels", units=len, unit="images")
                   for d in ds]
        first: dict[str, int] = {}
        pix = [(i, first.setdefault(d, i)) for i, d in zip(cand, digests, strict=True) if d is not None]
        if pix:
            a, b = np.array(pix, np.int64).T
            unit = _smallest_member(len(ok), np.r_[np.arange(len(ok)), a], np.r_[unit, b])
    return unit


def _centre_full(ok: pd.DataFrame) -> np.ndarray:
    """(rows, NCOEF) float32 unit centre coefficients of each row's full region (curate.dedupe.centrecode); zeros
    where there are none (a flat image, an old cache): such a row's pairs are compared on pixels."""

    out = np.zeros((len(ok), NCOEF), np.float32)
    width = (1 + len(ZOOMS)) * NCOEF * 2
    raw = ok["centre"].tolist() if "centre" in ok.columns else [None] * len(ok)
    for i, r in enumerate(raw):
        if isinstance(r, bytes) and len(r) == width:
            out[i] = np.frombuffer(r, np.float16)[:NCOEF]
    return out
