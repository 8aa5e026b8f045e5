"""find_duplicates, the quarantine action, undo and the `curate dedupe` command, on real photos."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.cli import main
from curate.core.errors import InputError
from curate.core.manifest import read_manifest
from curate.dedupe.apply import dedupe, undo_dedupe
from curate.dedupe.find import VERIFY_MIN, find_duplicates
from curate.dedupe.hashing import hash_files
from curate.dedupe.search import hamming_pairs, pack
from curate.dedupe.verify import make_thumb as thumbnail
from curate.dedupe.verify import score as similarity
from curate.engine.executor import LocalExecutor
from curate.sources.samples import load_photo
from curate.testing import dupsynth


def small(name: str, side: int = 200) -> np.ndarray:
    return dupsynth.resize(load_photo(name), side / max(load_photo(name).shape[:2]))


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root, except curate's state folder."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".curate" not in p.parts}


@pytest.fixture()
def tree(tmp_path) -> Path:
    """train/val/test tree with known duplicates:
    - chelsea: original, exact byte copy, q50 re-encode, 3 % crop (train) and a half-size copy in val (leakage)
    - coffee: original (train/cup) and a brightened copy in test filed as 'cat' (label conflict + leakage)
    - astronaut and its mirror image: look alike, must stay apart
    - a zero-byte and a corrupt file
    """
    root = tmp_path / "data"
    cat, coffee, astro = small("chelsea", 300), small("coffee"), small("astronaut")
    files = {
        "train/cat/chelsea.png": cat,
        "train/cat/chelsea_q50.jpg": dupsynth.jpeg(cat, 50),
        "train/cat/chelsea_crop.png": dupsynth.crop(cat, 0.03),
        "val/cat/chelsea_half.jpg": dupsynth.resize(cat, 0.5),
        "train/cup/coffee.png": coffee,
        "test/cat/coffee_bright.jpg": dupsynth.brightness(coffee, 1.15),
        "train/person/astronaut.png": astro,
        "train/person/astronaut_mirror.png": dupsynth.flip(astro),
        "val/person/grace.jpg": small("grace_hopper"),
    }
    for rel, a in files.items():
        dupsynth.save(root / rel, a)
    shutil.copy(root / "train/cat/chelsea.png", root / "train/cat/chelsea_copy.png")
    (root / "train/cup/empty.jpg").write_bytes(b"")
    (root / "val/person/broken.jpg").write_bytes((root / "val/person/grace.jpg").read_bytes()[:300])
    return root


def by_member(res, path):
    return next(c for c in res.clusters if path in c.members)


def test_clusters_leakage_conflicts_and_bad_files(tree):
    res = find_duplicates(tree, workers=1, quiet=True)
    cat = by_member(res, "train/cat/chelsea.png")
    assert cat.members == ["train/cat/chelsea.png", "train/cat/chelsea_copy.png", "train/cat/chelsea_crop.png",
                           "train/cat/chelsea_q50.jpg", "val/cat/chelsea_half.jpg"]
    assert cat.kind == "near" and cat.cross_split and not cat.label_conflict
    assert cat.splits == ["train", "val"]
    # default keep: most pixels (the original and its byte copy tie: first path), leakage: eval copies go
    assert cat.keep == "train/cat/chelsea.png"
    assert set(cat.remove) == set(cat.members) - {cat.keep}
    cup = by_member(res, "train/cup/coffee.png")
    assert cup.members == ["test/cat/coffee_bright.jpg", "train/cup/coffee.png"]
    # leakage is leakage: the test copy goes although its label differs; the conflict is still reported
    assert cup.label_conflict and cup.cross_split and cup.remove == ["test/cat/coffee_bright.jpg"]
    assert cat.links["val/cat/chelsea_half.jpg"]["similarity"] >= VERIFY_MIN
    assert cat.links["train/cat/chelsea_copy.png"] == {"distance": 0, "similarity": 1.0}
    assert not any("astronaut_mirror" in m for c in res.clusters for m in c.members)
    assert not any("grace" in m for c in res.clusters for m in c.members)
    assert len(res.clusters) == 2
    exact = res.pairs[res.pairs["kind"] == "exact"]
    assert exact[["a", "b"]].values.tolist() == [["train/cat/chelsea.png", "train/cat/chelsea_copy.png"]]
    near = res.pairs[res.pairs["kind"] == "near"]
    assert (near["distance"] <= res.params["threshold"]).all() and near["verified"].all()
    bad = dict(res.unreadable)
    assert bad.keys() == {"train/cup/empty.jpg", "val/person/broken.jpg"}
    assert bad["train/cup/empty.jpg"] == "empty" and bad["val/person/broken.jpg"] in ("truncated", "corrupt")


def test_leakage_report_keeps_one_copy_per_split(tree):
    res = find_duplicates(tree, workers=1, quiet=True, leakage="report", keep="first")
    cat = by_member(res, "train/cat/chelsea.png")
    assert "val/cat/chelsea_half.jpg" not in cat.remove
    assert cat.keep == "train/cat/chelsea.png"
    assert cat.duplicate_of["train/cat/chelsea_q50.jpg"] == "train/cat/chelsea.png"


def test_pixel_identical_files_are_exact(tmp_path):
    root = tmp_path / "px"
    a = small("rocket")
    dupsynth.save(root / "train/r/a.png", a)
    Image.fromarray(a).save(root / "train/r/b.png", compress_level=1)  # other bytes, same pixels
    res = find_duplicates(root, workers=1, quiet=True)
    assert [(c.kind, c.members) for c in res.clusters] == [("exact", ["train/r/a.png", "train/r/b.png"])]


def test_verification_keeps_look_alike_coins_apart(tmp_path):
    root = tmp_path / "coins"
    coins = dupsynth.coins()
    for i, c in enumerate(coins):
        dupsynth.save(root / "train" / "coin" / f"{i:02d}.png", c)
    dupsynth.save(root / "train/coin/00_q60.jpg", dupsynth.jpeg(coins[0], 60))
    files = hash_files(root, workers=1, quiet=True)
    i, j, _ = hamming_pairs(pack(files["hash"].tolist(), 64), 16, 64)
    assert len(i) > 1  # within 16 bits of the perceptual hash, look-alikes are candidates too
    res = find_duplicates(root, threshold=16, workers=1, quiet=True)
    assert [c.members for c in res.clusters] == [["train/coin/00.png", "train/coin/00_q60.jpg"]]
    assert res.counts.candidates >= 1


def test_similarity_scores():
    a = small("chelsea", 256)
    ta = thumbnail(a)
    assert similarity(ta, thumbnail(dupsynth.jpeg(a, 40))) > 0.95
    assert similarity(ta, thumbnail(dupsynth.crop(a, 0.04))) > VERIFY_MIN
    assert similarity(ta, thumbnail(dupsynth.flip(a))) < VERIFY_MIN
    flat = np.full((50, 50, 3), 114, np.uint8)
    assert similarity(thumbnail(flat), thumbnail(flat)) == 1.0
    assert similarity(thumbnail(flat), ta) == 0.0


def test_apply_undo_restores_tree_byte_identical(tree):
    before = snapshot(tree)
    out = dedupe(tree, workers=1, quiet=True)
    q = tree.parent / "data.quarantine"
    removed = out.result.removals()
    assert out.moved == len(removed) == 5
    for p in removed:
        assert not (tree / p).exists() and (q / p).exists()
    assert (tree / "train/cup/empty.jpg").exists() and (tree / "val/person/broken.jpg").exists()
    assert not (tree / "val/cat").exists()  # emptied by the move, pruned
    man = read_manifest(tree)
    rows = man.set_index("path")
    assert set(man.loc[man["status"] == "removed", "path"]) == set(removed)
    for p, k in removed.items():
        assert rows.loc[p, "duplicate_of"] == k and rows.loc[k, "status"] == "kept"
    assert rows.loc["train/cup/empty.jpg", "status"] == "unreadable"
    assert rows.loc["val/cat/chelsea_half.jpg", "distance"] >= 0
    assert set(man["path"]) == set(before) - {"manifest.parquet"}  # one row per file, no more
    report = (tree / "dedupe.json").read_text()
    assert "chelsea_half" in report and (tree / "dedupe-pairs.csv").exists()
    pairs = pd.read_csv(tree / "dedupe-pairs.csv")
    assert {"a", "b", "distance", "kind", "verified"} <= set(pairs.columns)
    # a second run finds nothing more to remove
    again = dedupe(tree, workers=1, quiet=True)
    assert again.moved == 0
    rep = undo_dedupe(tree)
    assert rep.ok and rep.restored == 5
    assert snapshot(tree) == before
    with pytest.raises(InputError):
        undo_dedupe(tree)


def test_dry_run_changes_nothing(tree):
    before = snapshot(tree)
    out = dedupe(tree, dry_run=True, workers=1, quiet=True)
    assert out.moved == 0 and len(out.result.removals()) == 5
    assert snapshot(tree) == before
    assert not (tree.parent / "data.quarantine").exists()


def test_same_result_whatever_the_workers(tree):
    a = find_duplicates(tree, workers=1, quiet=True)
    b = find_duplicates(tree, workers=2, quiet=True)
    assert [c.members for c in a.clusters] == [c.members for c in b.clusters]
    assert a.pairs.equals(b.pairs)


def test_cli(tree, capsys):
    with pytest.raises(SystemExit) as e:
        main(["dedupe", str(tree), "--dry-run", "-j", "1"])
    assert e.value.code == 1  # unreadable files and a label conflict were found
    out = capsys.readouterr().out
    assert "train: 8 → 5 kept (3 would remove in 1 clusters), 1 unreadable" in out
    assert "val: 3 → 2 kept (1 would remove in 1 clusters), 1 unreadable" in out
    assert "label conflicts: 1" in out
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", str(tree), "-j", "1"])
    assert e.value.code == 1
    with pytest.raises(SystemExit) as e:
        main(["dedupe", "--undo", str(tree)])
    assert e.value.code == 0
    assert "restored 5 files" in capsys.readouterr().out


def test_a_missing_root_is_named_and_not_made(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["dedupe", str(tmp_path / "nope")])
    assert e.value.code == 2 and "nope does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_verification_bar_counts_to_its_known_total(tree, capsys):
    """The search finishes before scoring, so the bar shows pairs done of pairs to score (an ETA)."""
    import re

    with pytest.raises(SystemExit):
        main(["dedupe", str(tree), "--dry-run", "-j", "1"])
    done = re.search(r"verifying pairs (\d+)/(\d+) pairs", capsys.readouterr().err)
    assert done and done.group(1) == done.group(2) and int(done.group(2)) > 0


@pytest.mark.parametrize("args", [
    ["dedupe", "/nonexistent/tree"],
    ["dedupe", "{tree}", "--keep", "biggest"],
    ["dedupe", "{tree}", "--hash", "md5"],
    ["dedupe", "{tree}", "--threshold", "64"],
    ["dedupe", "{tree}", "--quarantine", "{tree}/train/q"],
    ["dedupe", "{tree}", "--quarantine", "{tree}"],
    ["dedupe", "{tree}", "--quarantine", "s3://bucket/q"],  # moves rename on one disk: no local tree to a store
    ["dedupe", "--undo", "{tree}"],
])
def test_cli_bad_input(tree, args, capsys):
    before = snapshot(tree)
    with pytest.raises(SystemExit) as e:
        main([a.format(tree=tree) for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert snapshot(tree) == before


@pytest.mark.slow
def test_real_entry_point(tree):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "curate", "-q", "dedupe", str(tree), "--dry-run", "-j", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "train: 8 → 5 kept" in run.stdout and "Traceback" not in run.stderr
    assert "hashing" not in run.stderr  # -q: no progress bars


def _pair_tree(root: Path) -> Path:
    """train/cat/a.png and an exact copy in val/cat: one leakage removal."""
    dupsynth.save(root / "train/cat/a.png", small("chelsea", 64))
    (root / "val/cat").mkdir(parents=True)
    shutil.copy(root / "train/cat/a.png", root / "val/cat/a.png")
    return root


def test_folder_without_images_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    dupsynth.save(tmp_path / "loose/a.png", small("coffee", 32))  # images directly in DIR: no class folder
    for root in (tmp_path / "loose", tmp_path / "empty"):
        before = sorted(p.name for p in root.iterdir())
        with pytest.raises(InputError, match="no images found"):
            dedupe(root, workers=1, quiet=True)
        assert sorted(p.name for p in root.iterdir()) == before  # no manifest or dedupe.json written


def test_failed_move_leaves_one_copy_and_undo_works(tmp_path, monkeypatch):
    import errno
    import os

    import curate.core.tree

    root = _pair_tree(tmp_path / "data")
    before = snapshot(root)
    real = os.replace

    def replace(src, dst, *a, **k):
        if "/data/val/" in str(src):
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(curate.core.tree.os, "replace", replace)
    with pytest.raises(InputError, match="Permission denied"):
        dedupe(root, workers=1, quiet=True)
    monkeypatch.setattr(curate.core.tree.os, "replace", real)
    assert snapshot(root) == before
    assert not list((tmp_path / "data.quarantine").rglob("*.png"))  # no second copy
    assert undo_dedupe(root).ok


def test_undo_removes_the_quarantine_it_created_and_files_keep_normal_modes(tmp_path):
    import os

    root = _pair_tree(tmp_path / "data")
    mask = os.umask(0o022)
    try:
        dedupe(root, workers=1, quiet=True)
    finally:
        os.umask(mask)
    for name in ("manifest.parquet", "dedupe.json", "curate.json"):
        assert (root / name).stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert undo_dedupe(root).ok
    assert not (tmp_path / "data.quarantine").exists()


def test_non_utf8_file_name_is_one_line_error(tmp_path, capsys):
    import os

    root = _pair_tree(tmp_path / "data")
    os.rename(root / "val/cat/a.png", os.fsencode(root / "val/cat") + b"/caf\xe9.png")
    for cmd in ("dedupe", "report"):
        with pytest.raises(SystemExit) as e:
            main(["-q", cmd, str(root), "-j", "1"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "not valid UTF-8" in err and "caf\\xe9.png" in err and "Traceback" not in err


@pytest.mark.parametrize("name,data", [("manifest.parquet", b"garbage"), ("curate.json", b"{bad json")])
def test_broken_curate_file_stops_before_any_move(tmp_path, name, data):
    root = _pair_tree(tmp_path / "data")
    (root / name).write_bytes(data)
    before = snapshot(root)
    with pytest.raises(InputError, match=name):
        dedupe(root, workers=1, quiet=True)
    assert snapshot(root) == before and not (tmp_path / "data.quarantine").exists()


def test_undo_force_restores_the_rest_when_a_quarantined_file_is_gone(tmp_path, capsys):
    root = _pair_tree(tmp_path / "data")
    dedupe(root, workers=1, quiet=True)  # run 1: val/cat/a.png to the quarantine
    dupsynth.save(root / "train/dog/b.png", small("coffee", 64))
    (root / "val/dog").mkdir(parents=True)
    shutil.copy(root / "train/dog/b.png", root / "val/dog/b.png")
    dedupe(root, workers=1, quiet=True)  # run 2: val/dog/b.png to the quarantine
    (tmp_path / "data.quarantine/val/dog/b.png").unlink()  # the user deleted a quarantined file
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", "--undo", str(root)])
    assert e.value.code == 1
    out = capsys.readouterr()
    assert "missing from the quarantine" in out.err and "--undo --force" in out.err
    assert not (root / "val/cat/a.png").exists()  # stopped at run 2: run 1 still applied
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", "--undo", "--force", str(root)])
    assert e.value.code == 1  # not everything came back, and it says what
    assert "missing from the quarantine" in capsys.readouterr().err
    assert (root / "val/cat/a.png").exists()  # run 1 undone past the broken run 2
    with pytest.raises(InputError, match="nothing to undo"):
        undo_dedupe(root)
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", "--force", str(root)])
    assert e.value.code == 2


def test_alike_in_gray_but_not_in_colour_are_not_duplicates(tmp_path):
    # A flat red and a flat blue patch of the same luma: equal perceptual hashes, equal grayscale thumbnails.
    red, blue = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    red[...], blue[...] = (200, 60, 60), (60, 93, 255)  # both gray 102
    dupsynth.save(tmp_path / "t/train/red/a.png", red)
    dupsynth.save(tmp_path / "t/train/blue/a.png", blue)
    dupsynth.save(tmp_path / "t/train/red/b.jpg", dupsynth.jpeg(red, 80))  # a real near copy stays one
    res = find_duplicates(tmp_path / "t", workers=1, quiet=True)
    assert [sorted(c.members) for c in res.clusters] == [["train/red/a.png", "train/red/b.jpg"]]


def test_png_of_a_jpeg_is_an_exact_copy_even_with_another_hash(tmp_path):
    # the PNG holds the JPEG's decoded pixels; its hash (full decode) is 2 bits from the JPEG's (reduced decode)
    root = tmp_path / "px"
    (root / "train/r").mkdir(parents=True)
    Image.fromarray(small("rocket")).save(root / "train/r/a.jpg", quality=50)
    Image.fromarray(np.asarray(Image.open(root / "train/r/a.jpg").convert("RGB"))).save(root / "train/r/b.png")
    res = find_duplicates(root, threshold=0, verify=False, workers=1, quiet=True)
    assert [(c.kind, c.members) for c in res.clusters] == [("exact", ["train/r/a.jpg", "train/r/b.png"])]


def _decoded_and_exact(root: Path, monkeypatch) -> tuple[list[str], set[tuple[str, str]]]:
    """(names of the files the exact-pixel check decoded in full, the exact pairs) of a dedupe of `root`."""
    import curate.dedupe.exact as dx

    seen: list[str] = []
    real = dx._digest_shard
    monkeypatch.setattr(dx, "_digest_shard", lambda paths: (seen.extend(map(str, paths)), real(paths))[1])
    res = find_duplicates(root, threshold=8, verify=False, workers=1, quiet=True)
    return sorted(Path(p).name for p in seen), {(p.a, p.b) for p in res.pairs.itertuples() if p.kind == "exact"}


def _png_of_a_jpeg(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A tree with a.jpg, b.png (a.jpg's decoded pixels) and d.jpg (a.jpg's photo moved by 4 px)."""
    root = tmp_path / "px"
    (root / "train/r").mkdir(parents=True)
    a = small("rocket", 256)
    Image.fromarray(a).save(root / "train/r/a.jpg", quality=90)
    Image.fromarray(np.asarray(Image.open(root / "train/r/a.jpg").convert("RGB"))).save(root / "train/r/b.png")
    Image.fromarray(np.roll(a, 4, axis=1)).save(root / "train/r/d.jpg", quality=90)
    return root, a


