"""The import: take a downloaded archive or folder, plan it, verify every image into the tree, record it.

`import_dataset` takes a Kaggle id, a preset name, a downloaded archive or a folder; finds the split
folders wherever they sit; copies every file unchanged to OUT/<train|val|test>/<class>/<file>; verifies
each image; and writes manifest.parquet, classes.json and curate.json.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from curate.core.errors import CurateError, InputError
from curate.core.layout import SPLIT_ORDER
from curate.core.lock import fresh
from curate.core.manifest import update_info, write_manifest
from curate.core.tree import atomic_write_json, default_quarantine, files_fingerprint
from curate.engine.executor import Engine, make_executor
from curate.sources.archive import is_archive, safe_extract
from curate.sources.ingest import check_out, clear_import, id_key, ingest_batch, tree_complete
from curate.sources.kaggle.fetch import default_download_dir, download
from curate.sources.kaggle.layout import Layout, find_layout, find_names, list_class_files
from curate.sources.kaggle.names import folder_names, load_names, parse_name
from curate.sources.kaggle.presets import DatasetSpec, resolve_dataset

BATCH = 64  # images per task of the executor
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".xz", ".bz2")


@dataclass
class KaggleResult:
    out: Path
    dataset: str
    counts: dict[str, int]  # split -> files found
    classes: int
    problems: list[str]  # one line each: unreadable files, mismatches, unknown ids, count mismatches
    unknown_ids: list[str] = field(default_factory=list)
    unmapped_names: list[str] = field(default_factory=list)
    up_to_date: bool = False
    layout_root: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


@dataclass
class Plan:
    """What an import will do: the layout found, the class names, every file and its class folder."""

    layout: Layout
    names_path: Path | None  # the class-name file used, if any
    id_names: dict[str, str]  # class id -> full name
    items: list[tuple[str, str, str, str]]  # (split, class id, path inside the class folder, path inside base)
    problems: list[str]
    ids: list[str]  # class ids in id order
    folders: dict[str, str]  # class id -> folder in the tree
    unknown: list[str]  # ids without a name
    unmapped: list[str]  # names without a class folder


def make_plan(base: Path, spec: DatasetSpec, names_path: Path | None, label_names: bool, previous: dict, out: Path,
              shown: Path) -> Plan:
    """Find the layout and names, list every file to import, and name the class folders."""
    layout = find_layout(base, shown)
    names_path = names_path or find_names(base, layout, spec.names_file)
    id_names = load_names(names_path) if names_path else {}

    items, problems = list_class_files(base, layout)
    if not items:
        raise InputError(f"found no images in {shown}", "expect SPLIT/CLASS/*.jpg or CLASS/*.jpg")

    ids = sorted({cid for _, cid, _, _ in items}, key=id_key)
    folders = folder_names(ids, id_names, label_names)
    unknown = [cid for cid in ids if id_names and cid not in id_names]
    unmapped = sorted((k for k in id_names if k not in set(ids)), key=id_key)
    if label_names and not id_names:
        raise InputError(f"--label-names needs class names, but no {spec.names_file} was found in {shown}",
                         "pass --names FILE (JSON id -> name)")
    if unknown and label_names:
        problems.append(f"{len(unknown)} class ids have no name and keep their id as folder: {', '.join(unknown[:10])}")
    old = previous.get("folders")
    if old and old != folders:
        raise InputError(f"--out {out} was built with other class folder names", "choose a new --out, or repeat the earlier --label-names choice")
    return Plan(layout, names_path, id_names, items, problems, ids, folders, unknown, unmapped)


def _discard(out: Path, created: bool, extract_dir: Path | None) -> None:
    """After bad input: remove what this run wrote (the extraction, and OUT if this run made it)."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)


