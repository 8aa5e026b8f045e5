"""Writers of the dataset formats `curate import` reads, in each format's real byte layout, filled with real
images: scikit-learn's handwritten digit scans and 32x32 crops of the package photos."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import cv2
import numpy as np
from test_kaggle_data import jpeg, png  # noqa: F401  (re-exported for the import tests)

from curate.sources.samples import load_photo

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]  # class i of the photo crops
# the first lines of the real emnist-balanced-mapping.txt (label, ASCII code): digits, then A..Z, then a, b, d, ...
EMNIST_BALANCED = [(i, 48 + i) for i in range(10)] + [(10 + i, 65 + i) for i in range(26)] + \
    [(36 + i, ord(c)) for i, c in enumerate("abdefghnqrt")]


def digits(n: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """n real handwritten digit scans (scikit-learn's 8x8, 0-16) as side x side uint8 images, and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [cv2.resize((d.images[i] * 255 / 16).astype(np.uint8), (side, side), interpolation=cv2.INTER_LINEAR)
            for i in range(n)]
    return np.stack(imgs), d.target[:n].astype(np.uint8)


def photo_crops(n: int, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n side x side RGB crops of the package photos (class = photo), shrunk from 96 px windows."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(p) for p in PHOTOS]
    imgs, labels = [], []
    for i in range(n):
        k = i % len(photos)
        ph = photos[k]
        y, x = rng.integers(0, ph.shape[0] - 96), rng.integers(0, ph.shape[1] - 96)
        imgs.append(cv2.resize(ph[y:y + 96, x:x + 96], (side, side), interpolation=cv2.INTER_AREA))
        labels.append(k)
    return np.stack(imgs), np.array(labels, dtype=np.uint8)


# ---------------------------------------------------------------- CIFAR (Python 2 pickles)


class Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2's str opcodes (BINSTRING), as the real CIFAR batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # the real files name numpy's reconstructor as numpy 1.x did (GLOBAL names end at a newline)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_batch(imgs: np.ndarray, labels, key: bytes = b"labels", name: bytes = b"training batch 1 of 5") -> bytes:
    data = imgs.transpose(0, 3, 1, 2).reshape(len(imgs), 3072)  # 1024 red, 1024 green, 1024 blue
    return py2_pickle({b"batch_label": name, key: [int(x) for x in labels], b"data": data,
                       b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(imgs))]})


