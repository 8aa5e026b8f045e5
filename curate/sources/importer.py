"""`curate import`: a dataset in a standard format -> the verified tree `curate kaggle` writes.

Any format of curate.sources.formats: the reader lists the images, every one is written (PNG for
pixel arrays, the bytes kept for files), decoded and hashed into a staging tree under OUT/.curate/;
val (and test, for sources without one) are then dealt from train by curate.resplit's stratified,
group-aware plan (near-duplicate clusters never straddle splits), and the files move into
OUT/<split>/<class>/. manifest.parquet, classes.json and curate.json are written last; an
interrupted run resumes, and a finished one is not redone.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core import storage
from curate.core.errors import CurateError, InputError
from curate.core.layout import SPLIT_ORDER
from curate.core.lock import fresh
from curate.core.manifest import update_info, write_manifest
from curate.core.tree import atomic_write_json, default_quarantine, files_fingerprint
from curate.engine.executor import make_executor
from curate.resplit import plan_resplit
from curate.sources import formats
from curate.sources.archive import is_archive, safe_extract
from curate.sources.ingest import (
    check_out,
    clear_import,
    id_key,
    ingest_bytes,
    ingest_file,
    png_bytes,
    slug,
    tree_complete,
)
from curate.sources.kaggle import load_names

STEP = "import"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".txz", ".tbz2")
BATCH = 256


@dataclass
class ImportResult:
    out: Path
    format: str
    counts: dict[str, int]  # split -> images in the tree
    classes: int
    problems: list[str]  # skipped or unreadable files, one line each (exit 1)
    notes: list[str] = field(default_factory=list)  # what was read and dealt (no exit 1)
    up_to_date: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def check_ratios(val_ratio: float, test_ratio: float) -> None:
    for flag, r in (("--val-ratio", val_ratio), ("--test-ratio", test_ratio)):
        if not 0 <= r < 1:
            raise InputError(f"{flag} {r} is not in [0, 1)", "e.g. --val-ratio 0.1")
    if val_ratio + test_ratio >= 1:
        raise InputError(f"--val-ratio {val_ratio} + --test-ratio {test_ratio} leave nothing to train on",
                         "keep their sum below 1")


def check_splits(read: formats.Source, val_ratio: float, test_ratio: float) -> None:
    """--val-ratio needs a source without val; dealing needs train images."""
    have = {it.split for it in read.items}
    if val_ratio and "val" in have:
        raise InputError("--val-ratio: the source has its own val split", "drop --val-ratio to keep it")
    if (val_ratio or test_ratio and "test" not in have) and "train" not in have:
        raise InputError("the source has no train split to deal val/test from", "drop --val-ratio/--test-ratio")


def folder_names(ids: list[str], names: dict[str, str], hints: dict[str, str]) -> dict[str, str]:
    """Class folder of each id: the reader's hint, else the slug of its name, else the id; unique,
    also on case-insensitive file systems."""
    out, used = {}, set()
    for cid in ids:
        base = hints.get(cid) or (slug(names[cid]) if names.get(cid) else "") or slug(cid) or "class"
        base = base[:80]
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        out[cid] = name
    return out


# ---------------------------------------------------------------- per-image work (runs in workers)


def write_batch(batch: list[tuple[Any, str | None, bytes | None, str, str]]) -> list[dict[str, Any]]:
    """Write each (pixels, path, data, dst, quarantine): pixels as PNG, path or data as they are; verify."""
    rows = []
    for pixels, path, data, dst, quarantine in batch:
        if pixels is not None:
            rows.append(ingest_bytes(png_bytes(pixels), dst, quarantine))
        elif path is not None:
            rows.append(ingest_file(path, dst, quarantine, False))
        else:
            rows.append(ingest_bytes(data, dst, quarantine))
    return rows


# ---------------------------------------------------------------- import


def _unpack(src: Path, out: Path, quiet: bool) -> Path:
    """The local folder or file to read: archives are extracted safely under OUT/.curate/."""

    if src.is_file() and src.name.lower().endswith(ARCHIVE_SUFFIXES):
        if not is_archive(src):
            raise InputError(f"{src} is a corrupt or incomplete archive", "download it again")
        extract = out / ".curate" / "import" / "extract"
        safe_extract(src, extract, quiet=quiet)
        return extract
    return src


def _options_record(fmt, val_ratio, test_ratio, seed, options: formats.Options, names) -> dict:
    return {"format": fmt, "val_ratio": val_ratio, "test_ratio": test_ratio, "seed": seed, "subset": options.subset,
            "labels": options.labels, "path_column": options.path_column, "label_column": options.label_column,
            "names": str(names) if names else None}


def _previous(out: Path, src: Path, fp: str, opts: dict, overwrite: bool) -> tuple[dict, bool]:
    """The earlier import's record, and whether it is complete and current."""
    previous = check_out(out, src, STEP, "SOURCE")
    same = previous.get("fingerprint") == fp and previous.get("options") == opts
    if same and previous.get("state") == "complete" and tree_complete(out):
        return previous, True
    if previous and not same:
        if not overwrite:
            raise InputError(f"--out {out} holds an import of another source or with other options",
                             "pass --overwrite to replace it, or choose a new --out")
        clear_import(out)
        previous = {}
    return previous, False


