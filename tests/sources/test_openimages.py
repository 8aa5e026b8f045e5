"""`curate openimages` on real photos in FiftyOne's layout: geometry, splits, determinism, bad input."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.core.errors import InputError, NetworkError
from curate.crop import letterbox as C
from curate.crop.build import BuildParams, run_shard
from curate.sources import openimages as oi
from curate.sources.demo import DEMO_CLASSES, image_id

CLI = [sys.executable, "-m", "curate"]


def run_cli(*args, cwd=None):
    import subprocess

    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def build(source, out, workers=1, **kw):
    params = BuildParams(**{"seed": 7, **kw})
    prep = oi.prepare(DEMO_CLASSES, source=source, seed=params.seed)
    return oi.build(prep, out, params, workers=workers, quiet=True)


@pytest.fixture()
def source_copy(demo_source, tmp_path):
    dst = tmp_path / "src"
    shutil.copytree(demo_source, dst)
    return dst


# ---------------------------------------------------------------- reading and selection


def test_read_boxes_streams_only_selected_classes(demo_source):
    layout = oi.find_layout(demo_source, "train")
    index = layout.class_index()
    cat = index.by_name["cat"]
    df = oi.read_boxes(layout.detections_csv, {cat}, block_size=4096)
    assert len(df) == 3 and set(df.LabelName) == {cat}  # chelsea, its flip, its re-encoded copy
    assert list(df.columns[:6]) == ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"]


def test_merge_same_label_overlaps_and_keep_most_specific(demo_source):
    prep = oi.prepare(DEMO_CLASSES, source=demo_source)
    b = prep.chosen.boxes
    astro = b[b.ImageID == image_id("astronaut")]
    person = astro[astro.label == "person"]
    assert len(person) == 1, "Person and Woman boxes (IoU >= 0.9) become one crop"
    assert person.source_class.iloc[0] == "Woman" and person.merged.iloc[0] == 1
    assert prep.chosen.merged == 4  # astronaut, grace_hopper and their flips


def test_group_boxes_skipped_by_default_and_included_on_request(demo_source):
    prep = oi.prepare("coin", source=demo_source)
    assert prep.chosen.boxes.empty and prep.chosen.filtered == {"group": 2}
    prep = oi.prepare("coin", source=demo_source, include={"group": True})
    assert len(prep.chosen.boxes) == 2 and prep.chosen.boxes.IsGroupOf.all()
    prep = oi.prepare("animal", source=demo_source, include={"depiction": False})
    assert set(prep.chosen.boxes.source_class) == {"Cat"}  # the horse silhouette is a depiction


def test_ambiguous_overlap_with_another_label_is_flagged(tmp_path, source_copy):
    det = source_copy / "train" / "labels" / "detections.csv"
    rows = list(csv.reader(open(det)))
    cat_mid = "/m/01yrx"
    dog_mid = "/m/0bt9lr"
    chelsea = image_id("chelsea")
    rows.append([chelsea, "xclick", dog_mid, 1, "0.03", "0.97", "0.0", "1.0", 0, 0, 0, 0, 0])
    with open(det, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    prep = oi.prepare("cat,dog", source=source_copy)
    b = prep.chosen.boxes[prep.chosen.boxes.ImageID == chelsea].set_index("label")
    assert b.loc["cat", "ambiguous"] and b.loc["cat", "ambiguous_with"] == "dog"
    assert b.loc["dog", "ambiguous_with"] == "cat"
    assert cat_mid in set(prep.chosen.boxes.LabelName)


def test_limits_are_deterministic_and_respected(demo_source):
    a = oi.prepare(DEMO_CLASSES, source=demo_source, max_per_label=2, seed=3).chosen
    b = oi.prepare(DEMO_CLASSES, source=demo_source, max_per_label=2, seed=3).chosen
    assert a.boxes.equals(b.boxes)
    assert a.boxes.groupby("label").size().max() <= 2
    c = oi.prepare(DEMO_CLASSES, source=demo_source, max_samples=3, seed=3).chosen
    assert c.boxes.ImageID.nunique() == 3


def test_malformed_csv_is_an_input_error(source_copy):
    det = source_copy / "train" / "labels" / "detections.csv"
    det.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/01yrx,zero,1,0,1\n")
    with pytest.raises(InputError, match="malformed"):
        oi.prepare("cat", source=source_copy)


def test_csv_without_labelname_column_is_an_input_error(source_copy):
    det = source_copy / "train" / "labels" / "detections.csv"
    det.write_text(det.read_text().replace("LabelName", "Label", 1))
    with pytest.raises(InputError, match="no 'LabelName' column"):
        oi.prepare("cat", source=source_copy)


@pytest.mark.parametrize("bad_id", ["../../../outside/x", "sub/x", ""])
def test_image_ids_that_are_paths_are_refused(source_copy, bad_id):
    det = source_copy / "train" / "labels" / "detections.csv"
    with open(det, "a", newline="") as f:
        csv.writer(f).writerow([bad_id, "xclick", "/m/01yrx", 1, "0.1", "0.9", "0.1", "0.9", 0, 0, 0, 0, 0])
    with pytest.raises(InputError, match="invalid ImageID"):
        oi.prepare("cat", source=source_copy)


def test_infinite_coordinates_are_dropped(source_copy):
    det = source_copy / "train" / "labels" / "detections.csv"
    chelsea = image_id("chelsea")
    with open(det, "a", newline="") as f:
        csv.writer(f).writerow([chelsea, "xclick", "/m/01yrx", 1, "-inf", "inf", "0.1", "0.9", 0, 0, 0, 0, 0])
    layout = oi.find_layout(source_copy, "train")
    df = oi.read_boxes(layout.detections_csv, {"/m/01yrx"})
    assert len(df) == 3 and np.isfinite(df[["XMin", "XMax", "YMin", "YMax"]].to_numpy()).all()


def test_out_that_is_a_file_is_an_input_error(demo_source, tmp_path):
    (tmp_path / "f").write_text("keep me")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(InputError, match="--out"):
            build(demo_source, out)
    assert (tmp_path / "f").read_text() == "keep me"


def test_missing_layout_names_the_file(tmp_path):
    (tmp_path / "train" / "metadata").mkdir(parents=True)
    with pytest.raises(InputError, match="classes.csv"):
        oi.find_layout(tmp_path, "train")
    with pytest.raises(InputError, match="not a folder"):
        oi.find_layout(tmp_path / "nope", "train")


# ---------------------------------------------------------------- crops


def test_crop_geometry_fill_and_offsets(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "out", format="png", size=96)
    m = res.manifest
    assert len(m) == 21 and (m.width == 96).all() and (m.height == 96).all()
    offsets = set()
    for r in m.itertuples():
        img = np.asarray(Image.open(tmp_path / "out" / r.path).convert("RGB"))
        assert img.shape == (96, 96, 3)
        assert max(r.out_w, r.out_h) == 96
        assert abs(r.out_w / r.out_h - r.crop_w / r.crop_h) <= 1.0 / min(r.out_w, r.out_h) + 1e-9
        assert 0 <= r.offset_x <= 96 - r.out_w and 0 <= r.offset_y <= 96 - r.out_h
        pasted = img[r.offset_y:r.offset_y + r.out_h, r.offset_x:r.offset_x + r.out_w]
        assert C.corner_fill(pasted) == (r.fill_r, r.fill_g, r.fill_b)
        canvas_outside = img.copy()
        canvas_outside[r.offset_y:r.offset_y + r.out_h, r.offset_x:r.offset_x + r.out_w] = (r.fill_r, r.fill_g, r.fill_b)
        assert (canvas_outside == (r.fill_r, r.fill_g, r.fill_b)).all(), "outside the crop is the fill colour"
        offsets.add((r.offset_x, r.offset_y))
    assert len(offsets) > 5, "offsets vary between crops"


def test_letterbox_is_a_pure_function_of_key():
    region = np.random.default_rng(0).integers(0, 255, (50, 120, 3), dtype=np.uint8)
    a = C.letterbox(region, 120, 50, 64, key=1)
    b = C.letterbox(region, 120, 50, 64, key=1)
    assert np.array_equal(a.canvas, b.canvas) and (a.out_w, a.out_h) == (64, 27)
    keys = {C.letterbox(region, 120, 50, 64, key=k).offset_y for k in range(20)}
    assert len(keys) > 5


def test_corner_fill_is_the_median_of_corner_patches():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:] = (10, 20, 30)
    img[0, 0] = (255, 255, 255)  # one noisy pixel does not move the median
    assert C.corner_fill(img) == (10, 20, 30)


def test_min_size_skips_and_reports(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "out", min_size=400)
    assert res.skips_by_reason.get("too-small", 0) > 0
    assert res.problems == 0  # a filter, not a failure
    assert len(res.manifest) + res.skips_by_reason["too-small"] == 21


# ---------------------------------------------------------------- tree, splits, determinism


def test_tree_is_imagefolder_and_grouped_by_source_image(demo_source, tmp_path):
    out = tmp_path / "out"
    res = build(demo_source, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["curate.json", "manifest.parquet", "train", "val"]
    for split in ("train", "val"):
        for label_dir in (out / split).iterdir():
            assert label_dir.is_dir() and all(f.is_file() for f in label_dir.iterdir())
    m = pd.read_parquet(out / "manifest.parquet")
    assert m.groupby("source_id").split.nunique().max() == 1, "crops of one photo share a split"
    assert set(m.split) == {"train", "val"}
    assert set(m[m.split == "val"].label) == {"person", "animal", "vehicle", "flag"}
    for r in m.itertuples():
        assert (out / r.path).exists()
    info = json.loads((out / "curate.json").read_text())
    assert info["steps"]["openimages"]["counts"] == res.counts
    assert info["seed"] == 7


def test_same_seed_same_bytes_whatever_the_workers(demo_source, tmp_path, monkeypatch):
    import curate.crop.build as B

    monkeypatch.setattr(B, "SOLO_BOXES", 0)  # a pool even for this small job
    a = build(demo_source, tmp_path / "a", workers=1, shard_size=4)
    b = build(demo_source, tmp_path / "b", workers=2, shard_size=4)
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == (tmp_path / "b" / "manifest.parquet").read_bytes()
    for p in a.manifest.path:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
    assert len(b.manifest) == 21
    c = build(demo_source, tmp_path / "c", workers=1, seed=8)
    assert not c.manifest[["offset_x", "offset_y"]].equals(a.manifest[["offset_x", "offset_y"]])


def test_dry_run_imports_only_what_planning_needs(demo_source):
    """The fixed cost of a command: a dry run reads and plans without pandas, OpenCV or Pillow."""
    import subprocess

    code = ("import runpy, sys\n"
            f"sys.argv = ['curate', 'openimages', '--classes', 'person', '--source', {str(demo_source)!r}, "
            "'--dry-run']\n"
            "code = None\ntry:\n    runpy.run_module('curate', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "print('LOADED', [m for m in ('pandas', 'cv2', 'PIL', 'torch') if m in sys.modules], code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "person" in r.stdout and "LOADED [] 0" in r.stdout, r.stdout + r.stderr


def test_workers_import_no_pandas_and_a_prestarted_pool_works():
    import subprocess

    from curate.crop.shard import ShardResult
    from curate.engine.executor import make_executor

    r = subprocess.run([sys.executable, "-c", "import sys, curate.crop.shard; print('pandas' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr  # what a worker imports (the fork server preloads it)
    ex = make_executor(workers=2, quiet=True)
    ex.prestart("curate.crop.shard")
    assert [r.name for r in ex.map(ShardResult, ["a", "b", "c"])] == ["a", "b", "c"]


def test_a_shard_reaches_a_worker_as_plain_values(demo_source):
    """The driver keeps compact DataFrame slices; a pickled shard carries lists, so workers need no pandas."""
    import pickle
    import subprocess

    from curate.crop.build import make_shards

    prep = oi.prepare(DEMO_CLASSES, source=demo_source)
    boxes = prep.chosen.boxes.assign(split="train", _path="unused")
    shards = make_shards(boxes, "unused", BuildParams(shard_size=4))
    assert sum(s.n_boxes for s in shards) == len(boxes) == 21
    code = ("import pickle, sys\ns = pickle.loads(sys.stdin.buffer.read())\n"
            "print(s.n_boxes, len(s.images), 'pandas' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(shards[0]), capture_output=True, timeout=60)
    assert r.stdout.decode().split() == [str(shards[0].n_boxes), str(len(shards[0].images)), "False"], r.stderr


def test_last_shards_are_quarter_size_so_workers_finish_together():
    from curate.crop.build import TAPER, make_shards

    boxes = pd.DataFrame({"ImageID": [f"i{k // 2:04d}" for k in range(1000)]})  # two boxes an image
    sizes = [s.frame.shape[0] for s in make_shards(boxes, "unused", BuildParams(shard_size=200))]
    assert sum(sizes) == 1000 and sizes[:3] == [200, 200, 200] and TAPER == 2
    assert sizes[3:] == [50] * 8  # the last 2 x 200 boxes in quarters, never splitting an image


def test_small_jobs_start_no_pool(demo_source, tmp_path, monkeypatch):
    import concurrent.futures

    def no_pool(*a, **k):
        raise AssertionError("a process pool was started for 21 crops")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)  # the executor imports it lazily
    res = build(demo_source, tmp_path / "a", workers=2, shard_size=4)
    assert len(res.manifest) == 21


def test_interrupted_run_resumes_to_identical_output(demo_source, tmp_path, monkeypatch):
    build(demo_source, tmp_path / "clean", shard_size=3)
    import curate.crop.build as B

    calls = {"n": 0}

    def flaky(shard):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return run_shard(shard)

    monkeypatch.setattr(B, "run_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        build(demo_source, tmp_path / "out", shard_size=3)
    assert not (tmp_path / "out" / "manifest.parquet").exists()
    monkeypatch.setattr(B, "run_shard", run_shard)
    res = build(demo_source, tmp_path / "out", shard_size=3)
    assert res.reused_shards == 3
    assert (tmp_path / "out" / "manifest.parquet").read_bytes() == \
        (tmp_path / "clean" / "manifest.parquet").read_bytes()
    again = build(demo_source, tmp_path / "out", shard_size=3)
    assert again.reused_shards == len(list((tmp_path / "out" / ".curate" / "shards").iterdir()))


KILLER = """
import os, signal, sys
import curate.crop.shard as S
from curate.crop.build import BuildParams
from curate.sources.demo import DEMO_CLASSES
from curate.sources import openimages as oi