def write_cifar10(root: Path, per_batch: int = 12, batches: int = 2) -> tuple[Path, dict[str, tuple]]:
    """cifar-10-batches-py/ with data_batch_1..N, test_batch and batches.meta; returns it and the arrays."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    imgs, labels = photo_crops(per_batch * (batches + 1))
    arrays = {}
    for b in range(batches + 1):
        name = "test_batch" if b == batches else f"data_batch_{b + 1}"
        sl = slice(b * per_batch, (b + 1) * per_batch)
        (d / name).write_bytes(cifar_batch(imgs[sl], labels[sl]))
        arrays[name] = (imgs[sl], labels[sl])
    (d / "batches.meta").write_bytes(py2_pickle({b"num_cases_per_batch": per_batch, b"num_vis": 3072,
                                                 b"label_names": [n.encode() for n in CIFAR10_NAMES]}))
    return d, arrays


def tar_gz(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as t:
        t.add(folder, arcname=folder.name)
    return dest


# ---------------------------------------------------------------- IDX


def idx_bytes(arr: np.ndarray) -> bytes:
    """Magic 0x00 0x00 0x08 (unsigned byte) ndim, then each dimension big-endian, then the values."""
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_mnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, prefix: str = "",
                transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """train-/t10k- images and labels (EMNIST: prefix 'emnist-balanced-', test-, transposed)."""
    imgs, labels = digits(n_train + n_test)
    stored = imgs.transpose(0, 2, 1) if transpose else imgs
    test = "test" if prefix else "t10k"
    write_idx(folder / f"{prefix}train-images-idx3-ubyte", stored[:n_train], gz)
    write_idx(folder / f"{prefix}train-labels-idx1-ubyte", labels[:n_train], gz)
    write_idx(folder / f"{prefix}{test}-images-idx3-ubyte", stored[n_train:], gz)
    write_idx(folder / f"{prefix}{test}-labels-idx1-ubyte", labels[n_train:], gz)
    return imgs, labels


def write_emnist(folder: Path, n_train: int = 20, n_test: int = 10) -> tuple[np.ndarray, np.ndarray]:
    imgs, labels = write_mnist(folder, n_train, n_test, prefix="emnist-balanced-", transpose=True)
    (folder / "emnist-balanced-mapping.txt").write_text("".join(f"{a} {b}\n" for a, b in EMNIST_BALANCED))
    return imgs, labels


# ---------------------------------------------------------------- CSV


def write_pixel_csv(path: Path, imgs: np.ndarray, labels, header: bool = True) -> Path:
    """label,pixel... one image per row; RGB images plane by plane (as the CIFAR batches)."""
    flat = imgs.transpose(0, 3, 1, 2).reshape(len(imgs), -1) if imgs.ndim == 4 else imgs.reshape(len(imgs), -1)
    lines = ["label," + ",".join(f"pixel{i}" for i in range(flat.shape[1]))] if header else []
    lines += [f"{lab}," + ",".join(map(str, row)) for lab, row in zip(labels, flat, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_dacon(root: Path, n: int = 12) -> Path:
    """Dacon-style: train/TRAIN_00000.jpg ..., train.csv (id,img_path,label), test.csv (id,img_path)."""
    imgs, labels = photo_crops(n + 4, side=64)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, test_rows = ["id,img_path,label"], ["id,img_path"]
    for i in range(n):
        (root / "train" / f"TRAIN_{i:05d}.jpg").write_bytes(jpeg(imgs[i]))
        rows.append(f"TRAIN_{i:05d},./train/TRAIN_{i:05d}.jpg,{PHOTOS[labels[i]]}")
    for i in range(4):
        (root / "test" / f"TEST_{i:05d}.jpg").write_bytes(jpeg(imgs[n + i]))
        test_rows.append(f"TEST_{i:05d},./test/TEST_{i:05d}.jpg")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "test.csv").write_text("\n".join(test_rows) + "\n")
    return root


# ---------------------------------------------------------------- Hugging Face datasets


def hf_table(imgs: np.ndarray, labels, names: list[str]):
    """A datasets-style table: image struct {bytes, path}, ClassLabel names in the schema metadata."""
    import pyarrow as pa

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([{"bytes": png(a), "path": None} for a in imgs], type=image_type)
    table = pa.table({"image": images, "label": pa.array([int(x) for x in labels], type=pa.int64())})
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    return table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def write_hf_parquet(root: Path, n_train: int = 12, n_test: int = 4) -> Path:
    """data/train-00000-of-00001.parquet and data/test-00000-of-00001.parquet, as on the Hub."""
    import pyarrow.parquet as pq

    imgs, labels = photo_crops(n_train + n_test)
    (root / "data").mkdir(parents=True)
    pq.write_table(hf_table(imgs[:n_train], labels[:n_train], PHOTOS), root / "data" / "train-00000-of-00001.parquet")
    pq.write_table(hf_table(imgs[n_train:], labels[n_train:], PHOTOS), root / "data" / "test-00000-of-00001.parquet")
    return root


def write_hf_arrow(root: Path, n: int = 8) -> Path:
    """save_to_disk layout: DIR/train/data-00000-of-00001.arrow (IPC stream) + dataset_info.json + state.json."""
    import pyarrow as pa

    imgs, labels = photo_crops(n, seed=1)
    table = hf_table(imgs, labels, PHOTOS).replace_schema_metadata({})
    d = root / "train"
    d.mkdir(parents=True)
    with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)
    features = {"image": {"_type": "Image"}, "label": {"names": PHOTOS, "_type": "ClassLabel"}}
    (d / "dataset_info.json").write_text(json.dumps({"features": features}))
    (d / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    return root
