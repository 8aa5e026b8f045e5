"""Exact and near-duplicate clusters of a tree: a read-only analysis (`find_duplicates`).

1. Exact: identical bytes (sha256), then identical decoded pixels (checked only where the size
   agrees and the perceptual hashes are close). Certain and cheap.
2. Near: exact groups whose perceptual hashes are within `threshold` bits (curate.dupsearch finds the
   pairs without comparing all of them), then a verification pass: normalised cross-correlation of
   96-pixel grayscale thumbnails, searched over small shifts and scales (crops), must reach VERIFY_MIN.
   It rejects look-alikes the hash cannot tell apart (centred coins, letterboxed crops on one fill).
3. Clusters are connected components of exact groups and verified pairs; the keep and leakage policies
   decide which copy each cluster keeps. Label conflicts are reported and never resolved here.
Moving files is curate.dedupe_apply's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.errors import InputError, UnreadableImage
from curate.hashing import check_params, decode_small, hash_files, read_image_bytes
from curate.tree import SPLIT_ORDER

DEFAULT_THRESHOLD = 12  # bits of a 64-bit hash, with verification; scaled with the hash length
UNVERIFIED_THRESHOLD = 8  # without verification a looser threshold merges look-alikes (docs/dedupe.md)
VERIFY_MIN = 0.88  # thumbnail correlation a near pair needs (docs/dedupe.md: how it was measured)
VERIFY_SIDE = 96  # side at which thumbnails are compared
MAX_CHROMA_SHIFT = 20.0  # mean CIELAB (a*, b*) distance a near pair may have (dupsynth edits: < 9)
KEEP_POLICIES = ("largest", "bytes", "first")
LEAKAGE_POLICIES = ("train", "report")
STAR_ABOVE = 64  # larger groups of equal hashes are verified as stars (see find_duplicates, step 3)


@dataclass
class Cluster:
    id: int
    kind: str  # "exact" (all copies identical) or "near"
    members: list[str]  # tree-relative paths, sorted
    keep: str
    splits: list[str]
    labels: list[str]
    cross_split: bool
    label_conflict: bool
    max_distance: int
    remove: list[str] = field(default_factory=list)  # what the keep/leakage policies move out
    duplicate_of: dict[str, str] = field(default_factory=dict)  # removed path -> the copy it duplicates
    links: dict[str, dict] = field(default_factory=dict)


@dataclass
class DedupeResult:
    clusters: list[Cluster]
    pairs: pd.DataFrame  # a, b, distance, kind, verified, similarity
    files: pd.DataFrame  # hash_files output
    unreadable: list[tuple[str, str]]  # (path, reason)
    params: dict = field(default_factory=dict)

    def removals(self) -> dict[str, str]:
        """Every path the policies remove -> the kept copy it duplicates."""
        return {p: k for c in self.clusters for p, k in c.duplicate_of.items()}

    def to_json(self) -> dict:
        return {
            "params": self.params,
            "clusters": [asdict(c) for c in self.clusters],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
        }


def default_threshold(hash_size: int, verify: bool = True) -> int:
    return round((DEFAULT_THRESHOLD if verify else UNVERIFIED_THRESHOLD) * hash_size * hash_size / 64)


# ---------------------------------------------------------------- pixel checks (run in workers)


def _pixel_digest(path: str) -> str | None:
    from curate.images import decode

    try:
        d = decode(read_image_bytes(path))
    except (UnreadableImage, OSError):
        return None
    return hashlib.sha256(d.pixels.tobytes()).hexdigest() + f":{d.pixels.shape}"


def _digest_shard(paths: list[str]) -> list[str | None]:
    return [_pixel_digest(p) for p in paths]


SCALES = (1.0, 1.04, 1.08, 1.12, 1.16)
TEMPLATE = 0.8  # central share of the rescaled image matched against the other one
THUMB_SIDE = 128  # stored thumbnail (uint8): every zoom of SCALES is a downscale of it


def thumbnail(pixels: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """Square grayscale uint8 thumbnail of an RGB array."""
    import cv2

    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)


def load_thumbnail(path: str) -> np.ndarray | None:
    """The stored grayscale thumbnail of an image file or URL; None when it cannot be read."""
    t = _thumb_and_chroma(path)
    return None if t is None else t[0]


def chroma(pixels: np.ndarray) -> np.ndarray:
    """Mean colour of an RGB image as CIELAB (a*, b*): what a grayscale comparison cannot see."""
    import cv2

    lab = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    return lab[:, 1:].mean(axis=0).astype(np.float32) - 128.0


def _thumb_and_chroma(path: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        px = decode_small(read_image_bytes(path), 2 * THUMB_SIDE).pixels
    except (UnreadableImage, OSError):
        return None
    return thumbnail(px), chroma(px)


def _thumb_shard(paths: list[str]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    return [_thumb_and_chroma(p) for p in paths]


def features(thumb: np.ndarray, side: int = VERIFY_SIDE) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """What `similarity` compares: the image at `side`, and its centre at every zoom of SCALES."""
    import cv2

    x = thumb.astype(np.float32)
    base = cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)
    t = round(side * TEMPLATE)
    templates = []
    for s in SCALES:
        n = round(side * s)
        z = cv2.resize(x, (n, n), interpolation=cv2.INTER_AREA if n <= x.shape[0] else cv2.INTER_LINEAR)
        o = (n - t) // 2
        templates.append(z[o : o + t, o : o + t])
    return base, templates


def similarity(a, b) -> float:
    """Best normalised cross-correlation of two images (thumbnails or `features`) over shifts and zooms.

    Each image in turn is zoomed by SCALES and its centre (TEMPLATE of the side) slid over the other:
    re-encodes, resizes, brightness changes and crops of a few percent score near 1.
    """
    import cv2

    fa = a if isinstance(a, tuple) else features(a)
    fb = b if isinstance(b, tuple) else features(b)
    best = -1.0
    for (base, _), (_, templates) in ((fa, fb), (fb, fa)):
        for templ in templates:
            if float(templ.std()) < 1e-3:  # flat: equal only to an equally flat, equally bright image
                flat = float(base.std()) < 1e-3 and abs(float(base.mean()) - float(templ.mean())) < 2
                best = max(best, 1.0 if flat else 0.0)
                continue
            r = cv2.matchTemplate(base, templ, cv2.TM_CCOEFF_NORMED)
            best = max(best, float(np.nanmax(r)))
    return best


def mirrored_similarity(a: np.ndarray, b: np.ndarray) -> float | None:
    """How alike `a` is to `b` flipped left-right, when that is a verified copy (>= VERIFY_MIN) and closer
    than `b` unflipped (so symmetric images are ordinary duplicates, not mirrored ones); else None."""
    mirrored = similarity(a, np.ascontiguousarray(b[:, ::-1]))
    if mirrored < VERIFY_MIN or mirrored <= similarity(a, b):
        return None
    return mirrored


def _sim_shard(task: tuple[list[tuple[np.ndarray, np.ndarray] | None], list[tuple[int, int]]]) -> list[float]:
    thumbs, pairs = task
    feats: dict[int, tuple] = {}
    out = []
    for i, j in pairs:
        if thumbs[i] is None or thumbs[j] is None:
            out.append(-1.0)
            continue
        if float(np.linalg.norm(thumbs[i][1] - thumbs[j][1])) > MAX_CHROMA_SHIFT:
            out.append(0.0)  # alike in gray, not in colour: a red and a blue patch, a gold and a silver coin
            continue
        for k in (i, j):
            if k not in feats:
                feats[k] = features(thumbs[k][0])
        out.append(similarity(feats[i], feats[j]))
    return out


# ---------------------------------------------------------------- union-find


class _DSU:
    def __init__(self, n: int):
        self.p = list(range(n))

    def find(self, x: int) -> int:
        while self.p[x] != x:
            self.p[x] = self.p[self.p[x]]
            x = self.p[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


# ---------------------------------------------------------------- policies


def _rank_split(split: str) -> int:
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)


def pick_keep(rows: pd.DataFrame, keep: str) -> str:
    """The path a keep policy keeps among `rows` (hash_files rows); ties by path."""
    if keep == "first":
        return str(min(rows["path"]))
    pixels = (rows["width"].astype("int64") * rows["height"].astype("int64")).tolist()
    sizes = rows["size"].astype("int64").tolist()
    paths = rows["path"].tolist()
    if keep == "largest":
        key = [(-px, -sz, p) for px, sz, p in zip(pixels, sizes, paths, strict=True)]
    else:  # bytes
        key = [(-sz, -px, p) for px, sz, p in zip(pixels, sizes, paths, strict=True)]
    return min(key)[2]


def _apply_policy(c: Cluster, rows: pd.DataFrame, keep: str, leakage: str) -> None:
    splits = sorted(set(rows["split"]), key=lambda s: (_rank_split(s), s))
    if c.label_conflict:  # reported, never resolved: nothing moves
        c.keep = pick_keep(rows, keep)
        return
    if leakage == "train" or len(splits) == 1:
        first = rows[rows["split"] == splits[0]]
        c.keep = pick_keep(first, keep)
        c.duplicate_of = {p: c.keep for p in rows["path"] if p != c.keep}
    else:  # report: one copy kept per split, leakage only reported
        keeps = {s: pick_keep(rows[rows["split"] == s], keep) for s in splits}
        c.keep = keeps[splits[0]]
        c.duplicate_of = {
            p: keeps[s] for p, s in zip(rows["path"], rows["split"], strict=True) if p != keeps[s]
        }
    c.remove = sorted(c.duplicate_of)


# ---------------------------------------------------------------- the analysis


def check_policies(keep: str, leakage: str) -> None:
    if keep not in KEEP_POLICIES:
        raise InputError(f"unknown keep policy '{keep}'", f"choose one of: {', '.join(KEEP_POLICIES)}")
    if leakage not in LEAKAGE_POLICIES:
        raise InputError(f"unknown leakage policy '{leakage}'", f"choose one of: {', '.join(LEAKAGE_POLICIES)}")


def find_duplicates(
    root: str | Path,
    *,
    hash_name: str = "phash",
    hash_size: int = 8,
    threshold: int | None = None,
    verify: bool = True,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    keep: str = "largest",
    leakage: str = "train",
    min_similarity: float = VERIFY_MIN,
) -> DedupeResult:
    """Exact and near-duplicate clusters of the tree at `root`; reads files, moves nothing."""
    from curate.dupsearch import hamming_pairs, pack
    from curate.executor import make_executor

    check_params(hash_name, hash_size)
    check_policies(keep, leakage)
    nbits = hash_size * hash_size
    if threshold is None:
        threshold = default_threshold(hash_size, verify)
    if not 0 <= threshold < nbits:
        raise InputError(f"--threshold {threshold} is out of range", f"use 0 to {nbits - 1} bits")
    root = storage.as_location(root)  # a local Path, or an object-store URL string
    files = hash_files(root, hash_name=hash_name, hash_size=hash_size, workers=workers, engine=engine,
                       quiet=quiet)
    unreadable = [(p, str(e)) for p, e in zip(files["path"], files["error"], strict=True) if e is not None]
    ok = files[files["error"].isna()].reset_index(drop=True)
    ex = make_executor(engine, workers, quiet)
    paths = ok["path"].tolist()

    # 1. exact groups: same bytes, then same decoded pixels among byte groups of the same size whose hashes
    # are close (not only equal: a PNG of a JPEG's decoded pixels hashes a few bits away from the JPEG)
    sha_first: dict[str, int] = {}
    unit = np.empty(len(ok), dtype=np.int64)
    for i, sha in enumerate(ok["sha256"]):
        unit[i] = sha_first.setdefault(sha, i)
    reps = np.unique(unit)
    rep_df = ok.iloc[reps]
    dsu = _DSU(len(ok))
    for i in range(len(ok)):
        dsu.union(i, int(unit[i]))
    same_size = rep_df[rep_df.groupby(["width", "height"], sort=True)["path"].transform("size") > 1]
    close = min(nbits - 1, default_threshold(hash_size, verify=False))
    cand_set: set[int] = set()
    for _, g in same_size.groupby(["width", "height"], sort=True):
        gi, gj, _ = hamming_pairs(pack(g["hash"].tolist(), nbits), close, nbits)
        at = g.index.to_numpy()
        cand_set.update(at[gi].tolist())
        cand_set.update(at[gj].tolist())
    cand = sorted(cand_set)
    if cand:
        shards = [cand[k : k + 16] for k in range(0, len(cand), 16)]
        tasks = [[storage.join(root, paths[i]) for i in s] for s in shards]
        digests = [d for ds in ex.map(_digest_shard, tasks, desc="comparing pixels", units=len, unit="images")
                   for d in ds]
        first: dict[str, int] = {}
        for i, d in zip(cand, digests, strict=True):
            if d is not None:
                dsu.union(i, first.setdefault(d, i))
    exact = np.array([dsu.find(i) for i in range(len(ok))], dtype=np.int64)
    # one representative per exact group, chosen by content (smallest sha256), never by file name: its
    # hash and thumbnail stand for the group, so renaming files cannot change what is found
    shas = ok["sha256"].tolist()
    rep_of: dict[int, int] = {}
    for i, r in enumerate(exact.tolist()):
        if r not in rep_of or shas[i] < shas[rep_of[r]]:
            rep_of[r] = i
    groups = np.array(sorted(rep_of.values()), dtype=np.int64)

    pair_rows: list[dict] = []
    for i in range(len(ok)):
        if exact[i] != i:
            pair_rows.append({"a": paths[int(exact[i])], "b": paths[i], "distance": 0, "kind": "exact",
                              "verified": True, "similarity": 1.0})

    # 2. near pairs between exact groups: equal hashes, then the Hamming search over distinct hashes
    ghash = ok["hash"].to_numpy()[groups]
    gsha = [shas[int(i)] for i in groups]
    uniq, inv = np.unique(ghash, return_inverse=True)
    members: list[list[int]] = [[] for _ in range(len(uniq))]
    for g, u in enumerate(inv):
        members[u].append(g)
    near: list[tuple[int, int, int]] = []  # (group a, group b, distance)
    stars: list[list[int]] = []  # big buckets of equal hashes: verified as stars around their first member
    for m in members:
        if len(m) > STAR_ABOVE:
            stars.append(sorted(m, key=lambda g: (gsha[g], g)))
        else:
            near += [(a, b, 0) for k, a in enumerate(m) for b in m[k + 1 :]]
    if len(uniq) > 1 and threshold > 0:
        ui, uj, ud = hamming_pairs(pack(list(uniq), nbits), threshold, nbits)
        for a, b, d in zip(ui.tolist(), uj.tolist(), ud.tolist(), strict=True):
            near += [(x, y, d) for x in members[a] for y in members[b]]
    near.sort()

    # 3. verification of near pairs on pixels
    gpath = [paths[int(groups[g])] for g in range(len(groups))]
    thumbs: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def check(batch: list[tuple[int, int, int]]) -> list[float]:
        if not verify or not batch:
            return [1.0] * len(batch)
        need = sorted({g for a, b, _ in batch for g in (a, b)} - thumbs.keys())
        shards = [need[k : k + 32] for k in range(0, len(need), 32)]
        got = ex.map(_thumb_shard, [[storage.join(root, gpath[g]) for g in sh] for sh in shards],
                     desc="thumbnails", units=len, unit="images")
        thumbs.update(zip(need, (t for ts in got for t in ts), strict=True))
        tasks = []
        for k in range(0, len(batch), 256):
            chunk = batch[k : k + 256]
            ids = sorted({g for a, b, _ in chunk for g in (a, b)})
            local = {g: n for n, g in enumerate(ids)}
            tasks.append(([thumbs[g] for g in ids], [(local[a], local[b]) for a, b, _ in chunk]))
        return [s for ss in ex.map(_sim_shard, tasks, desc="verifying pairs", units=lambda t: len(t[1]),
                                   unit="pairs") for s in ss]

    def passes(s: float) -> bool:
        return s >= min_similarity if verify else True

    # a star leaves out the members its centre does not match (another look-alike family with the same
    # hash, e.g. blank images of another colour): they form the next star, until few enough for all pairs
    checked: list[tuple[tuple[int, int, int], float]] = []
    todo = near
    while todo or stars:
        batch = todo + [(m[0], b, 0) for m in stars for b in m[1:]]
        sims = check(batch)
        checked += zip(batch, sims, strict=True)
        rest = iter(sims[len(todo) :])
        todo, next_stars = [], []
        for m in stars:
            left = [b for b in m[1:] if not passes(next(rest))]
            if len(left) > STAR_ABOVE:
                next_stars.append(left)
            else:
                todo += [(a, b, 0) for k, a in enumerate(left) for b in left[k + 1 :]]
        stars = next_stars
    pair_dist: dict[int, int] = {}
    for (a, b, d), s in checked:
        ok_pair = passes(s)
        pa, pb = sorted((gpath[a], gpath[b]))
        pair_rows.append({"a": pa, "b": pb, "distance": int(d), "kind": "near",
                          "verified": bool(ok_pair), "similarity": round(float(s), 4) if verify else None})
        if ok_pair:
            dsu.union(int(groups[a]), int(groups[b]))
    for (a, _b, d), s in checked:
        if passes(s):
            r = dsu.find(int(groups[a]))
            pair_dist[r] = max(pair_dist.get(r, 0), int(d))

    # 4. clusters and policies
    comp = np.array([dsu.find(i) for i in range(len(ok))], dtype=np.int64)
    clusters: list[Cluster] = []
    by_comp = np.argsort(comp, kind="stable")
    roots, starts, counts = np.unique(comp[by_comp], return_index=True, return_counts=True)
    for r, st, cnt in zip(roots.tolist(), starts.tolist(), counts.tolist(), strict=True):
        if cnt < 2:
            continue
        idx = by_comp[st : st + cnt]
        rows = ok.iloc[idx].sort_values("path")
        splits = sorted(set(rows["split"]), key=lambda s: (_rank_split(s), s))
        labels = sorted(set(rows["label"]))
        kind = "exact" if len(set(exact[idx].tolist())) == 1 else "near"
        c = Cluster(id=len(clusters), kind=kind, members=rows["path"].tolist(), keep="", splits=splits,
                    labels=labels, cross_split=len(splits) > 1, label_conflict=len(labels) > 1,
                    max_distance=pair_dist.get(int(r), 0))
        _apply_policy(c, rows, keep, leakage)
        clusters.append(c)
    pairs = pd.DataFrame(pair_rows, columns=["a", "b", "distance", "kind", "verified", "similarity"])
    pairs = pairs.sort_values(["a", "b"], kind="stable").reset_index(drop=True)
    params = {"hash": hash_name, "hash_size": hash_size, "threshold": threshold, "verify": verify,
              "min_similarity": min_similarity, "keep": keep, "leakage": leakage}
    return DedupeResult(clusters, pairs, files, unreadable, params)
