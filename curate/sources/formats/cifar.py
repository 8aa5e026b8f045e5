"""CIFAR-10 / CIFAR-100 "python version": data_batch_1..5 + test_batch + batches.meta, or train + test + meta.

Each batch is a pickle (written by Python 2, so keys are bytes) of {b"data": uint8 N x 3072 (1024 red,
then green, then blue values, row-major), b"labels" (CIFAR-10) or b"fine_labels"/b"coarse_labels"
(CIFAR-100)}. Pickles run code when loaded, so the unpickler accepts numpy arrays and nothing else.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from curate.core.errors import InputError
from curate.sources.formats import Item, Options, Source

_ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
_ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype")}
CIFAR10 = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load(path: Path) -> dict[str, object]:
    """One CIFAR pickle with str keys; one-line errors for truncated or foreign files."""
    try:
        with open(path, "rb") as f:
            obj = _Unpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as e:
        raise InputError(f"{path} is not a readable CIFAR pickle ({type(e).__name__}: {str(e)[:80]})",
                         "download the CIFAR python archive again") from e
    if not isinstance(obj, dict):
        raise InputError(f"{path} is not a CIFAR batch (a pickled dict)", "pass the CIFAR python version")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def find_root(path: Path) -> Path | None:
    """The folder holding batches.meta (CIFAR-10) or meta + train (CIFAR-100), searched 2 levels down."""
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir()), *sorted(path.glob("*/*/"))]:
        if (d / "batches.meta").is_file() or ((d / "meta").is_file() and (d / "train").is_file()):
            return d
    return None


def _detect(path: Path) -> bool:
    return path.is_dir() and find_root(path) is not None


def _names(meta: dict, key: str, path: Path) -> dict[str, str]:
    names = meta.get(key)
    if not isinstance(names, list):
        raise InputError(f"{path} has no {key}", "pass the CIFAR python version (batches.meta / meta)")
    return {str(i): (n.decode() if isinstance(n, bytes) else str(n)) for i, n in enumerate(names)}


def _batch(path: Path, key: str) -> tuple[np.ndarray, list[int]]:
    b = load(path)
    data, labels = b.get("data"), b.get(key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None:
        raise InputError(f"{path} is not a CIFAR batch of 32x32 RGB images with '{key}'",
                         "pass the CIFAR python version")
    labels = [int(x) for x in labels]
    if len(labels) != data.shape[0]:
        raise InputError(f"{path} has {data.shape[0]} images but {len(labels)} labels", "download it again")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read(path: Path, options: Options) -> Source:
    root = find_root(path)
    if root is None:
        raise InputError(f"{path} holds no CIFAR batches.meta or meta file", "pass the extracted cifar-*-python folder")
    if (root / "batches.meta").is_file():
        names = _names(load(root / "batches.meta"), "label_names", root / "batches.meta")
        batches, key, note = [b for b in CIFAR10 if (root / b).exists()], "labels", "CIFAR-10"
        if not batches:
            raise InputError(f"{root} has batches.meta but no data_batch_* or test_batch", "extract the whole archive")
    else:
        if options.labels not in ("fine", "coarse"):
            raise InputError(f"--labels {options.labels}: CIFAR-100 has fine or coarse labels", "pass fine or coarse")
        names = _names(load(root / "meta"), f"{options.labels}_label_names", root / "meta")
        batches, key = [b for b in ("train", "test") if (root / b).exists()], f"{options.labels}_labels"
        note = f"CIFAR-100 ({options.labels} labels)"
    items = []
    for b in batches:
        pixels, labels = _batch(root / b, key)
        split = "test" if b.startswith("test") else "train"
        for i, (img, lab) in enumerate(zip(pixels, labels, strict=True)):
            if str(lab) not in names:
                raise InputError(f"{root / b} image {i} has label {lab}, beyond the {len(names)} names in the meta file",
                                 "download the archive again")
            items.append(Item(split, str(lab), f"{b}_{i:05d}.png", f"{b}:{i}", pixels=img))
    return Source("cifar", root, items, names, note=f"{note} from {os.fspath(root)}")


DETECT = {"cifar": _detect}
READ = {"cifar": _read}
