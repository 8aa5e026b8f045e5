"""Builders for coin-layout Kaggle sources made from real sample photos (used by the kaggle and pipeline tests)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from curate.sources.samples import load_photo

NAMES = {
    "1": "1 Cent,Australian dollar,australia",
    "2": "2 Cents,Australian dollar,australia",
    "3": "1 Penny,British Pound,united_kingdom",
    "4": "5 Cents,US Dollar,usa",  # no folder: an unmapped name
}  # class 5 has no name: an unknown id


def single_coins() -> list[np.ndarray]:
    """The 24 coins of scikit-image's coins.png, each cut out by its connected component."""
    from scipy import ndimage as ndi
    from skimage.filters import sobel, threshold_otsu
    from skimage.measure import label, regionprops
    from skimage.morphology import closing, disk

    gray = load_photo("coins")[:, :, 0]
    edges = sobel(gray)
    mask = ndi.binary_fill_holes(closing(edges > threshold_otsu(edges) * 0.5, disk(2)))
    boxes = sorted((r.bbox for r in regionprops(label(mask)) if r.area > 300), key=lambda b: (b[0] // 60, b[1]))
    crops = [load_photo("coins")[max(0, r0 - 3):r1 + 3, max(0, c0 - 3):c1 + 3] for r0, c0, r1, c1 in boxes]
    return [c for c in crops if min(c.shape[:2]) >= 20]


def jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def coin_files() -> dict[str, bytes]:
    """Relative path -> bytes of a world-coins-like dataset: coins/data/{train,validation,test}/<id>/."""
    coins = single_coins()
    assert len(coins) >= 18, len(coins)
    files: dict[str, bytes] = {}
    splits = ["train", "train", "train", "train", "validation", "test"]
    for i, c in enumerate(coins[:18]):
        cid = str(i // 6 + 1)
        files[f"coins/data/{splits[i % 6]}/{cid}/coin_{i:02d}.jpg"] = jpeg(c)
    for j, name in enumerate(["chelsea", "coffee", "astronaut", "rocket"]):
        split = ["train", "train", "validation", "test"][j]
        files[f"coins/data/{split}/5/{name}.jpg"] = jpeg(load_photo(name)[::2, ::2])
    files["coins/data/cat_to_name.json"] = json.dumps(NAMES).encode()
    return files


def add_problems(files: dict[str, bytes]) -> dict[str, bytes]:
    """A truncated JPEG, PNG bytes named .jpg, and a stray text file."""
    files = dict(files)
    good = files["coins/data/train/1/coin_00.jpg"]
    files["coins/data/train/1/truncated.jpg"] = good[: len(good) // 3]
    files["coins/data/train/2/really_png.jpg"] = png(load_photo("chelsea")[:64, :64])
    files["coins/data/train/2/notes.txt"] = b"not an image"
    return files


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(name, files[name])
    return path


def write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root
