"""hash_files (cache, bad files, reduced JPEG decoding) and the Hamming search of curate.dedupe.search."""

from __future__ import annotations

import io
import os
from math import comb
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.core.errors import InputError
from curate.dedupe import hashing
from curate.dedupe.hashing import COLUMNS, cache_path, hash_files
from curate.dedupe.search import brute_pairs, choose, distances, hamming_pairs, mih_pairs, pack, pair_batches
from curate.sources.samples import load_photo


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "data"
    for split, label, name, ext in [("train", "cat", "chelsea", ".png"), ("train", "cup", "coffee", ".jpg"),
                                    ("val", "cat", "astronaut", ".jpg")]:
        p = root / split / label / f"{name}{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(load_photo(name)).save(p)
    (root / "val" / "cat" / "zero.jpg").write_bytes(b"")
    (root / "train" / "cup" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def test_hash_files_rows_and_bad_files(tree):
    df = hash_files(tree, workers=1, quiet=True)
    assert list(df.columns) == COLUMNS
    assert df["path"].tolist() == sorted(df["path"])
    assert len(df) == 5
    bad = dict(zip(df["path"], df["error"], strict=True))
    assert bad["val/cat/zero.jpg"] == "empty"
    assert bad["train/cup/broken.png"] in ("corrupt", "not-an-image", "truncated")
    assert bad["train/cat/chelsea.png"] is None
    ok = df[df["error"].isna()]
    assert ok["hash"].str.len().eq(16).all()
    row = df.set_index("path").loc["train/cat/chelsea.png"]
    assert (row["split"], row["label"], row["width"], row["height"]) == ("train", "cat", 451, 300)
    # a PNG is decoded at full size: the hash is exactly imagehash's
    assert row["hash"] == str(imagehash.phash(Image.open(tree / "train/cat/chelsea.png")))
    # files stay where they are
    assert (tree / "val/cat/zero.jpg").exists()


def test_reduced_jpeg_decoding_keeps_the_hash(tmp_path):
    big = Image.fromarray(load_photo("china")).resize((2400, 1600), Image.BICUBIC)
    p = tmp_path / "big.jpg"
    big.save(p, quality=90)
    ours = hashing.hash_file(p)["hash"]
    ref = str(imagehash.phash(Image.open(p)))
    assert bin(int(ours, 16) ^ int(ref, 16)).count("1") <= 2


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "camera"])
def test_phash_is_imagehash_bit_for_bit(name):
    # the matrix-product phash emulates Pillow's fixed-point Lanczos resize (and its choice of which pass
    # goes first: tall images shrink vertically first in Pillow 13) and scipy's DCT
    photo = Image.fromarray(load_photo(name)).convert("L")
    shapes = [photo.size, (111, 224), (224, 111), (33, 40), (40, 33), (32, 300), (64, 48), (19, 23)]
    for w, h in shapes:
        im = photo.resize((w, h), Image.BICUBIC)
        for size in (4, 8, 16):
            assert hashing.hash_image(im, "phash", size) == str(imagehash.phash(im, hash_size=size)), (w, h, size)
        g = np.asarray(im)
        dy, dx = round(h * (1 - hashing.ZOOM_SHARE) / 2), round(w * (1 - hashing.ZOOM_SHARE) / 2)
        assert hashing.zoom_hash(g) == str(imagehash.phash(Image.fromarray(np.ascontiguousarray(g[dy:h - dy, dx:w - dx]))))


def test_fast_phash_pair_is_the_unrounded_phash():
    # phash_pair (reduced JPEG decodes) skips Pillow's roundings: on photos it gives imagehash's bits but
    # for a coefficient within rounding of the median; flat images as phash_hex defines them
    from curate.dedupe.phash import phash_pair

    flips = []
    for name in ["chelsea", "coffee", "astronaut", "camera", "rocket"]:
        g0 = np.asarray(Image.fromarray(load_photo(name)).convert("L"))
        for s in (1.0, 0.5, 0.25, 0.13):
            g = np.asarray(Image.fromarray(g0).resize((int(g0.shape[1] * s), int(g0.shape[0] * s)), Image.BICUBIC))
            full, crop = phash_pair(g)
            flips += [bin(int(full, 16) ^ int(hashing.hash_gray(g), 16)).count("1"),
                      bin(int(crop, 16) ^ int(hashing.zoom_hash(g), 16)).count("1")]
    assert max(flips) <= 2 and sum(f > 0 for f in flips) <= 2, flips
    assert phash_pair(np.full((60, 80), 7, np.uint8)) == ("8000000000000000",) * 2
    assert phash_pair(np.zeros((60, 80), np.uint8)) == ("0000000000000000",) * 2


