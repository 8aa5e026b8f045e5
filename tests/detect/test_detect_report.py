"""`curate report` on detection trees: box statistics, box checks, leakage on whole images."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import build_detect_tree
from detect_parse import parse_coco, parse_yolo

from curate.core.errors import InputError
from curate.detect import DetectParams, build_detect, prepare_detect
from curate.report import build_report
from curate.sources.demo import DEMO_CLASSES


@pytest.fixture(scope="module")
def coco_tree(demo_source, tmp_path_factory):
    return build_detect_tree(demo_source, tmp_path_factory.mktemp("rep") / "c", "coco", seed=2)


def test_report_on_a_coco_tree(coco_tree, tmp_path):
    res = build_report(coco_tree, tmp_path / "r", quiet=True, workers=1, thresholds=["tiny-box=100"],
                       fail_on="few-val-boxes")
    doc = res.report
    names, parsed = parse_coco(coco_tree)
    d = doc["detection"]
    boxes = [b for v in parsed.values() for b in v["boxes"] if not b[6]]
    assert d["format"] == "coco" and d["classes"] == names and d["boxes"] == len(boxes)
    assert d["ignore_regions"] == sum(b[6] for v in parsed.values() for b in v["boxes"])
    assert d["images_without_boxes"] == 2 and doc["summary"]["images"] == len(parsed)
    assert d["boxes_per_image"]["max"] == max(sum(1 for b in v["boxes"] if not b[6]) for v in parsed.values())
    for label in names:  # boxes per label and split, counted independently
        for split in d["per_label"][label]["boxes"]:
            want = sum(1 for p, v in parsed.items() if p.split("/")[1] == split for b in v["boxes"]
                       if b[0] == label and not b[6])
            assert d["per_label"][label]["boxes"][split] == want
    no_boxes = doc["checks"]["no-boxes"]["findings"]
    assert len(no_boxes) == 2 and {f["label"] for f in no_boxes} == {"background"}
    tiny = doc["checks"]["tiny-box"]["findings"]
    assert len(tiny) == sum(1 for b in boxes if min(b[3], b[4]) < 100) > 0
    assert [f["score"] for f in tiny] == sorted(f["score"] for f in tiny)
    few = doc["checks"]["few-val-boxes"]["findings"]  # the demo has a handful of val boxes per label
    assert {f["label"] for f in few} == set(names) and res.fired_rules == ["few-val-boxes"]
    assert not doc["checks"]["manifest-drift"]["findings"]  # manifest rows carry the image's label
    assert doc["checks"]["crowded-image"]["count"] == 0
    html = res.html_path.read_text()
    assert "Detection boxes" in html and 'alt="box distributions" src="data:image/png' in html


def test_leakage_across_splits_on_whole_images(demo_source, tmp_path):
    prep = prepare_detect(DEMO_CLASSES, source=demo_source, seed=2)
    tree = tmp_path / "y"
    build_detect(prep, tree, DetectParams(label_format="yolo", seed=2), quiet=True)
    train = sorted((tree / "images" / "train").iterdir())[0]
    shutil.copy(train, tree / "images" / "val" / "copy.jpg")  # the same image in val
    shutil.copy(tree / "labels" / "train" / f"{train.stem}.txt", tree / "labels" / "val" / "copy.txt")
    doc = build_report(tree, tmp_path / "r", quiet=True, workers=1).report
    leaks = doc["checks"]["leakage"]["findings"]
    pair = {f"images/train/{train.name}", "images/val/copy.jpg"}
    assert any(pair <= set(f["members"]) and f["splits"] == ["train", "val"] for f in leaks), leaks
    _, y = parse_yolo(tree)
    assert len(y) == 16


def test_report_on_a_broken_detection_tree_is_one_error(coco_tree, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(coco_tree, bad)
    ann = bad / "annotations" / "instances_train.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["category_id"] = 42
    ann.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unknown category id 42"):
        build_report(bad, tmp_path / "r", quiet=True, workers=1)
