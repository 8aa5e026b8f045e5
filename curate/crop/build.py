"""Box records -> ImageFolder tree + manifest: split planning, shards run by the executor, manifest.

reader (records of boxes, grouped by source image) -> shards of a few hundred boxes (curate/crop/shard.py
crops them in workers: decode once per image, letterbox every box, stage, mark complete, publish)
-> manifest + curate.json. A re-run skips complete shards and yields the same bytes.
OUT may be an object-store URL (s3://, gs://): there is no rename there, so a shard writes its files to
their final keys and its completion marker (.curate/shards/<name>/records.json) last.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.core import storage
from curate.core.errors import InputError
from curate.core.manifest import read_info, update_info, write_manifest
from curate.core.tree import INFO_NAME, MANIFEST_NAME, json_bytes
from curate.crop.shard import BOX_COLUMNS, STATE, BuildParams, Shard, ShardResult, publish, run_shard
from curate.engine.executor import Engine, is_local, make_executor

TAPER = 2  # shards' worth of boxes at the end cut into quarter shards (the last shard no longer runs alone)
SOLO_BOXES = 400  # smaller jobs run in this process: a pool costs ~0.2-1 s to start, as much as the work

__all__ = ["BuildParams", "BuildResult", "Shard", "ShardResult", "build_tree", "plan_splits", "publish",
           "run_shard"]


# ---------------------------------------------------------------- split planning


def plan_splits(boxes: pd.DataFrame, val_ratio: float, seed: int) -> dict[str, str]:
    """Image -> split, grouped by source image and stratified by each image's main label.

    An image's main label is the label with most of its boxes (ties: name order). Within each main label,
    images are ordered by a seeded hash and the first round(n * val_ratio) go to val.
    """
    if not 0 <= val_ratio < 1:
        raise InputError(f"--val-ratio {val_ratio} is out of range", "use a value in [0, 1)")
    counts = boxes.groupby(["ImageID", "label"]).size().reset_index(name="n")
    counts = counts.sort_values(["ImageID", "n", "label"], ascending=[True, False, True])
    main = counts.drop_duplicates("ImageID")[["ImageID", "label"]]
    split: dict[str, str] = {}
    for _, g in main.groupby("label", sort=True):
        ids = sorted(g.ImageID, key=lambda i: hashlib.sha256(f"split\x00{seed}\x00{i}".encode()).digest())
        n_val = int(round(len(ids) * val_ratio))
        if val_ratio > 0 and n_val == 0 and len(ids) >= 2:
            n_val = 1  # every label gets at least one val image when it has two or more
        for k, i in enumerate(ids):
            split[i] = "val" if k < n_val else "train"
    return split


# ---------------------------------------------------------------- shards


def make_shards(boxes: pd.DataFrame, out: Path | str, params, extra: tuple[str, ...] = ()) -> list[Shard]:
    """Cut boxes (sorted by image) into shards of about `shard_size` boxes; an image is never split.
    `extra`: columns beyond the crop build's that the shard's worker reads."""
    ids = boxes.ImageID.to_numpy()
    if not len(ids):
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    tail = len(ids) - TAPER * params.shard_size  # the last boxes go in quarter shards: workers finish together
    cuts, n, first = [], 0, 0
    for s, e in zip(starts, ends, strict=True):
        n += e - s
        if n >= (params.shard_size if first < tail else max(1, params.shard_size // 4)):
            cuts.append((first, e))
            first, n = e, 0
    if first < len(ids):
        cuts.append((first, len(ids)))
    return [Shard(f"shard-{i:05d}", str(out), params, frame=boxes.iloc[a:b], extra=extra)
            for i, (a, b) in enumerate(cuts)]


# ---------------------------------------------------------------- the whole build


@dataclass
class BuildResult:
    out: Path | str  # str for object-store URLs
    manifest: pd.DataFrame
    skipped: list[dict]
    counts: dict[str, dict[str, int]]
    skips_by_reason: dict[str, int]
    reused_shards: int
    problems: int  # unreadable or missing images (exit code 1)


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_out(out: Path | str, fp: str, overwrite: bool) -> None:
    """Refuse to mix runs: OUT (a folder or an object-store prefix) must be new, or a curate build with
    the same fingerprint."""
    fp_url, info_url = storage.join(out, STATE, "build.json"), storage.join(out, INFO_NAME)
    if storage.is_file(out):
        raise InputError(f"--out {out} exists and is not a folder", "choose another --out")
    if not storage.fresh(out):
        if not (storage.exists(info_url) or storage.exists(fp_url)):
            raise InputError(f"{out} is not empty and was not made by curate",
                             "choose a new --out; curate never writes into other folders")
        old = json.loads(storage.read_bytes(fp_url)).get("fingerprint") if storage.exists(fp_url) else None
        if overwrite or old != fp:
            if not overwrite:
                raise InputError(f"{out} holds a build with other inputs or parameters",
                                 "pass --overwrite to start over, or choose another --out")
            _clear_build(out)
    try:
        storage.write_bytes(fp_url, json_bytes({"fingerprint": fp}))
    except OSError as e:
        raise InputError(f"cannot create --out {out}: {e.strerror}", "choose a writable folder for --out") from e


def _clear_build(out: Path | str) -> None:
    """Remove only what a curate build writes: split folders listed in curate.json, manifest, state."""
    for split in (read_info(out).get("counts") or {}) or ("train", "val", "test"):
        storage.remove_tree(storage.join(out, split))
    for name in (MANIFEST_NAME, INFO_NAME, STATE):
        storage.remove_tree(storage.join(out, name))


def build_tree(
    boxes: pd.DataFrame,
    image_path,
    out: str | Path,
    params: BuildParams,
    *,
    fingerprint_data: dict,
    info: dict,
    workers: int | None = None,
    engine: Engine | str = "local",
    quiet: bool = False,
    overwrite: bool = False,
) -> BuildResult:
    """`boxes`: one row per crop (ImageID, box_index, label, LabelName, source_class, XMin..YMax, flags,
    ambiguous, ambiguous_with, merged). `image_path(image_id)` gives each source image's path."""
    out = storage.as_location(out)
    fp = fingerprint({"data": fingerprint_data, "params": asdict(params)})
    prepare_out(out, fp, overwrite)
    split_of = plan_splits(boxes, params.val_ratio, params.seed) if len(boxes) else {}
    boxes = boxes.assign(split=boxes.ImageID.map(split_of))
    boxes = boxes.sort_values(["ImageID", "box_index"], kind="stable")[["ImageID", *BOX_COLUMNS]]
    boxes = boxes.reset_index(drop=True)
    boxes["ImageID"] = boxes.ImageID.astype(str)
    paths = {i: str(image_path(i)) for i in boxes.ImageID.unique()}
    boxes["_path"] = boxes.ImageID.map(paths)
    shards = make_shards(boxes, out, params)
    if is_local(engine) and len(boxes) < SOLO_BOXES:
        workers = 1  # one process finishes this before a pool would have started
    ex = make_executor(engine, workers=workers, quiet=quiet)
    frames, skipped, reused, lost = [], [], 0, []
    for res in ex.map(run_shard, shards, desc="cropping", units=lambda s: s.n_boxes, unit="boxes"):
        lost += res.lost  # each shard moved its own files into the tree
        if res.records:  # kept columnar: a few hundred bytes a box on the driver, not a dict each
            frames.append(pd.DataFrame(res.records))
        skipped += res.skipped
        reused += res.reused
    if lost:
        raise InputError(f"{len(lost)} files of a finished run are gone from {out} (e.g. {lost[0]})",
                         "re-run with --overwrite to rebuild")
    manifest = (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=["path", "split", "label"]))
    counts: dict[str, dict[str, int]] = {}
    if len(manifest):
        for (split, label), n in manifest.groupby(["split", "label"]).size().items():
            counts.setdefault(split, Counter())[label] += int(n)
    counts = {s: dict(sorted(c.items())) for s, c in sorted(counts.items())}
    by_reason = Counter()
    for s in skipped:
        by_reason[s["reason"]] += s["boxes"]
    problems = sum(1 for s in skipped if s["reason"] != "too-small")
    record = {**info, "params": asdict(params), "counts": counts,
              "skipped_boxes_by_reason": dict(sorted(by_reason.items())),
              "skipped_images": sorted({s["image_id"] for s in skipped if s["box_index"] is None})}
    # the manifest goes last: its presence means the build finished
    storage.write_bytes(storage.join(out, STATE, "skipped.json"), json_bytes(skipped))
    update_info(out, "openimages", record, counts=counts, seed=params.seed)
    write_manifest(out, manifest)
    return BuildResult(out, manifest, skipped, counts, dict(by_reason), reused, problems)
