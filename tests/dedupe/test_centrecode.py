"""The centre code (curate.dedupe.centrecode) and the streamed search (curate.dedupe.candidates) on real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.cli import main
from curate.dedupe import centrecode
from curate.dedupe.find import find_duplicates
from curate.dedupe.hashing import hash_files
from curate.dedupe.search import distances, hamming_pairs, pack
from curate.sources.samples import PHOTOS, load_photo
from curate.testing import dupsynth

COINS = Path(__file__).resolve().parents[3] / "shared" / "data" / "coins-dev"


def gray(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).convert("L"))


def test_copies_keep_their_code_and_a_side_strip_does_not_move_it():
    rows = []
    for name in sorted(PHOTOS):
        a = load_photo(name)
        rows += [centrecode.coefficients(gray(x)) for x in
                 (a, dupsynth.jpeg(a, 50), dupsynth.brightness(a, 1.2), dupsynth.watermark(a))]
    coef = np.stack(rows)  # (photos * 4, regions, NCOEF)
    codes = centrecode.fit(coef[:, 0]).codes(coef[:, 0])  # under MIN_FIT: each at its own median
    d = distances(codes[0::4].repeat(3, axis=0), np.delete(codes, np.s_[0::4], axis=0))
    assert d.max() <= 8, d  # re-encode, brightness, a watermark strip down the edge
    others = hamming_pairs(codes[0::4], 14, 64)[0]
    assert len(others) == 0  # different photos are far apart


def test_a_crop_matches_the_zoomed_centre():
    a = load_photo("chelsea")
    full = centrecode.coefficients(gray(a))
    crop = centrecode.coefficients(gray(dupsynth.crop(a, 0.06)))  # 6 % off every side
    f = centrecode.Fit(None, None, None)
    assert distances(f.codes(crop[:1]), f.codes(full[2:3]))[0] < distances(f.codes(crop[:1]), f.codes(full[:1]))[0]


def test_fit_is_deterministic_and_balances_every_bit():
    rng = np.random.default_rng(0)
    coef = rng.normal(size=(600, centrecode.NCOEF)) @ rng.normal(size=(centrecode.NCOEF, centrecode.NCOEF))
    a, b = centrecode.fit(coef), centrecode.fit(coef.copy())
    assert np.array_equal(a.codes(coef), b.codes(coef))
    bits = np.unpackbits(a.codes(coef).astype(">u8").view(np.uint8), axis=1)[:, : centrecode.NCOEF]
    assert np.allclose(bits.mean(axis=0), 0.5, atol=0.01)  # each bit splits the set in half


@pytest.mark.slow
def test_real_coins_search_proposes_far_fewer_pairs_and_the_json_counts_them(tmp_path):
    if not (COINS / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    root = tmp_path / "coins"
    shutil.copytree(COINS, root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    files = hash_files(root, workers=2, quiet=True)
    by_hash = len(hamming_pairs(pack(files["hash"].tolist(), 64), 12, 64)[0])
    res = find_duplicates(root, workers=2, quiet=True)
    c = res.counts
    assert c.candidates >= c.scored > 0 and c.candidates == c.scored + c.colour + c.prefilter
    assert c.candidates * 5 < by_hash  # phash within 12 bits: 5,816 pairs (most of them byte copies)
    out = tmp_path / "d.json"
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", str(root), "--dry-run", "--json", str(out)])
    assert e.value.code in (0, 1)
    assert json.loads(out.read_text())["candidates"] == c.to_dict()
