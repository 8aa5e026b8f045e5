"""curate.dedupe.small: the small-image test's pair search, and the candidate search around small images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from curate.dedupe.candidates import SMALL_PART, parts, search
from curate.dedupe.hashing import hash_file
from curate.dedupe.small import TINY_MAX, VALUES, Tiny

COINS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coins-dev"


def brute_pairs(tiny: Tiny) -> set[tuple[int, int]]:
    groups = np.flatnonzero(tiny.row >= 0)
    out = set()
    for k, a in enumerate(groups.tolist()):
        b = groups[k + 1 :]
        if len(b):
            far = tiny.far(np.full(len(b), a), b)
            out |= {(a, int(x)) for x in b[~far]}
    return out


def test_pairs_are_exactly_the_pairs_that_pass_the_test():
    """The k-d tree search on principal components misses nothing within the radius and keeps nothing
    beyond it: the same pairs as testing every pair, on copies, near misses and strangers."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (60, 64, 3)).astype(np.float32)
    thumbs = [base]
    for scale in (1.5, 3.5, 4.5, 8.0):  # around the threshold of 4 gray levels RMS
        thumbs.append(np.clip(base + rng.normal(0, scale, base.shape) + rng.uniform(-20, 20, (60, 1, 3)), 0, 255))
    raw = [np.round(t).astype(np.uint8).tobytes() for group in thumbs for t in group]
    raw[7] = None  # a larger image among them: no average
    tiny = Tiny.of(raw)
    a, b = tiny.pairs()
    got = set(zip(a.tolist(), b.tolist(), strict=True))
    want = brute_pairs(tiny)
    assert got == want and len(got) == len(a) and 60 < len(want) < 60 * 10
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == sorted(got)  # sorted, whatever the tree's order
    assert TINY_MAX**2 * VALUES > 0


def test_the_slab_tasks_together_find_exactly_the_pairs(monkeypatch):
    """Cut into many slabs (a few dozen images each, so many pairs cross a slab edge), the tasks of the
    pair search each find their own pairs and together exactly those of testing every pair, once each."""
    from curate.dedupe import small

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (80, 64, 3)).astype(np.float32)
    drift = rng.normal(0, 1, (1, 64, 3)) * 6  # one shared direction: many near misses along the first axis
    thumbs = [base] + [np.clip(base + rng.normal(0, s, base.shape) + t * drift, 0, 255)
                       for s, t in ((1.0, 0.3), (2.5, -0.4), (3.5, 0.5), (5.0, 0.0))]
    monkeypatch.setattr(small, "SLAB", 37)
    tiny = Tiny.of([np.round(t).astype(np.uint8).tobytes() for group in thumbs for t in group])
    assert tiny.slabs() == 11
    per_slab = [set(zip(*(x.tolist() for x in tiny.pairs(s)), strict=True)) for s in range(tiny.slabs())]
    union = set().union(*per_slab)
    assert sum(map(len, per_slab)) == len(union) == len(brute_pairs(tiny)) and union == brute_pairs(tiny)
    assert sum(1 for p in per_slab if p) > 5


def _rows(files: list[Path]) -> pd.DataFrame:
    rows = [{"path": str(p), **hash_file(p)} for p in files]
    return pd.DataFrame(rows)


