"""resplit: stratification, group integrity, min-per-class rule, determinism, undo, CLI."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from curate.cli import main
from curate.core.errors import InputError
from curate.core.layout import scan_tree
from curate.core.manifest import read_manifest, write_manifest
from curate.resplit import apply_resplit, below_minimum, plan_resplit, quotas, undo_resplit
from curate.sources.samples import load_photo
from curate.testing import dupsynth


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".curate" not in p.parts}


def tiles(name: str, n: int, side: int = 48) -> list:
    a = load_photo(name)
    h, w = a.shape[:2]
    cols = w // side
    return [a[(k // cols) * side : (k // cols + 1) * side, (k % cols) * side : (k % cols + 1) * side]
            for k in range(n)]


@pytest.fixture()
def tree(tmp_path) -> Path:
    """train/ valid/ test/ with labels cat (astronaut tiles), cup (coffee tiles), bird (3 files only).
    val and test each hold 6 cat and 6 cup tiles; cat tile 0 sits in valid/ and a re-encode in test/."""
    root = tmp_path / "data"
    for label, photo in (("cat", "astronaut"), ("cup", "coffee")):
        ts = tiles(photo, 24)
        for k, t in enumerate(ts):
            split = "train" if k < 12 else "valid" if k < 18 else "test"
            dupsynth.save(root / split / label / f"{label}{k:02d}.png", t)
    # a copy a few grey levels brighter (48-px JPEG re-encodes are below what verification can confirm)
    dupsynth.save(root / "test/cat/cat12_copy.png", dupsynth.brightness(tiles("astronaut", 13)[12], 1.03))
    for k, t in enumerate(tiles("chelsea", 3)):
        dupsynth.save(root / ("valid" if k else "test") / "bird" / f"bird{k}.png", t)
    return root


def test_quotas_rule():
    assert quotas(10, [0.5, 0.5], ["val", "test"], 0) == ([5, 5], False)
    assert quotas(10, [0.8, 0.1, 0.1], ["train", "val", "test"], 2) == ([6, 2, 2], False)
    # too small for train + 2 val + 2 test: one to train, then one at a time to val, test, ..., rest to train
    assert quotas(4, [0.8, 0.1, 0.1], ["train", "val", "test"], 2) == ([1, 2, 1], True)
    assert quotas(3, [0.8, 0.1, 0.1], ["train", "val", "test"], 2) == ([1, 1, 1], True)
    assert quotas(2, [0.5, 0.5], ["val", "test"], 2) == ([1, 1], True)  # not 2 / 0: test is not emptied
    assert quotas(1, [0.8, 0.1, 0.1], ["train", "val", "test"], 1) == ([1, 0, 0], True)


def test_merge_val_test_stratified_and_grouped(tree):
    plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=3, workers=1, quiet=True)
    assert plan.pool == ["val", "test"] and plan.targets == ["val", "test"]
    after = plan.after
    assert all(p.startswith(("valid/", "test/")) for p in after)
    per = Counter((p.split("/")[1], s) for p, s in after.items())
    assert abs(per[("cup", "val")] - per[("cup", "test")]) <= 1
    assert abs(per[("cat", "val")] - per[("cat", "test")]) <= 2  # the duplicate pair moves as one
    assert after["valid/cat/cat12.png"] == after["test/cat/cat12_copy.png"]  # group integrity
    assert sum(per.values()) == len(after) == 28
    again = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=3, workers=1, quiet=True)
    assert again.after == after
    other = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=4, workers=1, quiet=True)
    assert other.after != after


def test_resplit_all_with_min_per_class(tree):
    plan = plan_resplit(tree, ratios=[0.8, 0.1, 0.1], min_per_class=2, workers=1, quiet=True)
    assert plan.targets == ["train", "val", "test"]
    t = plan.table()
    assert t.loc["cup", "after:val"] >= 2 and t.loc["cup", "after:test"] >= 2  # 19.2 / 2.4 / 2.4
    assert t.loc["cup", "after:val"] + t.loc["cup", "after:test"] == 5
    assert t.loc["cup"].filter(like="after:").sum() == 24
    assert plan.small_labels == ["bird"]
    assert (t.loc["bird", "after:train"], t.loc["bird", "after:val"], t.loc["bird", "after:test"]) == (1, 1, 1)


def test_source_id_groups_from_manifest(tree):
    files = scan_tree(tree).files
    df = pd.DataFrame({"path": [f.path for f in files], "split": [f.split for f in files],
                       "label": [f.label for f in files]})
    df["source_id"] = ["cupsrc" if f.label == "cup" else f.path for f in files]  # every cup crop: one photo
    write_manifest(tree, df)
    plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", dedupe_groups=False, workers=1, quiet=True)
    assert len({s for p, s in plan.after.items() if "/cup/" in p}) == 1
    assert "manifest source_id" in plan.group_source


def test_apply_and_undo(tree):
    before = snapshot(tree)
    plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=1, workers=1, quiet=True)
    moved, journal = apply_resplit(plan)
    assert moved == len(plan.moves()) > 0 and journal is not None
    assert (tree / "valid").is_dir() and not (tree / "val").exists()  # the folder name on disk is kept
    man = read_manifest(tree)
    now = scan_tree(tree)
    assert set(man["path"]) == {f.path for f in now.files}
    for f in now.files:
        assert man.set_index("path").loc[f.path, "split"] == f.split
    assert Counter(f.split for f in now.files) == Counter(plan.after[p] for p in plan.after) + Counter(
        {"train": 24})
    rep = undo_resplit(tree)
    assert rep.ok and rep.restored == moved
    assert snapshot(tree) == before


def test_bad_input(tree, tmp_path):
    with pytest.raises(InputError):
        plan_resplit(tree, ratios="0.7,0.1,0.1,0.1")  # four ratios, three splits
    with pytest.raises(InputError):
        plan_resplit(tree, ratios="a,b")
    with pytest.raises(InputError):
        plan_resplit(tree, ratios="0.5,0.5", merge="val,holdout")
    with pytest.raises(InputError):
        plan_resplit(tree, ratios="0.5,0.5", merge="val", into="val,train")  # train not merged
    flat = tmp_path / "flat"
    dupsynth.save(flat / "cat" / "a.png", tiles("astronaut", 1)[0])
    with pytest.raises(InputError):
        plan_resplit(flat, ratios="0.5,0.5")


def test_cli(tree, capsys):
    before = snapshot(tree)
    with pytest.raises(SystemExit) as e:
        main(["resplit", str(tree), "--merge", "valid,test", "--ratios", "0.5,0.5", "--dry-run", "-j", "1"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "before:val" in out and "after:test" in out and "dry run" in out
    assert snapshot(tree) == before
    with pytest.raises(SystemExit) as e:
        main(["resplit", str(tree), "--ratios", "0.5,0.5", "-j", "1"])
    assert e.value.code == 2 and "ratios" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["-q", "resplit", str(tree), "--merge", "val,test", "--ratios", "1,1", "-j", "1", "--seed", "2"])
    assert e.value.code == 0
    assert snapshot(tree) != before
    with pytest.raises(SystemExit) as e:
        main(["resplit", "--undo", str(tree)])
    assert e.value.code == 0
    assert snapshot(tree) == before


def test_labels_short_of_the_minimum_get_what_there_is_and_the_report_warns(tree, tmp_path, capsys):
    from curate.core.manifest import read_info
    from curate.report import build_report

    plan = plan_resplit(tree, merge="valid,test", ratios="0.5,0.5", min_per_class=2, workers=1, quiet=True)
    assert below_minimum(plan) == [{"label": "bird", "split": "test", "count": 1, "minimum": 2}]
    with pytest.raises(SystemExit) as e:
        main(["resplit", str(tree), "--merge", "valid,test", "--ratios", "0.5,0.5", "--min-per-class", "2", "-j", "1"])
    assert e.value.code == 0  # dealt what there is and went on
    cap = capsys.readouterr()
    short = [line for line in (cap.out + cap.err).splitlines() if "fewer than 2 files" in line]
    assert short == ["warning: 1 label has fewer than 2 files in an evaluation split and got what there is: "
                     "bird (test 1)"]
    assert read_info(tree)["steps"]["resplit"]["min_per_class"] == 2
    res = build_report(tree, tmp_path / "r", workers=1, quiet=True, duplicates=False,
                       fail_on=["corrupt", "leakage", "empty-class"])
    check = res.report["checks"]["below-minimum"]
    assert check["severity"] == "warning" and check["findings"] == [
        {"split": "test", "label": "bird", "count": 1, "minimum": 2}]
    assert res.fired_rules == [] and "below-minimum" in res.fired
    assert 'id="check-below-minimum"' in res.html_path.read_text()
    plain = build_report(tree, tmp_path / "r2", workers=1, quiet=True, duplicates=False, fail_on=["below-minimum"])
    assert plain.fired_rules == ["below-minimum"]  # only when asked for


def test_dedupe_clusters_in_the_manifest_keep_groups_whole(tree):
    from curate.dedupe.apply import dedupe

    dedupe(tree, leakage="report", workers=1, quiet=True)  # leaves the valid/test pair, records its cluster
    man = read_manifest(tree).set_index("path")
    assert man.loc["valid/cat/cat12.png", "cluster"] == man.loc["test/cat/cat12_copy.png", "cluster"]
    for seed in range(4):
        plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=seed, dedupe_groups=False,
                            workers=1, quiet=True)
        assert plan.after["valid/cat/cat12.png"] == plan.after["test/cat/cat12_copy.png"]
    assert "manifest cluster" in plan.group_source


def test_plan_does_not_depend_on_workers(tree):
    a = plan_resplit(tree, ratios="0.8,0.1,0.1", min_per_class=1, seed=5, workers=1, quiet=True)
    b = plan_resplit(tree, ratios="0.8,0.1,0.1", min_per_class=1, seed=5, workers=2, quiet=True)
    assert a.after == b.after


def test_ratios_must_add_up_or_be_weights():
    from curate.core.errors import InputError
    from curate.resplit import parse_ratios

    assert parse_ratios("0.8,0.1,0.1") == pytest.approx([0.8, 0.1, 0.1])
    assert parse_ratios("8,1,1") == pytest.approx([0.8, 0.1, 0.1])
    with pytest.raises(InputError, match="add up to 1.1"):
        parse_ratios("0.5,0.6")


def test_non_finite_ratios_are_input_errors():
    from curate.resplit import parse_ratios

    for bad in ("nan,0.5,0.5", "inf,1", "0.5,-inf"):
        with pytest.raises(InputError):
            parse_ratios(bad)


def test_undo_removes_the_split_folders_resplit_created(tmp_path):
    root = tmp_path / "data"
    for label, photo in (("cat", "astronaut"), ("cup", "coffee")):
        for k, t in enumerate(tiles(photo, 6, side=24)):
            dupsynth.save(root / "train" / label / f"{k}.png", t)
    dirs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())
    plan = plan_resplit(root, ratios="0.6,0.2,0.2", merge="train", dedupe_groups=False, quiet=True)
    moved, _ = apply_resplit(plan)
    assert moved and (root / "val").is_dir() and (root / "test").is_dir()
    assert undo_resplit(root).ok
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()
                  and ".curate" not in p.parts) == dirs


def test_unwritable_folder_refused_before_any_move(tree, monkeypatch):
    import os

    import curate.moves.movers

    before = snapshot(tree)
    plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", dedupe_groups=False, quiet=True)
    monkeypatch.setattr(curate.moves.movers.os, "access", lambda p, mode: not str(p).endswith("test/cup"))
    with pytest.raises(InputError, match="not writable"):
        apply_resplit(plan)
    assert snapshot(tree) == before and os.access(tree, os.W_OK)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_rerun_moves_nothing_and_interrupted_run_resumes_to_the_same_split(tree, tmp_path, monkeypatch):
    import shutil

    import curate.moves.movers

    other = tmp_path / "copy"
    shutil.copytree(tree, other)
    kw = dict(ratios="0.6,0.2,0.2", seed=7, dedupe_groups=False, quiet=True)
    apply_resplit(plan_resplit(tree, **kw))
    assert plan_resplit(tree, **kw).moves() == []  # same seed again: nothing to do
    real, n = curate.moves.movers.rename, [0]

    def interrupted(src, dst):
        n[0] += 1
        if n[0] == 4:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(curate.moves.movers, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        apply_resplit(plan_resplit(other, **kw))
    monkeypatch.setattr(curate.moves.movers, "rename", real)
    apply_resplit(plan_resplit(other, **kw))  # re-run after the interruption
    assert _files(other) == _files(tree)


def test_broken_curate_json_stops_before_any_move(tree):
    (tree / "curate.json").write_text("{bad json")
    before = snapshot(tree)
    plan = plan_resplit(tree, ratios="0.5,0.5", merge="val,test", dedupe_groups=False, quiet=True)
    with pytest.raises(InputError, match="curate.json"):
        apply_resplit(plan)
    assert snapshot(tree) == before


def test_undo_force_goes_past_a_changed_file(tree, capsys):
    before = {f.path for f in scan_tree(tree).files}
    apply_resplit(plan_resplit(tree, ratios="0.5,0.5", merge="val,test", seed=1, workers=1, quiet=True))
    changed = tree / sorted({f.path for f in scan_tree(tree).files} - before)[0]  # a file resplit moved
    changed.write_bytes(changed.read_bytes() + b"edited")  # the user touched a moved file
    with pytest.raises(SystemExit) as e:
        main(["-q", "resplit", "--undo", str(tree)])
    assert e.value.code == 1 and "--undo --force" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["-q", "resplit", "--undo", "--force", str(tree)])
    assert e.value.code == 1
    assert changed.exists()  # left where it is, as the user changed it
    with pytest.raises(InputError, match="nothing to undo"):
        undo_resplit(tree)
    with pytest.raises(SystemExit) as e:
        main(["-q", "resplit", "--force", "--ratios", "0.5,0.5", str(tree)])
    assert e.value.code == 2


def test_a_split_left_empty_is_an_error_not_a_missing_folder(tmp_path):
    root = tmp_path / "small"
    for label, photo in (("cat", "astronaut"), ("cup", "coffee"), ("bird", "chelsea")):
        for k, t in enumerate(tiles(photo, 5)):
            dupsynth.save(root / "train" / label / f"{label}{k}.png", t)
    # 5 files a label at 0.8/0.1/0.1: 4 / 1 / 0 every time, so test/ would never get a file
    with pytest.raises(InputError, match="would leave test with no files.*--min-per-class 1"):
        plan_resplit(root, ratios="0.8,0.1,0.1", merge="train", dedupe_groups=False, workers=1, quiet=True)
    plan = plan_resplit(root, ratios="0.8,0.1,0.1", merge="train", min_per_class=1, dedupe_groups=False,
                        workers=1, quiet=True)
    apply_resplit(plan)
    assert {f.split for f in scan_tree(root).files} == {"train", "val", "test"}
    again = plan_resplit(root, ratios="0.8,0.1,0.1", min_per_class=1, dedupe_groups=False, workers=1, quiet=True)
    assert again.moves() == []  # a re-run over all three splits finds them as it left them
