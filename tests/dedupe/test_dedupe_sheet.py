"""`curate dedupe --sheet`: the HTML contact sheet (curate.dedupe.sheet) on real coins and generated bad input."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from curate.cli import main
from curate.dedupe.find import Cluster, find_duplicates
from curate.dedupe.sheet import SECTION_CAP, sheet_fragment, write_sheet
from curate.sources.samples import load_photo
from curate.testing import dupsynth

COINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coins-dev"


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def _figures(page: str) -> dict[str, str]:
    """tree path -> its figure's HTML (alt/title carry the path)."""
    return {html.unescape(m.group(1)): m.group(0)
            for m in re.finditer(r'<figure class="ds-fig ds-\w+"><(?:img|div)[^>]*title="([^"]*)".*?</figure>',
                                 page, re.S)}


@pytest.fixture(scope="module")
def coins(tmp_path_factory) -> Path:
    if not (COINS / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    root = tmp_path_factory.mktemp("coins") / "coins"
    shutil.copytree(COINS, root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the shared copy is read-only
    return root


@pytest.mark.slow
def test_sheet_on_real_coins_before_and_after_the_moves(coins, tmp_path):
    sheet, report = tmp_path / "dry.html", tmp_path / "dry.json"
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", str(coins), "--dry-run", "--sheet", str(sheet), "--json", str(report), "-j", "2"])
    assert e.value.code in (0, 1)
    page, doc = sheet.read_text(), json.loads(report.read_text())
    near = [c for c in doc["clusters"] if c["kind"] == "near"]
    assert near and len(doc["clusters"]) > len(near)  # coins-dev has both kinds today
    figs = _figures(page)
    for c in near[:SECTION_CAP]:
        assert c["keep"] in figs and "ds-kept" in figs[c["keep"]]
        for p in c["remove"][:5]:
            assert "ds-removed" in figs[p] and ("distance " in figs[p] or "not compared" in figs[p])
    # conflicts, then leakage, then the other near clusters, then the exact copies
    heads = [page.index(f'id="ds-{s}"') for s in ("conflicts", "leakage", "near", "exact")]
    assert heads == sorted(heads)
    names = json.loads((coins / "cat_to_name.json").read_text())
    label = near[0]["keep"].split("/")[1]
    assert names[label].split(",")[1] in page  # label names from the archive's cat_to_name.json
    assert all(src.startswith("data:image/jpeg;base64,") for src in _images(page))  # opens offline
    assert "<script" not in page and 'class="ds-missing"' not in page
    # a real run: the removed files are in the quarantine now and still get their thumbnails
    sheet2 = tmp_path / "run.html"
    with pytest.raises(SystemExit):
        main(["-q", "dedupe", str(coins), "--sheet", str(sheet2), "-j", "2"])
    moved = [p for c in doc["clusters"] for p in c["remove"]]
    assert moved and not any((coins / p).exists() for p in moved)
    page2 = sheet2.read_text()
    assert len(_images(page2)) == len(_images(page)) and 'class="ds-missing"' not in page2
    assert f"{len(moved)} removed · params" in page2


def _pair_tree(root: Path) -> Path:
    cat = dupsynth.resize(load_photo("chelsea"), 0.5)
    dupsynth.save(root / "train/cat/chelsea.png", cat)
    dupsynth.save(root / "train/cat/<script>alert(1)</script>.jpg", dupsynth.jpeg(cat, 60))
    dupsynth.save(root / "val/cat/chelsea_half.jpg", dupsynth.resize(cat, 0.5))
    shutil.copy(root / "train/cat/chelsea.png", root / "train/cat/chelsea_copy.png")
    return root


def test_unreadable_kept_file_gets_a_placeholder_and_names_are_escaped(tmp_path):
    root = _pair_tree(tmp_path / "t")
    res = find_duplicates(root, workers=1, quiet=True)
    (c,) = res.clusters
    assert len(c.members) == 4 and c.keep.startswith("train/")
    (root / c.keep).write_bytes((root / c.keep).read_bytes()[:200])  # truncated after the search
    out = write_sheet(res, root, tmp_path / "s" / "sheet.html", names={"cat": '<i>Felis</i> & "co"'}, workers=1,
                      quiet=True)
    page = out.read_text()
    figs = _figures(page)
    assert '<div class="ds-missing"' in figs[c.keep] and "unreadable" in figs[c.keep]
    assert all(figs[p].count("<img ") == 1 for p in c.members if p != c.keep)
    assert "<script>" not in page and "<i>Felis" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert "&lt;i&gt;Felis&lt;/i&gt; &amp; &#34;co&#34;" in page


def _cluster(i, kind, members, keep, remove, *, splits=("train",), labels=("a",), links=None) -> Cluster:
    return Cluster(id=i, kind=kind, members=list(members), keep=keep, splits=list(splits), labels=list(labels),
                   cross_split=len(splits) > 1, label_conflict=len(labels) > 1, max_distance=4,
                   remove=list(remove), duplicate_of={p: keep for p in remove}, links=links or {})


def test_fragment_order_links_and_caps():
    near = _cluster(0, "near", ["train/a/1.jpg", "train/a/2.jpg", "train/a/3.jpg"], "train/a/1.jpg",
                    ["train/a/2.jpg", "train/a/3.jpg"],
                    links={"train/a/2.jpg": {"distance": 5, "similarity": 0.95}})  # 3.jpg never compared to 1
    leak = _cluster(1, "near", ["train/a/4.jpg", "test/a/4.jpg"], "train/a/4.jpg", ["test/a/4.jpg"],
                    splits=("train", "test"), links={"test/a/4.jpg": {"distance": 2, "similarity": 0.99}})
    conflict = _cluster(2, "near", ["train/a/5.jpg", "train/b/5.jpg"], "train/a/5.jpg", [], labels=("a", "b"),
                        links={"train/b/5.jpg": {"distance": 1, "similarity": 0.98}})
    exact = _cluster(3, "exact", ["train/a/6.jpg", "train/a/7.jpg"], "train/a/6.jpg", ["train/a/7.jpg"])
    page = sheet_fragment([near, leak, exact, conflict], {}, names={"b": "Bee"})
    assert [page.index(f'id="ds-{s}"') for s in ("conflicts", "leakage", "near", "exact")] == sorted(
        page.index(f'id="ds-{s}"') for s in ("conflicts", "leakage", "near", "exact"))
    figs = _figures(page)
    assert "distance 5 · similarity 0.950" in figs["train/a/2.jpg"] and "removed" in figs["train/a/2.jpg"]
    assert "not compared to it" in figs["train/a/3.jpg"]  # a chained member is shown as such
    assert "left in place" in figs["train/b/5.jpg"] and "(Bee)" in figs["train/b/5.jpg"]
    assert "reference (nothing removed)" in figs["train/a/5.jpg"]
    assert "<b>2 copies</b>, 1 removed" in page
    many = [_cluster(i, "near", [f"train/a/{i}x.jpg", f"train/a/{i}y.jpg"], f"train/a/{i}x.jpg",
                     [f"train/a/{i}y.jpg"]) for i in range(SECTION_CAP + 5)]
    page = sheet_fragment(many, {})
    assert f"{SECTION_CAP} of {SECTION_CAP + 5} shown; 5 more" in page
    assert page.count('class="ds-cluster"') == SECTION_CAP


@pytest.mark.parametrize("where", ["s3://bucket/sheet.html", "{tmp}"])
def test_bad_sheet_path_is_one_line_before_any_work(tmp_path, where, capsys):
    root = _pair_tree(tmp_path / "t")
    with pytest.raises(SystemExit) as e:
        main(["dedupe", str(root), "--sheet", where.format(tmp=tmp_path), "-j", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--sheet" in err and "Traceback" not in err
    assert not (root / "dedupe.json").exists() and (root / "train/cat/chelsea_copy.png").exists()


@pytest.mark.slow
def test_sheet_of_an_object_store_tree(tmp_path, monkeypatch):
    from test_storage import moto_s3

    from curate.dedupe.apply import dedupe

    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    root = _pair_tree(tmp_path / "t")
    with moto_s3(tmp_path / "aws") as fs:
        fs.mkdir("sheet")
        fs.put(str(root) + "/", "sheet/t/", recursive=True)
        out = dedupe("s3://sheet/t", workers=1, quiet=True)  # moves the copies to s3://sheet/t.quarantine
        from curate.dedupe.sheet import journal_locations

        moved = journal_locations(out.journal, "s3://sheet/t")
        assert set(moved) == set(out.result.removals()) and all(v.startswith("s3://sheet/t.quarantine/")
                                                                  for v in moved.values())
        page = write_sheet(out.result, "s3://sheet/t", tmp_path / "s.html", moved=moved, dry_run=False,
                           workers=1, quiet=True).read_text()
    assert len(_images(page)) == 4 and 'class="ds-missing"' not in page
