"""Pieces of `curate report`: the stats cache, measures, rule parsing, fallbacks, odd trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.core.errors import InputError
from curate.core.layout import scan_tree
from curate.report import build_report
from curate.report.build import exact_clusters
from curate.report.checks import all_checks, parse_overrides, parse_rules
from curate.report.measure import measure_file, measure_pixels
from curate.report.stats import cache_path, image_stats
from curate.sources.samples import load_photo


def small_tree(root: Path, split: str | None = "train") -> Path:
    pics = {"cat": load_photo("chelsea"), "cup": load_photo("coffee"), "rocket": load_photo("rocket")}
    for label, im in pics.items():
        for i in range(3):
            h, w = im.shape[:2]
            crop = im[i * h // 6 : i * h // 6 + h // 2, i * w // 6 : i * w // 6 + w // 2]
            d = root / (split or "") / label
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(d / f"{i}.png")
    return root


def test_stats_cache_reuses_unchanged_files(tmp_path):
    root = small_tree(tmp_path / "ds")
    files = scan_tree(root).files
    first = image_stats(root, files, workers=1, quiet=True)
    assert not first["cached"].any() and cache_path(root).exists()
    assert cache_path(root).parent == root / ".curate" / "cache"
    again = image_stats(root, files, workers=1, quiet=True)
    assert again["cached"].all()
    pd.testing.assert_frame_equal(first.drop(columns="cached"), again.drop(columns="cached"))
    changed = root / "train/cat/1.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    third = image_stats(root, files, workers=1, quiet=True)
    assert third.loc[~third["cached"], "path"].tolist() == ["train/cat/1.png"]
    assert third.set_index("path").loc["train/cat/1.png", "width"] == 50
    cache_path(root).write_bytes(b"garbage")  # a damaged cache only costs time
    fourth = image_stats(root, files, workers=1, quiet=True)
    assert not fourth["cached"].any() and fourth["width"].notna().all()


def test_measures_on_real_photo_and_bad_files(tmp_path):
    im = load_photo("astronaut")
    sharp = measure_pixels(im)
    assert sharp["sharpness"] > 100 and sharp["colorfulness"] > 0.1 and 0.2 < sharp["brightness"] < 0.8
    assert measure_pixels(np.full((64, 64, 3), 90, np.uint8))["contrast"] == 0
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert measure_file(tmp_path / "empty.jpg")["error"] == "empty"
    assert measure_file(tmp_path / "gone.jpg")["error"] == "missing"
    big = tmp_path / "big.jpg"
    Image.fromarray(np.tile(im, (4, 4, 1))).save(big, quality=90)  # 2048 px: decoded at reduced size
    row = measure_file(big)
    assert (row["width"], row["height"], row["error"]) == (2048, 2048, None)


def test_one_pass_caches_the_hashes_dedupe_would_make(tmp_path, monkeypatch):
    """image_stats(hashes=True) measures and hashes from one read: hash_files then decodes nothing, and its
    table is the one it makes itself on an untouched copy of the tree."""
    import shutil

    from curate.dedupe import hashing

    root = small_tree(tmp_path / "ds")
    Image.fromarray(np.tile(load_photo("coffee"), (4, 4, 1))).save(root / "train/cup/big.jpg", quality=85)
    (root / "train/cup/bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    twin = shutil.copytree(root, tmp_path / "twin")
    image_stats(root, scan_tree(root).files, workers=1, quiet=True, hashes=True)
    with monkeypatch.context() as m:
        m.setattr(hashing, "hash_file", lambda *a: pytest.fail(f"decoded again: {a}"))
        got = hashing.hash_files(root, workers=1, quiet=True)
    pd.testing.assert_frame_equal(got, hashing.hash_files(twin, workers=1, quiet=True))
    assert got["error"].notna().sum() == 1


def test_a_large_colour_jpeg_is_decoded_once(tmp_path, monkeypatch):
    import cv2

    from curate.dedupe.hashing import hash_file
    from curate.report.measure import measure_and_hash

    big = tmp_path / "big.jpg"  # 2048 x 1536: measures and hash both want OpenCV's 1/8 decode
    Image.fromarray(np.tile(load_photo("chelsea"), (5, 5, 1))[:1536, :2048]).save(big, quality=90)
    want_row, want_hash = measure_file(big), hash_file(big)
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(a[1]) or real(*a))
    row, hashed = measure_and_hash(big)
    assert calls == [cv2.IMREAD_REDUCED_COLOR_8]
    assert row == want_row and hashed == want_hash


def test_rule_and_threshold_parsing():
    assert parse_rules("leakage,corrupt") == ["corrupt", "leakage"]
    assert parse_rules(["leakage", "corrupt,dark"]) == ["corrupt", "dark", "leakage"]
    assert parse_rules(["all"]) == sorted(all_checks())
    with pytest.raises(InputError, match="unknown --fail-on"):
        parse_rules("leakage,typo")
    assert parse_overrides(["blurry=10", "odd-size.min_side=64"]) == {
        "blurry": {"max_sharpness": 10.0}, "odd-size": {"min_side": 64.0}}
    for bad in ("blurry", "nosuch=1", "blurry.nope=1", "blurry=abc", "corrupt=1", "blurry=nan", "dark=inf"):
        with pytest.raises(InputError):
            parse_overrides([bad])


def test_exact_clusters_fallback():
    df = pd.DataFrame({
        "path": ["train/a/1.png", "train/a/2.png", "val/b/3.png", "train/a/4.png", "train/a/bad.png"],
        "split": ["train", "train", "val", "train", "train"],
        "label": ["a", "a", "b", "a", "a"],
        "sha256": ["x", "y", "x", "y", "x"],
        "error": [None, None, None, None, "truncated"],
    })
    cl = exact_clusters(df)
    assert [c["members"] for c in cl] == [["train/a/1.png", "val/b/3.png"], ["train/a/2.png", "train/a/4.png"]]
    assert cl[0]["cross_split"] and cl[0]["label_conflict"] and cl[0]["keep"] == "train/a/1.png"
    assert not cl[1]["cross_split"] and not cl[1]["label_conflict"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and ".curate" not in p.parts}


def test_single_split_root_without_manifest(tmp_path):
    root = small_tree(tmp_path / "flat", split=None)
    before = _snapshot(root)
    res = build_report(root, workers=1, quiet=True, duplicates=False, thresholds=["blurry=0"])
    assert _snapshot(root) == before  # the report never touches the tree
    assert res.html_path == tmp_path / ".flat.curate" / "report" / "report.html"  # outside the split root
    doc = json.loads(res.json_path.read_text())
    assert doc["summary"]["splits"] == ["all"] and doc["counts"] == {"all": {"cat": 3, "cup": 3, "rocket": 3}}
    assert "missing-label" in doc["skipped_checks"] and "leakage" in doc["skipped_checks"]
    assert doc["duplicates"]["source"] == "off" and doc["checks"]["blurry"]["count"] == 0
    assert doc["checks"]["blurry"]["params"] == {"max_sharpness": 0.0}


def test_broken_manifest_is_an_input_error(tmp_path):
    root = small_tree(tmp_path / "ds")
    (root / "manifest.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="manifest.parquet"):
        build_report(root, tmp_path / "out", workers=1, quiet=True)
    assert not (tmp_path / "out").exists()  # nothing written


def test_help_and_docs_name_every_check():
    from curate.commands.report import HELP

    docs = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    for name in all_checks():
        assert name in HELP and f"`{name}`" in docs


def test_dedupe_failure_falls_back_to_exact_duplicates(tmp_path, monkeypatch):
    import shutil

    import curate.dedupe.find

    root = small_tree(tmp_path / "ds")
    (root / "val/cat").mkdir(parents=True)
    shutil.copy(root / "train/cat/0.png", root / "val/cat/0.png")

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(curate.dedupe.find, "find_duplicates", broken)
    doc = build_report(root, tmp_path / "a", workers=1, quiet=True).report
    assert doc["duplicates"]["source"] == "sha256" and "boom" in doc["duplicates"]["warning"]
    assert [c["members"] for c in doc["checks"]["leakage"]["findings"]] == [["train/cat/0.png", "val/cat/0.png"]]


def test_a_broken_dedupe_module_fails_loudly(tmp_path):
    """No quiet fallback to exact duplicates when curate.dedupe.find cannot even be imported: the report
    does not load."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['curate.dedupe.find'] = None  # import curate.dedupe.find -> ImportError\n"
            "from curate.report import build_report\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "curate.dedupe.find" in run.stderr.splitlines()[-1]  # (ModuleNotFound|Import)Error


