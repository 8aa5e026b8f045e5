"""`curate report` end to end: a tree with one planted problem of each kind, found by name and file."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.cli import main
from curate.core.manifest import write_manifest
from curate.report import build_report
from curate.sources.samples import load_photo


def save(path: Path, rgb: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


def crops(name: str, n: int, side: int = 180) -> list[np.ndarray]:
    """n distinct views of a photo: windows on a diagonal, every other one mirrored."""
    im = load_photo(name)
    h, w = im.shape[:2]
    ch, cw = int(h * 0.55), int(w * 0.55)
    out = []
    for i in range(n):
        y, x = (h - ch) * i // max(1, n - 1), (w - cw) * (n - 1 - i) // max(1, n - 1)
        c = im[y : y + ch, x : x + cw]
        c = c[:, ::-1] if i % 2 else c
        out.append(np.asarray(Image.fromarray(c).resize((side, int(side * ch / cw)), Image.Resampling.LANCZOS)))
    return out


# planted problem -> files (relative paths) that must be reported for it
PLANTED = {
    "dark": ["train/person/dark.png"],
    "bright": ["train/person/bright.png"],
    "blurry": ["train/coffee/blurry.jpg"],
    "near-constant": ["train/coffee/flat.png"],
    "low-info": ["train/person/mask.png"],
    "grayscale": ["train/person/gray.jpg", "train/person/mask.png"],  # the mask is black and white
    "odd-aspect": ["train/coffee/strip.png"],
    "odd-size": ["train/cat/tiny.png"],
    "corrupt": ["train/cat/truncated.jpg", "train/coffee/notes.jpg"],
    "ext-mismatch": ["train/person/png_as.jpg"],
}


def build_planted(root: Path) -> Path:
    import cv2

    for i, c in enumerate(crops("chelsea", 5)):
        save(root / f"train/cat/c{i}.png", c)
    for i, c in enumerate(crops("coffee", 5)):
        save(root / f"train/coffee/c{i}.jpg", c, quality=92)
    for i, c in enumerate(crops("astronaut", 3) + crops("grace_hopper", 2)):
        save(root / f"train/person/p{i}.png", c)
    for i, c in enumerate(crops("china", 1) + crops("flower", 4)):
        save(root / f"val/coffee/v{i}.jpg", c, quality=92)  # coffee in val: 5 distinct photos
    save(root / "val/cat/v0.png", crops("motorcycle", 1)[0])
    astro = crops("astronaut", 4)[3].astype(np.float64)
    save(root / "train/person/dark.png", (astro * 0.15).astype(np.uint8))
    temple = crops("china", 3)[1].astype(np.float64)
    save(root / "train/person/bright.png", (255 - (255 - temple) * 0.12).astype(np.uint8))
    coffee = load_photo("coffee")
    blurry = cv2.resize(cv2.GaussianBlur(coffee, (0, 0), 6), (240, 160), interpolation=cv2.INTER_AREA)
    save(root / "train/coffee/blurry.jpg", blurry, quality=92)
    rng = np.random.default_rng(0)
    save(root / "train/coffee/flat.png", (128 + rng.integers(-1, 2, (120, 160, 3))).astype(np.uint8))
    save(root / "train/person/mask.png", load_photo("horse"))
    save(root / "train/person/gray.jpg", load_photo("camera")[::2, ::2], quality=90)
    save(root / "train/coffee/strip.png", coffee[100:160, :])
    save(root / "train/cat/tiny.png", np.asarray(Image.fromarray(load_photo("chelsea")).resize((20, 20))))
    buf = io.BytesIO()
    Image.fromarray(load_photo("rocket")).save(buf, "JPEG", quality=90)
    (root / "train/cat/truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "train/coffee/notes.jpg").write_text("not an image\n")
    save(root / "train/person/png_as.jpg", crops("motorcycle", 3)[2], format="PNG")
    # duplicates: within a split, across splits (leakage), and across labels (label conflict)
    shutil.copy(root / "train/coffee/c0.jpg", root / "train/coffee/c0_copy.jpg")
    shutil.copy(root / "train/cat/c1.png", root / "val/cat/leak.png")
    shutil.copy(root / "train/cat/c2.png", root / "train/person/conflict.png")
    c3 = Image.open(root / "train/coffee/c3.jpg")
    c3.resize((162, c3.height * 162 // c3.width), Image.Resampling.LANCZOS).save(root / "val/coffee/near.jpg",
                                                                              quality=70)
    c4 = np.asarray(Image.open(root / "train/coffee/c4.jpg"))
    save(root / "val/coffee/mirror.jpg", np.ascontiguousarray(c4[:, ::-1]), quality=85)  # mirrored copy
    (root / "train/empty").mkdir()  # empty class folder
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return build_planted(tmp_path_factory.mktemp("report") / "ds")


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    res = build_report(planted, out, workers=1, quiet=True, fail_on=["corrupt", "leakage"])
    return res, json.loads(res.json_path.read_text())


def paths(doc, check):
    return sorted(f["path"] for f in doc["checks"][check]["findings"])


@pytest.mark.parametrize("check", sorted(PLANTED))
def test_planted_file_problems_are_found(report, check):
    _, doc = report
    assert paths(doc, check) == sorted(PLANTED[check])


def test_clean_images_raise_no_quality_issue(report):
    _, doc = report
    flagged = {f["path"] for c in doc["checks"].values() if c["group"] == "quality" for f in c["findings"]}
    planted = {p for ps in PLANTED.values() for p in ps}
    assert flagged <= planted


def test_corrupt_reasons(report):
    _, doc = report
    reasons = {f["path"]: f["reason"] for f in doc["checks"]["corrupt"]["findings"]}
    assert reasons == {"train/cat/truncated.jpg": "truncated", "train/coffee/notes.jpg": "not-an-image"}


def test_counts_and_split_checks(report):
    _, doc = report
    assert doc["counts"]["train"]["cat"] == 6  # c0-c4 + tiny (truncated is unreadable)
    assert doc["counts"]["val"]["cat"] == 2
    assert doc["counts"]["val"]["person"] == 0
    assert doc["splits"]["val"]["missing_labels"] == ["empty", "person"]
    assert doc["checks"]["empty-class"]["findings"] == [
        {"split": "train", "label": "empty", "reason": "no image files"}]
    assert [(f["split"], f["label"]) for f in doc["checks"]["missing-label"]["findings"]] == [("val", "person")]
    assert [(f["split"], f["label"], f["count"]) for f in doc["checks"]["small-class"]["findings"]] == [
        ("val", "cat", 2)]
    assert doc["splits"]["train"]["imbalance_ratio"] == pytest.approx(11 / 6, abs=1e-3)
    assert doc["distributions"]["formats"] == {"JPEG": 15, "PNG": 20}


def _members(doc, check):
    return sorted(tuple(c["members"]) for c in doc["checks"][check]["findings"])


def test_duplicates_leakage_and_label_conflict(report):
    _, doc = report
    assert doc["duplicates"]["source"] == "curate.dedupe" and doc["duplicates"]["warning"] is None
    leak = _members(doc, "leakage")
    assert ("train/cat/c1.png", "val/cat/leak.png") in leak
    assert ("train/coffee/c3.jpg", "val/coffee/near.jpg") in leak  # resized and recompressed
    assert doc["duplicates"]["near_clusters"] >= 1
    assert ("train/cat/c2.png", "train/person/conflict.png") in _members(doc, "label-conflict")
    within = _members(doc, "duplicates")
    assert ("train/coffee/c0.jpg", "train/coffee/c0_copy.jpg") in within
    assert ("train/cat/c2.png", "train/person/conflict.png") in within
    mirrors = doc["checks"]["mirror-leakage"]["findings"]
    assert [m["members"] for m in mirrors] == [["train/coffee/c4.jpg", "val/coffee/mirror.jpg"]]
    assert mirrors[0]["similarity"] > 0.9
    every = {p for c in doc["duplicates"]["clusters"] for p in c["members"]}
    assert every == {"train/cat/c1.png", "val/cat/leak.png", "train/cat/c2.png", "train/person/conflict.png",
                     "train/coffee/c0.jpg", "train/coffee/c0_copy.jpg", "train/coffee/c3.jpg",
                     "val/coffee/near.jpg"}


def test_fail_on_rules_fired(report):
    res, doc = report
    assert res.fired_rules == ["corrupt", "leakage"]
    assert doc["failed"] == ["corrupt", "leakage"]
    assert set(PLANTED) | {"leakage", "duplicates", "label-conflict", "empty-class", "small-class",
                           "missing-label", "mirror-leakage"} <= set(res.fired)
    assert "imbalance" not in res.fired


def test_html_is_self_contained(report):
    res, doc = report
    page = res.html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    srcs = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert srcs and all(s.startswith(("data:", "#")) for s in srcs)
    assert "<script" not in page and "<link" not in page
    for check in ("leakage", "blurry", "dark"):
        assert f'id="check-{check}"' in page
    for p in PLANTED["dark"] + PLANTED["blurry"]:
        assert p in page
    from html.parser import HTMLParser

    class Strict(HTMLParser):
        void = {"meta", "img", "br", "hr", "link", "input"}

        def __init__(self):
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack[-3:]}"
            self.stack.pop()

    parser = Strict()
    parser.feed(page)
    assert parser.stack == []


def test_same_output_whatever_workers(planted, report, tmp_path):
    res, _ = report
    res2 = build_report(planted, tmp_path / "r.html", workers=2, quiet=True, fail_on=["corrupt", "leakage"])
    assert res2.json_path == tmp_path / "r.json"
    assert res2.json_path.read_bytes() == res.json_path.read_bytes()
    assert res2.html_path.read_bytes() == res.html_path.read_bytes()


def test_cli_exit_codes(planted, tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as e:
            main(["report", str(planted), "--out", str(tmp_path / "o"), "-j", "1", *args])
        return e.value.code

    assert run() == 0
    assert run("--fail-on", "corrupt") == 1
    assert run("--fail-on", "imbalance") == 0
    assert run("--fail-on", "imbalance", "--threshold", "imbalance=1.5") == 1
    assert run("--fail-on", "nonsense") == 2
    assert "unknown --fail-on rule" in capsys.readouterr().err
    assert run("--threshold", "blurry.bogus=1") == 2
    assert run("--out", str(planted / "train" / "cat")) == 2  # never writes into the tree


def test_cli_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "nope")])
    assert e.value.code == 2
    (tmp_path / "blank").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "blank")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no images found" in err


def test_crop_manifest(tmp_path):
    root = tmp_path / "crops"
    pics = crops("astronaut", 3, side=128) + crops("coffee", 3, side=128)
    rows = []
    geo = [  # (crop_w, crop_h, scale, content w, content h) of a 128x? output
        (256, 256, 0.5), (200, 180, 0.64), (20, 24, 128 / 24), (300, 60, 128 / 300), (150, 150, 0.85), (64, 64, 2.0),
    ]
    for i, (pic, (cw, ch, sc)) in enumerate(zip(pics, geo, strict=True)):
        label = "person" if i < 3 else "cup"
        rel = f"train/{label}/{i}.png"
        save(root / rel, pic)
        rows.append({"path": rel, "split": "train", "label": label, "status": "kept", "width": pic.shape[1],
                     "height": pic.shape[0], "crop_w": cw, "crop_h": ch, "scale": sc, "source_class": "/m/x",
                     "is_occluded": i % 2 == 0, "ambiguous": False})
    rows[0]["label"] = "human"  # the manifest disagrees with the folder
    rows.append({"path": "train/cup/gone.png", "split": "train", "label": "cup", "status": "removed"})
    rows.append({"path": "train/cup/lost.png", "split": "train", "label": "cup", "status": "kept"})
    write_manifest(root, pd.DataFrame(rows))
    save(root / "train/cup/extra.png", crops("china", 1, side=128)[0])
    res = build_report(root, workers=1, quiet=True)
    doc = json.loads(res.json_path.read_text())
    assert res.html_path.parent == root / ".curate" / "report"
    assert doc["summary"]["crop_dataset"] is True
    assert paths(doc, "tiny-crop") == ["train/person/2.png"]
    assert paths(doc, "upscaled") == ["train/person/2.png"]
    mostly_fill = {f["path"]: f["score"] for f in doc["checks"]["mostly-fill"]["findings"]}
    assert list(mostly_fill) == ["train/cup/3.png"]
    assert doc["crops"]["upscaled_share"] == pytest.approx(2 / 6, abs=1e-3)  # scale 5.3 and 2.0
    assert doc["crops"]["per_label"]["person"]["is_occluded_share"] == pytest.approx(2 / 3, abs=1e-3)
    drift = {f["path"]: f["problem"] for f in doc["checks"]["manifest-drift"]["findings"]}
    assert drift == {"train/cup/extra.png": "not in manifest", "train/cup/lost.png": "missing on disk",
                     "train/person/0.png": "label is 'person' on disk, 'human' in manifest"}
    assert "id=\"crops\"" in res.html_path.read_text()


def test_per_label_profile_and_issues(report):
    _, doc = report
    issues = doc["issues_per_label"]
    assert issues["person"]["grayscale"] == 2 and issues["coffee"]["blurry"] == 1
    assert issues["cat"] == {"corrupt": 1, "odd-size": 1}
    prof = doc["label_profile"]
    assert prof["person"]["grayscale_share"] == pytest.approx(2 / 11, abs=1e-3)
    assert prof["coffee"]["formats"] == {"JPEG": 14, "PNG": 2}
    assert set(prof) == {"cat", "coffee", "person"}


def test_schema_keys_and_deterministic_samples(report):
    from curate.report.build import sample_paths

    _, doc = report
    assert doc["schema"] == "curate.report/1"
    assert list(doc) == ["schema", "tool", "root", "summary", "labels", "label_names", "counts", "splits", "distributions",
                         "label_profile", "issues_per_label", "duplicates", "crops", "checks", "skipped_checks",
                         "fired", "fail_on", "failed", "samples"]
    assert doc["crops"] is None and sorted(doc["skipped_checks"]) == [
        "below-minimum", "crowded-image", "few-val-boxes", "manifest-drift", "mostly-fill", "no-boxes", "tiny-box", "tiny-crop",
        "upscaled"]  # crop and detection checks skip a plain tree
    assert all(len(ps) <= 12 for ps in doc["samples"].values())
    paths = [f"train/x/{i}.png" for i in range(40)]
    images = pd.DataFrame({"path": paths, "split": "train", "label": "x", "error": None})
    assert sample_paths(images, 5, seed=0) == sample_paths(images, 5, seed=0)
    assert sample_paths(images, 5, seed=0)["x"] != sample_paths(images, 5, seed=1)["x"]


def test_summary_at_top_worst_first_and_numbers_match_json(report):
    res, doc = report
    page = res.html_path.read_text()
    assert all(doc["checks"][n]["severity"] in ("error", "warning", "info") for n in doc["checks"])
    assert doc["checks"]["leakage"]["severity"] == "error" and doc["checks"]["grayscale"]["severity"] == "info"
    json.loads(res.json_path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    top = page[page.index('id="summary"'): page.index('id="checks"')]
    assert f"<b>{doc['summary']['images']:,}</b>images" in top
    assert f"<b>{doc['summary']['unreadable']:,}</b>unreadable" in top
    assert f"<b>{doc['duplicates']['redundant_files']:,}</b>redundant copies" in top
    # every check with findings is listed with its count, errors before warnings before info
    order = re.findall(r'<span class="sev (\w+)">.*?href="#check-([\w-]+)".*?<td class="n fired">([\d,]+)</td>', top)
    assert sorted(n for _, n, _ in order) == doc["fired"]
    assert all(int(k.replace(",", "")) == doc["checks"][n]["count"] for _, n, k in order)
    rank = [("error", "warning", "info").index(sev) for sev, _, _ in order]
    assert rank == sorted(rank)
    assert "--fail-on rule(s) fired: corrupt, leakage" in top


def test_html_details_escaping_scores_and_keep(report, planted, tmp_path):
    res, doc = report
    page = res.html_path.read_text()
    assert re.search(r'<span class="score">luma p99 0\.1\d*</span>', page)  # scores say what they measure
    assert re.search(r'<span class="score">sharpness [\d.]+</span>', page)
    for name in doc["checks"]:  # every check keeps its anchor, found something or not
        assert f'id="check-{name}"' in page
    # the duplicates section is dedupe's contact sheet: a label conflict moves nothing, so its kept file is
    # only the reference the others were measured against; a plain duplicate names the kept copy
    conflict = next(c for c in doc["duplicates"]["clusters"] if c["label_conflict"])
    assert conflict["remove"] == []
    dups = page[page.index('id="duplicates"'):page.index('id="quality"')]
    if conflict["kind"] == "near":
        block = dups[dups.index(f'title="{conflict["keep"]}"'):][:3000].split("</figure>")[0]
        assert "reference (nothing removed)" in block
    else:
        assert any("<b>2 copies</b>, 0 removed" in b for b in dups.split("<figure"))
    assert '<span class="ds-role">kept</span>' in dups and '<span class="ds-role">removed</span>' in dups
    # odd names: label folders and files with markup characters are escaped everywhere
    odd = tmp_path / "odd"
    shutil.copytree(planted, odd, ignore=shutil.ignore_patterns(".curate"))
    shutil.copy(planted / "train/cat/c0.png", odd / 'train/cat/we<ird> & "q".png')
    (odd / "train/a<b>&c").mkdir()
    shutil.copy(planted / "train/cat/c3.png", odd / "train/a<b>&c/x'y.png")
    res2 = build_report(odd, tmp_path / "o", workers=1, quiet=True)
    page2 = res2.html_path.read_text()
    assert "<b>&c" not in page2 and "we<ird>" not in page2
    assert "a&lt;b&gt;&amp;c" in page2 and "we&lt;ird&gt; &amp; &#34;q&#34;.png" in page2