def _settle_previous(out: Path, previous: dict, fp: str, options: dict, overwrite: bool) -> dict:
    """The earlier import in `out` to build on: refused when of another source (unless --overwrite), cleared
    when replaced."""
    other_source = bool(previous.get("fingerprint")) and previous.get("fingerprint") != fp
    other_options = previous.get("options") not in (None, options)
    if other_source and not overwrite:
        raise InputError(f"--out {out} holds an import of another source version",
                         "pass --overwrite to replace it, or choose a new --out")
    if overwrite and (other_source or other_options):
        clear_import(out)
        return {}
    return previous


def _unpack(src: Path, out: Path, created: bool, quiet: bool) -> tuple[Path, Path | None]:
    """The folder to import from (the source folder, or the archive extracted under OUT/.curate/extract/) and
    the extraction folder, if any."""
    if not src.is_file():
        return src, None
    if not is_archive(src):
        if src.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise InputError(f"--source {src} is a corrupt or incomplete archive", "download it again")
        raise InputError(f"--source {src} is not a zip or tar archive", "pass the downloaded .zip or a folder")
    extract_dir = out / ".curate" / "extract" / src.name
    try:
        safe_extract(src, extract_dir, quiet=quiet)
    except CurateError:
        _discard(out, created, extract_dir)
        raise
    return extract_dir, extract_dir


def _verify(plan: Plan, base: Path, out: Path, quarantine: Path, link: bool, engine: Engine | str,
            workers: int | None, quiet: bool) -> list[dict]:
    """Copy (or link, from an extraction) and verify every image; one result per item, in order."""
    work = []
    for split, cid, inner, rel in plan.items:
        dst = out / split / plan.folders[cid] / inner
        work.append((str(base / rel), str(dst), str(quarantine / split / plan.folders[cid] / inner), link))
    batches = [work[i:i + BATCH] for i in range(0, len(work), BATCH)]
    ex = make_executor(engine, workers=workers, quiet=quiet)
    return [r for batch in ex.map(ingest_batch, batches, desc="verifying", units=len, unit="images") for r in batch]


def _manifest_rows(plan: Plan, results: list[dict], quarantine: Path) -> list[dict]:
    """One manifest row per item; problems of the files are added to plan.problems."""
    rows = []
    for (split, cid, inner, rel), r in zip(plan.items, results, strict=True):
        path = f"{split}/{plan.folders[cid]}/{inner}"
        if r["problem"]:
            where = f" (copied to {quarantine}/, not into the tree)" if r["status"] != "kept" else ""
            plan.problems.append(f"{rel}: {r['problem']}{where}")
        rows.append({
            "path": path, "split": split, "label": plan.folders[cid], "sha256": r["sha256"],
            "width": r["width"], "height": r["height"], "source": "kaggle", "source_id": rel,
            "status": r["status"], "class_id": cid, "class_name": plan.id_names.get(cid), "format": r["format"],
            "problem": r["problem"], "bytes": r["bytes"],
        })
    return rows


def _check_expected(spec: DatasetSpec, counts: dict[str, int], n_classes: int) -> list[str]:
    """One line per count that differs from the preset's expected counts."""
    problems = []
    for key, want in spec.expected.items():
        got = n_classes if key == "classes" else counts.get(key, 0)
        if got != want:
            problems.append(f"expected {want} {'classes' if key == 'classes' else key + ' images'} for {spec.name}, found {got}")
    return problems


def _class_entries(plan: Plan, df: pd.DataFrame, counts: dict[str, int]) -> list[dict]:
    classes = []
    for cid in plan.ids:
        sub = df[df["class_id"] == cid]
        entry = {"id": cid, "folder": plan.folders[cid], "name": plan.id_names.get(cid),
                 "counts": {s: int((sub["split"] == s).sum()) for s in counts}}
        entry.update(parse_name(plan.id_names.get(cid, "")))
        classes.append(entry)
    return classes


def _shown(path: Path | None, base: Path, src: Path) -> str | None:
    """A path for records: inside the source it is named relative to the archive or folder."""
    if path is None:
        return None
    try:
        return f"{src}:{path.relative_to(base).as_posix()}" if src.is_file() else str(path)
    except ValueError:
        return str(path)