where, source, out = sys.argv[1:4]
calls = {"n": 0}
crop_image, publish = S.crop_image, S.publish

def crop_then_die(task, params):  # SIGKILL mid-shard: some files staged, no records.json yet
    calls["n"] += 1
    if calls["n"] == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return crop_image(task, params)

def publish_then_die(name, out, records):  # SIGKILL mid-publish: a complete shard, half of it moved
    if name == "shard-00002":
        publish(name, out, records[: len(records) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return publish(name, out, records)

S.crop_image, S.publish = (crop_then_die, publish) if where == "crop" else (crop_image, publish_then_die)
prep = oi.prepare(DEMO_CLASSES, source=source, seed=7)
oi.build(prep, out, BuildParams(seed=7, shard_size=3), workers=1, quiet=True)
"""


@pytest.mark.parametrize("where", ["crop", "publish"])
def test_kill_9_then_resume_gives_identical_output(demo_source, tmp_path, where):
    import subprocess

    clean = build(demo_source, tmp_path / "clean", shard_size=3)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", KILLER, where, str(demo_source), str(out)], capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert not (out / "manifest.parquet").exists()
    assert any(out.glob("*/*/*.jpg"))  # earlier shards were published before the kill
    res = build(demo_source, out, shard_size=3)
    assert res.reused_shards >= 2
    assert (out / "manifest.parquet").read_bytes() == (tmp_path / "clean" / "manifest.parquet").read_bytes()
    files = sorted(p.relative_to(out) for p in out.glob("*/*/*") if p.is_file())
    assert files == sorted(Path(p) for p in clean.manifest.path)
    for p in files:
        assert (out / p).read_bytes() == (tmp_path / "clean" / p).read_bytes()
    assert not list((out / ".curate" / "shards").glob("*.tmp"))


def out_is_guarded(tmp_path: Path, build_into, build_other) -> None:
    """A builder refuses a folder it did not make (leaving it as it was), and a rebuild of its own output
    with other parameters unless --overwrite (the crop and the detection builds)."""
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not made by curate"):
        build_into(user_dir)
    assert (user_dir / "precious.txt").read_text() == "keep me"
    build_into(tmp_path / "out")
    with pytest.raises(InputError, match="--overwrite"):
        build_other(tmp_path / "out")


def test_out_must_be_new_or_a_matching_build(demo_source, tmp_path):
    out_is_guarded(tmp_path, lambda out: build(demo_source, out), lambda out: build(demo_source, out, size=64))
    params = BuildParams(seed=7, size=64)
    prep = oi.prepare(DEMO_CLASSES, source=demo_source, seed=7)
    res = oi.build(prep, tmp_path / "out", params, workers=1, quiet=True, overwrite=True)
    assert (res.manifest.width == 64).all()


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "bomb", "missing"])
def test_bad_images_are_skipped_and_recorded(source_copy, tmp_path, kind):
    victim = source_copy / "train" / "data" / f"{image_id('chelsea')}.jpg"
    data = victim.read_bytes()
    if kind == "empty":
        victim.write_bytes(b"")
    elif kind == "truncated":
        victim.write_bytes(data[: len(data) // 3])
    elif kind == "text":
        victim.write_text("not an image")
    elif kind == "missing":
        victim.unlink()
    elif kind == "bomb":
        victim.write_bytes(png_header(40_000, 40_000))  # 1.6 gigapixels claimed by a tiny file
    res = build(source_copy, tmp_path / "out")
    bad = [s for s in res.skipped if s["box_index"] is None]
    assert image_id("chelsea") in {s["image_id"] for s in bad}
    reasons = {s["image_id"]: s["reason"] for s in bad}
    expected = {"empty": "empty", "truncated": "truncated", "text": "not-an-image", "bomb": "too-large",
                "missing": "missing"}[kind]
    assert reasons[image_id("chelsea")] == expected
    assert res.problems >= 1 and len(res.manifest) > 0
    skipped = json.loads((tmp_path / "out" / ".curate" / "skipped.json").read_text())
    assert any(s["image_id"] == image_id("chelsea") for s in skipped)


# ---------------------------------------------------------------- download path (network boundary faked)


def fake_fiftyone_download(demo_source: Path, monkeypatch) -> list[dict]:
    """FiftyOne's Open Images downloader (the network boundary) faked from the demo source: metadata and
    labels when no image ids are asked for, else exactly those images. Returns the list of its calls."""
    import fiftyone.utils.openimages as foui

    calls: list[dict] = []

    def fake_download(dataset_dir, split, version, label_types, max_samples=None, image_ids=None, **kw):
        assert version == "v7" and label_types == ["detections"]
        calls.append({"max_samples": max_samples, "image_ids": image_ids})
        src = demo_source / split
        dst = Path(dataset_dir)
        if image_ids is None:  # phase 1: metadata and labels only
            shutil.copytree(src / "metadata", dst / "metadata", dirs_exist_ok=True)
            shutil.copytree(src / "labels", dst / "labels", dirs_exist_ok=True)
        else:
            (dst / "data").mkdir(parents=True, exist_ok=True)
            for i in image_ids:
                shutil.copy(src / "data" / f"{i}.jpg", dst / "data" / f"{i}.jpg")

    monkeypatch.setattr(foui, "download_open_images_split", fake_download)
    monkeypatch.setattr(oi, "_check_network", lambda *a, **k: None)
    return calls


def test_download_path_is_two_phase(demo_source, tmp_path, monkeypatch):
    calls = fake_fiftyone_download(demo_source, monkeypatch)
    prep = oi.prepare("animal", download_dir=tmp_path / "cache", max_per_label=2)
    assert calls == [{"max_samples": 0, "image_ids": None}]
    assert not (tmp_path / "cache" / "train" / "data").exists(), "no image before the plan is made"
    res = oi.build(prep, tmp_path / "out", BuildParams(), workers=1, quiet=True)
    assert sorted(calls[1]["image_ids"]) == sorted(prep.chosen.boxes.ImageID.unique())
    assert len(res.manifest) == 2


def test_no_network_names_source(tmp_path, monkeypatch):
    import socket

    def no_dns(*a, **k):
        raise socket.gaierror("Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(NetworkError) as e:
        oi.prepare("animal", download_dir=tmp_path / "cache")
    assert "--source" in str(e.value)


# ---------------------------------------------------------------- command line


def test_cli_end_to_end_and_errors(demo_source, tmp_path):
    out = tmp_path / "out"
    r = run_cli("openimages", "--classes", "person,animal", "--source", demo_source, "--out", out,
                "--workers", "2", "--format", "png")
    assert r.returncode == 0, r.stderr
    assert "manifest" in r.stdout and (out / "manifest.parquet").exists()
    r = run_cli("openimages", "--classes", "persn", "--source", demo_source, "--out", tmp_path / "x")
    assert r.returncode == 2 and "did you mean" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
    r = run_cli("openimages", "--classes", "animal", "--source", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert r.returncode == 2 and "--source" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("openimages", "--classes", "animal", "--source", demo_source, "--dry-run")
    assert r.returncode == 0 and "dry run" in r.stdout
    r = run_cli("openimages", "--list-classes", "o", "--source", demo_source)
    assert r.returncode == 0 and "Motorcycle" in r.stdout
    r = run_cli("openimages", "--list-classes", "--classes", "gun", "--source", demo_source)
    assert r.returncode == 0 and "Handgun" in r.stdout


def test_cli_exit_1_when_images_are_unreadable(source_copy, tmp_path):
    (source_copy / "train" / "data" / f"{image_id('horse')}.jpg").write_bytes(b"")
    r = run_cli("openimages", "--classes", "animal", "--source", source_copy, "--out", tmp_path / "o")
    assert r.returncode == 1 and "unreadable" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- box selection on hand-made boxes (real hierarchy)


@pytest.fixture(scope="module")
def real_index(shared_openimages):
    from curate.sources.classes import ClassIndex

    return ClassIndex.load(shared_openimages / "class-descriptions-boxable.csv",
                           shared_openimages / "bbox_labels_600_hierarchy.json")


def boxes_df(rows):
    """rows: (ImageID, MID, xmin, xmax, ymin, ymax[, flags dict]) -> a read_boxes-like frame."""
    recs = []
    for r in rows:
        flags = r[6] if len(r) > 6 else {}
        recs.append({"ImageID": r[0], "LabelName": r[1], "XMin": r[2], "XMax": r[3], "YMin": r[4], "YMax": r[5],
                     **{c: int(flags.get(c, 0)) for c in oi.FLAG_COLUMNS}})
    df = pd.DataFrame(recs)
    df[["XMin", "XMax", "YMin", "YMax"]] = df[["XMin", "XMax", "YMin", "YMax"]].astype("float32")
    return df


def test_rows_differing_only_in_flags_get_the_same_box_index_whatever_the_order(real_index):
    from curate.sources.classes import resolve

    cat = real_index.by_name["cat"]
    rows = [("img1", cat, 0.1, 0.5, 0.1, 0.5, {"IsDepiction": 1}), ("img1", cat, 0.1, 0.5, 0.1, 0.5, {}),
            ("img1", cat, 0.6, 0.9, 0.1, 0.5, {"IsOccluded": 1}), ("img1", cat, 0.6, 0.9, 0.1, 0.5, {})]
    sel = resolve("cat", real_index, aliases={})
    a = oi.select_boxes(boxes_df(rows), sel, real_index).boxes
    b = oi.select_boxes(boxes_df(rows[::-1]), sel, real_index).boxes
    assert len(a) == 2 and a.merged.tolist() == [1, 1]
    assert a.equals(b)


@pytest.mark.parametrize("spec, general, specific", [
    ("animal", "Marine invertebrates", "Lobster"),  # Lobster: Animal>Shellfish>Lobster, same depth as its parent
    ("phone", "Telephone", "Mobile phone"),  # an alias naming a class and its own subclass
    ("pets=Animal+Cat", "Animal", "Cat"),  # a group naming a class and its descendant
])
def test_merge_keeps_the_most_specific_class(real_index, spec, general, specific):
    from curate.sources.classes import load_aliases, resolve

    g, s = real_index.by_name[general.lower()], real_index.by_name[specific.lower()]
    sel = resolve(spec, real_index, aliases=load_aliases())
    for rows in ([("im", g, 0.1, 0.9, 0.1, 0.9), ("im", s, 0.1, 0.9, 0.1, 0.89)],
                 [("im", s, 0.1, 0.9, 0.1, 0.9), ("im", g, 0.1, 0.9, 0.1, 0.89)]):
        out = oi.select_boxes(boxes_df(rows), sel, real_index).boxes
        assert out.source_class.tolist() == [specific] and out.merged.tolist() == [1]


def test_pixel_box_is_not_grown_by_float32_coordinates():
    # detections.csv is read as float32: 0.45 * 640 is 287.99999 and 0.55 * 640 is 352.00001, which
    # floor/ceil used to turn into a box one pixel wider on each side
    f32 = lambda v: float(np.float32(v))  # noqa: E731 - what a box record holds
    assert C.pixel_box(f32(0.45), f32(0.55), f32(0.1), f32(0.7), 640, 480) == C.PixelBox(288, 48, 352, 336)
    assert C.pixel_box(0.0, 1.0, 0.0, 1.0, 640, 480) == C.PixelBox(0, 0, 640, 480)
    assert C.pixel_box(0.5, 0.5 + 0.3 / 640, 0.0, 1.0, 640, 480).w == 1  # a sub-pixel box keeps its pixel


def test_ambiguity_needs_an_actual_overlap(real_index):
    from curate.sources.classes import resolve

    cat, dog = real_index.by_name["cat"], real_index.by_name["dog"]
    rows = [("im", cat, 0.0, 0.4, 0.0, 0.4), ("im", dog, 0.5, 0.9, 0.5, 0.9),  # disjoint
            ("im", cat, 0.0, 0.2, 0.6, 1.0), ("im", dog, 0.0, 0.2, 0.61, 1.0)]  # IoU 0.975
    sel = resolve("cat,dog", real_index, aliases={})
    for thr in (0.0, 0.7):
        b = oi.select_boxes(boxes_df(rows), sel, real_index, ambiguous_iou=thr).boxes
        flagged = b[b.ambiguous]
        assert len(flagged) == 2 and (flagged.XMax < 0.3).all()
        assert set(flagged.ambiguous_with) == {"cat", "dog"}


def test_missing_hierarchy_is_an_error_not_a_narrower_selection(source_copy):
    # without hierarchy.json 'animal' would quietly mean only boxes labelled Animal itself
    (source_copy / "train" / "metadata" / "hierarchy.json").unlink()
    with pytest.raises(InputError, match="hierarchy.json is missing"):
        oi.prepare("animal", source=source_copy)


@pytest.mark.parametrize("limits", [{"max_per_label": 5}, {"max_samples": 5}])
def test_limits_on_a_selection_without_boxes(demo_source, limits):
    prep = oi.prepare("coin", source=demo_source, **limits)  # its only boxes are group-of: filtered out
    assert prep.chosen.boxes.empty and prep.chosen.table.loc["coin"].tolist() == [0, 0, 0, 0]
