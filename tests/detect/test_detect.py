"""`curate openimages --task detect`: YOLO and COCO sets on real photos, checked by independent parsers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from detect_parse import loaded_size, parse_coco, parse_yolo
from PIL import Image
from test_openimages import fake_fiftyone_download, out_is_guarded

from curate.core.errors import InputError
from curate.detect import DetectParams, build_detect, prepare_detect
from curate.sources.demo import DEMO_CLASSES, image_id

CLI = [sys.executable, "-m", "curate"]
TRAP_CLASSES = "person,animal,gun,body=Human body"


def run_cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def build(source, out, classes=DEMO_CLASSES, fmt="yolo", workers=1, select=None, **params):
    prep = prepare_detect(classes, source=source, seed=7, **(select or {}))
    p = DetectParams(**{"label_format": fmt, "seed": 7, **params})
    return build_detect(prep, out, p, workers=workers, quiet=True)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".curate" not in p.parts}


@pytest.fixture(scope="module")
def trap_source(demo_source, shared_openimages, tmp_path_factory):
    """Real class list + hierarchy, demo photos, hand-written boxes with the crop tests' traps."""
    root = tmp_path_factory.mktemp("traps") / "src"
    sdir = root / "train"
    for d in ("data", "labels", "metadata"):
        (sdir / d).mkdir(parents=True)
    shutil.copy(shared_openimages / "class-descriptions-boxable.csv", sdir / "metadata" / "classes.csv")
    shutil.copy(shared_openimages / "bbox_labels_600_hierarchy.json", sdir / "metadata" / "hierarchy.json")
    mid = {row[1]: row[0] for row in csv.reader(open(sdir / "metadata" / "classes.csv"))}
    for name in ("astronaut", "grace_hopper", "chelsea", "camera"):
        shutil.copy(demo_source / "train" / "data" / f"{image_id(name)}.jpg", sdir / "data")
    a, g, c, m = (image_id(n) for n in ("astronaut", "grace_hopper", "chelsea", "camera"))
    rows = [  # ImageID, class, xmin, xmax, ymin, ymax, IsGroupOf, IsDepiction
        (a, "Person", 0.03, 0.72, 0.02, 1.0, 0, 0), (a, "Woman", 0.03, 0.71, 0.02, 1.0, 0, 0),  # IoU merge
        (a, "Human face", 0.25, 0.45, 0.1, 0.4, 0, 0),  # a Part of Human body: never labelled body
        (a, "Rifle", 0.68, 0.93, 0.0, 0.55, 0, 0),  # gun is an alias of Handgun+Rifle+Shotgun
        (g, "Woman", 0.18, 0.95, 0.05, 1.0, 0, 0), (g, "Handgun", 0.47, 0.55, 0.8, 0.95, 0, 1),
        (c, "Cat", 0.02, 0.98, 0.0, 1.0, 0, 0),  # a descendant of Animal
        (c, "Cat", 0.02, 0.98, 0.0, 0.99, 0, 1),  # a depiction twin of the cat (IoU >= 0.9)
        (c, "Cat", 0.0, 0.3, 0.0, 0.3, 1, 0),  # a group-of box
        (m, "Man", 0.0, 0.62, 0.13, 1.0, 0, 0), (m, "Camera", 0.52, 0.66, 0.26, 0.38, 0, 0),
        (m, "Human body", 0.05, 0.6, 0.15, 1.0, 0, 0),
    ]
    with open(sdir / "labels" / "detections.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
                    "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"])
        for i, cls, x0, x1, y0, y1, grp, dep in rows:
            w.writerow([i, "xclick", mid[cls], 1, x0, x1, y0, y1, 0, 0, grp, dep, 0])
    return root


def by_image(parsed: dict) -> dict[str, list]:
    """image id -> sorted (class, rounded box, iscrowd, ignore)."""
    return {Path(p).stem: sorted((b[0], *(round(v, 2) for v in b[1:5]), b[5], b[6]) for b in v["boxes"])
            for p, v in parsed.items()}


