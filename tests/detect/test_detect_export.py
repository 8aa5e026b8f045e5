"""`curate export`: YOLO <-> COCO on trees built from the demo source; the source is never touched."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_detect_tree
from detect_parse import parse_coco, parse_yolo

from curate.core.errors import InputError
from curate.detect import DetectParams, build_detect, prepare_detect
from curate.detect.export import export
from curate.sources.demo import DEMO_CLASSES


@pytest.fixture(scope="module")
def yolo_tree(demo_source, tmp_path_factory):
    return build_detect_tree(demo_source, tmp_path_factory.mktemp("yolo") / "y", "yolo", seed=1)


@pytest.fixture(scope="module")
def coco_tree(demo_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("coco") / "c"
    prep = prepare_detect(DEMO_CLASSES, source=demo_source, seed=1, include={"depiction": False})
    build_detect(prep, out, DetectParams(label_format="coco", seed=1), quiet=True)
    return out


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def numbers(parsed: dict) -> dict:
    return {p: sorted(v["boxes"]) for p, v in parsed.items()}


def test_round_trip_yolo_coco_yolo_is_exact(yolo_tree, tmp_path):
    before = digest(yolo_tree)
    export(yolo_tree, "coco", tmp_path / "c")
    export(tmp_path / "c", "yolo", tmp_path / "y2")
    assert digest(yolo_tree) == before  # the source is only read
    names_a, a = parse_yolo(yolo_tree)
    names_c, c = parse_coco(tmp_path / "c")
    names_b, b = parse_yolo(tmp_path / "y2")
    assert names_a == names_b == names_c
    assert set(a) == set(b) == set(c)
    for p in a:
        assert len(a[p]["boxes"]) == len(b[p]["boxes"]) == len(c[p]["boxes"])
        W, H = a[p]["size"]
        for ba, bb, bc in zip(sorted(a[p]["boxes"]), sorted(b[p]["boxes"]), sorted(c[p]["boxes"]), strict=True):
            assert ba[0] == bb[0] == bc[0]
            for va, vb, vc, side in zip(ba[1:5], bb[1:5], bc[1:5], (W, H, W, H), strict=True):
                assert abs(va - vb) / side <= 1e-6 and abs(va - vc) / side <= 1e-6
    for label in (yolo_tree / "labels").rglob("*.txt"):  # the label files come back byte for byte
        assert (tmp_path / "y2" / label.relative_to(yolo_tree)).read_bytes() == label.read_bytes()


def test_coco_to_yolo_leaves_out_images_with_ignore_regions(coco_tree, tmp_path):
    _, c = parse_coco(coco_tree)
    with_ignore = {p for p, v in c.items() if any(b[6] for b in v["boxes"])}
    assert with_ignore  # the rocket depictions in the astronaut photos
    res = export(coco_tree, "yolo", tmp_path / "y")
    _, y = parse_yolo(tmp_path / "y")
    assert set(y) == set(c) - with_ignore and res.left_out == sorted(with_ignore)
    for p in y:  # same classes, same pixels (to YOLO's 6 decimals)
        ys, cs = numbers(y)[p], numbers(c)[p]
        assert [b[0] for b in ys] == [b[0] for b in cs]
        assert [v for b in ys for v in b[1:5]] == pytest.approx([v for b in cs for v in b[1:5]], abs=2e-3)
    info = json.loads((tmp_path / "y" / "curate.json").read_text())["steps"]["export"]
    assert info["left_out"] == sorted(with_ignore) and info["to"] == "yolo"


def broken(tree: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(tree, bad)
    label = sorted((bad / "labels" / "train").glob("*.txt"), key=lambda p: -p.stat().st_size)[0]
    lines = label.read_text().splitlines()
    cls, xc, yc, w, h = lines[0].split()
    lines[0] = {"broken": f"{cls} {xc} {yc}", "outside": f"{cls} 0.95 {yc} 0.3 {h}",
                "unknown": f"17 {xc} {yc} {w} {h}", "text": f"{cls} left {yc} {w} {h}"}[how]
    label.write_text("\n".join(lines) + "\n")
    return bad


@pytest.mark.parametrize("how, message", [("broken", "broken label line"), ("outside", "box outside the image"),
                                          ("unknown", "unknown class id 17"), ("text", "broken label line")])
def test_bad_yolo_labels_are_one_line_errors(yolo_tree, tmp_path, how, message):
    bad = broken(yolo_tree, tmp_path, how)
    with pytest.raises(InputError, match=message) as e:
        export(bad, "coco", tmp_path / "out")
    assert ".txt:1:" in str(e.value)
    assert not (tmp_path / "out").exists()  # validated before anything is written


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][0].update(bbox=[0, 0, 1e6, 10]), "outside"),
    (lambda d: d["annotations"][0].update(category_id=99), "unknown category id 99"),
    (lambda d: d["annotations"][0].update(image_id=12345), "unknown image id"),
    (lambda d: d.pop("categories"), "malformed"),
])
def test_bad_coco_is_a_one_line_error(coco_tree, tmp_path, edit, message):
    bad = tmp_path / "bad"
    shutil.copytree(coco_tree, bad)
    ann = bad / "annotations" / "instances_train.json"
    doc = json.loads(ann.read_text())
    edit(doc)
    ann.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        export(bad, "yolo", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_export_and_its_errors(yolo_tree, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "curate", "export", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    r = cli(yolo_tree, "--to", "coco", "--out", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "annotations" / "instances_train.json").exists()
    r = cli(broken(yolo_tree, tmp_path, "unknown"), "--to", "coco", "--out", tmp_path / "c2")
    assert r.returncode == 2 and "unknown class id" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli(tmp_path / "c", "--to", "coco", "--out", tmp_path / "c3")
    assert r.returncode == 2 and "already a coco tree" in r.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = cli(yolo_tree, "--to", "coco", "--out", mine)
    assert r.returncode == 2 and "not made by curate export" in r.stderr
    assert (mine / "notes.txt").read_text() == "keep"
    r = cli(tmp_path / "nothing", "--to", "yolo", "--out", tmp_path / "c4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
