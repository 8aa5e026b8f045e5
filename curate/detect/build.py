"""The whole detection build: plan rows -> shards through the executor -> labels, manifest, curate.json."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from curate.core import storage
from curate.core.errors import InputError
from curate.core.manifest import update_info, write_manifest
from curate.core.tree import atomic_write_json, atomic_write_text
from curate.crop.build import fingerprint, make_shards, prepare_out
from curate.crop.shard import BOX_COLUMNS, STATE, publish
from curate.detect import formats as F
from curate.detect.select import DetectPrepared
from curate.detect.write import DetectParams, DetectResult, _clear_own, box_of, plan_rows, run_detect_shard
from curate.engine.executor import make_executor
from curate.sources.openimages import fetch_images


def build_detect(prep: DetectPrepared, out, params: DetectParams, *, workers=None, engine="local",
                 quiet=False, overwrite=False, command: str = "") -> DetectResult:
    """Write the detection set of `prep` to OUT (a local folder) in params.label_format."""
    if params.label_format not in F.FORMATS:
        raise InputError(f"unknown label format '{params.label_format}'", "choose yolo or coco")
    if storage.is_url(out):
        raise InputError(f"--task detect writes local folders, not {out}", "pass a local --out, then upload it")
    out = Path(storage.local_path(out)).expanduser().absolute()
    if not prep.local:

        fetch_images(prep.layout, prep.image_ids, workers)
    rows = plan_rows(prep, params)
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows[["ImageID", "box_index", "role", "label"]],
                                                       index=False).to_numpy().tobytes()).hexdigest()
    fp = fingerprint({"data": {"task": "detect", "split": prep.layout.split, "labels": prep.labels,
                               "selection": prep.selection.label_of, "rows": digest}, "params": asdict(params)})
    if overwrite:
        _clear_own(out)
    prepare_out(out, fp, overwrite)
    rows["_path"] = rows.ImageID.map({i: str(prep.layout.image_path(i)) for i in rows.ImageID.unique()})
    base = {"ImageID", "_path", *BOX_COLUMNS}
    shards = make_shards(rows, out, params, extra=tuple(c for c in rows.columns if c not in base))
    ex = make_executor(engine, workers=workers, quiet=quiet)
    records, skipped, reused, lost = [], [], 0, []
    for res in ex.map(run_detect_shard, shards, desc="writing images", units=lambda s: s.n_boxes, unit="boxes"):
        lost += publish(res["name"], out, [{"path": f} for f in res["files"]])
        records += res["records"]
        skipped += res["skipped"]
        reused += res["reused"]
    if lost:
        raise InputError(f"{len(lost)} files of a finished run are gone from {out} (e.g. {lost[0]})",
                         "re-run with --overwrite to rebuild")
    records.sort(key=lambda r: r["path"])
    write_labels(out, prep.labels, records, params.label_format)
    manifest = manifest_rows(records)
    write_manifest(out, manifest)
    counts = split_counts(records)
    by_reason = Counter(s["reason"] for s in skipped)
    problems = sum(1 for s in skipped if s["reason"] != "ignore-region")
    info = {"command": command, "source": "openimages", "task": "detect", "split": prep.layout.split,
            "label_format": params.label_format, "names": prep.labels,
            "classes": prep.selection.expansion(prep.index), "filtered_boxes": prep.chosen.filtered,
            "merged_boxes": prep.chosen.merged, "params": asdict(params), "counts": counts,
            "skipped_images_by_reason": dict(sorted(by_reason.items())),
            "skipped_images": sorted({s["image_id"] for s in skipped})}
    update_info(out, "openimages", info, counts=counts, seed=params.seed, task="detect")
    atomic_write_json(out / STATE / "skipped.json", skipped)
    return DetectResult(out, manifest, skipped, counts, dict(sorted(by_reason.items())), reused, problems)


def dataset_of(names: list[str], records: list[dict]) -> F.Dataset:
    entries = [F.Entry(r["split"], r["path"].rsplit("/", 1)[1], r["width"], r["height"],
                       [box_of(b) for b in r["boxes"]]) for r in records]
    return F.Dataset(names, sorted(entries, key=lambda e: (e.split, e.file)))


def write_labels(out: Path, names: list[str], records: list[dict], label_format: str) -> None:
    """data.yaml (YOLO label files come with their shards) or annotations/instances_<split>.json."""
    ds = dataset_of(names, records)
    if label_format == "yolo":
        atomic_write_text(out / "data.yaml", F.data_yaml(out, names, ds.splits()))
        return
    attrs = {}
    for r in records:
        for k, b in enumerate(r["boxes"]):
            attrs[(r["path"].rsplit("/", 1)[1], k)] = {"attributes": {
                "source_class": b["source_class"], "occluded": b["is_occluded"], "truncated": b["is_truncated"],
                "depiction": b["is_depiction"], "inside": b["is_inside"], "ignore_reason": b["ignore_reason"]}}
    for split in ds.splits():
        doc = F.coco_json(ds, split, attrs)
        atomic_write_text(out / "annotations" / f"instances_{split}.json", json.dumps(doc, separators=(",", ":")))


def manifest_rows(records: list[dict]) -> pd.DataFrame:
    """One row per box and ignore region (role box|ignore), one per background image (role background)."""
    rows = []
    for r in records:
        base = {"path": r["path"], "split": r["split"], "sha256": r["sha256"], "width": r["width"],
                "height": r["height"], "source": "openimages", "source_id": r["image_id"], "status": "kept",
                "source_width": r["source_width"], "source_height": r["source_height"],
                "reencoded": r["reencoded"]}
        if not r["boxes"]:
            rows.append({**base, "label": "background", "role": "background", "box_index": -1, "class_id": -1})
        label = main_label(r["boxes"])  # the file's label, as `curate report` files the image
        rows += [{**base, **b, "label": label, "box_label": b["label"]} for b in r["boxes"]]
    if not rows:
        return pd.DataFrame(columns=["path", "split", "label"])
    df = pd.DataFrame(rows)
    return df.sort_values(["path", "box_index"], kind="stable").reset_index(drop=True)


def main_label(boxes: list[dict]) -> str:
    """The label with most boxes (ties: class order); background when only ignore regions."""
    kept = Counter((b["class_id"], b["label"]) for b in boxes if b["role"] == "box")
    if not kept:
        return "background"
    return min(kept.items(), key=lambda kv: (-kv[1], kv[0][0]))[0][1]


def split_counts(records: list[dict]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for r in records:
        c = counts.setdefault(r["split"], Counter())
        c["images"] += 1
        c["background"] += not r["boxes"]
        for b in r["boxes"]:
            c["boxes" if b["role"] == "box" else "ignore"] += 1
    keys = ("images", "boxes", "ignore", "background")
    return {s: {k: int(counts[s][k]) for k in keys} for s in sorted(counts)}
