"""curate.core.layout: split names and order, split-folder detection and the scan, on real coin photos
(a few files of ../shared/data/coins-dev, copied first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curate.core import layout, storage, tree
from curate.core.errors import InputError
from curate.core.layout import canonical_split, detect_splits, scan_tree, sort_splits, split_rank, tree_splits

REPO = Path(__file__).resolve().parents[2]
COINS = REPO.parent / "shared" / "data" / "coins-dev"
PER_LABEL = 2  # photos copied per class folder


@pytest.fixture()
def coins(tmp_path) -> Path:
    """A small copy of coins-dev: train/ validation/ test/, two class folders each, two photos per class."""
    if not (COINS / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    root = tmp_path / "coins"
    for split in ("train", "validation", "test"):
        for cdir in sorted(d for d in (COINS / split).iterdir() if d.is_dir())[:2]:
            dst = root / split / cdir.name
            dst.mkdir(parents=True)
            for f in sorted(cdir.iterdir())[:PER_LABEL]:
                shutil.copyfile(f, dst / f.name)
    return root


@pytest.mark.parametrize(("name", "want"), [
    ("train", "train"), ("Training", "train"), ("val", "val"), ("Val", "val"), ("valid", "val"),
    ("validation", "val"), ("VALIDATION", "val"), ("dev", "val"), ("test", "test"), ("Testing", "test"),
    ("all", None), ("holdout", None), ("trains", None), (".train", None), ("", None),
])
def test_canonical_split(name, want):
    assert canonical_split(name) == want


def test_split_order():
    assert [split_rank(s) for s in ("train", "val", "test", "all", "zzz")] == [0, 1, 2, 3, 3]
    assert sort_splits({"zeta", "test", "all", "val", "train", "extra"}) == [
        "train", "val", "test", "all", "extra", "zeta"]
    assert sort_splits([]) == []


def test_split_order_matches_the_old_keys():
    """The keys it replaced: (index or 9, name) in dedupe_apply, index or 99 then path in report.build."""
    names = ["test", "b", "val", "all", "train", "a.b", "a"]
    old = sorted(names, key=lambda s: (layout.SPLIT_ORDER.index(s) if s in layout.SPLIT_ORDER else 9, s))
    assert sort_splits(names) == old
    rows = [("val", "a.jpg"), ("x", "0.jpg"), ("test", "0.jpg"), ("train", "z.jpg"), ("y", "1.jpg")]
    rank = {s: i for i, s in enumerate(layout.SPLIT_ORDER)}
    assert sorted(rows, key=lambda r: (split_rank(r[0]), r[1])) == sorted(rows, key=lambda r: (rank.get(r[0], 99), r[1]))
    assert min(rows, key=lambda r: (split_rank(r[0]), r[1])) == ("train", "z.jpg")


def test_detect_splits_on_real_photos(coins):
    (coins / ".curate").mkdir()  # hidden: never a split
    (coins / "notes").mkdir()  # not a split name: ignored
    got = detect_splits(coins)
    assert got == {"train": "train", "val": "validation", "test": "test"}
    assert list(got) == ["train", "val", "test"]


def test_two_folders_for_one_split(coins):
    (coins / "Valid").mkdir()
    with pytest.raises(InputError, match="two folders for split 'val': Valid/ and validation/"):
        detect_splits(coins)


def test_single_split_root(coins):
    assert detect_splits(coins / "validation") == {"val": ""}
    other = coins.parent / "photos"
    shutil.copytree(coins / "train", other)
    assert detect_splits(other) == {"all": ""}
    with pytest.raises(InputError, match="is not a folder"):
        detect_splits(coins / "missing")


def test_scan_tree(coins):
    labels = sorted(d.name for d in (coins / "train").iterdir())
    (coins / "test" / "empty").mkdir()
    (coins / "train" / labels[0] / "readme.txt").write_text("not an image")
    (coins / "train" / labels[0] / ".hidden.jpg").write_bytes(b"")
    t = scan_tree(coins)
    assert not t.single
    assert len(t.files) == 3 * 2 * PER_LABEL
    assert [f.path for f in t.files] == sorted(f.path for f in t.files)
    assert {f.split for f in t.files} == {"train", "val", "test"}
    assert all(f.path.startswith(("train/", "validation/", "test/")) for f in t.files)
    assert {f.split for f in t.files if f.path.startswith("validation/")} == {"val"}
    assert all(f.path.split("/")[1] == f.label for f in t.files)
    assert t.other == [f"train/{labels[0]}/readme.txt"]
    assert t.empty_labels == [("test", "empty")]
    assert t.split_path("val") == coins / "validation"


def test_a_split_named_folder_makes_a_split_root(coins):
    root = coins / "train"
    assert scan_tree(root).split_dirs == {"train": ""}
    shutil.copytree(coins / "test", root / "Test")  # train/Test/<class>/: now a root with one split folder
    t = scan_tree(root)
    assert t.split_dirs == {"test": "Test"}
    assert len(t.files) == 2 * PER_LABEL and all(f.path.startswith("Test/") for f in t.files)


def test_object_store_scan_uses_the_same_detection(coins):
    """scan_url_tree over a listing of the same tree gives the local scan's splits and files."""
    objects = {p.relative_to(coins).as_posix(): (p.stat().st_size, "") for p in coins.rglob("*") if p.is_file()}
    local = scan_tree(coins)
    remote = storage.scan_url_tree("s3://bucket/coins", objects)
    assert remote.split_dirs == local.split_dirs
    assert remote.files == local.files
    single = {k.split("/", 1)[1]: v for k, v in objects.items() if k.startswith("validation/")}
    assert storage.scan_url_tree("s3://bucket/validation", single).split_dirs == {"val": ""}
    with pytest.raises(InputError, match="s3://bucket/coins has two folders for split 'test'"):
        storage.scan_url_tree("s3://bucket/coins", {**objects, "testing/x/a.jpg": (1, "")})
    assert tree_splits([], "coins", "s3://bucket/coins") == {"all": ""}


def test_layout_lives_in_one_module():
    """tree.py keeps state and writes; the layout names are defined once, in curate.core.layout."""
    for name in ("SPLIT_ORDER", "SPLIT_ALIASES", "canonical_split", "scan_tree", "Tree", "TreeFile", "is_image_name"):
        assert not hasattr(tree, name), name