# ---------------------------------------------------------------- selection


def test_traps_give_the_same_selection_in_both_formats(trap_source, tmp_path):
    include = {"group": True}  # nothing filtered: both formats keep every image
    build(trap_source, tmp_path / "y", TRAP_CLASSES, "yolo", select={"include": include}, val_ratio=0)
    build(trap_source, tmp_path / "c", TRAP_CLASSES, "coco", select={"include": include}, val_ratio=0)
    names_y, y = parse_yolo(tmp_path / "y")
    names_c, c = parse_coco(tmp_path / "c")
    assert names_y == names_c == ["person", "animal", "gun", "body"]  # the order of --classes
    yb, cb = by_image(y), by_image(c)
    assert {k: [b[:5] for b in v] for k, v in yb.items()} == {k: [b[:5] for b in v] for k, v in cb.items()}
    a, g, ch, m = (image_id(n) for n in ("astronaut", "grace_hopper", "chelsea", "camera"))
    assert [b[0] for b in yb[a]] == ["gun", "person"]  # Person+Woman merged once; the face is not a body
    assert [b[0] for b in yb[g]] == ["gun", "person"]
    assert [b[0] for b in yb[ch]] == ["animal", "animal"]  # the depiction twin merged, the group box kept
    assert [b[0] for b in yb[m]] == ["body", "person"]  # Camera is not selected
    assert sorted(b[5] for b in cb[ch]) == [0, 1]  # iscrowd from IsGroupOf
    man = json.loads((tmp_path / "c" / "curate.json").read_text())["steps"]["openimages"]
    assert man["task"] == "detect" and man["names"] == names_c


def test_filtered_boxes_become_ignore_regions(trap_source, tmp_path):
    select = {"include": {"depiction": False}}  # and group-of boxes are dropped by default
    build(trap_source, tmp_path / "c", TRAP_CLASSES, "coco", select=select, val_ratio=0)
    res = build(trap_source, tmp_path / "y", TRAP_CLASSES, "yolo", select=select, val_ratio=0)
    _, c = parse_coco(tmp_path / "c")
    cb = by_image(c)
    g, ch = image_id("grace_hopper"), image_id("chelsea")
    assert [(b[0], b[5], b[6]) for b in cb[g]] == [("gun", 1, 1), ("person", 0, 0)]  # the drawn handgun
    # the cat's depiction twin is covered by the kept cat: no ignore region; the group box is one
    assert sorted((b[5], b[6]) for b in cb[ch]) == [(0, 0), (1, 1)]
    _, y = parse_yolo(tmp_path / "y")
    assert {Path(p).stem for p in y} == {image_id("astronaut"), image_id("camera")}
    assert {s["image_id"] for s in res.skipped} == {g, ch}
    assert res.skips_by_reason == {"ignore-region": 2} and res.problems == 0
    m = res.manifest
    assert not (m.role == "ignore").any()  # left-out images have no rows
    mc = pd_read(tmp_path / "c")
    ign = mc[mc.role == "ignore"]
    assert sorted(ign.ignore_reason) == ["depiction", "group"] and ign.is_depiction.sum() == 1


def pd_read(root):
    import pandas as pd

    return pd.read_parquet(root / "manifest.parquet")


def test_max_per_label_counts_images_and_keeps_every_box(demo_source):
    prep = prepare_detect(DEMO_CLASSES, source=demo_source, seed=3, max_per_label=1)
    b = prep.chosen.boxes
    per_label = b.groupby("label").ImageID.nunique()
    assert (per_label >= 1).all()
    # an image is taken only while one of its labels is under the limit
    assert b.ImageID.nunique() <= len(per_label)
    full = prepare_detect(DEMO_CLASSES, source=demo_source, seed=3).chosen.boxes
    for image in b.ImageID.unique():
        assert len(b[b.ImageID == image]) == len(full[full.ImageID == image])