def test_png_fast_path_is_the_general_path_bit_for_bit(tmp_path, monkeypatch, capfd):
    # plain 8-bit PNGs are decoded by libspng (pyspng) with Pillow's gray: every column equals decode()'s
    # path; a damaged one prints nothing from the C decoder and keeps the general path's answer
    rows = {}
    for name, mode in (("chelsea", "RGB"), ("camera", "L"), ("coffee", "RGB")):
        p = tmp_path / f"{name}.png"
        Image.fromarray(load_photo(name)).convert(mode).save(p)
        rows[p] = hashing.hash_file(p)
    bad = tmp_path / "bad.png"
    data = bytearray((tmp_path / "chelsea.png").read_bytes())
    data[200:240] = bytes(40)
    bad.write_bytes(bytes(data))
    rows[bad] = hashing.hash_file(bad)
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(hashing, "png_fast", lambda *a: None)
    for p, row in rows.items():
        assert row == hashing.hash_file(p), p.name
    assert rows[tmp_path / "camera.png"]["mode"] == "L"


def test_png_pixels_are_pillows_pixels_and_damage_goes_to_the_general_path():
    """png_pixels (libspng) gives Pillow's pixels for plain PNGs, RGB and gray, with gamma and sRGB chunks
    (stored samples, no transform), from 40 px to photo size; a damaged or cut stream gives None (decode(),
    the general path, then decides: a cut file is unreadable)."""
    import struct
    import zlib

    from curate.core.errors import UnreadableImage
    from curate.core.images import decode
    from curate.dedupe.decoding import png_pixels

    def png(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    def with_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:  # right after IHDR
        chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        return data[:33] + chunk + data[33:]

    photo = Image.fromarray(load_photo("chelsea"))
    cases = [png(photo), png(photo.convert("L")), png(photo.resize((40, 27))),
             with_chunk(png(photo), b"gAMA", struct.pack(">I", 22727)), with_chunk(png(photo), b"sRGB", b"\x00")]
    for data in cases:
        want = np.asarray(Image.open(io.BytesIO(data)))
        assert np.array_equal(png_pixels(data), want)
    damaged = bytearray(cases[0])
    damaged[200:260] = bytes(60)
    assert png_pixels(bytes(damaged)) is None  # a bad CRC: Pillow's path decides (the hashing pass's general path)
    cut = cases[0][: len(cases[0]) // 2]
    assert png_pixels(cut) is None
    with pytest.raises(UnreadableImage):
        decode(cut)


def test_phash_of_flat_images_is_defined():
    # imagehash's bits of a flat image come from floating-point noise; ours are 0 there, so every flat
    # image of any gray hashes alike, and black has no bit set
    assert {hashing.phash_hex(np.full((50, 70), v, np.uint8)) for v in (1, 128, 255)} == {"8000000000000000"}
    assert hashing.phash_hex(np.zeros((9, 300), np.uint8)) == "0000000000000000"


def test_cache_rehashes_only_changed_files(tree, monkeypatch):
    hash_files(tree, workers=1, quiet=True)
    assert cache_path(tree, "phash", 8).exists()
    calls = []
    real = hashing._read  # every file hashed is read
    monkeypatch.setattr(hashing, "_read", lambda p: calls.append(p) or real(p))
    again = hash_files(tree, workers=1, quiet=True)
    assert calls == []
    target = tree / "train/cat/chelsea.png"
    Image.fromarray(load_photo("chelsea")[::2, ::2]).save(target)
    os.utime(target, ns=(1, 1))
    third = hash_files(tree, workers=1, quiet=True)
    assert [os.path.basename(c) for c in calls] == ["chelsea.png"]
    assert third.set_index("path").loc["train/cat/chelsea.png", "width"] == 226
    assert again["hash"].tolist()[1:] == third["hash"].tolist()[1:]


def test_other_hashes_and_bad_params(tree):
    d = hash_files(tree, hash_name="dhash", hash_size=16, workers=1, quiet=True)
    assert d.loc[d["error"].isna(), "hash"].str.len().eq(64).all()
    with pytest.raises(InputError):
        hash_files(tree, hash_name="md5")
    with pytest.raises(InputError):
        hash_files(tree, hash_name="whash", hash_size=6)
    with pytest.raises(InputError):
        hash_files(tree / "nope")


def _planted(n, t, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    codes ^= rng.integers(0, 2, size=n).astype(np.uint64)
    pairs = set()
    for a, b in rng.integers(0, n, size=(n // 20, 2)):
        if a == b:
            continue
        c = int(codes[a])
        for bit in rng.choice(64, int(rng.integers(0, t + 1)), replace=False):
            c ^= 1 << int(bit)
        codes[b] = np.uint64(c)
        pairs.add((min(a, b), max(a, b)))
    return codes[:, None], pairs


def test_pack_matches_imagehash_hex():
    hexes = ["ffffffffffffffff", "0000000000000001", "8000000000000000", "c2924c5532bddfc8"]
    codes = pack(hexes)
    assert codes.shape == (4, 1)
    assert int(codes[3, 0]) == int(hexes[3], 16)
    assert distances(codes[:1], codes[1:2])[0] == 63
    wide = pack(["f" * 64, "0" * 63 + "1"])  # 256-bit hashes
    assert wide.shape == (2, 4) and distances(wide[:1], wide[1:])[0] == 255


@pytest.mark.parametrize("t", [0, 3, 8, 12])
def test_brute_and_mih_find_the_same_pairs(t):
    codes, planted = _planted(3000, t)
    bi, bj, bd = brute_pairs(codes, t)
    found = set(zip(bi.tolist(), bj.tolist(), strict=True))
    for a, b in planted:  # a later plant may overwrite an earlier one, so check the real distance
        if distances(codes[a : a + 1], codes[b : b + 1])[0] <= t:
            assert (a, b) in found
    assert (bd <= t).all() and (bi < bj).all()
    for m in (2, 3, 4, 5):
        if sum(comb(64 // m + 1, r) for r in range(t // m + 1)) > 5000:
            continue  # too many probes to be a sensible choice (and slow)
        mi, mj, md = mih_pairs(codes, t, m)
        assert np.array_equal(mi, bi) and np.array_equal(mj, bj) and np.array_equal(md, bd)


@pytest.mark.parametrize("method", ["brute", "mih"])
def test_pair_batches_stream_each_pair_once_and_honour_queries(method):
    codes, _ = _planted(2000, 8)
    i, j, d = hamming_pairs(codes, 8)
    got = [np.stack(b, axis=1) for b in pair_batches(codes, 8, method=method)]
    rows = np.concatenate(got)
    assert len(rows) == len(i) and {tuple(r) for r in rows.tolist()} == set(zip(i.tolist(), j.tolist(), d.tolist(), strict=True))
    q = 700  # the first 700 codes against each other and against the rest, the rest never among themselves
    sub = np.concatenate([np.stack(b, axis=1) for b in pair_batches(codes, 8, method=method, queries=q)])
    want = {(a, b, c) for a, b, c in zip(i.tolist(), j.tolist(), d.tolist(), strict=True) if a < q}
    assert len(sub) == len(want) and {tuple(r) for r in sub.tolist()} == want


@pytest.mark.parametrize("method", ["brute", "mih"])
def test_parts_of_one_index_find_every_pair_once(method, monkeypatch):
    """The search runs as tasks over query ranges of one built index: together they find each pair once,
    also when a part's candidates come in several BATCH slices."""
    import curate.dedupe.search as search

    monkeypatch.setattr(search, "BATCH", 500)
    codes, _ = _planted(2000, 8)
    q = 1500
    index = search.pair_index(codes, 8, method=method)
    whole = {tuple(r) for b in index.batches(q) for r in np.stack(b, axis=1).tolist()}
    got = [tuple(r) for lo, hi in ((0, 1), (1, 400), (400, 401), (401, 1500)) for b in index.batches(q, (lo, hi))
           for r in np.stack(b, axis=1).tolist()]
    assert len(got) == len(set(got)) == len(whole) and set(got) == whole
    assert all(lo <= r[0] < hi for lo, hi in ((400, 1500),) for r in
               (tuple(x) for b in index.batches(q, (400, 1500)) for x in np.stack(b, axis=1).tolist()))


@pytest.mark.parametrize("method", ["brute", "mih"])
def test_skipped_codes_are_never_queries_and_their_other_pairs_are_found_once(method):
    """pair_index(...).batches(queries, part, skip): pairs between two non-queries (skipped, or at or past
    `queries`) are not looked for; every other pair comes once, in whichever parts cover its query end."""
    import curate.dedupe.search as search

    codes, _ = _planted(2000, 8)
    i, j, d = hamming_pairs(codes, 8)
    q = 1500
    skip = np.zeros(len(codes), bool)
    skip[np.random.default_rng(3).choice(q, 500, replace=False)] = True
    query = (np.arange(len(codes)) < q) & ~skip
    want = {(a, b, c) for a, b, c in zip(i.tolist(), j.tolist(), d.tolist(), strict=True) if query[a] or query[b]}
    index = search.pair_index(codes, 8, method=method)
    got = [tuple(sorted(r[:2])) + (r[2],) for lo, hi in ((0, 700), (700, 1500))
           for b in index.batches(q, (lo, hi), skip) for r in np.stack(b, axis=1).tolist()]
    assert len(got) == len(set(got)) == len(want) and set(got) == want
    assert any(skip[a] or skip[b] for a, b, _ in got)  # the check covers pairs with a skipped end


@pytest.mark.parametrize("method", ["brute", "mih"])
def test_outside_codes_against_an_index_find_every_pair(method):
    import curate.dedupe.search as search

    codes, _ = _planted(2000, 8)
    index = search.pair_index(codes[:1200], 8, method=method)
    outside = codes[1200:]
    d = np.bitwise_count(outside[:, None, :] ^ codes[None, :1200, :]).sum(axis=-1)
    want = {(int(a), int(b), int(d[a, b])) for a, b in zip(*np.nonzero(d <= 8), strict=True)}
    got = [tuple(r) for lo, hi in ((0, 300), (300, 800)) for b in index.batches(part=(lo, hi), against=outside)
           for r in np.stack(b, axis=1).tolist()]
    assert want and len(got) == len(set(got)) == len(want) and set(got) == want


def test_auto_choice_scales():
    assert choose(500, 64, 10)[0] == "brute"
    assert choose(1_000_000, 64, 4)[0] == "mih"
    i, j, d = hamming_pairs(np.zeros((0, 1), dtype=np.uint64), 4)
    assert len(i) == len(j) == len(d) == 0


def test_exif_rotated_jpeg_hashes_upright(tmp_path):
    a = load_photo("rocket")  # 640 wide, 427 high
    upright = tmp_path / "upright.jpg"
    Image.fromarray(a).save(upright, quality=95)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    Image.fromarray(a).transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    r, u = hashing.hash_file(rotated), hashing.hash_file(upright)
    assert (r["width"], r["height"]) == (u["width"], u["height"]) == (640, 427)
    assert bin(int(r["hash"], 16) ^ int(u["hash"], 16)).count("1") <= 4


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("size", [(640, 427), (224, 223), (121, 120)])
def test_reduced_jpeg_size_and_orientation_as_pillow_reads_them(tmp_path, orientation, size):
    # the fast path reads the size from the frame header and lets OpenCV turn the image; where the decoded
    # shape cannot say whether it turned (near-square), the general path reads the EXIF with Pillow
    from curate.core.images import decode

    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    Image.fromarray(load_photo("rocket")).resize(size).save(p, quality=90, exif=exif)
    row, ref = hashing.hash_file(p), decode(p.read_bytes())
    assert (row["width"], row["height"], row["format"], row["mode"]) == (ref.width, ref.height, "JPEG", "RGB")
    gray, upright = hashing.gray_small(p.read_bytes(), 60)
    assert upright == (ref.width, ref.height)
    if abs(ref.width - ref.height) > 8:  # the pixels themselves are upright
        assert (gray.shape[1] > gray.shape[0]) == (ref.width > ref.height)


def test_access_errors_are_not_cached(tree, monkeypatch):
    # a permission problem fixed with chmod leaves size and mtime alone: the file must be read again
    from curate.core.errors import UnreadableImage

    real = hashing.storage.read_image_bytes

    def denied(p):
        if str(p).endswith("chelsea.png"):
            raise UnreadableImage("permission-denied", str(p))
        return real(p)

    monkeypatch.setattr(hashing.storage, "read_image_bytes", denied)
    first = hash_files(tree, workers=1, quiet=True).set_index("path")
    assert first.loc["train/cat/chelsea.png", "error"] == "permission-denied"
    monkeypatch.setattr(hashing.storage, "read_image_bytes", real)
    again = hash_files(tree, workers=1, quiet=True).set_index("path")
    assert again.loc["train/cat/chelsea.png", "error"] is None
    assert again.loc["val/cat/zero.jpg", "error"] == "empty"  # content errors stay cached and reported


def test_find_duplicates_leaves_the_hash_cache_on_disk_even_when_it_fails(tree, monkeypatch):
    """find_duplicates writes the hashing pass's cache while its workers search (hash_files cache_later);
    when it returns, or fails after hashing, the cache is complete and a rerun hashes nothing."""
    from curate.dedupe import find as dd

    dd.find_duplicates(tree, workers=1, quiet=True)
    cached = pd.read_parquet(cache_path(tree, "phash", 8))
    assert set(cached["path"]) >= {"train/cat/chelsea.png", "train/cup/coffee.jpg", "val/cat/astronaut.jpg"}
    cache_path(tree, "phash", 8).unlink()
    monkeypatch.setattr(dd, "_verify", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("search broke")))
    with pytest.raises(RuntimeError, match="search broke"):
        dd.find_duplicates(tree, workers=1, quiet=True)
    assert cache_path(tree, "phash", 8).exists()
    calls = []
    real = hashing._read  # every file hashed is read
    monkeypatch.setattr(hashing, "_read", lambda p: calls.append(p) or real(p))
    hash_files(tree, workers=1, quiet=True)
    assert calls == []


def test_a_cache_left_to_write_is_written_before_it_is_read(tree):
    hash_files(tree, workers=1, quiet=True, cache_later=True)
    assert not cache_path(tree, "phash", 8).exists()  # not yet: the caller has idle time for it later
    again = hash_files(tree, workers=1, quiet=True)  # reading the cache writes it first
    assert cache_path(tree, "phash", 8).exists() and len(again) == 5


def test_a_shard_hashes_each_file_as_it_would_alone(tmp_path):
    """The hashing pass computes a shard's small decodes together (curate.dedupe.features: one matrix product
    per shape, one resize for the colour and the 8 x 8 averages); every row must be exactly the row of
    that file hashed alone: real photos and coins-dev files shrunk to sides that are and are not
    multiples of 8 and 24, colour and gray, PNG and JPEG, several of each shape."""
    coins = sorted((Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coins-dev").rglob("*.jpg"))
    assert len(coins) > 100, "coins-dev is missing (../shared/data/coins-dev)"
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in coins[::60][:6]] + [load_photo("chelsea")]
    paths = []
    for k, a in enumerate(photos):
        for size in ((32, 32), (48, 48), (40, 56), (50, 37), (64, 64), (100, 72)):
            im = Image.fromarray(a).resize(size, Image.LANCZOS)
            for kind, ext in (("rgb", ".png"), ("gray", ".png"), ("rgb", ".jpg")):
                p = tmp_path / f"{k}-{size[0]}x{size[1]}-{kind}{ext}"
                (im.convert("L") if kind == "gray" else im).save(p)
                paths.append(str(p))
    together = hashing._hash_paths(paths, "phash", 8)
    alone = [hashing.hash_file(p) for p in paths]
    assert together == alone
    assert sum(r["tiny"] is not None for r in alone) == len(photos) * 5 * 3  # the small images have averages
