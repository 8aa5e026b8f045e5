"""Kaggle image datasets (class folders, e.g. the world-coins set) -> a verified curate tree.

`import_dataset` takes a Kaggle id, a preset name from manifests/datasets.yaml, a downloaded archive
or a folder; finds the split folders wherever they sit; copies every file unchanged to
OUT/<train|val|test>/<class>/<file>; verifies each image; and writes manifest.parquet, classes.json
and curate.json. The `kaggle` package is imported only to download (it authenticates at import).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import CredentialsError, CurateError, InputError, NetworkError
from curate.layout import SPLIT_ORDER, canonical_split, is_image_name
from curate.lock import fresh
from curate.resources import resource
from curate.sources.ingest import (
    check_out,
    clear_import,
    fingerprint,
    id_key,
    ingest_batch,
    slug,
    tree_complete,
)
from curate.tree import atomic_write_json, default_quarantine

PRESETS_FILE = resource("manifests", "datasets.yaml")
DATASET_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/\d+)?$")
NAMES_FILE = "cat_to_name.json"
SOURCE_HINT = "or download the archive yourself and pass --source ZIP|DIR"
MAX_DEPTH = 6


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # preset name, or the Kaggle id
    kaggle: str  # OWNER/DATASET
    names_file: str = NAMES_FILE
    expected: dict[str, int] = field(default_factory=dict)  # split -> images, plus "classes"
    title: str = ""


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, DatasetSpec]:
    import yaml

    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}", "fix the preset table") from e
    out = {}
    for name, entry in (raw.get("datasets") or {}).items():
        if not isinstance(entry, dict) or "kaggle" not in entry:
            raise InputError(f"{path}: preset '{name}' needs a 'kaggle: OWNER/DATASET' entry", "fix the preset table")
        exp = {k: int(v) for k, v in (entry.get("expected") or {}).items()}
        out[name] = DatasetSpec(name, entry["kaggle"], entry.get("names", NAMES_FILE), exp, entry.get("title", ""))
    return out


def resolve_dataset(spec: str) -> DatasetSpec:
    presets = load_presets()
    if spec in presets:
        return presets[spec]
    for p in presets.values():
        if p.kaggle == spec:
            return p
    if DATASET_RE.match(spec):
        return DatasetSpec(spec, spec)
    choices = ", ".join(sorted(presets)) or "none"
    raise InputError(f"unknown dataset '{spec}'", f"use OWNER/DATASET as on kaggle.com, or a preset: {choices}")


# ---------------------------------------------------------------- credentials and download


def _config_dir() -> Path:
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return Path(env)
    home = Path.home() / ".kaggle"
    if home.exists():
        return home
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "kaggle"


CREDENTIALS_HINT = (
    "set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or save kaggle.json from "
    "kaggle.com/settings/api to ~/.kaggle/kaggle.json (or a token to ~/.kaggle/access_token); " + SOURCE_HINT
)


def find_credentials() -> str | None:
    """Where the kaggle package would find credentials (without importing it), or None."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    cfg = _config_dir() / "kaggle.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CredentialsError(f"{cfg} is not valid JSON: {e}", "download a fresh kaggle.json from kaggle.com/settings/api") from e
        if isinstance(data, dict) and data.get("username") and data.get("key"):
            return str(cfg)
        raise CredentialsError(f"{cfg} lacks 'username' and 'key'", "download a fresh kaggle.json from kaggle.com/settings/api")
    home = Path.home() / ".kaggle"
    for name in ("access_token", "access_token.txt", "credentials.json"):
        if (home / name).is_file():
            return str(home / name)
    return None


def _kaggle_api():
    """Import the kaggle package (it authenticates at import) and return an authenticated api."""
    where = find_credentials()
    if where is None:
        raise CredentialsError("no Kaggle credentials found", CREDENTIALS_HINT)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            import kaggle  # noqa: PLC0415  (authenticates on import; may print and exit)

            api = kaggle.api
            api.authenticate()
    except ImportError as e:
        raise InputError("downloading from Kaggle needs the kaggle package", "pip install 'curate[kaggle]', " + SOURCE_HINT) from e
    except SystemExit as e:
        raise CredentialsError(f"Kaggle rejected the credentials from {where}", CREDENTIALS_HINT) from e
    except Exception as e:  # noqa: BLE001  (the package raises many kinds)
        raise _convert(e, "authenticate with Kaggle") from e
    return api