def test_small_images_are_not_paired_by_the_code_search_but_their_other_pairs_are_found(tmp_path):
    """Two small images pair only through their averages; a small centre crop of a larger photo is still a
    candidate (its full code against the larger image's zoom codes); the parts find each pair once."""
    photos = sorted(COINS.rglob("*.jpg"))[::25][:12]
    assert len(photos) == 12, "coins-dev is missing (../shared/data/coins-dev)"
    files = []
    for k, p in enumerate(photos):
        im = Image.open(p).convert("RGB")
        im.save(tmp_path / f"big{k}.png")
        files.append(tmp_path / f"big{k}.png")
        small = im.resize((40, 40), Image.LANCZOS)
        small.save(tmp_path / f"small{k}.png")
        small.save(tmp_path / f"small{k}-q80.jpg", quality=80)
        files += [tmp_path / f"small{k}.png", tmp_path / f"small{k}-q80.jpg"]
    w, h = im.size
    im.crop((w * 6 // 100, h * 6 // 100, w * 94 // 100, h * 94 // 100)).resize((48, 48), Image.LANCZOS).save(
        tmp_path / "crop.png")
    files.append(tmp_path / "crop.png")
    ok = _rows(files)
    groups = np.arange(len(ok))
    tiny = Tiny.of(ok["tiny"].to_numpy())
    srch = search(ok, groups, 12, 64, {g: g for g in groups}, tiny)  # the default threshold (code radius 14)
    name = {k: Path(p).stem for k, p in enumerate(ok["path"])}
    whole = {(name[a], name[b]) for a, b, _ in (x for bt in srch.batches() for x in zip(*bt, strict=True))}
    small = {n for n in name.values() if n.startswith(("small", "crop"))}
    both_small = {p for p in whole if p[0] in small and p[1] in small}
    assert both_small == {(f"small{k}", f"small{k}-q80") for k in range(12)}  # only the copies
    # the central 88 % of a larger photo, as a small image: only its full code against the larger
    # image's zoom code is within the radius (4 bits; full against full: 20)
    assert ("big11", "crop") in whole or ("crop", "big11") in whole
    got = [(name[a], name[b]) for part in parts(len(groups), small=tiny.slabs())
           for bt in srch.batches(part) for a, b, _ in zip(*bt, strict=True)]
    assert parts(len(groups), small=tiny.slabs())[0] == (SMALL_PART, 0)
    assert len(got) == len(set(got)) and set(got) == whole


def test_with_every_image_small_there_is_no_code_search(tmp_path):
    """A tree of small images only: no centre codes are fitted or indexed, the search is the small images'
    own tasks, and its pairs are the copies (the same as where larger images make a code search run)."""
    photos = sorted(COINS.rglob("*.jpg"))[::25][:12]
    assert len(photos) == 12, "coins-dev is missing (../shared/data/coins-dev)"
    files = []
    for k, p in enumerate(photos):
        small = Image.open(p).convert("RGB").resize((40, 40), Image.LANCZOS)
        small.save(tmp_path / f"small{k}.png")
        small.save(tmp_path / f"small{k}-q80.jpg", quality=80)
        files += [tmp_path / f"small{k}.png", tmp_path / f"small{k}-q80.jpg"]
    ok = _rows(files)
    groups = np.arange(len(ok))
    tiny = Tiny.of(ok["tiny"].to_numpy())
    srch = search(ok, groups, 12, 64, {g: g for g in groups}, tiny)
    assert len(srch.codes) == 0 and srch.index is None
    name = {k: Path(p).stem for k, p in enumerate(ok["path"])}
    pairs = [(name[a], name[b]) for bt in srch.batches() for a, b, _ in zip(*bt, strict=True)]
    assert sorted(pairs) == sorted((f"small{k}", f"small{k}-q80") for k in range(12))
    assert parts(0, small=tiny.slabs()) == [(SMALL_PART, s) for s in range(tiny.slabs())]
    assert [x for part in parts(len(groups)) for x in srch.batches(part)] == []  # no query part finds more


def test_a_tree_of_small_photos_end_to_end(tmp_path):
    """find_duplicates on 40-px real photos (coins-dev shrunk, 24 coins) with JPEG re-encodes of half of
    them: the candidates are exactly the 12 copy pairs (the small-image search proposes nothing else, and
    no other coin), and no cluster joins two coins. (Whether `score` then confirms them is its own
    question: at 40 px it rates these re-encodes 0.75-0.78 against its 0.78; docs/dedupe.md.)"""
    from curate.dedupe.find import find_duplicates

    photos = sorted(COINS.rglob("*.jpg"))[::20][:24]
    assert len(photos) == 24, "coins-dev is missing (../shared/data/coins-dev)"
    root = tmp_path / "small" / "train"
    for k, p in enumerate(photos):
        (root / f"c{k}").mkdir(parents=True)
        im = Image.open(p).convert("RGB").resize((40, 40), Image.LANCZOS)
        im.save(root / f"c{k}" / "a.png")
        if k % 2 == 0:
            im.save(root / f"c{k}" / "b.jpg", quality=85)
    res = find_duplicates(tmp_path / "small", workers=1, quiet=True)
    near = res.pairs[res.pairs["kind"] == "near"]
    assert res.counts.candidates == 12 and res.counts.small == 0
    assert sorted(zip(near["a"], near["b"], strict=True)) == sorted(
        (f"train/c{k}/a.png", f"train/c{k}/b.jpg") for k in range(0, 24, 2))
    assert all(len({m.split("/")[1] for m in c.members}) == 1 for c in res.clusters)  # never two coins


def test_a_mirrored_small_image_needs_its_colour_layout_mirrored_too():
    """find.mirrored_similarity (the report's mirrored-copy check) between two small images: a coin photo
    and its left-right mirror are a mirrored copy; another coin, mirrored or not, is not, even where its
    gray structure after the flip scores high (the small-image test, on the flipped averages)."""
    from curate.dedupe.find import mirrored_similarity
    from curate.dedupe.verify import make_thumb

    photos = sorted(COINS.rglob("*.jpg"))[::40][:8]
    assert len(photos) == 8, "coins-dev is missing (../shared/data/coins-dev)"
    small = [np.asarray(Image.open(p).convert("RGB").resize((40, 40), Image.LANCZOS)) for p in photos]
    thumbs = [make_thumb(x) for x in small]
    assert all(t.tiny is not None and t.tiny.shape == (8, 8, 3) for t in thumbs)
    assert make_thumb(np.asarray(Image.open(photos[0]).convert("RGB"))).tiny is None  # 224 px: not small
    for x, t in zip(small, thumbs, strict=True):
        flipped = make_thumb(np.ascontiguousarray(x[:, ::-1]))
        assert mirrored_similarity(t, flipped) is not None
    others = [make_thumb(np.ascontiguousarray(x[:, ::-1])) for x in small[1:]]
    assert all(mirrored_similarity(thumbs[0], o) is None for o in others)


def test_small_pairs_found_while_grouping_are_the_same_with_two_workers(tmp_path, monkeypatch):
    """With a pool, the small-image pair search runs in the workers while the parent finds the exact
    groups (curate.dedupe.small.start_search, from a thread); the result is that of one process: on
    40-px coin photos with re-encodes and byte copies, cut into several slabs."""
    from curate.dedupe import small
    from curate.dedupe.find import find_duplicates

    photos = sorted(COINS.rglob("*.jpg"))[::10][:48]
    assert len(photos) == 48, "coins-dev is missing (../shared/data/coins-dev)"
    root = tmp_path / "small" / "train"
    for k, p in enumerate(photos):
        (root / f"c{k % 6}").mkdir(parents=True, exist_ok=True)
        im = Image.open(p).convert("RGB").resize((40, 40), Image.LANCZOS)
        im.save(root / f"c{k % 6}" / f"{k}.png")
        if k % 3 == 0:
            im.save(root / f"c{k % 6}" / f"{k}-q90.jpg", quality=90)
            (root / f"c{(k + 1) % 6}" / f"{k}-copy.png").parent.mkdir(exist_ok=True)
            im.save(root / f"c{(k + 1) % 6}" / f"{k}-copy.png")
    monkeypatch.setattr(small, "SLAB", 16)
    one = find_duplicates(tmp_path / "small", workers=1, quiet=True)
    two = find_duplicates(tmp_path / "small", workers=2, quiet=True)
    assert one.pairs.equals(two.pairs) and [c.members for c in one.clusters] == [c.members for c in two.clusters]
    assert one.counts == two.counts and one.counts.candidates >= 16  # the copies and re-encodes were candidates


def test_looks_small_reads_the_first_headers(tmp_path):
    """The hint that preloads the k-d tree's module in the pool: a tree of 40-px PNGs and JPEGs looks
    small, coins-dev (224 px JPEGs) does not, an empty or unreadable tree does not."""
    from curate.dedupe.small import looks_small

    photos = sorted(COINS.rglob("*.jpg"))[:6]
    assert len(photos) == 6, "coins-dev is missing (../shared/data/coins-dev)"
    for k, p in enumerate(photos):
        (tmp_path / "small" / "train" / "a").mkdir(parents=True, exist_ok=True)
        im = Image.open(p).convert("RGB").resize((40, 40))
        im.save(tmp_path / "small" / "train" / "a" / f"{k}.{'png' if k % 2 else 'jpg'}")
    (tmp_path / "small" / "train" / "a" / "broken.png").write_bytes(b"not an image")
    assert looks_small(tmp_path / "small")
    assert not looks_small(COINS)
    (tmp_path / "empty").mkdir()
    assert not looks_small(tmp_path / "empty")


def test_two_small_images_align_only_whole_frame(monkeypatch):
    """score() between two small images tries only the whole frame (a crop of a small image is no copy of
    it): two matches in the coarse search instead of ten, one in the fine search instead of len(FINE); a
    larger pair still tries every zoom. The copy still verifies."""
    import cv2

    from curate.dedupe import verify

    photo = np.asarray(Image.open(sorted(COINS.rglob("*.jpg"))[0]).convert("RGB"))
    small = cv2.resize(photo, (48, 48), interpolation=cv2.INTER_AREA)
    calls = []
    real = cv2.matchTemplate
    monkeypatch.setattr(cv2, "matchTemplate", lambda *a: calls.append(a[1].shape) or real(*a))
    a, b = verify.make_thumb(small), verify.make_thumb(small.copy())
    assert verify.coarse(a, b, (1.0,))[0] > 0.99 and len(calls) == 2
    calls.clear()
    assert verify.score(a, b) >= verify.VERIFY_MIN
    small_calls = len(calls)
    calls.clear()
    verify.score(verify.make_thumb(photo), verify.make_thumb(photo.copy()))
    assert small_calls == 2 + 1 and 2 + len(verify.FINE) < len(calls)
