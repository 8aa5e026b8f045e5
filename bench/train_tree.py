"""A generated ImageFolder tree of real-photo crops for training benchmarks (no downloads).

    python bench/train_tree.py OUT [--classes 20] [--images 2000] [--side 224] [--seed 0]

Class k is one region of one of the colour sample photos that installed packages ship (see
curate/sources/samples.py): up to 10 photos, split into 1, 2, 3 ... horizontal bands as more classes are asked
for. Each image is a random square crop inside its class's band (half to all of the band's shorter
side), resized to --side and saved as JPEG q90. Writes OUT/train/<class>/ and OUT/val/<class>/ (val: 1/8
of --images, at least 2 per class); --images counts training images over all classes.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.sources.samples import load_photo  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "grace_hopper", "china", "flower", "hubble",
          "retina")


def class_regions(classes: int) -> list[tuple[str, np.ndarray]]:
    """(name, pixels) of each class: photos cut into as many horizontal bands as needed."""
    bands = math.ceil(classes / len(PHOTOS))
    out = []
    for b in range(bands):
        for name in PHOTOS:
            if len(out) == classes:
                return out
            img = load_photo(name)
            h = img.shape[0] // bands
            out.append((f"{name}-{b}" if bands > 1 else name, img[b * h : (b + 1) * h]))
    return out


def make_tree(root: Path, classes: int = 3, images: int = 192, side: int = 64, seed: int = 0) -> Path:
    if not 1 <= classes <= 10 * len(PHOTOS):
        raise SystemExit(f"--classes must be 1 to {10 * len(PHOTOS)}")
    rng = np.random.default_rng(seed)
    per = max(2, images // classes)
    for name, img in class_regions(classes):
        h, w = img.shape[:2]
        for split, n in (("train", per), ("val", max(2, per // 8))):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                s = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
                y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                im = Image.fromarray(np.ascontiguousarray(img[y : y + s, x : x + s]))
                im.resize((side, side), Image.BILINEAR).save(d / f"{i}.jpg", quality=90)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--images", type=int, default=2000, help="training images over all classes")
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty")
    make_tree(args.out, args.classes, args.images, args.side, args.seed)
    n = sum(1 for _ in args.out.rglob("*.jpg"))
    print(f"wrote {n} images in {args.classes} classes to {args.out}")


if __name__ == "__main__":
    main()