def _convert(e: BaseException, doing: str) -> CurateError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return CredentialsError(f"Kaggle refused to {doing} (HTTP {status})",
                                "check the credentials and accept the dataset's terms on kaggle.com; " + SOURCE_HINT)
    if status == 404:
        return InputError(f"Kaggle could not {doing}: not found (HTTP 404)", "check OWNER/DATASET on kaggle.com")
    kind = type(e).__name__
    if "Connection" in kind or "Timeout" in kind or isinstance(e, OSError):
        return NetworkError(f"cannot reach Kaggle to {doing} ({kind})", "check the network, " + SOURCE_HINT)
    detail = " ".join(str(e).split())[:200]
    return NetworkError(f"could not {doing}: {kind}: {detail}", "check the network, " + SOURCE_HINT)


def download(dataset: str, dest: str | Path, *, quiet: bool = False) -> Path:
    """Download a Kaggle dataset's zip into `dest` (resumes; skips when already complete)."""
    dest = Path(dest)
    api = _kaggle_api()
    dest.mkdir(parents=True, exist_ok=True)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink if quiet else sys.stderr):
            api.dataset_download_files(dataset, path=str(dest), quiet=quiet, unzip=False)
    except SystemExit as e:
        raise CredentialsError("Kaggle rejected the credentials", CREDENTIALS_HINT) from e
    except Exception as e:  # noqa: BLE001
        raise _convert(e, f"download {dataset}") from e
    slug = dataset.split("/")[1]
    zpath = dest / f"{slug}.zip"
    if not zpath.is_file():
        found = sorted(dest.glob("*.zip"))
        if len(found) != 1:
            raise NetworkError(f"the download of {dataset} left no zip in {dest}", SOURCE_HINT)
        zpath = found[0]
    return zpath


def default_download_dir(dataset: str) -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("curate")) / "kaggle" / dataset.replace("/", "__")


# ---------------------------------------------------------------- layout


@dataclass
class Layout:
    root: Path  # folder holding the split folders (or the class folders)
    splits: dict[str, Path]  # canonical split -> folder
    single: bool  # a single folder of class folders (goes to train/)


def _class_dirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".") and not d.is_symlink())


def _count_images(p: Path) -> int:
    return sum(1 for _, _, files in os.walk(p) for f in files if is_image_name(f) and not f.startswith("."))


def _walk_dirs(root: Path):
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        if depth >= MAX_DEPTH:
            dirnames[:] = []
        yield Path(dirpath), depth


def find_layout(root: str | Path, shown: str | Path | None = None) -> Layout:
    """Find the split folders (train/valid/validation/test…) of class folders wherever they sit."""
    root = Path(root)
    shown = shown or root
    best: tuple[int, int, Layout] | None = None
    for d, depth in _walk_dirs(root):
        splits: dict[str, Path] = {}
        for sub in _class_dirs(d):
            canon = canonical_split(sub.name)
            classes = _class_dirs(sub) if canon else []
            if classes and not all(canonical_split(c.name) for c in classes):  # not train/train/<class>
                if canon in splits:
                    raise InputError(f"{d} has two folders for split '{canon}': {splits[canon].name}/ and {sub.name}/",
                                     "remove or rename one of them")
                splits[canon] = sub
        if splits:
            n = sum(_count_images(s) for s in splits.values())
            cand = (-n, depth, Layout(d, splits, False))
            if n and (best is None or cand[:2] < best[:2]):
                best = cand
    if best:
        return best[2]
    for d, depth in _walk_dirs(root):
        classes = _class_dirs(d)
        n = sum(1 for c in classes for f in c.iterdir() if f.is_file() and is_image_name(f.name))
        if n and (best is None or (-n, depth) < best[:2]):
            best = (-n, depth, Layout(d, {"train": d}, True))
    if best:
        return best[2]
    raise InputError(f"found no class folders of images in {shown}", "expect SPLIT/CLASS/*.jpg or CLASS/*.jpg")


def find_names(root: Path, layout: Layout, name: str = NAMES_FILE) -> Path | None:
    """The class-name file nearest to the layout root (same folder, then parents, then anywhere)."""
    for d in [layout.root, *layout.root.parents]:
        if (d / name).is_file():
            return d / name
        if d == root:
            break
    hits = sorted(root.rglob(name), key=lambda p: (len(p.parts), str(p)))
    return hits[0] if hits else None