def test_boxes_under_min_size_become_ignore_regions(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "c", fmt="coco", min_size=100)
    m = res.manifest
    small = m[m.ignore_reason == "too-small"]
    assert len(small) and (small.role == "ignore").all()
    side = np.minimum((m.xmax - m.xmin) * m.source_width, (m.ymax - m.ymin) * m.source_height)
    assert ((side < 100) == (m.ignore_reason == "too-small")).all()
    y = build(demo_source, tmp_path / "y", fmt="yolo", min_size=100)
    assert set(y.manifest.source_id).isdisjoint(small.source_id)
    assert {s["image_id"] for s in y.skipped} == set(small.source_id)


# ---------------------------------------------------------------- geometry and format


def test_demo_source_yields_a_valid_yolo_set_with_source_pixel_boxes(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "y", fmt="yolo", workers=2)
    names, y = parse_yolo(tmp_path / "y")
    assert names == ["person", "animal", "vehicle", "flag"]
    assert len(y) == 15 and sum(len(v["boxes"]) for v in y.values()) == 21 == (res.manifest.role == "box").sum()
    rows = list(csv.DictReader(open(demo_source / "train" / "labels" / "detections.csv")))
    src = {}
    for m in res.manifest.itertuples():
        src_path = demo_source / "train" / "data" / f"{m.source_id}.jpg"
        W, H = loaded_size(src_path)  # the upright source size
        r = next(r for r in rows if r["ImageID"] == m.source_id and r["LabelName"] == m.source_mid
                 and abs(float(r["XMin"]) - m.xmin) < 1e-6 and abs(float(r["YMin"]) - m.ymin) < 1e-6)
        src.setdefault(m.path, []).append((m.box_label, float(r["XMin"]) * W, float(r["YMin"]) * H,
                                           (float(r["XMax"]) - float(r["XMin"])) * W,
                                           (float(r["YMax"]) - float(r["YMin"])) * H))
        assert (m.width, m.height) == (W, H)
    for path, v in y.items():
        got = sorted(b[:5] for b in v["boxes"])
        want = sorted(src[path])
        assert len(got) == len(want)
        for gb, wb in zip(got, want, strict=True):
            assert gb[0] == wb[0] and max(abs(a - b) for a, b in zip(gb[1:], wb[1:], strict=True)) < 1e-3


def test_exif_rotated_and_odd_images_are_reencoded_upright(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "c", fmt="coco")
    m = res.manifest.drop_duplicates("path").set_index("source_id")
    astro = image_id("astronaut")
    assert m.loc[astro, "reencoded"] and m.loc[image_id("motorcycle"), "reencoded"]  # EXIF 6; 16-bit PNG
    assert not m.loc[image_id("chelsea"), "reencoded"]  # a plain JPEG: its bytes are copied
    src = (demo_source / "train" / "data" / f"{image_id('chelsea')}.jpg").read_bytes()
    assert (tmp_path / "c" / m.loc[image_id("chelsea"), "path"]).read_bytes() == src
    with Image.open(tmp_path / "c" / m.loc[astro, "path"]) as im:
        assert im.getexif().get(0x0112, 1) == 1 and im.size == loaded_size(demo_source / "train" / "data" /
                                                                             f"{astro}.jpg")
    _, c = parse_coco(tmp_path / "c")
    assert len(c) == 15


def test_pycocotools_reads_the_coco_set(demo_source, tmp_path):
    coco = pytest.importorskip("pycocotools.coco")  # a test-only dependency (pyproject dev extra)
    build(demo_source, tmp_path / "c", fmt="coco", select={"background": 2}, val_ratio=0.3, test_ratio=0.2)
    for split in ("train", "val", "test"):
        api = coco.COCO(str(tmp_path / "c" / "annotations" / f"instances_{split}.json"))
        assert api.getCatIds() == [1, 2, 3, 4]
        assert [c["name"] for c in api.loadCats(api.getCatIds())] == ["person", "animal", "vehicle", "flag"]
        assert len(api.getImgIds()) > 0


