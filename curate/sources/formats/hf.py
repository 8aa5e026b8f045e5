"""Hugging Face `datasets` Parquet and Arrow files with an image column and a label column.

The image column is datasets' Image feature: a struct {bytes, path} (bytes embedded, or a path
relative to the file). The label column is a ClassLabel; its names sit in the schema metadata under
b"huggingface" ({"info": {"features": {...}}}), or in dataset_info.json beside `save_to_disk` Arrow
files. Splits come from the file names (train-00000-of-00001.parquet) or folders (DIR/test/...).
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.core.errors import InputError
from curate.sources.formats import Item, Options, Source, split_of

SUFFIXES = (".parquet", ".arrow")
MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"BM": ".bmp", b"II*\x00": ".tif",
         b"MM\x00*": ".tif"}


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix in SUFFIXES else []
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith("."))


def _detect(path: Path) -> bool:
    return bool(_files(path))


def _table(f: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if f.suffix == ".parquet":
            return pq.read_table(f)
        data = pa.py_buffer(f.read_bytes())  # owned memory: the table outlives any open file
        try:
            return pa.ipc.open_stream(data).read_all()  # what save_to_disk writes
        except pa.ArrowInvalid:
            return pa.ipc.open_file(data).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{f} is not a readable {f.suffix[1:]} file ({str(e)[:120]})", "download it again") from e


def _features(f: Path, table) -> dict:
    meta = (table.schema.metadata or {}).get(b"huggingface")
    if meta:
        try:
            info = json.loads(meta)
        except ValueError as e:
            raise InputError(f"{f}: unreadable huggingface schema metadata ({e})", "write the file with datasets") from e
        return (info.get("info") or info).get("features") or {}
    side = f.parent / "dataset_info.json"
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8")).get("features") or {}
        except ValueError as e:
            raise InputError(f"{side} is not valid JSON ({e})", "write it again with save_to_disk") from e
    return {}


def _columns(f: Path, table, features: dict, options: Options) -> tuple[str, str]:
    import pyarrow as pa

    def is_image(name: str) -> bool:
        t = table.schema.field(name).type
        return features.get(name, {}).get("_type") == "Image" or (
            pa.types.is_struct(t) and {t.field(i).name for i in range(t.num_fields)} >= {"bytes", "path"})

    names = table.schema.names
    image = options.path_column or next((n for n in names if is_image(n)), None)
    label = options.label_column or next((n for n in names if features.get(n, {}).get("_type") == "ClassLabel"), None)
    label = label or next((n for n in names if n.lower() in ("label", "labels", "fine_label", "class")), None)
    if image not in names or label not in names:
        raise InputError(f"{f} has no image column and label column (columns: {', '.join(names)})",
                         "name them with --path-column and --label-column")
    return image, label


def _ext(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((e for m, e in MAGIC.items() if data.startswith(m)), ".bin")


def _read(path: Path, options: Options) -> Source:
    items, problems, names = [], [], {}
    root = path if path.is_dir() else path.parent
    for f in _files(path):
        table = _table(f)
        features = _features(f, table)
        image, label = _columns(f, table, features, options)
        class_names = features.get(label, {}).get("names") or []
        names.update({str(i): str(n) for i, n in enumerate(class_names)})
        rel = f.relative_to(root).as_posix() if f != root else f.name
        split = split_of(f.stem, split_of(f.parent.name))
        unlabeled = 0
        for i, (img, lab) in enumerate(zip(table.column(image).to_pylist(), table.column(label).to_pylist(),
                                           strict=True)):
            if lab is None or lab == -1:  # datasets marks unlabeled rows (test sets) with -1
                unlabeled += 1
                continue
            img = img if isinstance(img, dict) else {"bytes": img if isinstance(img, bytes) else None,
                                                      "path": img if isinstance(img, str) else None}
            stem = f"{f.stem.split('-')[0]}_{i:06d}"
            if img.get("bytes"):
                items.append(Item(split, str(lab), stem + _ext(img["bytes"]), f"{rel}:{i}", data=img["bytes"]))
            elif img.get("path") and (f.parent / img["path"]).is_file():
                p = f.parent / img["path"]
                items.append(Item(split, str(lab), stem + p.suffix.lower(), f"{rel}:{i}", path=str(p)))
            else:
                problems.append(f"{rel} row {i}: no image bytes and no file at {img.get('path')!r}, not imported")
        if unlabeled:
            problems.append(f"{rel}: {unlabeled} rows without a label, not imported")
    return Source("hf", root, items, names, problems=problems, note=f"Hugging Face datasets files in {path}")


DETECT = {"hf": _detect}
READ = {"hf": _read}