def test_pixel_check_decodes_copies_not_lookalikes(tmp_path, monkeypatch):
    # same size, hashes within 8 bits: a PNG of a JPEG's pixels is decoded in full and grouped; the same
    # photo turned by 3 degrees or moved by 4 px (look-alikes, 8 and 6 bits away) is not decoded at all
    root, a = _png_of_a_jpeg(tmp_path)
    Image.fromarray(a).rotate(3, Image.BILINEAR).save(root / "train/r/c.jpg", quality=90)
    assert _decoded_and_exact(root, monkeypatch) == (["a.jpg", "b.png"], {("train/r/a.jpg", "train/r/b.png")})


def test_few_pixel_candidates_are_compared_here_and_many_in_the_pool_with_the_same_groups(tmp_path, monkeypatch):
    # a few small decodes run in this process (not queued behind the pool's other tasks); above
    # LOCAL_PIXELS they are pool tasks: the same exact groups either way
    import curate.dedupe.exact as dx

    root, _ = _png_of_a_jpeg(tmp_path)
    maps = []
    real_map = LocalExecutor.map

    def spy(self, fn, *args, **kwargs):
        maps.append(getattr(fn, "__name__", ""))
        return real_map(self, fn, *args, **kwargs)

    monkeypatch.setattr(LocalExecutor, "map", spy)

    def exact_pairs() -> set:
        res = find_duplicates(root, threshold=8, verify=False, workers=2, quiet=True)
        return {(p.a, p.b) for p in res.pairs.itertuples() if p.kind == "exact"}

    here = exact_pairs()
    assert "_digest_shard" not in maps
    monkeypatch.setattr(dx, "LOCAL_PIXELS", 0)
    maps.clear()
    assert exact_pairs() == here == {("train/r/a.jpg", "train/r/b.png")} and "_digest_shard" in maps