# ---------------------------------------------------------------- class names


def load_names(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"names file {path} does not exist", "pass --names FILE with a JSON object id -> name") from e
    except (OSError, ValueError) as e:
        raise InputError(f"names file {path} is not valid JSON: {e}", "expect a JSON object id -> name") from e
    if isinstance(data, list):
        data = {str(i): v for i, v in enumerate(data)}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"names file {path} is not a JSON object of id -> name strings", "e.g. {\"1\": \"1 Cent,Australian dollar,australia\"}")
    return {str(k): v.strip() for k, v in data.items()}


def parse_name(full: str) -> dict[str, str]:
    """'1 Cent,Australian dollar,australia' -> denomination, currency, country (when it has 3 parts)."""
    parts = [p.strip() for p in full.split(",")]
    if len(parts) == 3 and all(parts):
        return {"denomination": parts[0], "currency": parts[1], "country": parts[2].replace("_", " ")}
    return {}


def folder_names(ids: list[str], names: dict[str, str], readable: bool) -> dict[str, str]:
    """Class folder for each id: the id itself, or a readable, filesystem-safe, unique name."""
    out: dict[str, str] = {}
    used = {cid for cid in ids if not (readable and cid in names)}  # unnamed ids keep their folder
    for cid in ids:
        name = cid
        if readable and cid in names:
            f = parse_name(names[cid])
            name = slug(f"{f['country']} {f['denomination']}") if f else slug(names[cid])
            name = base = name[:80].rstrip("_") or slug(cid) or "class"
            if name in used:
                name = base = f"{name}_{slug(cid) or len(used)}"
            k = 2
            while name in used:  # two classes must never share a folder
                name, k = f"{base}_{k}", k + 1
            used.add(name)
        out[cid] = name
    return out


# ---------------------------------------------------------------- import


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