def test_sample_grid_is_capped_for_many_labels():
    from curate.report.build import MAX_GRID, sample_paths

    df = pd.DataFrame({"path": [f"train/l{i}/{k}.png" for i in range(300) for k in range(20)],
                       "label": [f"l{i}" for i in range(300) for _ in range(20)], "error": None})
    per = sample_paths(df, 12)
    assert len(per) == 300 and {len(v) for v in per.values()} == {MAX_GRID // 300}
    assert {len(v) for v in sample_paths(df.head(40), 12).values()} == {12}


def test_unwritable_report_folder_is_an_input_error(tmp_path, monkeypatch):
    import errno

    import curate.core.storage

    root = small_tree(tmp_path / "ds")

    def denied(path, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(curate.core.storage, "atomic_write_bytes", denied)  # the local half of storage.write_bytes
    with pytest.raises(InputError, match="cannot write the report.*Permission denied"):
        build_report(root, workers=1, quiet=True, duplicates=False)


def test_counts_chart_scales_to_many_labels():
    import base64
    import io

    from curate.report import charts

    def size(uri):
        return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size

    few = {"train": {"a": 5, "b": 3, "c": 9}, "val": {"a": 1, "b": 0, "c": 2}}
    labels = [f"{i:03d}_a_rather_long_class_name" for i in range(211)]
    many = {"train": {lab: 3 + i % 20 for i, lab in enumerate(labels)}, "val": dict.fromkeys(labels, 1)}
    w3, h3 = size(charts.counts_chart(few, ["a", "b", "c"]))
    w211, h211 = size(charts.counts_chart(many, labels))
    assert h3 < 400 and h211 < 400  # every label as a sorted column, not 211 unreadable bars
    assert w211 <= 1000
