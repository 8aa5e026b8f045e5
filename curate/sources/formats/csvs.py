"""CSV sources, as on Kaggle and Dacon.

pixel-csv: one image per row, `label,pixel0,...,pixelN` with or without a header (the label column is
the one named label/class/target, else the first). N = side x side is grayscale; N = 3 x side x side is
RGB, stored plane by plane (all red values, then green, then blue), as the CIFAR batches are.
path-csv: rows of an image path and a label (Dacon's train.csv: id,img_path,label); paths are relative
to the CSV's folder. A folder source takes every CSV in it; the split comes from the file name.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from curate.core.errors import InputError
from curate.core.layout import is_image_name
from curate.sources.formats import Item, Options, Source, split_of

LABEL_NAMES = ("label", "labels", "class", "class_name", "category", "target", "y")
PATH_NAMES = ("img_path", "image_path", "path", "filepath", "file_path", "filename", "file_name", "file", "image",
              "img", "image_id", "id")
MIN_PIXELS = 16


def _csvs(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() == ".csv" else []
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv") if path.is_dir() else []


def _head(path: Path, rows: int = 2) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [r for _, r in zip(range(rows), csv.reader(f), strict=False)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path} is not a readable CSV file ({e})", "pass a UTF-8 CSV") from e


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def image_shape(n: int) -> tuple[int, ...] | None:
    """(side, side) for grayscale, (3, side, side) for planar RGB, None when n is neither."""
    side = math.isqrt(n)
    if side * side == n:
        return side, side
    side = math.isqrt(n // 3)
    return (3, side, side) if n % 3 == 0 and 3 * side * side == n else None


def _layout(path: Path, label_column: str | None = None) -> tuple[bool, int, int] | None:
    """(has header, label column index, pixel count) of a pixel CSV, or None when it is not one."""
    head = _head(path)
    if not head:
        return None
    header = not all(_is_number(c) for c in head[0][1:])
    names = [c.strip().lower() for c in head[0]] if header else []
    want = [label_column.lower()] if label_column else list(LABEL_NAMES)
    col = next((names.index(n) for n in want if n in names), None) if header else 0
    if col is None:
        col = 0 if header and not _is_number(head[1][0] if len(head) > 1 else "") else None
    if col is None:
        return None
    n = len(head[0]) - 1
    row = head[1] if header and len(head) > 1 else head[0] if not header else []
    cells = [c for i, c in enumerate(row) if i != col]
    if n < MIN_PIXELS or image_shape(n) is None or not all(c.strip().isdigit() for c in cells):
        return None
    return header, col, n


def _detect_pixels(path: Path) -> bool:
    return any(_layout(p) for p in _csvs(path))


def _read_pixels(path: Path, options: Options) -> Source:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    items, problems = [], []
    root = path if path.is_dir() else path.parent
    for f in _csvs(path):
        lay = _layout(f, options.label_column)
        if lay is None:
            problems.append(f"{f.name}: no label column and pixel columns, not imported")
            continue
        header, col, n = lay
        try:
            table = pacsv.read_csv(f, read_options=pacsv.ReadOptions(autogenerate_column_names=not header),
                                   convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{f}: {str(e).splitlines()[0][:200]}", "every row needs the same number of columns") from e
        labels = [str(x) for x in table.column(col).to_pylist()]
        cols = [table.column(i) for i in range(table.num_columns) if i != col]
        if not all(pa.types.is_integer(c.type) for c in cols):
            raise InputError(f"{f}: pixel columns must hold whole numbers 0-255", "check the file")
        pixels = np.stack([c.to_numpy(zero_copy_only=False) for c in cols], axis=1) if cols else np.zeros((0, 0))
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise InputError(f"{f}: pixel values outside 0-255", "pass 8-bit pixel values")
        shape = image_shape(n)
        imgs = pixels.astype(np.uint8).reshape(-1, *shape)
        if len(shape) == 3:
            imgs = imgs.transpose(0, 2, 3, 1)
        split = split_of(f.stem)
        items += [Item(split, lab, f"{f.stem}_{i:05d}.png", f"{f.name}:{i + 1 + header}", pixels=img)
                  for i, (img, lab) in enumerate(zip(imgs, labels, strict=True))]
    kind = "RGB" if items and items[0].pixels.ndim == 3 else "grayscale"
    return Source("pixel-csv", root, items, problems=problems, note=f"{kind} pixel CSV from {path}")


# ---------------------------------------------------------------- path CSVs


def _columns(f: Path, header: list[str], row: list[str], options: Options) -> tuple[int, int] | None:
    """(path column, label column) indexes, from the flags, the usual names, or the values."""
    low = [h.strip().lower() for h in header]

    def pick(flag: str | None, names: tuple[str, ...]) -> int | None:
        if flag:
            if flag.lower() not in low:
                raise InputError(f"{f.name} has no column '{flag}'", f"columns: {', '.join(header)}")
            return low.index(flag.lower())
        return next((low.index(n) for n in names if n in low), None)

    path_col = next((i for i, v in enumerate(row) if is_image_name(v.strip())), None) if not options.path_column else None
    path_col = pick(options.path_column, PATH_NAMES) if path_col is None else path_col
    label_col = pick(options.label_column, LABEL_NAMES)
    if path_col is None or label_col is None or path_col == label_col:
        return None
    return path_col, label_col


def _detect_paths(path: Path) -> bool:
    for f in _csvs(path):
        head = _head(f)
        if len(head) == 2 and _columns(f, head[0], head[1], Options()) is not None:
            return True
    return False


def _read_paths(path: Path, options: Options) -> Source:
    items, problems = [], []
    root = path if path.is_dir() else path.parent
    for f in _csvs(path):
        with open(f, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        if len(rows) < 2:
            problems.append(f"{f.name}: no rows, not imported")
            continue
        cols = _columns(f, rows[0], rows[1], options)
        if cols is None:
            problems.append(f"{f.name}: no image path and label columns, not imported")
            continue
        pcol, lcol = cols
        split, used = split_of(f.stem), set()
        for n, row in enumerate(rows[1:], 2):
            if len(row) != len(rows[0]):
                raise InputError(f"{f}:{n}: {len(row)} fields, the header has {len(rows[0])}",
                                 "every row needs the same number of columns")
            rel = row[pcol].strip()
            p = (f.parent / rel).resolve()
            if not p.is_file():
                problems.append(f"{f.name}:{n}: {rel} not found, not imported")
                continue
            name = p.name
            k = 2
            while (row[lcol], name) in used:  # same file name in two folders: keep both
                name, k = f"{p.stem}_{k}{p.suffix}", k + 1
            used.add((row[lcol], name))
            items.append(Item(split, row[lcol].strip(), name, f"{f.name}:{n}", path=str(p)))
    return Source("path-csv", root, items, problems=problems, note=f"image paths listed in CSV files of {path}")


DETECT = {"pixel-csv": _detect_pixels, "path-csv": _detect_paths}
READ = {"pixel-csv": _read_pixels, "path-csv": _read_paths}