def _write_import(out: Path, spec: DatasetSpec, plan: Plan, df: pd.DataFrame, counts: dict[str, int], *,
                  src: Path, base: Path, fp: str, options: dict) -> dict:
    """Write manifest.parquet, classes.json and the complete curate.json record; return the record."""
    write_manifest(out, df)
    atomic_write_json(out / "classes.json", {"dataset": spec.kaggle, "classes": _class_entries(plan, df, counts),
                                             "unknown_ids": plan.unknown, "unmapped_names": plan.unmapped})
    record = {
        "dataset": spec.kaggle, "preset": spec.name if spec.name != spec.kaggle else None,
        "source": str(src), "fingerprint": fp, "options": options,
        "layout_root": plan.layout.root.relative_to(base).as_posix() or ".",
        "names_file": _shown(plan.names_path, base, src), "counts": counts, "classes": len(plan.ids),
        "folders": plan.folders, "problems": plan.problems, "files": len(df), "state": "complete",
    }
    update_info(out, "kaggle", record, source="kaggle")
    return record


def import_dataset(
    dataset: str,
    out: str | Path,
    *,
    source: str | Path | None = None,
    names: str | Path | None = None,
    label_names: bool = False,
    download_dir: str | Path | None = None,
    workers: int | None = None,
    quiet: bool = False,
    check_counts: bool = True,
    engine: Engine | str = "local",
    overwrite: bool = False,
) -> KaggleResult:
    """Download (or take `source`), extract safely, normalise and verify into the tree `out`."""
    spec = resolve_dataset(dataset)
    out = Path(out)
    src = Path(source) if source is not None else None
    if src is not None and not src.exists():
        raise InputError(f"--source {src} does not exist", "pass the downloaded .zip or its extracted folder")
    previous = check_out(out, src, "kaggle")
    names_path = Path(names) if names else None
    if names_path is not None and not names_path.is_file():
        raise InputError(f"--names {names_path} does not exist", "pass a JSON file mapping class id -> name")

    if src is None:
        src = download(spec.kaggle, Path(download_dir) if download_dir else default_download_dir(spec.kaggle), quiet=quiet)
    options = {"label_names": label_names, "names": str(names_path) if names_path else None}
    fp = files_fingerprint(src)
    if previous.get("state") == "complete" and previous.get("fingerprint") == fp and previous.get("options") == options and tree_complete(out):
        return KaggleResult(out, spec.kaggle, previous.get("counts", {}), previous.get("classes", 0),
                            list(previous.get("problems", [])), up_to_date=True, layout_root=previous.get("layout_root", ""))
    previous = _settle_previous(out, previous, fp, options, overwrite)

    created = fresh(out)  # new, or holding only the lock its command took (curate.core.lock)
    base, extract_dir = _unpack(src, out, created, quiet)
    try:
        plan = make_plan(base, spec, names_path, label_names, previous, out, src)
    except CurateError:
        _discard(out, created, extract_dir)
        raise
    update_info(out, "kaggle", {"dataset": spec.kaggle, "state": "incomplete", "folders": plan.folders,
                                "fingerprint": fp, "options": options}, source="kaggle")
    quarantine = default_quarantine(out) / "unreadable"
    results = _verify(plan, base, out, quarantine, extract_dir is not None, engine, workers, quiet)
    df = pd.DataFrame(_manifest_rows(plan, results, quarantine))
    counts = {s: int((df["split"] == s).sum()) for s in SPLIT_ORDER if (df["split"] == s).any()}
    if check_counts and spec.expected:
        plan.problems.extend(_check_expected(spec, counts, len(plan.ids)))
    record = _write_import(out, spec, plan, df, counts, src=src, base=base, fp=fp, options=options)
    if extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            extract_dir.parent.rmdir()
    return KaggleResult(out, spec.kaggle, counts, len(plan.ids), plan.problems, plan.unknown, plan.unmapped,
                        layout_root=record["layout_root"])
