"""Exact and near-duplicate clusters of a tree: a read-only analysis (`find_duplicates`).

1. Exact: identical bytes (sha256), then identical decoded pixels (checked only where the size
   agrees and the perceptual hashes are close). Certain and cheap.
2. Near: exact groups whose perceptual hashes are within `threshold` bits (curate.dedupe.search finds the
   pairs without comparing all of them), then verification on pixels (curate.dedupe.verify: aligned gradient
   correlation), which tells a copy of one photo from another photo of the same design.
3. Clusters are stars, never chains (curate.dedupe.cluster): the best file (split order, then the keep policy) is a centre, and
   a cluster is that centre plus the files verified directly against it. Two files that were never
   compared, or that failed verification, are never in one cluster.
4. Policies: evaluation copies of a training file are leakage and go, whatever their label; inside one
   split, a copy under another label is a conflict, kept and reported (or all dropped with
   conflicts="drop"). Moving files is curate.dedupe.apply's job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from curate.core import storage
from curate.core.errors import InputError, UnreadableImage
from curate.core.graph import smallest_member
from curate.core.lazy import lazy
from curate.dedupe.candidates import (
    STAR_ABOVE,
    Bands,
    Counts,
    Gates,
    Search,
    gate,
    gated_part,
    parts,
    search,
)
from curate.dedupe.cluster import (  # noqa: F401  (re-exported: the dedupe API)
    CONFLICT_POLICIES,
    KEEP_POLICIES,
    LEAKAGE_POLICIES,
    Cluster,
    build_clusters,
    check_policies,
    pick_keep,
    stars,
    unit_order,
)
from curate.dedupe.exact import exact_groups as _exact_groups
from curate.dedupe.hashing import (
    HASH_DECODE_SIDE,
    check_params,
    decode_small,
    gray_small,
    hash_files,
    jpeg_small,
    png_pixels,
    read_image_bytes,
    wait_for_cache,
    write_cache_now,
)
from curate.dedupe.midband import signature
from curate.dedupe.small import Tiny, apart, start_search
from curate.dedupe.verify import THUMB_SIDE, VERIFY_MIN, Thumb, make_thumb, mirrored, score, score_batch
from curate.engine.executor import make_executor

pd = lazy("pandas")  # parent-side only: pool workers never load it (their fork server starts faster)

DEFAULT_THRESHOLD = 12  # bits of a 64-bit hash, with verification; scaled with the hash length
UNVERIFIED_THRESHOLD = 8  # without verification a looser threshold merges look-alikes (docs/dedupe.md)


@dataclass
class DedupeResult:
    clusters: list[Cluster]
    pairs: pd.DataFrame  # a, b, distance, kind, verified, similarity
    files: pd.DataFrame  # hash_files output
    unreadable: list[tuple[str, str]]  # (path, reason)
    params: dict = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)  # near candidate pairs: found, turned away, scored

    def removals(self) -> dict[str, str]:
        """Every path the policies remove -> the kept copy it duplicates."""
        return {p: k for c in self.clusters for p, k in c.duplicate_of.items()}

    def to_json(self) -> dict:
        return {
            "params": self.params,
            "candidates": self.counts.to_dict(),
            "clusters": [asdict(c) for c in self.clusters],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
        }


def default_threshold(hash_size: int, verify: bool = True) -> int:
    return round((DEFAULT_THRESHOLD if verify else UNVERIFIED_THRESHOLD) * hash_size * hash_size / 64)


# ---------------------------------------------------------------- pixel checks (run in workers)


def thumb_of(path: str) -> Thumb | None:
    """The verification thumbnail of an image file or URL; None when it cannot be read."""

    try:
        data = read_image_bytes(path)
        got = jpeg_small(data, 2 * THUMB_SIDE)  # a plain JPEG: OpenCV's reduced decode, no Pillow
        if got is not None:
            return make_thumb(got[0], got[3], bgr=True)
        pixels = png_pixels(data)  # a plain PNG: libspng's decode, Pillow's pixels (RGB)
        if pixels is not None:
            return make_thumb(pixels)
        d = decode_small(data, 2 * THUMB_SIDE)
    except (UnreadableImage, OSError):
        return None
    return make_thumb(d.pixels, (d.width, d.height))


load_thumbnail = thumb_of  # the report's name for it


def band_of(path: str) -> tuple[np.ndarray, int] | None:
    """The mid-band signature of an image file or URL (curate.dedupe.midband.signature of the hashing pass's
    reduced grayscale decode) and that decode's shorter side; None when it cannot be read or the test abstains."""

    try:
        gray, size = gray_small(read_image_bytes(path), HASH_DECODE_SIDE)
    except (UnreadableImage, OSError):
        return None
    sig = signature(gray, size)
    return None if sig is None else (sig, int(min(gray.shape)))


