"""MNIST, Fashion-MNIST and EMNIST IDX files (`.gz` or not).

An IDX file is a big-endian header (two zero bytes, a type byte, the number of dimensions, then each
dimension as a 4-byte unsigned int) followed by the values. Images and labels come in pairs:
train-images-idx3-ubyte + train-labels-idx1-ubyte, t10k-* for test; EMNIST prefixes each with
emnist-<split>- and ships emnist-<split>-mapping.txt ("label ascii-code" lines). EMNIST stores
every image transposed: they are turned upright here.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from curate.core.errors import InputError
from curate.sources.formats import Item, Options, Source, split_of

PATTERN = re.compile(r"^(?P<prefix>.*?)(?P<split>train|t10k|test)-(?P<kind>images|labels)[-.]idx(?P<dims>[13])-ubyte(\.gz)?$")
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """The array in one IDX file (unsigned bytes only, as MNIST and EMNIST use)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(f"{path} is a truncated or corrupt gzip file ({e})", "download it again") from e
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise InputError(f"{path} is not an IDX file (bad magic number)", "pass the *-idx3-ubyte / *-idx1-ubyte files")
    if raw[2] != 0x08:
        raise InputError(f"{path} holds IDX type 0x{raw[2]:02x}, not unsigned bytes (0x08)", "pass MNIST-style IDX files")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(f"{path} is truncated inside its header", "download it again")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    want = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - 4 - 4 * ndim
    if have != want:
        raise InputError(f"{path} is truncated: its header promises {want} bytes, it holds {have}", "download it again")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _files(path: Path) -> dict[str, dict[tuple[str, str], Path]]:
    """prefix -> {(split, kind): file}, for every IDX file in the folder."""
    found: dict[str, dict[tuple[str, str], Path]] = {}
    for f in sorted(path.iterdir()):
        m = PATTERN.match(f.name)
        if m and f.is_file():
            found.setdefault(m["prefix"], {})[(split_of(m["split"]), m["kind"])] = f
    return found


def _folder(path: Path) -> Path:
    if path.is_file():
        return path.parent
    if _files(path):
        return path
    for d in sorted(p for p in path.rglob("*") if p.is_dir()):
        if _files(d):
            return d
    return path


def _detect(path: Path) -> bool:
    if path.is_file():
        return bool(PATTERN.match(path.name))
    return path.is_dir() and bool(_files(_folder(path)))


def _folder_of(name: str) -> str:
    """'7' -> '7', 'A' -> 'A_upper', 'a' -> 'a_lower', 'Aa' (letters split) -> 'Aa': no two differ by case only."""
    if len(name) != 1 or name.isdigit():
        return name
    return f"{name}_upper" if name.isupper() else f"{name}_lower"


def _names(folder: Path, prefix: str, ids: list[str], problems: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Readable names and class folders: EMNIST's mapping file, Fashion-MNIST's classes, else the digits."""
    if prefix.startswith("emnist"):
        mapping = folder / f"{prefix}mapping.txt"
        if not mapping.is_file():
            problems.append(f"{mapping.name} not found: EMNIST classes keep their numeric ids")
            return {}, {}
        names = {}
        for n, line in enumerate(mapping.read_text(encoding="ascii", errors="replace").splitlines(), 1):
            parts = line.split()  # "label code", or "label upper lower" in the letters split
            if len(parts) < 2 or not all(p.isdigit() for p in parts):
                raise InputError(f"{mapping}:{n}: expected 'label ascii-code', got {line[:40]!r}", "download it again")
            names[parts[0]] = "".join(chr(int(c)) for c in parts[1:])
        return names, {k: _folder_of(v) for k, v in names.items()}
    if "fashion" in str(folder).lower() or "fashion" in prefix.lower():
        return {str(i): n for i, n in enumerate(FASHION)}, {}
    return {k: k for k in ids}, {}


def _read(path: Path, options: Options) -> Source:
    folder = _folder(path)
    found = _files(folder)
    if options.subset:
        found = {p: f for p, f in found.items() if p.strip("-_").split("-")[-1] == options.subset or p == options.subset}
    if len(found) != 1:
        choices = ", ".join(p.strip("-_").split("-")[-1] for p in sorted(found)) or "none"
        raise InputError(f"{folder} holds {len(found)} IDX sets" + (f" named {options.subset}" if options.subset else ""),
                         f"pass --subset with one of: {choices}")
    prefix, files = next(iter(found.items()))
    transposed = prefix.startswith("emnist")
    items: list[Item] = []
    for split in ("train", "test"):
        img_f, lab_f = files.get((split, "images")), files.get((split, "labels"))
        if img_f is None and lab_f is None:
            continue
        if img_f is None or lab_f is None:
            raise InputError(f"{(img_f or lab_f).name} has no matching {'labels' if lab_f is None else 'images'} file",
                             f"put both {split} files in {folder}")
        images, labels = read_idx(img_f), read_idx(lab_f)
        if images.ndim != 3 or labels.ndim != 1:
            raise InputError(f"{img_f.name} / {lab_f.name} are not N x H x W images and N labels", "check the files")
        if len(images) != len(labels):
            raise InputError(f"{img_f.name} has {len(images)} images but {lab_f.name} has {len(labels)} labels",
                             "download both again")
        if transposed:
            images = images.transpose(0, 2, 1)
        stem = img_f.name.split("-images")[0]
        items += [Item(split, str(int(lab)), f"{stem}_{i:05d}.png", f"{img_f.name}:{i}", pixels=img)
                  for i, (img, lab) in enumerate(zip(images, labels, strict=True))]
    problems: list[str] = []
    ids = sorted({it.class_id for it in items}, key=int)
    names, folders = _names(folder, prefix, ids, problems)
    kind = "EMNIST" if transposed else "Fashion-MNIST" if names.get("0") == FASHION[0] else "MNIST-style"
    note = f"{kind} {prefix.strip('-_') or 'IDX'} from {folder}" + (" (transposed images turned upright)" if transposed else "")
    return Source("idx", folder, items, names, folders, problems, note)


DETECT = {"idx": _detect}
READ = {"idx": _read}
