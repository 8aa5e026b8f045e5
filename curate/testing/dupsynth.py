"""Generated near-duplicates of real photos, with ground truth: for tests, the benchmark and the
precision/recall figures in docs/dedupe.md.

Copies are edits of one photo: JPEG re-encodes, resizes, small crops, brightness, colour shifts (hue,
saturation, white balance) and an added watermark strip. Look-alikes (hard negatives) are other photos:
mirror images, a second shot of the same scene (small rotation, perspective, lighting, fresh noise, other
crop), the coins of skimage's coins.png each on one white background with the same watermark strip (like
the uCoin.net photos of the world-coins set), the other face of a coin (same rim, other design) and
letterboxed crops of different regions on one flat fill colour. `build_set` writes them all with the
ground truth: files that share `photo` are copies of one photo, every other pair is not.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from curate.sources.samples import PHOTOS, load_photo

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


def colour_shift(a: np.ndarray, hue: float = 0.0, sat: float = 0.0, warm: float = 0.0) -> np.ndarray:
    """Hue turned by `hue` of the colour circle, saturation scaled by 1 + `sat`, white balance moved by
    `warm` (red gain 1 + warm, blue gain 1 - warm); each a fraction, e.g. 0.05 = 5 %."""
    hsv = np.asarray(Image.fromarray(a).convert("HSV")).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue * 256) % 256
    hsv[..., 1] = hsv[..., 1] * (1 + sat)
    rgb = np.asarray(Image.fromarray(np.clip(hsv, 0, 255).astype(np.uint8), "HSV").convert("RGB"))
    gains = np.array([1 + warm, 1.0, 1 - warm], np.float32)
    return np.clip(rgb.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def watermark(a: np.ndarray, text: str = "uCoin.net", alpha: float = 0.6, width: float = 0.055) -> np.ndarray:
    """A semi-transparent light strip down the right edge with `text` repeated along it, written bottom
    to top like the uCoin.net strip on the world-coins photos; `width` is a fraction of the image width."""
    h, w = a.shape[:2]
    sw = max(4, round(w * width))
    font = ImageFont.load_default(size=11)
    run = Image.new("L", (max(h, 1) * 13 // sw + 1, 13), 0)  # the strip lying down, 13 px tall
    step = int(font.getlength(text + "   "))
    draw = ImageDraw.Draw(run)
    for x in range(2, run.width, step):
        draw.text((x, 0), text, fill=255, font=font)
    ink = np.asarray(run.rotate(90, expand=True).resize((sw, h), Image.BILINEAR), np.float32)[..., None] / 255
    out = a.astype(np.float32)
    strip = out[:, w - sw :] * (1 - alpha) + 236 * alpha
    out[:, w - sw :] = strip * (1 - 0.45 * ink) + 120 * 0.45 * ink
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


COPY_EDITS = {  # copies beyond EDITS; watermark only where the photo has none yet
    "watermark": watermark,
    "hue5": lambda a: colour_shift(a, hue=0.05),
    "sat-15": lambda a: colour_shift(a, sat=-0.15),
    "warm8": lambda a: colour_shift(a, warm=0.08),
    "cool12-sat10": lambda a: colour_shift(a, sat=0.10, warm=-0.12),
}


def perspective(im: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """Move each corner by up to `amount` of the side: a mildly different viewpoint."""
    w, h = im.size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    dst = src + rng.uniform(-amount, amount, (4, 2)) * (w, h)
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):  # output corner (x, y) samples input (u, v)
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
    coeffs = np.linalg.solve(np.array(rows), src.reshape(-1))
    return im.transform((w, h), Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC)


def relight(a: np.ndarray, rng: np.random.Generator, noise: float = 4.0) -> np.ndarray:
    """Another lighting gradient (+-10..18 % across the frame, random direction) and fresh sensor noise."""
    h, w = a.shape[:2]
    t = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(t) * np.linspace(-1, 1, w)[None, :] + np.sin(t) * np.linspace(-1, 1, h)[:, None]
    gain = 1 + rng.uniform(0.10, 0.18) * ramp / np.abs(ramp).max()
    out = a.astype(np.float32) * gain[..., None] + rng.normal(0, noise, a.shape)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def second_shot(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another photo of the same scene, never the same pixels re-encoded: turned 3-10 degrees, a mild
    perspective change, other framing (crop 10-16 % per side, off centre), other lighting, fresh noise."""
    h, w = a.shape[:2]
    angle = rng.uniform(3, 10) * rng.choice([-1, 1])
    im = perspective(Image.fromarray(a).rotate(angle, Image.BICUBIC), rng, 0.03)
    m = rng.uniform(0.10, 0.16, 4)  # left, top, right, bottom: beyond the rotated corners
    box = (round(w * m[0]), round(h * m[1]), round(w * (1 - m[2])), round(h * (1 - m[3])))
    return relight(np.asarray(im.crop(box).resize((w, h), Image.BICUBIC)), rng)