def import_source(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "auto",
    val_ratio: float = 0.0,
    test_ratio: float = 0.0,
    seed: int = 0,
    options: formats.Options | None = None,
    names: str | Path | None = None,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    overwrite: bool = False,
) -> ImportResult:
    """Read `source` in format `fmt` (auto: detected) and write the verified tree `out`."""

    options = options or formats.Options()
    check_ratios(val_ratio, test_ratio)
    if fmt != "auto" and fmt not in formats.FORMATS:
        raise InputError(f"unknown format '{fmt}'", f"choose auto or one of: {', '.join(formats.FORMATS)}")
    out = Path(out)
    src = storage.local_copy(source)  # an object-store file or prefix: its copy in the local cache
    if not src.exists():
        raise InputError(f"source {source} does not exist", "pass a local file or folder, or an s3:// URL")
    opts = _options_record(fmt, val_ratio, test_ratio, seed, options, names)
    fp = files_fingerprint(src)
    created = fresh(out)  # new, or holding only the lock its command took (curate.core.lock)
    previous, done = _previous(out, src, fp, opts, overwrite)
    if done:
        return ImportResult(out, previous.get("format", fmt), previous.get("counts", {}), previous.get("classes", 0),
                            list(previous.get("problems", [])), list(previous.get("notes", [])), up_to_date=True)
    try:
        base = _unpack(src, out, quiet)
        kind = formats.detect(base) if fmt == "auto" else fmt
        read = formats.read(base, kind, options)
        check_splits(read, val_ratio, test_ratio)
    except CurateError:
        shutil.rmtree(out if created else out / ".curate" / "import", ignore_errors=True)
        raise
    update_info(out, STEP, {"source": str(source), "format": kind, "state": "incomplete", "fingerprint": fp,
                            "options": opts}, source=STEP)
    try:
        res = _build(read, str(source), out, kind, val_ratio, test_ratio, seed, names, workers, engine, quiet)
    except CurateError:  # bad input found late (a split that cannot be dealt): leave no half-made tree
        shutil.rmtree(out if created else out / ".curate" / "import", ignore_errors=True)
        raise
    update_info(out, STEP, {"source": str(source), "format": kind, "state": "complete", "fingerprint": fp,
                            "options": opts, "counts": res.counts, "classes": res.classes, "problems": res.problems,
                            "notes": res.notes}, source=STEP)
    shutil.rmtree(out / ".curate" / "import", ignore_errors=True)
    return res


