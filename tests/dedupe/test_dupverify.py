"""The mid-band test before pixel verification (curate.dedupe.midband, used by curate.dedupe.candidates.gate) on real
photos: it keeps every pair score() accepts, turns most look-alikes away, abstains where it cannot tell,
and find_duplicates still finds exactly coins-dev's copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.dedupe import midband
from curate.dedupe.find import band_of, find_duplicates
from curate.dedupe.verify import VERIFY_MIN, make_thumb, score
from curate.testing import dupsynth

REPO = Path(__file__).resolve().parents[2]
COINS = REPO / ".." / "shared" / "data" / "coins-dev"
TRUTH = REPO / "bench" / "coins-dev-truth.csv"


def coin_photos(step: int) -> list[np.ndarray]:
    files = sorted(COINS.rglob("*.jpg"))
    assert len(files) > 600, "coins-dev is missing (../shared/data/coins-dev)"
    return [np.asarray(Image.open(p).convert("RGB")) for p in files[::step]]


def sim(a: np.ndarray, b: np.ndarray) -> float:
    return float(midband.similarity(np.stack([a, b]), np.array([0]), np.array([1]))[0])


def test_band_keeps_every_copy_score_accepts(tmp_path):
    """Every dupsynth copy score() accepts passes the mid-band test, signatures made from the files (JPEG)
    the way find_duplicates makes them, with a margin."""
    photos = coin_photos(40) + [dupsynth.letterbox(a) for a in dupsynth.coins()[::4]]
    accepted = sharp = 0
    for n, a in enumerate(photos):
        ta, sa = make_thumb(a), None
        for name, edit in dupsynth.EDITS.items():
            b = edit(a)
            if score(ta, make_thumb(b)) < VERIFY_MIN:
                continue
            accepted += 1
            if sa is None:
                dupsynth.save(tmp_path / f"{n}.png", a)
                sa = band_of(str(tmp_path / f"{n}.png"))
            dupsynth.save(tmp_path / f"{n}-{name}.jpg", b)
            sb = band_of(str(tmp_path / f"{n}-{name}.jpg"))
            assert sa is not None and sb is not None, name
            need = float(midband.minimum(np.array([sa[1]]), np.array([sb[1]]))[0])  # by the decodes' sides
            sharp += need > midband.MIN
            assert sim(sa[0], sb[0]) >= need + 0.02, (name, sim(sa[0], sb[0]), need)
    assert sharp > 0  # the stricter minimum was tested
    assert accepted >= 0.95 * len(photos) * len(dupsynth.EDITS)


def test_band_turns_most_lookalikes_away():
    """Different coins-dev photos (other coins on the same white background): nearly all turned away,
    and a batch gives what one pair at a time gives."""
    sigs = [midband.signature(np.asarray(Image.fromarray(a).convert("L"))) for a in coin_photos(15)]
    assert sum(x is None for x in sigs) <= 2  # coin photos have structure in the band: few abstain
    sig = np.stack([x for x in sigs if x is not None])
    pairs = np.array([(i, j) for i in range(len(sig)) for j in range(i + 1, len(sig))])
    s = midband.similarity(sig, pairs[:, 0], pairs[:, 1], chunk=100)
    assert s.shape == (len(pairs),)
    assert (s >= midband.MIN).mean() < 0.02
    for n in range(0, len(pairs), 97):
        assert abs(sim(sig[pairs[n, 0]], sig[pairs[n, 1]]) - s[n]) < 1e-5


def test_band_abstains_on_small_and_blank_images():
    photo = np.asarray(Image.fromarray(coin_photos(200)[0]).convert("L"))
    assert midband.signature(photo) is not None
    assert midband.signature(np.full((200, 300), 128, np.uint8)) is None  # blank: nothing to compare
    assert midband.signature(photo[:50, :50]) is None  # a 50-px image: the band holds JPEG noise
    small = np.asarray(Image.fromarray(photo).resize((56, 56)))
    assert midband.signature(small, (224, 224)) is not None  # a reduced decode of a 224-px file
    assert midband.signature(small, (40, 40)) is None


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


def test_hashing_pass_band_matches_and_is_cached(tmp_path):
    """hash_files makes each signature from its own reduced decode (JPEG and PNG), equal to band_of's,
    and a rerun takes it from the cache; an unreadable file has none."""
    from curate.dedupe.hashing import hash_files

    a = coin_photos(300)[0]
    dupsynth.save(tmp_path / "train/x/a.jpg", a)
    dupsynth.save(tmp_path / "train/x/b.png", dupsynth.crop(a, 0.03))
    (tmp_path / "train/x/bad.jpg").write_bytes(b"not an image")
    first = hash_files(tmp_path, workers=1, quiet=True).set_index("path")
    for p in ("train/x/a.jpg", "train/x/b.png"):
        sig, side = band_of(str(tmp_path / p))
        assert first.loc[p, "band"] == sig.tobytes() and first.loc[p, "band_side"] == side > midband.SHARP_SIDE
    assert first.loc["train/x/bad.jpg", "band"] is None and pd.isna(first.loc["train/x/bad.jpg", "band_side"])
    again = hash_files(tmp_path, workers=1, quiet=True).set_index("path")
    assert again.loc["train/x/a.jpg", "band"] == first.loc["train/x/a.jpg", "band"]
    shape = (len(midband.ZOOMS), midband.NBAND)
    d = [np.frombuffer(first.loc[p, "band"], np.int8).reshape(shape) for p in ("train/x/a.jpg", "train/x/b.png")]
    assert sim(*d) >= midband.MIN_SHARP  # the 3 % crop passes


def test_files_without_a_band_go_on_to_score(tmp_path, monkeypatch):
    """Where hash_files has no signature for a file (abstained, or an old cache), its pairs are scored:
    same clusters."""
    import curate.dedupe.find as dd

    a, b = coin_photos(100)[:2]
    for name, img in {"a.jpg": a, "a_q50.jpg": dupsynth.jpeg(a, 50), "a_crop.png": dupsynth.crop(a, 0.03),
                      "b.jpg": b, "b_half.jpg": dupsynth.resize(b, 0.5)}.items():
        dupsynth.save(tmp_path / "train/x" / name, img)
    with_band = find_duplicates(tmp_path, workers=1, quiet=True)
    real = dd.hash_files
    monkeypatch.setattr(dd, "hash_files", lambda *a, **k: real(*a, **k).assign(band=None))
    without = find_duplicates(tmp_path, workers=1, quiet=True)
    assert [c.members for c in without.clusters] == [c.members for c in with_band.clusters]
    assert without.counts.prefilter == 0
    assert sorted(m for c in with_band.clusters for m in c.members) == sorted(
        f"train/x/{n}" for n in ("a.jpg", "a_q50.jpg", "a_crop.png", "b.jpg", "b_half.jpg"))


def test_hashing_colour_is_the_thumbnails_within_the_gates_margin(tmp_path):
    """The colour gate compares the hashing pass's mean colour (a reduced decode, area-averaged to ~24 px)
    where score() compares its thumbnails': the two agree within half the gate's margin."""
    from curate.dedupe.candidates import COLOUR_MARGIN
    from curate.dedupe.find import thumb_of
    from curate.dedupe.hashing import hash_file

    photos = coin_photos(25) + [dupsynth.colour_shift(a, warm=8.0) for a in coin_photos(150)]
    photos += [np.asarray(Image.fromarray(dupsynth.originals()[k]).convert("RGB")) for k in ("astronaut", "coffee")]
    worst = 0.0
    for n, a in enumerate(photos):
        p = tmp_path / f"{n}.jpg"
        dupsynth.save(p, a)
        row, thumb = hash_file(p), thumb_of(str(p))
        worst = max(worst, float(np.hypot(row["chroma_a"] - thumb.chroma[0], row["chroma_b"] - thumb.chroma[1])))
    assert worst <= COLOUR_MARGIN / 2, worst


def test_the_band_test_is_stricter_where_both_decodes_are_sharp():
    """A pair at a band similarity between MIN and MIN_SHARP goes on to score when either signature came
    from a decode of at most SHARP_SIDE px, and is turned away when both came from larger decodes."""
    from curate.dedupe.candidates import Bands, Counts, gate

    rng = np.random.default_rng(0)
    a = rng.normal(0, 40, (len(midband.ZOOMS), midband.NBAND))
    b = a + rng.normal(0, 23, a.shape)  # cosine ~0.87
    raw = [np.clip(np.rint(x), -127, 127).astype(np.int8).tobytes() for x in (a, b)]
    pair = (np.array([0]), np.array([1]))
    sim = float(Bands.of(raw).similarity(*pair)[0])
    assert midband.MIN < sim < midband.MIN_SHARP
    chroma = np.zeros((2, 2))
    for sides, goes in (([224, 224], False), ([60, 224], True), ([81, 81], False), ([80, 300], True)):
        counts = Counts()
        go, _ = gate(*pair, chroma, Bands.of(raw, sides), counts, use_prefilter=True)
        assert bool(go[0]) is goes and counts.prefilter == (not goes), sides
    assert bool(gate(*pair, chroma, Bands.of(raw), Counts(), True)[0][0])  # sides unknown: the lower minimum


def test_a_faint_band_counts_only_between_sharp_decodes(tmp_path):
    """An image whose band is faint (under FAINT gray levels RMS) gets a signature only from a decode over
    SHARP_SIDE px, and its pairs use it only against another such decode; else the test abstains."""
    from curate.dedupe.candidates import Bands

    flat = np.full((120, 120), 128.0) + 8.0 * np.sin(np.arange(120) / 1.3)[None, :]  # a faint texture
    gray = np.clip(flat + np.random.default_rng(1).normal(0, 1.2, flat.shape), 0, 255).astype(np.uint8)
    level = midband.rms(gray)
    assert midband.FAINT_SHARP <= level < midband.FAINT
    assert midband.signature(gray) is not None  # 120 px: sharp
    small = np.ascontiguousarray(gray[::2, ::2])  # 60 px
    assert midband.signature(small) is None  # the same band, too few pixels: abstains
    sig = midband.signature(gray).tobytes()
    a, b = np.array([0, 0]), np.array([1, 2])
    bands = Bands.of([sig, sig, sig], [120, 120, 70], [level, level, 5.0])
    sims = bands.similarity(a, b)
    assert sims[0] > 0.99 and np.isnan(sims[1])  # sharp vs sharp: compared; against a 70-px decode: abstains
    strong = Bands.of([sig, sig, sig], [120, 120, 70], [5.0, 5.0, 5.0])
    assert not np.isnan(strong.similarity(a, b)).any()  # bands that are not faint compare at any size


def _tiny_files(tmp_path: Path) -> dict[str, Path]:
    """Small real photos (coins-dev shrunk to 40 px), a JPEG re-encode and an 80 % resize of the first, and
    one larger photo; written as files so the hashing pass sees them as a user's tree would."""
    photos = coin_photos(97)[:4]
    out: dict[str, Path] = {}
    root = tmp_path / "tiny" / "train" / "x"
    root.mkdir(parents=True)
    for k, p in enumerate(photos):
        im = Image.fromarray(p).resize((40, 40), Image.LANCZOS)
        im.save(root / f"p{k}.png")
        out[f"p{k}"] = root / f"p{k}.png"
    first = Image.open(out["p0"])
    first.save(root / "p0-q75.jpg", quality=75)
    first.resize((32, 32), Image.BILINEAR).save(root / "p0-small.jpg", quality=90)
    Image.fromarray(photos[0]).save(root / "big.png")  # 224 px: no small-image thumbnail
    out.update({"q75": root / "p0-q75.jpg", "small": root / "p0-small.jpg", "big": root / "big.png"})
    return out