def _score_shard(task: tuple[list[str], list[tuple[int, int]]]) -> list[float]:
    """score() of pairs of indices into the shard's files: the worker makes their thumbnails itself, so
    no thumbnail is shipped between processes or held by the parent."""
    paths, pairs = task
    return score_batch([thumb_of(p) for p in paths], pairs)


def mirrored_similarity(a: Thumb, b: Thumb) -> float | None:
    """How alike `a` is to `b` flipped left-right, when that is a verified copy (>= VERIFY_MIN) and closer
    than `b` unflipped (so symmetric images are ordinary duplicates, not mirrored ones); else None."""
    flipped = mirrored(a, b)
    if a.tiny is not None and flipped.tiny is not None and bool(apart(a.tiny[None], flipped.tiny[None])[0]):
        return None  # two small images whose colour layouts disagree (curate.dedupe.small)
    m = score(a, flipped)
    if m < VERIFY_MIN or m <= score(a, b):
        return None
    return m


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
    conflicts: str = "keep",
    min_similarity: float = VERIFY_MIN,
) -> DedupeResult:
    """Exact and near-duplicate clusters of the tree at `root`; reads files, moves nothing."""

    check_params(hash_name, hash_size)
    check_policies(keep, leakage, conflicts)
    nbits = hash_size * hash_size
    if threshold is None:
        threshold = default_threshold(hash_size, verify)
    if not 0 <= threshold < nbits:
        raise InputError(f"--threshold {threshold} is out of range", f"use 0 to {nbits - 1} bits")
    root = storage.as_location(root)  # a local Path, or an object-store URL string
    files = hash_files(root, hash_name=hash_name, hash_size=hash_size, workers=workers, engine=engine,
                       quiet=quiet, cache_later=True)  # the cache is written while the workers search
    try:
        unreadable = [(p, str(e)) for p, e in zip(files["path"], files["error"], strict=True) if e is not None]
        ok = files[files["error"].isna()].reset_index(drop=True)
        ex = make_executor(engine, workers, quiet)
        small_pairs = start_search(ex, ok["tiny"].to_numpy()) if "tiny" in ok.columns else None  # meanwhile:
        exact = _exact_groups(root, ok, nbits, min(nbits - 1, default_threshold(hash_size, verify=False)), ex)
        groups, pair_rows = _units(ok, exact)
        units = unit_order(ok, exact, groups, keep)
        tiny = Tiny.of(ok["tiny"].to_numpy()[groups]) if "tiny" in ok.columns else None
        group_of_root = np.full(len(ok), -1, np.int64)
        group_of_root[exact[groups]] = np.arange(len(groups))
        srch = search(ok, groups, threshold, nbits, {u: k for k, u in enumerate(units.order)}, tiny)
        if small_pairs is not None:  # made while the workers paired the small images; now wait for them
            srch.small_pairs = small_pairs(group_of_root[exact], tiny)
        gpath = ok["path"].to_numpy()[groups].tolist()
        counts = Counts()
        chroma = ok[["chroma_a", "chroma_b"]].to_numpy(np.float64)[groups] if "chroma_a" in ok.columns else \
            np.full((len(groups), 2), np.nan)
        bands = Bands.of(*(ok[c].to_numpy()[groups] for c in ("band", "band_side", "band_rms")))
        arr, sims = _verify(root, gpath, srch, ex, verify, min_similarity, (chroma, bands, tiny, counts))
        good = np.ones(len(arr), bool) if not verify else sims >= min_similarity
        edges: dict[int, list[tuple[int, int, float]]] = {}
        for (a, b, d), sim in zip(arr[good].tolist(), sims[good].tolist(), strict=True):
            edges.setdefault(a, []).append((b, d, sim))
            edges.setdefault(b, []).append((a, d, sim))
        clusters = build_clusters(units, edges, leakage, conflicts)
        pairs = pd.concat([pd.DataFrame(pair_rows, columns=PAIR_COLUMNS), _near_rows(gpath, arr, sims, good, verify)],
                          ignore_index=True) if pair_rows else _near_rows(gpath, arr, sims, good, verify)
        pairs = pairs.sort_values(["a", "b"], kind="stable").reset_index(drop=True)
        params = {"hash": hash_name, "hash_size": hash_size, "threshold": threshold, "verify": verify,
                  "min_similarity": min_similarity, "keep": keep, "leakage": leakage, "conflicts": conflicts}
        return DedupeResult(clusters, pairs, files, unreadable, params, counts)
    finally:
        wait_for_cache()  # on disk when the call returns, whatever happened


