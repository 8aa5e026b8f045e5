"""The report's mirrored-copy check on small images (generated look-alike discs, bench/dedupe_sets.discs): a
mirrored copy is found, other discs whose gray structure matches once flipped are not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from curate.report import build_report

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from dedupe_sets import discs  # noqa: E402


def test_mirrored_small_look_alikes_are_not_mirrored_copies(tmp_path):
    root = tmp_path / "discs"
    rng = np.random.default_rng(0)
    splits = ["train"] * 6 + ["val", "test"]
    for k, a in enumerate([*discs(300, 40, rng), *discs(300, 56, rng)]):
        folder = root / splits[k % len(splits)] / f"d{k % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(folder / f"d{k:04d}.png")
    first = np.asarray(Image.open(root / "train" / "d0" / "d0000.png"))
    Image.fromarray(np.ascontiguousarray(first[:, ::-1])).save(root / "val" / "d0" / "mirror.png")
    res = build_report(root, tmp_path / "out", workers=1, quiet=True)
    found = json.loads(res.json_path.read_text())["checks"]["mirror-leakage"]["findings"]
    assert [f["members"] for f in found] == [["train/d0/d0000.png", "val/d0/mirror.png"]]
