"""The torch-free half of the input pipeline: which files to train on, and decode + resize.

Decoding runs in executor workers, which must stay light: this module never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from curate.core import storage
from curate.core.errors import InputError, UnreadableImage
from curate.core.images import decode, probe
from curate.core.labelnames import label_names
from curate.core.manifest import read_manifest

CLASSES_JSON = "classes.json"


@dataclass
class Split:
    name: str
    paths: list[Path | str]  # local paths, or object-store URLs
    targets: list[int]


@dataclass
class Dataset:
    root: Path | str  # a local folder, or an object-store URL (s3://...)
    classes: list[str]  # class folder names, sorted (ImageFolder order)
    display: dict[str, str]  # folder name -> full name (from classes.json), when known
    splits: dict[str, Split] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def counts(self, split: str) -> list[int]:
        c = [0] * len(self.classes)
        for t in self.splits[split].targets:
            c[t] += 1
        return c


def read_class_names(root: str | Path) -> dict[str, str]:
    """folder -> full name from ROOT/classes.json or ROOT/cat_to_name.json (curate.core.labelnames); {} if absent."""

    return label_names(root)


def load_dataset(root: str | Path, eval_split: str = "val") -> Dataset:
    """Files of a curated tree (a local folder or an s3:// URL) by split, with clear errors for trees that
    cannot be trained on."""
    root = storage.as_location(root)
    storage.require_dir(root, "pass the root of a curated tree (ROOT/train/<label>/...)")
    tree = storage.scan(root)
    if tree.single or "train" not in tree.split_dirs:
        raise InputError(f"{root} has no train/ split folder",
                         "training needs ROOT/train/<label>/ and ROOT/val/<label>/ class folders")
    if eval_split not in tree.split_dirs:
        have = ", ".join(tree.split_dirs.values())
        raise InputError(f"{root} has no {eval_split} split (found: {have})",
                         f"add a {eval_split}/ split of class folders, "
                         + next((f"or pass --eval-split {s}" for s in ("val", "test") if s in tree.split_dirs),
                                "or make one with `curate resplit`"))
    excluded = _excluded_by_manifest(root)
    ds = Dataset(root=root, classes=[], display=read_class_names(root))
    for split, label in tree.empty_labels:
        where = f"{tree.split_dirs.get(split) or split}/{label}"
        if split == "train":
            raise InputError(f"class folder {storage.join(root, where)} has no images",
                             "remove the empty folder or add images to it")
        ds.warnings.append(f"class folder {where} has no images")
    files = [f for f in tree.files if f.path not in excluded]
    ds.classes = sorted({f.label for f in files if f.split == "train"})
    if len(ds.classes) < 2:
        raise InputError(f"{storage.join(root, tree.split_dirs['train'])} has {len(ds.classes)} class folder(s)",
                         "a classifier needs at least 2 classes")
    index = {c: i for i, c in enumerate(ds.classes)}
    for split in tree.split_dirs:
        rows = [f for f in files if f.split == split]
        unknown = sorted({f.label for f in rows} - set(index))
        if unknown:
            raise InputError(f"{split} has classes that train lacks: {', '.join(unknown[:5])}",
                             "every class needs training images; move some into train/")
        paths = [storage.as_location(storage.join(root, f.path)) for f in rows]
        ds.splits[split] = Split(split, paths, [index[f.label] for f in rows])
    if not ds.splits[eval_split].paths:
        raise InputError(f"the {eval_split} split of {root} has no images", "put some images in its class folders")
    if excluded:
        ds.warnings.append(f"{len(excluded)} file(s) marked not kept in manifest.parquet were left out")
    return ds


def _excluded_by_manifest(root: Path | str) -> set[str]:

    df = read_manifest(root)
    if df is None or "status" not in df.columns:
        return set()
    status = df["status"].astype("string").fillna("kept")
    return set(df.loc[status != "kept", "path"].astype(str))


def load_square(path: str | Path, size: int) -> np.ndarray:
    """Decode upright RGB, resize the shorter side to `size` (area filter), centre-crop: size x size x 3."""
    min_scale = 1.0
    src = storage.read_image_bytes(path)  # read once: the header probe and the decode share it
    if Path(str(path)).suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif"):
        pr = probe(src, verify=False)  # header only: lets big JPEGs decode at 1/2, 1/4 or 1/8 size
        min_scale = min(1.0, size / max(1, min(pr.width, pr.height)))
    return square(decode(src, min_scale=min_scale).pixels, size)


def square(pixels: np.ndarray, size: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    s = size / min(h, w)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (nw, nh), interpolation=interp)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(pixels[y : y + size, x : x + size])


def load_chunk(job: tuple[list[str], int]) -> tuple[np.ndarray, list[str]]:
    """Executor task: decode a chunk of files to N x size x size x 3 uint8; unreadable ones get zeros
    and their reason (an empty string means the file was fine)."""
    paths, size = job
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    reasons = [""] * len(paths)
    for i, p in enumerate(paths):
        try:
            out[i] = load_square(p, size)
        except UnreadableImage as e:
            reasons[i] = e.reason
    return out, reasons


def check_chunk(job: tuple[list[str], int]) -> list[str]:
    """Executor task for the streaming path: decode a chunk of files and keep only each one's unreadable
    reason ("" when fine), so unreadable files are left out before training, as the cache leaves them out."""
    paths, size = job
    reasons = [""] * len(paths)
    for i, p in enumerate(paths):
        try:
            load_square(p, size)
        except UnreadableImage as e:
            reasons[i] = e.reason
    return reasons
