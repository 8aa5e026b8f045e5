"""curate.testing.dupsynth: the generated copies and look-alikes are what their names say, with explicit truth."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from curate.sources.samples import load_photo
from curate.testing import dupsynth


def photo(side: int = 128) -> np.ndarray:
    return dupsynth.resize(load_photo("chelsea"), side / 451)


def test_watermark_is_a_light_strip_with_text_on_the_right_edge_only():
    a = photo()
    b = dupsynth.watermark(a)
    sw = round(a.shape[1] * 0.055)
    assert b.shape == a.shape
    assert np.array_equal(a[:, : -sw], b[:, : -sw])  # the photo itself is untouched
    strip = b[:, -sw:].astype(float)
    assert strip.mean() > a[:, -sw:].astype(float).mean() + 20  # light
    assert strip.std() > 5  # with lettering, not a flat band
    assert strip.min() < 200  # the text is darker than the strip


def test_colour_shifts_move_hue_saturation_and_white_balance_by_a_few_percent():
    a = photo()
    same = dupsynth.colour_shift(a)
    assert np.abs(same.astype(int) - a.astype(int)).max() <= 3  # HSV round trip only
    warm = dupsynth.colour_shift(a, warm=0.08).astype(float)
    assert warm[..., 0].mean() > a[..., 0].mean() * 1.03 and warm[..., 2].mean() < a[..., 2].mean() * 0.97
    hsv = lambda x: np.asarray(Image.fromarray(x).convert("HSV")).astype(float)  # noqa: E731
    assert hsv(dupsynth.colour_shift(a, sat=-0.15))[..., 1].mean() < hsv(a)[..., 1].mean() * 0.9
    hue = np.abs(hsv(dupsynth.colour_shift(a, hue=0.05))[..., 0] - hsv(a)[..., 0])
    assert 8 <= np.median(np.minimum(hue, 256 - hue)) <= 18  # about 5 % of the circle (12.8 of 256)


def test_second_shot_is_another_photo_of_the_same_scene():
    a = photo()
    rng = np.random.default_rng(1)
    b = dupsynth.second_shot(a, rng)
    assert b.shape == a.shape
    diff = np.abs(b.astype(float) - a.astype(float))
    assert diff.mean() > 10  # other framing, angle and light: not the same pixels re-encoded
    c = dupsynth.second_shot(a, np.random.default_rng(1))
    assert np.array_equal(b, c)  # seeded
    ga, gb = a.mean(2), b.mean(2)
    assert abs(ga.mean() - gb.mean()) < 25  # still the same scene and exposure


def test_coin_scenes_share_background_and_strip_and_other_face_keeps_the_rim():
    cuts = dupsynth.coin_cutouts()
    assert len(cuts) >= 20
    a, b = dupsynth.coin_scene(*cuts[0]), dupsynth.coin_scene(*cuts[1])
    assert a.shape == (224, 224, 3)
    assert np.array_equal(a[:4, :100], b[:4, :100])  # same white background
    assert np.array_equal(a[:, -12:], b[:, -12:])  # same watermark strip (coins stay clear of it)
    assert a[:4, :100].min() > 230
    face, mask = dupsynth.other_face(cuts[0], cuts[1])
    assert np.array_equal(mask, cuts[0][1])
    edge = mask & ~np.roll(mask, 2, axis=1)  # the left rim
    assert np.array_equal(face[edge], cuts[0][0][edge])
    assert not np.array_equal(face, cuts[0][0])


def test_build_set_truth_is_explicit_and_deterministic(tmp_path):
    t = dupsynth.build_set(tmp_path / "a", seed=3, per_family=1)
    assert list(t.columns) == ["path", "photo", "source", "kind", "case"]
    assert set(t["kind"]) == {"original", "copy", "look-alike"}
    assert t["path"].is_unique
    for p in t["path"]:
        assert (tmp_path / "a" / p).is_file()
    orig = t[t["kind"] == "original"]
    assert len(orig) == 3 and set(orig["photo"]) == set(orig["source"])  # one per family
    copies = t[t["kind"] == "copy"]
    assert (copies["photo"] == copies["source"]).all()
    assert {"watermark", "hue5", "sat-15", "warm8", "q30", "crop6"} <= set(copies["case"])
    assert "watermark" not in set(copies.loc[copies["source"].str.startswith("coin"), "case"])  # has one
    looks = t[t["kind"] == "look-alike"]
    assert looks["photo"].is_unique and not set(looks["photo"]) & set(orig["photo"])
    assert {"second-shot", "other-face", "flip"} <= set(looks["case"])
    u = dupsynth.build_set(tmp_path / "b", seed=3, per_family=1)
    assert t.equals(u)
    digest = lambda root, p: hashlib.sha256((root / p).read_bytes()).hexdigest()  # noqa: E731
    assert all(digest(tmp_path / "a", p) == digest(tmp_path / "b", p) for p in t["path"])