def _build(read: formats.Source, dataset: str, out: Path, kind: str, val_ratio: float, test_ratio: float, seed: int, names,
           workers, engine: str, quiet: bool) -> ImportResult:
    """Stage, verify, deal val/test, move into place, write manifest and classes.json."""
    import pandas as pd


    id_names = dict(read.names)
    if names:
        id_names.update(load_names(names))
    ids = sorted({it.class_id for it in read.items}, key=id_key)
    folders = folder_names(ids, id_names, read.folders)
    stage = out / ".curate" / "import" / "stage"
    quarantine = default_quarantine(out) / "unreadable"
    rel = [f"{it.split}/{folders[it.class_id]}/{it.name}" for it in read.items]
    work = [(it.pixels, it.path, it.data, str(stage / r), str(quarantine / r)) for it, r in zip(read.items, rel, strict=True)]
    ex = make_executor(engine, workers=workers, quiet=quiet)
    batches = [work[i:i + BATCH] for i in range(0, len(work), BATCH)]
    results = [r for b in ex.map(write_batch, batches, desc="writing + verifying", units=len, unit="images") for r in b]

    notes = [read.note]
    after = _deal(stage, read, val_ratio, test_ratio, seed, notes, workers, engine, quiet)
    rows, problems = [], list(read.problems)
    for it, r, res in zip(read.items, rel, results, strict=True):
        split = after.get(r, it.split)
        path = f"{split}/{r.split('/', 1)[1]}"
        if res["status"] == "kept":
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / r, out / path)
        if res["problem"]:
            where = f" (written to {quarantine}/, not into the tree)" if res["status"] != "kept" else ""
            problems.append(f"{it.source_id}: {res['problem']}{where}")
        rows.append({"path": path, "split": split, "label": folders[it.class_id], "sha256": res["sha256"],
                     "width": res["width"], "height": res["height"], "source": STEP, "source_id": it.source_id,
                     "status": res["status"], "class_id": it.class_id, "class_name": id_names.get(it.class_id),
                     "format": res["format"], "problem": res["problem"], "bytes": res["bytes"]})
    df = pd.DataFrame(rows)
    counts = {s: int(((df["split"] == s) & (df["status"] == "kept")).sum()) for s in SPLIT_ORDER
              if ((df["split"] == s) & (df["status"] == "kept")).any()}
    classes = [{"id": cid, "folder": folders[cid], "name": id_names.get(cid),
                "counts": {s: int(((df["class_id"] == cid) & (df["split"] == s) & (df["status"] == "kept")).sum())
                           for s in counts}} for cid in ids]
    write_manifest(out, df)
    atomic_write_json(out / "classes.json", {"dataset": dataset, "format": kind, "classes": classes})
    return ImportResult(out, kind, counts, len(ids), problems, notes)


def _deal(stage: Path, read: formats.Source, val_ratio: float, test_ratio: float, seed: int, notes: list[str],
          workers, engine: str, quiet: bool) -> dict[str, str]:
    """staged path -> new split, for files dealt from train into val (and test); {} when nothing is."""

    have = {it.split for it in read.items}
    if test_ratio and "test" in have:
        notes.append(f"--test-ratio {test_ratio} not applied: the source has its own test split (kept)")
        test_ratio = 0.0
    targets = ["train"] + (["val"] if val_ratio else []) + (["test"] if test_ratio else [])
    if len(targets) == 1:
        return {}
    if not (stage / "train").is_dir():
        raise InputError("no train image could be read: nothing to deal val/test from", "check the source")
    ratios = [1 - val_ratio - test_ratio] + ([val_ratio] if val_ratio else []) + ([test_ratio] if test_ratio else [])
    plan = plan_resplit(stage, ratios=ratios, merge=["train"], into=targets, min_per_class=1, seed=seed,
                        dedupe_groups=True, workers=workers, engine=engine, quiet=quiet)
    moved = sum(1 for s in plan.after.values() if s != "train")
    notes.append(f"dealt {moved} of {len(plan.after)} train images into {', '.join(targets[1:])} "
                 f"(stratified, groups: {plan.group_source})")
    if plan.outside_groups:
        notes.append(f"{plan.outside_groups} duplicate groups in train also have copies in the source's other "
                     "splits: run `curate dedupe` to remove that leakage")
    return dict(plan.after)