def list_class_files(base: Path, layout: Layout) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(split, class folder, path inside it, path inside base) of every image, and one line per skipped file."""
    problems: list[str] = []
    items: list[tuple[str, str, str, str]] = []
    for split, sdir in layout.splits.items():
        for f in sorted(sdir.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                problems.append(f"{f.relative_to(base).as_posix()}: file outside any class folder, not imported")
        for cdir in _class_dirs(sdir):
            if layout.single and canonical_split(cdir.name):
                continue
            for dirpath, dirnames, files in os.walk(cdir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fn in sorted(files):
                    p = Path(dirpath, fn)
                    rel = p.relative_to(base).as_posix()
                    if fn.startswith("."):
                        continue
                    if p.is_symlink():
                        problems.append(f"{rel}: symbolic link, not imported")
                    elif not is_image_name(fn):
                        problems.append(f"{rel}: not an image file name, not imported")
                    else:
                        items.append((split, cdir.name, p.relative_to(cdir).as_posix(), rel))
    return items, problems


def _plan(base: Path, spec: DatasetSpec, names_path: Path | None, label_names: bool, previous: dict, out: Path,
          shown: Path):
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

    return layout, names_path, id_names, problems, items, ids, folders, unknown, unmapped


def _discard(out: Path, created: bool, extract_dir: Path | None) -> None:
    """After bad input: remove what this run wrote (the extraction, and OUT if this run made it)."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)


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
    engine: str = "local",
    overwrite: bool = False,
) -> KaggleResult:
    """Download (or take `source`), extract safely, normalise and verify into the tree `out`."""
    import pandas as pd

    from curate.archive import is_archive, safe_extract
    from curate.executor import make_executor
    from curate.manifest import update_info, write_manifest

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
    fp = fingerprint(src)
    if previous.get("state") == "complete" and previous.get("fingerprint") == fp and previous.get("options") == options and tree_complete(out):
        res = KaggleResult(out, spec.kaggle, previous.get("counts", {}), previous.get("classes", 0),
                           list(previous.get("problems", [])), up_to_date=True, layout_root=previous.get("layout_root", ""))
        return res

    other_source = bool(previous.get("fingerprint")) and previous.get("fingerprint") != fp
    other_options = previous.get("options") not in (None, options)
    if other_source and not overwrite:
        raise InputError(f"--out {out} holds an import of another source version",
                         "pass --overwrite to replace it, or choose a new --out")
    if overwrite and (other_source or other_options):
        clear_import(out)
        previous = {}

    extract_dir = None
    created = fresh(out)  # new, or holding only the lock its command took (curate.lock)
    if src.is_file():
        if not is_archive(src):
            if src.name.lower().endswith((".zip", ".tar", ".tgz", ".gz", ".xz", ".bz2")):
                raise InputError(f"--source {src} is a corrupt or incomplete archive", "download it again")
            raise InputError(f"--source {src} is not a zip or tar archive", "pass the downloaded .zip or a folder")
        extract_dir = out / ".curate" / "extract" / src.name
        try:
            safe_extract(src, extract_dir, quiet=quiet)
        except CurateError:
            _discard(out, created, extract_dir)
            raise
        base, link = extract_dir, True
    else:
        base, link = src, False

    try:
        layout, names_path, id_names, problems, items, ids, folders, unknown, unmapped = _plan(
            base, spec, names_path, label_names, previous, out, src)
    except CurateError:
        _discard(out, created, extract_dir)
        raise
    update_info(out, "kaggle", {"dataset": spec.kaggle, "state": "incomplete", "folders": folders,
                                "fingerprint": fp, "options": options}, source="kaggle")
    quarantine = default_quarantine(out) / "unreadable"
    work = []
    for split, cid, inner, rel in items:
        dst = out / split / folders[cid] / inner
        work.append((str(base / rel), str(dst), str(quarantine / split / folders[cid] / inner), link))
    batches = [work[i:i + 64] for i in range(0, len(work), 64)]
    ex = make_executor(engine, workers=workers, quiet=quiet)
    results = [r for batch in ex.map(ingest_batch, batches, desc="verifying", units=len, unit="images") for r in batch]

    rows = []
    for (split, cid, inner, rel), r in zip(items, results, strict=True):
        path = f"{split}/{folders[cid]}/{inner}"
        if r["problem"]:
            where = f" (copied to {quarantine}/, not into the tree)" if r["status"] != "kept" else ""
            problems.append(f"{rel}: {r['problem']}{where}")
        rows.append({
            "path": path, "split": split, "label": folders[cid], "sha256": r["sha256"],
            "width": r["width"], "height": r["height"], "source": "kaggle", "source_id": rel,
            "status": r["status"], "class_id": cid, "class_name": id_names.get(cid), "format": r["format"],
            "problem": r["problem"], "bytes": r["bytes"],
        })
    df = pd.DataFrame(rows)
    counts = {s: int((df["split"] == s).sum()) for s in SPLIT_ORDER if (df["split"] == s).any()}
    if check_counts and spec.expected:
        for key, want in spec.expected.items():
            got = len(ids) if key == "classes" else counts.get(key, 0)
            if got != want:
                problems.append(f"expected {want} {'classes' if key == 'classes' else key + ' images'} for {spec.name}, found {got}")

    classes = []
    for cid in ids:
        sub = df[df["class_id"] == cid]
        entry = {"id": cid, "folder": folders[cid], "name": id_names.get(cid),
                 "counts": {s: int((sub["split"] == s).sum()) for s in counts}}
        entry.update(parse_name(id_names.get(cid, "")))
        classes.append(entry)
    write_manifest(out, df)
    atomic_write_json(out / "classes.json", {"dataset": spec.kaggle, "classes": classes,
                                             "unknown_ids": unknown, "unmapped_names": unmapped})
    record = {
        "dataset": spec.kaggle, "preset": spec.name if spec.name != spec.kaggle else None,
        "source": str(src), "fingerprint": fp, "options": options, "layout_root": layout.root.relative_to(base).as_posix() or ".",
        "names_file": _shown(names_path, base, src), "counts": counts, "classes": len(ids),
        "folders": folders, "problems": problems, "files": len(rows), "state": "complete",
    }
    update_info(out, "kaggle", record, source="kaggle")
    if extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            extract_dir.parent.rmdir()
    return KaggleResult(out, spec.kaggle, counts, len(ids), problems, unknown, unmapped,
                        layout_root=record["layout_root"])


def _shown(path: Path | None, base: Path, src: Path) -> str | None:
    """A path for records: inside the source it is named relative to the archive or folder."""
    if path is None:
        return None
    try:
        return f"{src}:{path.relative_to(base).as_posix()}" if src.is_file() else str(path)
    except ValueError:
        return str(path)
