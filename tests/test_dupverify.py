"""The verification prefilter (curate.dupverify.descriptor / prefilter_scores) on real photos: it keeps every
pair score() accepts, drops most look-alikes, and find_duplicates still finds exactly coins-dev's copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate import dupsynth
from curate.dedupe import desc_of, find_duplicates
from curate.dupverify import PRE_MIN, VERIFY_MIN, descriptor, make_thumb, prefilter_scores, score

REPO = Path(__file__).resolve().parents[1]
COINS = REPO / ".." / "shared" / "data" / "coins-dev"
TRUTH = REPO / "bench" / "coins-dev-truth.csv"


def coin_photos(step: int) -> list[np.ndarray]:
    files = sorted(COINS.rglob("*.jpg"))
    assert len(files) > 600, "coins-dev is missing (../shared/data/coins-dev)"
    return [np.asarray(Image.open(p).convert("RGB")) for p in files[::step]]


def pre(a: np.ndarray, b: np.ndarray) -> float:
    return float(prefilter_scores(np.stack([descriptor(make_thumb(a)), descriptor(make_thumb(b))]),
                                  np.array([[0, 1]]))[0])


def test_prefilter_keeps_every_copy_score_accepts(tmp_path):
    """Every dupsynth copy score() accepts passes the prefilter, descriptors made from the files (JPEG)
    the way find_duplicates makes them, with a margin."""
    photos = coin_photos(40) + [dupsynth.letterbox(a) for a in dupsynth.coins()[::4]]
    accepted = 0
    for n, a in enumerate(photos):
        ta, da = make_thumb(a), None
        for name, edit in dupsynth.EDITS.items():
            b = edit(a)
            if score(ta, make_thumb(b)) < VERIFY_MIN:
                continue
            accepted += 1
            if da is None:
                dupsynth.save(tmp_path / f"{n}.png", a)
                da = desc_of(str(tmp_path / f"{n}.png"))
            dupsynth.save(tmp_path / f"{n}-{name}.jpg", b)
            db = desc_of(str(tmp_path / f"{n}-{name}.jpg"))
            p = float(prefilter_scores(np.stack([da, db]), np.array([[0, 1]]))[0])
            assert p >= PRE_MIN + 0.1, (name, p)
    assert accepted >= 0.95 * len(photos) * len(dupsynth.EDITS)


def test_prefilter_drops_most_lookalikes():
    """Different coins-dev photos (other coins on the same white background): most never reach score()."""
    photos = coin_photos(15)
    desc = np.stack([descriptor(make_thumb(a)) for a in photos])
    pairs = np.array([(i, j) for i in range(len(photos)) for j in range(i + 1, len(photos))])
    pre_scores = prefilter_scores(desc, pairs)
    assert pre_scores.shape == (len(pairs),)
    assert (pre_scores >= PRE_MIN).mean() < 0.1
    # batches give the same answer as one pair at a time
    k = np.flatnonzero(pre_scores >= 0)[:5]
    for n in k:
        assert abs(pre(photos[pairs[n, 0]], photos[pairs[n, 1]]) - pre_scores[n]) < 1e-5


def test_prefilter_flat_images():
    grey = np.full((40, 60, 3), 128, np.uint8)
    photo = coin_photos(200)[0]
    assert pre(grey, grey.copy()) == 1.0  # nothing to compare: score() decides
    assert pre(grey, photo) < PRE_MIN


@pytest.mark.slow
def test_coins_dev_clusters_match_the_truth(tmp_path):
    """find_duplicates on a copy of coins-dev clusters exactly its hand-checked copy pairs."""
    root = tmp_path / "coins"
    shutil.copytree(COINS, root)
    truth = pd.read_csv(TRUTH)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(truth["a"], truth["b"], strict=True):
        parent[find(a)] = find(b)
    res = find_duplicates(root, workers=1, quiet=True)
    cluster_of = {m: c.id for c in res.clusters for m in c.members}
    for a, b in zip(truth["a"], truth["b"], strict=True):
        assert a in cluster_of and cluster_of[a] == cluster_of.get(b), (a, b)
    for c in res.clusters:
        assert len({find(m) for m in c.members}) == 1, c.members  # never joins two truth families
        assert all(m in parent for m in c.members), c.members


def test_hashing_pass_descriptor_matches_and_is_cached(tmp_path):
    """hash_files makes each descriptor from its own reduced decode (JPEG and PNG), equal to desc_of's,
    and a rerun takes it from the cache; an unreadable file has none."""
    from curate.hashing import hash_files

    a = coin_photos(300)[0]
    dupsynth.save(tmp_path / "train/x/a.jpg", a)
    dupsynth.save(tmp_path / "train/x/b.png", dupsynth.crop(a, 0.03))
    (tmp_path / "train/x/bad.jpg").write_bytes(b"not an image")
    first = hash_files(tmp_path, workers=1, quiet=True).set_index("path")
    for p in ("train/x/a.jpg", "train/x/b.png"):
        assert first.loc[p, "desc"] == desc_of(str(tmp_path / p)).tobytes()
    assert first.loc["train/x/bad.jpg", "desc"] is None
    again = hash_files(tmp_path, workers=1, quiet=True).set_index("path")
    assert again.loc["train/x/a.jpg", "desc"] == first.loc["train/x/a.jpg", "desc"]
    d = np.stack([np.frombuffer(first.loc[p, "desc"], np.int8).reshape(descriptor(make_thumb(a)).shape)
                  for p in ("train/x/a.jpg", "train/x/b.png")])
    assert prefilter_scores(d, np.array([[0, 1]]))[0] >= PRE_MIN  # the 3 % crop passes


def test_files_without_a_descriptor_are_described_again(tmp_path, monkeypatch):
    """Where hash_files has no descriptor for a file, _verify makes one itself: same clusters."""
    import curate.dedupe as dd

    a, b = coin_photos(100)[:2]
    for name, img in {"a.jpg": a, "a_q50.jpg": dupsynth.jpeg(a, 50), "a_crop.png": dupsynth.crop(a, 0.03),
                      "b.jpg": b, "b_half.jpg": dupsynth.resize(b, 0.5)}.items():
        dupsynth.save(tmp_path / "train/x" / name, img)
    with_desc = find_duplicates(tmp_path, workers=1, quiet=True)
    real = dd.hash_files
    monkeypatch.setattr(dd, "hash_files", lambda *a, **k: real(*a, **k).assign(desc=None))
    without = find_duplicates(tmp_path, workers=1, quiet=True)
    assert [c.members for c in without.clusters] == [c.members for c in with_desc.clusters]
    assert sorted(m for c in with_desc.clusters for m in c.members) == sorted(
        f"train/x/{n}" for n in ("a.jpg", "a_q50.jpg", "a_crop.png", "b.jpg", "b_half.jpg"))