def test_same_format_pixel_copies_are_found_by_key_and_only_they_are_decoded(tmp_path, monkeypatch):
    # a JPEG saved again with a comment (other bytes, same coefficients, same pixels) is exact; a same-size
    # look-alike 1 bit away, and the rest of an all-JPEG set, are never decoded in full
    root = tmp_path / "px"
    (root / "train/r").mkdir(parents=True)
    a = small("rocket", 256)
    Image.fromarray(a).save(root / "train/r/a.jpg", quality=90)
    Image.fromarray(a).save(root / "train/r/b.jpg", quality=90, comment=b"copied")
    Image.fromarray(np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)).save(root / "train/r/c.jpg", quality=90)
    assert (root / "train/r/a.jpg").read_bytes() != (root / "train/r/b.jpg").read_bytes()
    assert _decoded_and_exact(root, monkeypatch) == (["a.jpg", "b.jpg"], {("train/r/a.jpg", "train/r/b.jpg")})


def test_big_bucket_of_equal_hashes_finds_every_family_whatever_the_names(tmp_path, monkeypatch):
    # blank images all share one hash; dark and light ones are two families that must not merge,
    # and neither may be lost because the star's centre belongs to the other one
    import curate.dedupe.find

    monkeypatch.setattr(curate.dedupe.find, "STAR_ABOVE", 6)
    root = tmp_path / "blank"
    for i in range(6):
        dupsynth.save(root / f"train/x/a_dark{i}.png", np.full((40 + i, 40 + i, 3), 40, np.uint8))
        dupsynth.save(root / f"train/x/b_light{i}.png", np.full((40 + i, 40 + i, 3), 220, np.uint8))
    res = find_duplicates(root, workers=1, quiet=True)
    assert sorted(len(c.members) for c in res.clusters) == [6, 6]
    for p in sorted((root / "train/x").glob("b_*")):
        p.rename(p.with_name("0" + p.name))  # the light ones now sort first
    again = find_duplicates(root, workers=1, quiet=True)
    assert sorted(len(c.members) for c in again.clusters) == [6, 6]


