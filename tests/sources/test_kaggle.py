"""`curate kaggle`: a coin-layout archive made from real photos -> normalised, verified tree."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
from test_kaggle_data import NAMES, add_problems, coin_files, write_dir, write_zip

from curate.cli import main
from curate.core.errors import CredentialsError, InputError, NetworkError
from curate.core.manifest import CORE_COLUMNS, read_info, read_manifest
from curate.sources import kaggle as kg


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return coin_files()


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch, tmp_path):
    """No test ever sees real credentials or the real kaggle package."""
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setitem(sys.modules, "kaggle", None)  # an import would raise ImportError


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


def test_coin_archive_to_named_tree(tmp_path, files, capsys):
    src = write_zip(tmp_path / "coin-images.zip", add_problems(files))
    out = tmp_path / "coins"
    code, stdout, stderr = run_cli(["kaggle", "coins", "--out", str(out), "--source", str(src), "--label-names",
                                    "--workers", "2"], capsys)
    assert code == 1, stderr  # problems were found and listed
    for split, n in (("train", 4), ("val", 1), ("test", 1)):
        assert len(list((out / split / "australia_1_cent").glob("*.jpg"))) == n
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "5", "australia_1_cent", "australia_2_cents", "united_kingdom_1_penny"]
    # file bytes unchanged
    for rel, data in files.items():
        if rel.startswith("coins/data/train/2/"):
            name = rel.rsplit("/", 1)[1]
            assert (out / "train" / "australia_2_cents" / name).read_bytes() == data
    df = read_manifest(out)
    assert list(df.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert set(df["source"]) == {"kaggle"}
    row = df[df["source_id"] == "coins/data/validation/3/coin_16.jpg"].iloc[0]
    assert (row["path"], row["split"], row["label"], row["class_id"]) == (
        "val/united_kingdom_1_penny/coin_16.jpg", "val", "united_kingdom_1_penny", "3")
    assert row["class_name"] == NAMES["3"] and row["status"] == "kept" and row["width"] > 20
    assert row["sha256"] == hashlib.sha256(files["coins/data/validation/3/coin_16.jpg"]).hexdigest()
    bad = df[df["status"] == "unreadable"]
    assert list(bad["source_id"]) == ["coins/data/train/1/truncated.jpg"]
    assert not (out / bad.iloc[0]["path"]).exists()  # kept out of the tree, copied to quarantine
    assert (tmp_path / "coins.quarantine" / "unreadable" / bad.iloc[0]["path"]).is_file()
    mism = df[df["problem"].fillna("").str.startswith("extension-mismatch")]
    assert list(mism["format"]) == ["PNG"] and list(mism["status"]) == ["kept"]
    classes = json.loads((out / "classes.json").read_text())
    c1 = classes["classes"][0]
    assert c1["id"] == "1" and c1["folder"] == "australia_1_cent"
    assert (c1["denomination"], c1["currency"], c1["country"]) == ("1 Cent", "Australian dollar", "australia")
    assert classes["unknown_ids"] == ["5"] and classes["unmapped_names"] == ["4"]
    assert "notes.txt: not an image" in stderr and "truncated.jpg: unreadable" in stderr
    assert "expected 211 classes" in stderr  # the preset's counts are checked
    info = read_info(out)
    assert info["steps"]["kaggle"]["counts"] == {"train": 16, "val": 4, "test": 4}
    assert not (out / ".curate" / "extract").exists()  # extraction cleaned up after success


def test_folder_source_ids_and_rerun(tmp_path, files, capsys):
    src = write_dir(tmp_path / "dl", files)
    out = tmp_path / "t"
    res = kg.import_dataset("wanderdust/coin-images", out, source=src, workers=1, quiet=True, check_counts=False)
    assert res.problems == [] and res.exit_code == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == ["1", "2", "3", "5"]
    assert res.counts == {"train": 14, "val": 4, "test": 4} and res.layout_root == "coins/data"
    assert (src / "coins/data/train/1/coin_00.jpg").exists()  # the source is never touched
    again = kg.import_dataset("wanderdust/coin-images", out, source=src, workers=1, quiet=True, check_counts=False)
    assert again.up_to_date
    with pytest.raises(InputError, match="other class folder names"):
        kg.import_dataset("wanderdust/coin-images", out, source=src, label_names=True, quiet=True)


def test_single_folder_and_names_file(tmp_path, files):
    flat = {k.replace("coins/data/train/", "imgs/"): v for k, v in files.items() if "/train/" in k}
    src = write_dir(tmp_path / "src", flat)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"1": "One", "2": "Two / Zwei", "3": "Three", "5": "Five"}))
    res = kg.import_dataset("me/flat", tmp_path / "t", source=src, names=names, label_names=True, quiet=True)
    assert res.counts == {"train": 14} and res.problems == []
    assert sorted(p.name for p in (tmp_path / "t" / "train").iterdir()) == ["five", "one", "three", "two_zwei"]


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, files, capsys):
    src = write_zip(tmp_path / "c.zip", files)
    code, _, err = run_cli(["kaggle", "nosuch", "--out", str(tmp_path / "o"), "--source", str(src)], capsys)
    assert code == 2 and "unknown dataset 'nosuch'" in err and "coins" in err
    code, _, err = run_cli(["kaggle", "coins", "--out", str(tmp_path / "o"), "--source", str(tmp_path / "no.zip")], capsys)
    assert code == 2 and "does not exist" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    code, _, err = run_cli(["kaggle", "coins", "--out", str(busy), "--source", str(src)], capsys)
    assert code == 2 and "not empty" in err and sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
    corrupt = tmp_path / "bad.zip"
    corrupt.write_bytes(src.read_bytes()[:5000])
    code, _, err = run_cli(["kaggle", "coins", "--out", str(tmp_path / "o2"), "--source", str(corrupt)], capsys)
    assert code == 2 and "corrupt" in err
    assert not (tmp_path / "o2").exists()
    no_images = write_zip(tmp_path / "docs.zip", {"readme/notes/a.txt": b"hello"})
    code, _, err = run_cli(["kaggle", "x/y", "--out", str(tmp_path / "o3"), "--source", str(no_images)], capsys)
    assert code == 2 and f"no class folders of images in {no_images}" in err and not (tmp_path / "o3").exists()
    assert len([x for x in err.splitlines() if "error" in x]) == 1 and "Traceback" not in err


def test_out_under_a_file_is_an_input_error(tmp_path, files):
    src = write_dir(tmp_path / "dl", files)
    (tmp_path / "f").write_text("keep me")
    with pytest.raises(InputError, match="is a file"):
        kg.import_dataset("x/y", tmp_path / "f" / "sub", source=src, quiet=True)
    assert (tmp_path / "f").read_text() == "keep me"


def test_missing_credentials_message(tmp_path, capsys):
    code, _, err = run_cli(["kaggle", "coins", "--out", str(tmp_path / "o"), "--download-dir", str(tmp_path / "dl")], capsys)
    assert code == 2
    for needle in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "kaggle.json", "--source"):
        assert needle in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def _fake_kaggle(monkeypatch, authenticate=None, download=None):
    api = types.SimpleNamespace(authenticate=authenticate or (lambda: None),
                                dataset_download_files=download or (lambda *a, **k: None))
    monkeypatch.setitem(sys.modules, "kaggle", types.SimpleNamespace(api=api))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")


def test_rejected_credentials_and_network_errors(tmp_path, monkeypatch):
    def exit_1():
        raise SystemExit(1)

    _fake_kaggle(monkeypatch, authenticate=exit_1)
    with pytest.raises(CredentialsError, match="KAGGLE_USERNAME/KAGGLE_KEY"):
        kg.download("wanderdust/coin-images", tmp_path / "dl")

    class Http(Exception):
        response = types.SimpleNamespace(status_code=403)

    for error, kind, says in ((ConnectionError("Name or service not known"), NetworkError, "--source"),
                              (Http("403 Forbidden"), CredentialsError, "HTTP 403")):
        def fail(*a, error=error, **k):
            raise error

        _fake_kaggle(monkeypatch, download=fail)
        with pytest.raises(kind, match=says):
            kg.download("wanderdust/coin-images", tmp_path / "dl")


def test_kaggle_json_is_found_and_checked(tmp_path):
    cfg = tmp_path / "home" / ".kaggle"
    cfg.mkdir(parents=True)
    (cfg / "kaggle.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="kaggle.json"):
        kg.find_credentials()
    (cfg / "kaggle.json").write_text(json.dumps({"username": "u", "key": "k"}))
    assert kg.find_credentials().endswith("kaggle.json")


def test_download_through_kaggle_package(tmp_path, monkeypatch, files):
    calls = []

    def fake_download(dataset, path=None, quiet=True, unzip=False, **kw):
        calls.append((dataset, unzip))
        write_zip(tmp_path / "dl" / "coin-images.zip", files)

    _fake_kaggle(monkeypatch, download=fake_download)
    res = kg.import_dataset("coins", tmp_path / "t", download_dir=tmp_path / "dl", quiet=True, check_counts=False)
    assert calls == [("wanderdust/coin-images", False)]
    assert res.counts == {"train": 14, "val": 4, "test": 4} and res.exit_code == 0


def test_parse_and_folder_names():
    assert kg.parse_name("1 2 Dollar,US Dollar,usa") == {"denomination": "1 2 Dollar", "currency": "US Dollar",
                                                         "country": "usa"}
    assert kg.parse_name("Lincoln Cents, 1909-Date") == {}
    names = {"1": "1 Rupee,Indian Rupee,india", "2": "1 Rupee,Indian Rupee,india", "3": "Ünïcode/..", "4": "!!!"}
    f = kg.folder_names(["1", "2", "3", "4", "9"], names, readable=True)
    assert f == {"1": "india_1_rupee", "2": "india_1_rupee_2", "3": "unicode", "4": "4", "9": "9"}
    assert kg.folder_names(["1"], names, readable=False) == {"1": "1"}
    # a readable name never takes the folder of an unnamed id, nor of another suffixed name
    assert kg.folder_names(["5", "x"], {"5": "X"}, readable=True) == {"5": "x_5", "x": "x"}
    assert kg.folder_names(["1", "2", "3"], {"1": "a", "2": "a", "3": "a_2"}, readable=True) == {
        "1": "a", "2": "a_2", "3": "a_2_3"}
    assert kg.resolve_dataset("coins").kaggle == "wanderdust/coin-images"
    assert kg.resolve_dataset("coins").expected == {"classes": 211, "train": 6413, "val": 844, "test": 844}
    with pytest.raises(InputError):
        kg.resolve_dataset("../etc")


@pytest.mark.parametrize(("entry", "message"), [
    ("x: 3", "preset 'x' needs a 'kaggle: OWNER/DATASET' entry"),
    ("x: {title: t}", "preset 'x' needs a 'kaggle: OWNER/DATASET' entry"),
    ("x: {kaggle: a/b, expected: {train: five}}", "preset 'x': expected.train: Input should be a valid integer"),
    ("x: {kaggle: a/b, expected: {validation: 5}}", "preset 'x': expected: unknown key(s) validation"),
    ("x: {kaggle: not an id}", "preset 'x': kaggle: String should match pattern"),
    ("x: {kaggle: a/b, names: null}", "preset 'x': names: Input should be a valid string"),
])
def test_a_bad_preset_is_one_line(tmp_path, entry, message):
    table = tmp_path / "datasets.yaml"
    table.write_text(f"datasets:\n  {entry}\n")
    with pytest.raises(InputError) as e:
        kg.load_presets(table)
    line = str(e.value)
    assert message in line and line.startswith(str(table)) and "fix the preset table" in line
    assert "\n" not in line


def test_presets_read_from_the_table(tmp_path):
    table = tmp_path / "datasets.yaml"
    table.write_text("datasets:\n  x: {kaggle: a/b, names: n.json, title: T, expected: {classes: 3, val: '2'}}\n"
                     "  y: {kaggle: c/d, expected: null}\n")
    got = kg.load_presets(table)
    assert got["x"] == kg.DatasetSpec(name="x", kaggle="a/b", names_file="n.json", expected={"classes": 3, "val": 2},
                                      title="T")
    assert (got["y"].names_file, got["y"].expected, got["y"].title) == ("cat_to_name.json", {}, "")
    assert kg.load_presets(tmp_path / "missing.yaml") == {}


def test_layout_found_wherever_it_sits(tmp_path, files):
    nested = {k.replace("coins/data/", "archive/train/").replace("/validation/", "/valid/"): v
              for k, v in files.items() if "/train/" in k or "/validation/" in k}
    src = write_dir(tmp_path / "src", nested)  # archive/train/{train,valid}/<id>/: the split folder repeats
    layout = kg.find_layout(src)
    assert layout.root == src / "archive" / "train" and sorted(layout.splits) == ["train", "val"]
    with pytest.raises(InputError, match="no class folders"):
        kg.find_layout(write_dir(tmp_path / "empty", {"readme.txt": b"hi"}))


def test_another_source_version_needs_overwrite(tmp_path, files):
    src = write_dir(tmp_path / "dl", files)
    out = tmp_path / "t"
    kg.import_dataset("wanderdust/coin-images", out, source=src, workers=1, quiet=True, check_counts=False)
    newer = dict(files)
    gone = next(k for k in newer if "/train/1/" in k)
    del newer[gone]  # the new version dropped a file
    src2 = write_dir(tmp_path / "dl2", newer)
    with pytest.raises(InputError, match="another source version"):
        kg.import_dataset("wanderdust/coin-images", out, source=src2, workers=1, quiet=True, check_counts=False)
    res = kg.import_dataset("wanderdust/coin-images", out, source=src2, workers=1, quiet=True, check_counts=False,
                            overwrite=True)
    assert res.counts["train"] == 13
    assert not (out / "train" / "1" / Path(gone).name).exists(), "no stale file from the old version"
    relabel = kg.import_dataset("wanderdust/coin-images", out, source=src2, workers=1, quiet=True,
                                check_counts=False, label_names=True, overwrite=True)
    assert relabel.counts["train"] == 13