def flip(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1])


def letterbox(a: np.ndarray, side: int = 128, fill=FILL) -> np.ndarray:
    h, w = a.shape[:2]
    s = side / max(h, w)
    im = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas)


def coin_cutouts() -> list[tuple[np.ndarray, np.ndarray]]:
    """Each coin of skimage's coins.png as (pixels, mask), tinted bronze, silver or brass in turn."""
    from skimage import filters, measure, morphology

    photo = load_photo("coins")
    g = photo[:, :, 0]
    mask = morphology.closing(g > filters.threshold_otsu(g), morphology.disk(3))
    tints = np.array([[1.0, 0.78, 0.58], [0.97, 0.97, 1.0], [1.0, 0.9, 0.62]], np.float32)
    out = []
    for r in measure.regionprops(measure.label(mask)):
        if r.area >= 400:
            y0, x0, y1, x1 = r.bbox
            tint = tints[len(out) % len(tints)]
            out.append(((photo[y0:y1, x0:x1] * tint).astype(np.uint8), r.image))
    return out


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


def coin_scene(pixels: np.ndarray, mask: np.ndarray, side: int = 224, size: float = 0.86, angle: float = 0.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A coin on the one white background every coin photo shares, with the watermark strip: `size` is
    the coin's side as a fraction of the image, `shift` moves it (fractions), `angle` turns it."""
    h, w = mask.shape
    s = size * side / max(h, w)
    dim = (max(1, round(w * s)), max(1, round(h * s)))
    coin = Image.fromarray(pixels).resize(dim, Image.BICUBIC).rotate(angle, Image.BICUBIC)
    alpha = Image.fromarray(mask.astype(np.uint8) * 255).resize(dim, Image.BILINEAR).rotate(angle, Image.BILINEAR)
    shade = np.linspace(250, 238, side, dtype=np.float32)[:, None, None]  # the studio's soft top light
    canvas = Image.fromarray(np.broadcast_to(shade, (side, side, 3)).astype(np.uint8))
    x = round((side - dim[0]) / 2 + shift[0] * side)
    y = round((side - dim[1]) / 2 + shift[1] * side)
    canvas.paste(coin, (x, y), alpha)
    return watermark(np.asarray(canvas))


def other_face(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Coin `a`'s other face: its own rim, tone and outline around the design of coin `b`."""
    from scipy import ndimage
    from skimage import morphology

    pixels, mask = a
    h, w = mask.shape
    inner = ndimage.binary_erosion(mask, morphology.disk(max(1, round(0.12 * min(h, w) / 2))))
    design = np.asarray(Image.fromarray(b[0]).resize((w, h), Image.BICUBIC)).astype(np.float32)
    own = pixels[inner].astype(np.float32)
    design = (design - design[inner].mean(0)) / (design[inner].std(0) + 1e-6) * own.std(0) + own.mean(0)
    out = pixels.copy()
    out[inner] = np.clip(design[inner], 0, 255).astype(np.uint8)
    return out, mask


def region_crops(names=("astronaut", "chelsea", "coffee", "motorcycle", "china", "flower", "rocket",
                        "grace_hopper"), grid: int = 2, shot=None) -> list[np.ndarray]:
    """Letterboxed crops of the grid cells of several photos, all on the same fill; `shot(cell)`, when
    given, changes each cell before it is letterboxed (a second shot of the same region)."""
    out = []
    for n in names:
        a = load_photo(n)
        h, w = a.shape[:2]
        bh, bw = h // grid, w // grid
        for gy in range(grid):
            for gx in range(grid):
                cell = a[gy * bh : (gy + 1) * bh, gx * bw : (gx + 1) * bw]
                out.append(letterbox(shot(cell) if shot else cell))
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


def _cases(a: np.ndarray, watermarked: bool) -> dict[str, np.ndarray]:
    """Every copy of one photo: the edits, the colour shifts and, where it has none, a watermark."""
    edits = {**EDITS, **{k: f for k, f in COPY_EDITS.items() if not (watermarked and k == "watermark")}}
    return {name: fn(a) for name, fn in edits.items()}


def _groups(seed: int, per_family: int | None) -> list[tuple[str, np.ndarray, bool, dict[str, np.ndarray]]]:
    """(photo name, pixels, watermarked, its look-alikes by case) for every distinct photo of the set:
    the sample photos, the coin scenes and the letterboxed crops (the first `per_family` of each)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in [k for k in PHOTOS if k != "horse"][:per_family]:
        a = load_photo(n)
        out.append((n, a, False, {"flip": flip(a), "second-shot": second_shot(a, rng)}))
    cuts = coin_cutouts()
    for i, cut in enumerate(cuts[:per_family]):
        turn, dx, dy = rng.uniform(3, 10) * rng.choice([-1, 1]), *rng.uniform(-0.04, 0.04, 2)
        shot = relight(coin_scene(*cut, size=0.86 * rng.uniform(0.94, 1.06), angle=turn, shift=(dx, dy)), rng)
        back = coin_scene(*other_face(cut, cuts[(i + 1) % len(cuts)]), angle=rng.uniform(-20, 20))
        out.append((f"coin{i:02d}", coin_scene(*cut), True, {"second-shot": shot, "other-face": back}))
    names = ("astronaut", "chelsea", "coffee", "motorcycle", "china", "flower", "rocket", "grace_hopper")
    names = names[: None if per_family is None else -(-per_family // 4)]  # 4 crops per photo
    shots = region_crops(names, shot=lambda cell: second_shot(cell, rng))
    for i, a in enumerate(region_crops(names)[:per_family]):
        out.append((f"lbox{i:02d}", a, False, {"flip": flip(a), "second-shot": shots[i]}))
    return out


def build_set(root: Path, seed: int = 0, per_family: int | None = None) -> pd.DataFrame:
    """Write the dupsynth set under root/train/x/ and return its ground truth, one row per file:
    path (tree-relative), photo (files with the same photo are copies of one photo; every other pair
    is two different photos), source (the photo a file was made from), kind (original, copy or
    look-alike) and case (the edit or look-alike made). `per_family` keeps only the first photos of
    each family (sample photos, coins, crops): a small set for tests."""
    rows = []

    def put(name: str, a: np.ndarray, photo: str, source: str, kind: str, case: str, ext: str = ".jpg"):
        rel = f"train/x/{name}{ext}"
        save(Path(root) / rel, a)
        rows.append({"path": rel, "photo": photo, "source": source, "kind": kind, "case": case})

    for name, a, marked, looks in _groups(seed, per_family):
        put(name, a, name, name, "original", "original", ".png")
        for case, b in _cases(a, marked).items():
            put(f"{name}-{case}", b, name, name, "copy", case)
        for case, b in looks.items():
            put(f"{name}-{case}", b, f"{name}~{case}", name, "look-alike", case)
    return pd.DataFrame(rows)