PAIR_COLUMNS = ["a", "b", "distance", "kind", "verified", "similarity"]


def _near_rows(gpath: list[str], arr: np.ndarray, sims: np.ndarray, good: np.ndarray, verify: bool) -> pd.DataFrame:
    """The pairs table's rows of the near pairs compared (a before b by path)."""
    paths = np.asarray(gpath, dtype=object)
    pa, pb = paths[arr[:, 0]], paths[arr[:, 1]]
    swap = np.array([x > y for x, y in zip(pa, pb, strict=True)], bool)
    return pd.DataFrame({"a": np.where(swap, pb, pa), "b": np.where(swap, pa, pb),
                         "distance": arr[:, 2].astype(np.int64), "kind": "near", "verified": good,
                         "similarity": np.round(sims, 4) if verify else None}, columns=PAIR_COLUMNS)


def _units(ok: pd.DataFrame, exact: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """One representative row per exact group, chosen by content (smallest sha256), never by file name
    (its hash and thumbnail stand for the group); and the exact pairs (each copy against its group)."""
    paths, shas = ok["path"].tolist(), ok["sha256"].tolist()
    rep_of: dict[int, int] = {}
    for i, r in enumerate(exact.tolist()):
        if r not in rep_of or shas[i] < shas[rep_of[r]]:
            rep_of[r] = i
    rows = [{"a": paths[int(exact[i])], "b": paths[i], "distance": 0, "kind": "exact", "verified": True,
             "similarity": 1.0} for i in range(len(ok)) if exact[i] != i]
    return np.array(sorted(rep_of.values()), dtype=np.int64), rows


def _verify(root, gpath: list[str], srch: Search, ex, verify: bool, min_sim: float,
            gates) -> tuple[np.ndarray, np.ndarray]:
    """((k, 3) group a, group b, distance; (k,) similarity) of every candidate pair scored on pixels (every
    candidate without verification). The search runs as tasks over query ranges (candidates.parts), each
    sending its batches through the cheap gates (colour, then the mid-band test and the small-image test, which min_sim below
    VERIFY_MIN skips) and returning only the survivors, with counts of the others; then the survivors
    are scored. `gates`: (chroma, bands, tiny, counts)."""
    chroma, bands, tiny, counts = gates
    use_gates = verify and min_sim > 0
    both = Gates(chroma, bands, on=use_gates, prefilter=min_sim >= VERIFY_MIN, tiny=tiny)

    def passing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not use_gates:
            return np.ones(len(a), bool)
        return gate(a, b, chroma, bands, counts, both.prefilter, tiny)[0]

    def path_of(g: int) -> str:
        return storage.join(root, gpath[g])

    def check(batch: np.ndarray, gated: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities of `batch` (k, 3) and which pairs were scored; its first `gated` passed the gates."""
        if not verify:
            return np.ones(len(batch)), np.ones(len(batch), bool)
        go = np.ones(len(batch), bool)
        go[gated:] = passing(batch[gated:, 0], batch[gated:, 1])
        sims = np.zeros(len(batch))
        sims[go] = _score_stream(iter([batch[go]]), path_of, ex, reorder=False)[1]
        counts.scored += int(go.sum())
        return sims, go

    found = [np.zeros((0, 3), np.int64)]
    if len(srch.hashes) > 1:  # else no pair: no task, no bar
        with ex.share((srch, both)) as ref:
            small = tiny.slabs() if srch.small_pairs is None and tiny is not None else int(srch.small_pairs is not None)
            coded = len(srch.hashes) if len(srch.codes) else 0  # no code search: only the small images' tasks
            for pairs, c in ex.map(partial(gated_part, ref), parts(coded, small), desc="searching pairs",
                                   unit="parts"):
                write_cache_now(background=True)  # the hashing pass's cache, while the workers search
                found.append(pairs)
                counts.add(c)
    survivors = np.concatenate(found)
    if verify and len(survivors):  # scored in one global order, with a known total (an ETA)
        first, first_sims = _score_stream(iter([survivors]), path_of, ex, total=len(survivors))
        counts.scored += len(first)
    else:
        first, first_sims = survivors, np.ones(len(survivors))  # unverified (or nothing to verify)

    # a star leaves out the members its centre does not match (another look-alike family with the same
    # hash, e.g. blank images of another colour): they form the next star, until few enough for all pairs
    out_pairs, out_sims = [first], [first_sims]
    todo, stars_left, gated = np.zeros((0, 3), np.int64), srch.big, 0
    while len(todo) or stars_left:
        star = np.array([(m[0], b, 0) for m in stars_left for b in m[1:]], np.int64).reshape(-1, 3)
        batch = np.concatenate([todo, star])
        sims, scored = check(batch, gated)
        out_pairs.append(batch[scored])
        out_sims.append(sims[scored])
        rest = iter(sims[len(todo) :].tolist())
        left_pairs, next_stars = [], []
        for m in stars_left:
            left = [b for b in m[1:] if next(rest) < min_sim]
            if len(left) > STAR_ABOVE:
                next_stars.append(left)
            else:
                left_pairs += [(a, b, 0) for k, a in enumerate(left) for b in left[k + 1 :]]
        todo = np.array(left_pairs, np.int64).reshape(-1, 3)
        stars_left, gated = next_stars, 0
    return np.concatenate(out_pairs), np.concatenate(out_sims)


def _local_order(pairs: np.ndarray) -> np.ndarray:
    """`pairs` (k, 3) in an order where neighbouring pairs share images: by connected group of the pair
    graph, then by their ends. A scoring shard then decodes ~0.47 thumbnails a pair instead of ~0.48 in
    no order on dupsynth (32-pair tasks; 1.51 against 1.71 on the grown coins' 128 pairs, 1.79 against 1.90
    on 600 small discs): as good as reverse Cuthill-McKee there (within 1 %), without importing scipy.
    Scores do not depend on it."""
    if len(pairs) < 2:
        return pairs
    used, local = np.unique(pairs[:, :2], return_inverse=True)  # only the groups in a pair
    local = local.reshape(-1, 2)
    lo, hi = local.min(axis=1), local.max(axis=1)
    group = smallest_member(len(used), lo, hi)
    return pairs[np.lexsort((hi, lo, group[lo]))]


STREAM_MIN = 128  # gated pairs a scoring task waits for (fewer only at the end)
SHARD_PAIRS = 256  # most pairs in one scoring task
TASK_MIN = 16  # fewest pairs in one (a task decodes its own thumbnails; ~0.6 a pair in the scoring order)


def _score_stream(batches, path_of, ex, reorder: bool = True, total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """score() of every pair of `batches` ((k, 3) arrays of group a, group b, distance), made while the
    batches are still being produced: the executor pulls a task whenever a worker is free, and a task is
    cut from what has come by then (once STREAM_MIN pairs are held; in _local_order unless not
    `reorder`; two tasks a worker, each of TASK_MIN to SHARD_PAIRS pairs: 128 pairs were one task, one worker). Each task makes its own
    thumbnails from `path_of(group)`: nothing ships back but the scores, and the parent holds no more
    than one batch and the tasks in flight. Where the cuts fall depends on the batches and the worker
    count, never on timing; the scores depend on neither. `total`: the number of pairs, where the caller
    knows it (the progress bar's total). Returns the pairs in the order scored and their scores."""
    workers = max(1, getattr(ex, "workers", 1))
    order: list[np.ndarray] = []  # the pairs of each task made, in task order (results come in this order)

    def cut(pairs: np.ndarray):
        pairs = _local_order(pairs) if reorder else pairs
        size = max(1, min(SHARD_PAIRS, max(TASK_MIN, -(-len(pairs) // (2 * workers)))))  # 2 tasks a worker
        for k in range(0, len(pairs), size):
            part = pairs[k : k + size]
            order.append(part)
            ids = np.unique(part[:, :2])
            local = np.searchsorted(ids, part[:, :2])
            yield [path_of(int(g)) for g in ids], [(int(x), int(y)) for x, y in local]

    def tasks():
        held: list[np.ndarray] = []
        count = 0
        for b in batches:
            held.append(b)
            count += len(b)
            if count >= STREAM_MIN:
                yield from cut(np.concatenate(held))
                held, count = [], 0
        if held:
            yield from cut(np.concatenate(held))

    scores = [s for ss in ex.map(_score_shard, tasks(), desc="verifying pairs", units=lambda t: len(t[1]),
                                 unit="pairs", stream=True, total=total) for s in ss]
    pairs = np.concatenate(order) if order else np.zeros((0, 3), np.int64)
    return pairs, np.asarray(scores, np.float64)