def test_small_images_get_an_8x8_thumbnail_and_only_they(tmp_path):
    from curate.dedupe.hashing import TINY_SIDE, hash_file

    files = _tiny_files(tmp_path)
    rows = {k: hash_file(p) for k, p in files.items()}
    assert all(isinstance(rows[k]["tiny"], bytes) and len(rows[k]["tiny"]) == 192 for k in ("p0", "q75", "small"))
    assert rows["big"]["tiny"] is None and min(rows["big"]["width"], rows["big"]["height"]) > TINY_SIDE
    gray = np.full((20, 30), 90, np.uint8)  # a gray image: three equal channels
    from curate.dedupe.hashing import tiny_of

    assert np.frombuffer(tiny_of(gray), np.uint8).tolist() == [90] * 192


def test_the_small_image_test_keeps_reencodes_and_resizes_and_turns_other_photos_away(tmp_path):
    """Between two images of at most TINY_SIDE px: a re-encode and a resize of one photo stay (also with a
    uniform colour shift), other photos of the same layout go; a pair with a larger image is never judged."""
    from curate.dedupe.hashing import hash_file
    from curate.dedupe.small import TINY_MAX, Tiny

    files = _tiny_files(tmp_path)
    names = list(files)
    raw = [hash_file(files[k])["tiny"] for k in names]
    shifted = np.clip(np.frombuffer(raw[0], np.uint8).astype(int) + [12, -8, 5] * 64, 0, 255).astype(np.uint8)
    raw.append(shifted.tobytes())  # the first photo with its colour shifted
    tiny = Tiny.of(raw)
    at = {k: i for i, k in enumerate(names)} | {"shifted": len(names)}
    pairs = [("p0", "q75"), ("p0", "small"), ("q75", "small"), ("p0", "shifted"),  # copies
             ("p0", "p1"), ("p0", "p2"), ("p0", "p3"), ("p1", "p2"), ("small", "p3"),  # other photos
             ("p0", "big")]  # a larger image: not judged here
    far = tiny.far(np.array([at[a] for a, _ in pairs]), np.array([at[b] for _, b in pairs])).tolist()
    assert far == [False] * 4 + [True] * 5 + [False]
    assert TINY_MAX < 8


def test_small_image_test_runs_with_the_prefilter_and_is_counted(tmp_path):
    from curate.dedupe.candidates import Bands, Counts, gate
    from curate.dedupe.small import Tiny

    files = _tiny_files(tmp_path)
    from curate.dedupe.hashing import hash_file

    raw = [hash_file(files[k])["tiny"] for k in ("p0", "p1", "q75")]
    a, b = np.array([0, 0]), np.array([1, 2])
    chroma = np.zeros((3, 2))
    counts = Counts()
    go, sims = gate(a, b, chroma, Bands.of([None] * 3), counts, True, Tiny.of(raw))
    assert go.tolist() == [False, True] and counts.small == 1 and sims[0] == 0.0
    go, _ = gate(a, b, chroma, Bands.of([None] * 3), Counts(), False, Tiny.of(raw))  # min_similarity lowered: no test
    assert go.tolist() == [True, True]