def test_no_chaining_a_b_c():
    from curate.dedupe.find import stars

    # A~B and B~C verified, A and C never matched: B joins the centre it was verified against, C stays apart
    out = stars([0, 1, 2], {0: [(1, 4, 0.97)], 1: [(0, 4, 0.97), (2, 5, 0.95)], 2: [(1, 5, 0.95)]})
    assert out == {0: [(1, 4, 0.97)], 2: []}


def test_chain_of_real_files_is_never_one_cluster(tmp_path):
    # a chain on real pixels: A, a crop B of A, and a crop C of B (5 % and 6 % a side); each step is within
    # the zoom range of the search, A to C is not. A~B and B~C verify, A~C does not (it is turned away
    # before scoring, or scored below the line); no cluster may hold both A and C
    a = small("chelsea", 256)
    b = dupsynth.crop(a, 0.05)
    c = dupsynth.crop(b, 0.06)
    root = tmp_path / "chain"
    for name, x in (("a", a), ("b", b), ("c", c)):
        dupsynth.save(root / "train" / "x" / f"{name}.png", x)
    res = find_duplicates(root, threshold=40, workers=1, quiet=True)
    verified = {(p.a, p.b) for p in res.pairs.itertuples() if p.verified}
    assert ("train/x/a.png", "train/x/b.png") in verified and ("train/x/b.png", "train/x/c.png") in verified
    assert ("train/x/a.png", "train/x/c.png") not in verified
    for cl in res.clusters:
        assert not {"train/x/a.png", "train/x/c.png"} <= set(cl.members)
        for _m, link in cl.links.items():
            assert link["similarity"] >= VERIFY_MIN and link["distance"] <= 40


