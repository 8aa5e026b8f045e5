"""Small images: what the small stem (`--stem small`) gains over the ImageNet stem, on real scans.

    python bench/train_small.py [--data digits|photos] [--arch resnet18] [--size 28] [--per-class 25]
                                [--epochs 6] [--seeds 0,1,2] [--threads 1] [--device cpu]

--data digits: scikit-learn's handwritten digits (1,797 real 8x8 scans, upscaled to --size px, grayscale
PNGs), --per-class training and --per-class validation scans of each digit.
--data photos: crops of 10 real package photos (curate.sources.samples), one class per photo, at --size px:
training crops from the left 60 % of each photo, validation crops from the right 40 % (no shared pixels).
Either is written into a temp tree. Then trains --arch
from scratch (--weights none) with each stem, for the same --epochs (no early stopping, no augmentation),
once per seed, and prints the validation top-1 of the last epoch and the training time: mean and
standard deviation over the seeds, per-seed values, and the small stem's ratios to the ImageNet stem
measured in the same run. Defaults take a few minutes on a shared 2-core CPU; on a GPU use e.g.
--per-class 140 --epochs 20.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from curate.train import train  # noqa: E402


def make_digits(root: Path, per_class: int, side: int) -> int:
    """ROOT/{train,val}/<digit>/ of real digit scans; returns the number of files written."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n = 0
    for digit in range(10):
        idx = np.flatnonzero(d.target == digit)
        for split, part in (("train", idx[:per_class]), ("val", idx[per_class : 2 * per_class])):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                im = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8), "L")
                im.resize((side, side), Image.BILINEAR).save(folder / f"{i}.png")
                n += 1
    return n


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "hubble", "retina", "grace_hopper", "china",
          "flower")


def make_photo_crops(root: Path, per_class: int, side: int, seed: int = 0) -> int:
    """ROOT/{train,val}/<photo>/ of square crops (a quarter to a half of the strip's short side)."""
    from curate.sources.samples import load_photo

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        img = load_photo(name)
        h, w = img.shape[:2]
        cut = int(w * 0.6)
        for split, (x0, x1) in (("train", (0, cut)), ("val", (cut, w))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            short = min(h, x1 - x0)
            for i in range(per_class):
                s = int(rng.integers(short // 4, short // 2 + 1))
                y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(x0, x1 - s + 1))
                Image.fromarray(img[y : y + s, x : x + s]).resize((side, side), Image.BILINEAR).save(
                    folder / f"{i}.png")
    return 2 * per_class * len(PHOTOS)


def run(tree: Path, out: Path, args, stem: str, seed: int) -> dict:
    t0 = time.perf_counter()
    res = train(tree, out=out, arch=args.arch, weights="none", stem=stem, size=args.size, epochs=args.epochs,
                patience=0, augment="none", batch_size=args.batch_size, seed=seed, device=args.device,
                threads=args.threads, workers=1, quiet=True)
    return {"top1": res.history[-1]["val_acc"], "train_s": res.metrics["train_seconds"],
            "wall_s": time.perf_counter() - t0, "ms_b1": res.metrics["inference_ms_batch1"]}


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("digits", "photos"), default="digits")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--per-class", type=int, default=25, help="training (and validation) scans per digit")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / args.data
        make = make_digits if args.data == "digits" else make_photo_crops
        n = make(tree, args.per_class, args.size)
        what = "real digit scans" if args.data == "digits" else "crops of 10 real photos"
        print(f"{n} {what} at {args.size} px, {args.per_class} train + {args.per_class} val per class; "
              f"{args.arch} from scratch, {args.epochs} epochs, batch {args.batch_size}, seeds {seeds}, "
              f"{args.device}, {args.threads} thread(s)", flush=True)
        results: dict[str, list[dict]] = {"imagenet": [], "small": []}
        for seed in seeds:
            for stem in results:
                r = run(tree, Path(tmp) / f"{stem}-{seed}", args, stem, seed)
                results[stem].append(r)
                print(f"  seed {seed} {stem:8s} stem: top-1 {r['top1']:.3f}, train {r['train_s']:.1f} s", flush=True)
    print("\n| stem | val top-1 (mean ± sd) | per seed | train s (mean) | infer ms/img b1 |")
    print("|---|---|---|---|---|")
    for stem, rows in results.items():
        m, s = spread([r["top1"] for r in rows])
        per = ", ".join(f"{r['top1']:.3f}" for r in rows)
        print(f"| {stem} | {m:.3f} ± {s:.3f} | {per} | {spread([r['train_s'] for r in rows])[0]:.1f} | "
              f"{spread([r['ms_b1'] for r in rows])[0]:.2f} |")
    small, big = results["small"], results["imagenet"]
    gain = [a["top1"] - b["top1"] for a, b in zip(small, big, strict=True)]
    g, gs = spread(gain)
    t = spread([r["train_s"] for r in small])[0] / max(spread([r["train_s"] for r in big])[0], 1e-9)
    print(f"\nsmall stem - imagenet stem, top-1: {g:+.3f} ± {gs:.3f} (same seeds); training time ratio {t:.1f}x")


if __name__ == "__main__":
    main()
