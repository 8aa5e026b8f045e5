"""Generated near-duplicates of real photos, with ground truth: for tests, the benchmark and the
precision/recall figures in docs/dedupe.md.

Positives are edits of one photo (JPEG re-encodes, resizes, small crops, brightness); hard negatives
are look-alikes: mirror images, the coins of skimage's coins.png one by one (centred round objects) and
letterboxed crops of different regions on one flat fill colour.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

from curate.samples import PHOTOS, load_photo

FILL = (114, 114, 114)


def jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def crop(a: np.ndarray, frac: float) -> np.ndarray:
    h, w = a.shape[:2]
    c = int(frac * min(w, h))
    return a[c : h - c, c : w - c]


def resize(a: np.ndarray, scale: float) -> np.ndarray:
    im = Image.fromarray(a)
    return np.asarray(im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))), Image.BILINEAR))


def brightness(a: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(a)).enhance(factor))


EDITS = {
    "q30": lambda a: jpeg(a, 30),
    "q50": lambda a: jpeg(a, 50),
    "q75": lambda a: jpeg(a, 75),
    "q95": lambda a: jpeg(a, 95),
    "half": lambda a: resize(a, 0.5),
    "three-quarter": lambda a: resize(a, 0.75),
    "crop3": lambda a: crop(a, 0.03),
    "crop6": lambda a: crop(a, 0.06),
    "darker": lambda a: brightness(a, 0.85),
    "brighter": lambda a: brightness(a, 1.15),
    "combo": lambda a: jpeg(brightness(resize(crop(a, 0.02), 0.6), 1.1), 60),
}


def flip(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1])


def letterbox(a: np.ndarray, side: int = 128, fill=FILL) -> np.ndarray:
    h, w = a.shape[:2]
    s = side / max(h, w)
    im = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas)


def coins(side: int = 96) -> list[np.ndarray]:
    """Each coin of skimage's coins.png, centred on a flat canvas: 20-odd look-alike round objects."""
    from skimage import filters, measure, morphology

    photo = load_photo("coins")
    g = photo[:, :, 0]
    mask = morphology.closing(g > filters.threshold_otsu(g), morphology.disk(3))
    out = []
    for r in measure.regionprops(measure.label(mask)):
        if r.area < 400:
            continue
        y0, x0, y1, x1 = r.bbox
        out.append(letterbox(photo[max(0, y0 - 3) : y1 + 3, max(0, x0 - 3) : x1 + 3], side))
    return out


def region_crops(names=("astronaut", "chelsea", "coffee", "motorcycle", "china", "flower", "rocket",
                        "grace_hopper"), grid: int = 2) -> list[np.ndarray]:
    """Letterboxed crops of the grid cells of several photos, all on the same fill."""
    out = []
    for n in names:
        a = load_photo(n)
        h, w = a.shape[:2]
        bh, bw = h // grid, w // grid
        for gy in range(grid):
            for gx in range(grid):
                out.append(letterbox(a[gy * bh : (gy + 1) * bh, gx * bw : (gx + 1) * bw]))
    return out


def originals() -> dict[str, np.ndarray]:
    """Distinct images: the sample photos, the coins and the letterboxed crops."""
    out = {n: load_photo(n) for n in PHOTOS if n != "horse"}
    out.update({f"coin{i:02d}": c for i, c in enumerate(coins())})
    out.update({f"lbox{i:02d}": c for i, c in enumerate(region_crops())})
    return out


def save(path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(a).save(path, quality=92)
    else:
        Image.fromarray(a).save(path)