def test_class_order_background_and_image_size(demo_source, tmp_path):
    res = build(demo_source, tmp_path / "y", classes="vehicle,person", select={"background": 3}, image_size=200,
                val_ratio=0.25, test_ratio=0.25)
    names, y = parse_yolo(tmp_path / "y")
    assert names == ["vehicle", "person"]
    empty = [p for p, v in y.items() if not v["boxes"]]
    assert len(empty) == 3 == sum(c["background"] for c in res.counts.values())
    assert all(max(v["size"]) <= 200 for v in y.values())
    assert set(res.counts) == {"train", "val", "test"}
    ids = {Path(p).stem for p in y}
    bg = {Path(p).stem for p in empty}
    assert not bg & set(res.manifest[res.manifest.role == "box"].source_id)
    assert len(ids) == len(y)  # every image once, in one split


# ---------------------------------------------------------------- determinism and resume


def test_workers_1_and_2_give_byte_identical_output(demo_source, tmp_path):
    out = tmp_path / "out"
    build(demo_source, out, fmt="coco", workers=1, shard_size=4, select={"background": 2})
    first = tree_bytes(out)
    shutil.rmtree(out)
    build(demo_source, out, fmt="coco", workers=2, shard_size=4, select={"background": 2})
    assert tree_bytes(out) == first and "manifest.parquet" in first
    assert any(k.startswith("annotations/") for k in first)


KILLER = """
import os, signal, sys
import curate.detect.build as B
from curate.sources.demo import DEMO_CLASSES
from curate.detect import DetectParams, build_detect, prepare_detect
from curate.detect.write import run_detect_shard
n = {"calls": 0}
def dying(shard):
    n["calls"] += 1
    if n["calls"] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return run_detect_shard(shard)
B.run_detect_shard = dying
prep = prepare_detect(DEMO_CLASSES, source=sys.argv[1], seed=7)
build_detect(prep, sys.argv[2], DetectParams(label_format="yolo", seed=7, shard_size=3), workers=1, quiet=True)
"""


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_identical_output(demo_source, tmp_path):
    clean = tmp_path / "out"
    build(demo_source, clean, fmt="yolo", shard_size=3)
    want = tree_bytes(clean)
    shutil.rmtree(clean)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, str(script), str(demo_source), str(clean), "4"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr
    assert not (clean / "manifest.parquet").exists() and not (clean / "data.yaml").exists()
    assert len(list((clean / ".curate" / "shards").glob("shard-*[0-9]"))) == 3  # three shards complete
    res = build(demo_source, clean, fmt="yolo", shard_size=3)
    assert res.reused_shards == 3
    assert tree_bytes(clean) == want


# ---------------------------------------------------------------- bad input and the CLI


def test_out_must_be_new_or_a_matching_build(demo_source, tmp_path):
    out_is_guarded(tmp_path, lambda out: build(demo_source, out), lambda out: build(demo_source, out, fmt="coco"))
    prep = prepare_detect(DEMO_CLASSES, source=demo_source, seed=7)
    build_detect(prep, tmp_path / "out", DetectParams(label_format="coco", seed=7), overwrite=True, quiet=True)
    assert not (tmp_path / "out" / "labels").exists() and (tmp_path / "out" / "annotations").is_dir()


def test_download_fetches_exactly_the_planned_images(demo_source, tmp_path, monkeypatch):
    """Without --source: metadata first, then the images with boxes and the background images, nothing else."""
    calls = fake_fiftyone_download(demo_source, monkeypatch)
    prep = prepare_detect("animal", download_dir=tmp_path / "cache", background=2, seed=7)
    assert [c["image_ids"] for c in calls] == [None] and not (tmp_path / "cache" / "train" / "data").exists()
    res = build_detect(prep, tmp_path / "out", DetectParams(seed=7), workers=1, quiet=True)
    assert sorted(calls[1]["image_ids"]) == prep.image_ids and len(prep.chosen.background) == 2
    assert sum(c["images"] for c in res.counts.values()) == len(prep.image_ids)