def test_conflicts_drop_quarantines_every_copy_in_the_split(tmp_path):
    a = small("coffee", 128)
    root = tmp_path / "conf"
    dupsynth.save(root / "train/cup/coffee.png", a)
    dupsynth.save(root / "train/mug/coffee_q90.jpg", dupsynth.jpeg(a, 90))
    keep = find_duplicates(root, workers=1, quiet=True)
    assert len(keep.clusters) == 1 and keep.clusters[0].label_conflict and keep.clusters[0].remove == []
    drop = find_duplicates(root, workers=1, quiet=True, conflicts="drop")
    assert drop.clusters[0].remove == ["train/cup/coffee.png", "train/mug/coffee_q90.jpg"]
    assert drop.params["conflicts"] == "drop"


def test_manifest_distance_and_similarity_refer_to_the_kept_copy(tree):
    out = dedupe(tree, workers=1, quiet=True)
    man = read_manifest(tree).set_index("path")
    removed = out.result.removals()
    assert removed and "similarity" in man.columns and "conflict" in man.columns
    for p, kept in removed.items():
        row = man.loc[p]
        assert row["status"] == "removed" and row["duplicate_of"] == kept
        assert row["similarity"] >= VERIFY_MIN and 0 <= row["distance"] <= out.result.params["threshold"]
    conflict = [c for c in out.result.clusters if c.label_conflict][0]
    assert set(man.loc[conflict.members, "conflict"]) == {"keep"}
    assert pd.isna(man.loc[conflict.keep, "similarity"])  # the kept file is the reference


def test_cli_conflicts_drop(tmp_path, capsys):
    a = small("coffee", 128)
    root = tmp_path / "conf"
    dupsynth.save(root / "train/cup/coffee.png", a)
    dupsynth.save(root / "train/mug/coffee_q90.jpg", dupsynth.jpeg(a, 90))
    dupsynth.save(root / "train/mug/other.png", small("chelsea", 128))
    with pytest.raises(SystemExit) as e:
        main(["dedupe", str(root), "--conflicts", "drop", "-j", "1"])
    assert e.value.code == 1 and "label conflict (cup, mug)" in capsys.readouterr().err
    assert sorted(p.name for p in root.rglob("*.*") if p.parent.parent.name == "train") == ["other.png"]
    with pytest.raises(SystemExit) as e:
        main(["dedupe", str(root), "--conflicts", "maybe", "-j", "1"])
    assert e.value.code == 2


def test_dedupe_and_resplit_refuse_a_detection_set(tmp_path, capsys):
    root = tmp_path / "yolo"
    dupsynth.save(root / "images/train/a.png", small("coffee", 64))
    dupsynth.save(root / "images/val/a.png", small("coffee", 64))
    (root / "labels/train").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [cup]\nnc: 1\n")
    before = snapshot(root)
    for argv in (["dedupe", str(root)], ["resplit", str(root), "--ratios", "0.5,0.5"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "YOLO detection set" in capsys.readouterr().err
    assert snapshot(root) == before


def test_tiny_look_alikes_are_not_copies(tmp_path):
    # scikit-learn's real 8x8 digit scans, upscaled to 28 px: hundreds of "1"s within a few hash bits of
    # each other, none a copy. With so little detail only an all-but-identical image verifies.
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "digits"
    for i in range(500):
        x = np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
        dupsynth.save(root / "train" / str(d.target[i]) / f"{i:03d}.png", np.repeat(x[:, :, None], 3, axis=2))
    x0 = np.asarray(Image.open(root / "train" / str(d.target[0]) / "000.png"))
    dupsynth.save(root / "train" / str(d.target[0]) / "000_copy.png", dupsynth.brightness(x0, 1.02))
    res = find_duplicates(root, workers=2, quiet=True)
    by_hash = len(hamming_pairs(pack(res.files["hash"].tolist(), 64), 12, 64)[0])
    assert by_hash > 500  # plenty of look-alikes within the hash threshold ...
    assert 0 < res.counts.candidates < by_hash / 5  # ... most of which the centre code never proposes
    assert [c.members for c in res.clusters] == [[f"train/{d.target[0]}/000.png", f"train/{d.target[0]}/000_copy.png"]]


def test_scoring_in_streamed_tasks_gives_the_same_result(tmp_path, monkeypatch):
    import curate.dedupe.find as dd

    root = tmp_path / "rounds"
    for name in ("chelsea", "coffee", "rocket"):
        a = small(name, 160)
        dupsynth.save(root / "train" / name / f"{name}.png", a)
        dupsynth.save(root / "train" / name / f"{name}_q70.jpg", dupsynth.jpeg(a, 70))
        dupsynth.save(root / "val" / name / f"{name}_crop.jpg", dupsynth.crop(a, 0.04))
    whole = find_duplicates(root, workers=1, quiet=True)
    made = []
    real = dd._score_shard
    monkeypatch.setattr(dd, "STREAM_MIN", 1)  # a task per gated batch, one pair each
    monkeypatch.setattr(dd, "SHARD_PAIRS", 1)
    monkeypatch.setattr(dd, "_score_shard", lambda task: made.append(task) or real(task))
    rounds = find_duplicates(root, workers=1, quiet=True)
    monkeypatch.setattr(dd, "_score_shard", real)  # a pool needs the module's own (picklable) function
    streamed = find_duplicates(root, workers=2, quiet=True)
    assert whole.counts.scored > 2 and len(made) == rounds.counts.scored  # one task a pair
    assert rounds.pairs.equals(whole.pairs)
    assert [c.members for c in streamed.clusters] == [c.members for c in whole.clusters]
    assert streamed.pairs.equals(whole.pairs)
    assert [c.members for c in rounds.clusters] == [c.members for c in whole.clusters]
    assert rounds.pairs.equals(whole.pairs)


def test_a_few_pairs_to_score_still_make_two_tasks_a_worker():
    """128 pairs on two workers were one task (a minimum of 128 a task), so one worker scored them all."""
    import curate.dedupe.find as dd

    class Recorder:
        workers = 2

        def __init__(self):
            self.tasks = []

        def map(self, fn, tasks, **kw):
            for t in tasks:
                self.tasks.append(t)
                yield [0.0] * len(t[1])

    for n, want in ((128, 4), (10, 1), (40, 3), (5000, 20)):  # 40: tasks of TASK_MIN (16)
        ex = Recorder()
        pairs = np.array([(k, k + 1, 3) for k in range(n)], np.int64)
        got, scores = dd._score_stream(iter([pairs]), str, ex, total=n)
        assert len(ex.tasks) == want, (n, len(ex.tasks))
        assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, pairs.tolist())) and len(scores) == n


def test_scoring_order_keeps_each_connected_group_together():
    """find._local_order: pairs come grouped by connected group of the pair graph (a scoring task then decodes
    each thumbnail once), as a permutation of the same pairs."""
    from curate.dedupe.find import _local_order

    pairs = np.array([[50, 3, 1], [1, 2, 2], [3, 9, 3], [40, 41, 4], [2, 60, 5], [9, 8, 6], [41, 70, 7]])
    got = _local_order(pairs)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, pairs.tolist()))
    groups = [frozenset({1, 2, 60}), frozenset({3, 8, 9, 50}), frozenset({40, 41, 70})]
    seen = [next(g for g in groups if p[0] in g) for p in got.tolist()]
    assert [g for k, g in enumerate(seen) if k == 0 or seen[k - 1] != g] == groups  # each group once, in a run