def test_object_store_out_is_refused(demo_source):
    prep = prepare_detect("animal", source=demo_source)
    with pytest.raises(InputError, match="local"):
        build_detect(prep, "s3://bucket/sets/animal", DetectParams(), quiet=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_image_is_reported_not_copied(demo_source, tmp_path, damage):
    src = tmp_path / "src"
    shutil.copytree(demo_source, src)
    path = src / "train" / "data" / f"{image_id('chelsea')}.jpg"  # a plain JPEG: its bytes would be copied
    data = path.read_bytes()
    path.write_bytes(b"\xff\xd8\xff\xe0 garbage" if damage == "garbage" else data[: len(data) // 2])
    res = build(src, tmp_path / "out")
    assert res.problems == 1 and res.skipped[0]["image_id"] == image_id("chelsea")
    assert res.skipped[0]["reason"] in ("truncated", "corrupt", "not-an-image")
    assert len(parse_yolo(tmp_path / "out")[1]) == 14


@pytest.mark.slow
def test_cli_dry_run_build_and_errors(demo_source, tmp_path):
    r = run_cli("openimages", "--classes", DEMO_CLASSES, "--source", demo_source, "--task", "detect", "--dry-run",
                "--background", "2")
    assert r.returncode == 0, r.stderr
    assert "boxes selected" in r.stdout and "images: 17 (2 background)" in r.stdout
    out = tmp_path / "y"
    r = run_cli("openimages", "--classes", DEMO_CLASSES, "--source", demo_source, "--task", "detect",
                "--label-format", "yolo", "--out", out, "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert (out / "data.yaml").exists() and len(parse_yolo(out)[1]) == 15
    r = run_cli("openimages", "--classes", DEMO_CLASSES, "--source", demo_source, "--background", "2",
                "--out", tmp_path / "crops")
    assert r.returncode == 2 and "--task detect" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("openimages", "--classes", "nosuchclass", "--source", demo_source, "--task", "detect",
                "--out", tmp_path / "z")
    assert r.returncode == 2 and "unknown Open Images class" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "z").exists()


@pytest.mark.slow
def test_glasses_pipeline_on_a_local_copy(demo_source, shared_openimages, tmp_path):
    """pipelines/glasses-detect.yaml end to end on real photos: the coffee cups, chelsea as background."""
    from curate.pipeline import run_pipeline

    sdir = tmp_path / "src" / "train"
    for d in ("data", "labels", "metadata"):
        (sdir / d).mkdir(parents=True)
    shutil.copy(shared_openimages / "class-descriptions-boxable.csv", sdir / "metadata" / "classes.csv")
    shutil.copy(shared_openimages / "fiftyone-hierarchy.json", sdir / "metadata" / "hierarchy.json")
    rows = list(csv.reader(open(demo_source / "train" / "labels" / "detections.csv")))
    keep = {image_id(n) for n in ("coffee", "coffee-flipped", "chelsea", "rocket")}
    for i in keep:
        shutil.copy(demo_source / "train" / "data" / f"{i}.jpg", sdir / "data")
    with open(sdir / "labels" / "detections.csv", "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *(r for r in rows[1:] if r[0] in keep)])
    res = run_pipeline(Path(__file__).resolve().parents[2] / "pipelines" / "glasses-detect.yaml", quiet=True,
                       variables={"source": str(tmp_path / "src"), "out": str(tmp_path / "out"), "background": 2,
                                  "image_size": 256})
    assert res.exit_code == 0, res.lines()
    names, y = parse_yolo(tmp_path / "out")
    assert names == ["wine_glass", "mug", "coffee_cup"]
    assert sorted(len(v["boxes"]) for v in y.values()) == [0, 0, 1, 1]  # two cups, two background images
    assert all(b[0] == "coffee_cup" for v in y.values() for b in v["boxes"])
    from curate.core.tree import state_dir

    assert (state_dir(tmp_path / "out") / "report" / "report.json").exists()
