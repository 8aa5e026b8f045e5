"""`curate import`: every format from files written in its real byte layout, splits, names, bad input, resume."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from import_data import (
    CIFAR10_NAMES,
    PHOTOS,
    cifar_batch,
    digits,
    jpeg,
    photo_crops,
    py2_pickle,
    tar_gz,
    write_cifar10,
    write_dacon,
    write_emnist,
    write_hf_arrow,
    write_hf_parquet,
    write_idx,
    write_mnist,
    write_pixel_csv,
)
from PIL import Image

from curate.cli import main
from curate.core.manifest import read_info, read_manifest


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def classes(out) -> dict[str, dict]:
    return {c["folder"]: c for c in json.loads((out / "classes.json").read_text())["classes"]}


def test_cifar10_archive(tmp_path, capsys):
    folder, arrays = write_cifar10(tmp_path / "src", per_batch=12, batches=2)
    archive = tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    out = tmp_path / "c10"
    code, stdout, stderr = run_cli(["import", str(archive), "--out", str(out), "--val-ratio", "0.25", "-j", "1"], capsys)
    assert code == 0, stderr
    assert "36 images (train 20, val 4, test 12), 4 classes" in stdout  # 6 per class: 4.5 + 1.5 -> 5 + 1
    names = classes(out)
    assert sorted(names) == CIFAR10_NAMES[:4] and names["cat"]["id"] == "3"
    df = read_manifest(out)
    assert set(df["status"]) == {"kept"} and df["sha256"].str.len().eq(64).all()
    # pixels come out exactly as stored (lossless PNG), in the class of their label, test split kept
    imgs, labels = arrays["test_batch"]
    row = df[df["source_id"] == "test_batch:5"].iloc[0]
    assert row["split"] == "test" and row["label"] == CIFAR10_NAMES[labels[5]] and row["path"].endswith(".png")
    assert np.array_equal(pixels(out / row["path"]), imgs[5])
    val = df[df["split"] == "val"]
    assert val.groupby("label").size().to_dict() == {n: 1 for n in names}  # stratified
    assert not (out / ".curate" / "import").exists()  # the staging area is gone
    # a second run does nothing
    code, _, stderr = run_cli(["import", str(archive), "--out", str(out), "--val-ratio", "0.25"], capsys)
    assert code == 0 and "up to date" in stderr


def test_cifar100_fine_and_coarse(tmp_path, capsys):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    imgs, labels = photo_crops(8)
    fine, coarse = [0, 1, 2, 3] * 2, [1, 0, 1, 0] * 2
    for split, sl in (("train", slice(0, 6)), ("test", slice(6, 8))):
        data = imgs[sl].transpose(0, 3, 1, 2).reshape(-1, 3072)
        (d / split).write_bytes(py2_pickle({b"filenames": [b"x.png"] * len(data), b"batch_label": split.encode(),
                                            b"fine_labels": fine[sl], b"coarse_labels": coarse[sl], b"data": data}))
    (d / "meta").write_bytes(py2_pickle({b"fine_label_names": [b"apple", b"aquarium_fish", b"baby", b"bear"],
                                         b"coarse_label_names": [b"aquatic_mammals", b"fish"]}))
    code, stdout, stderr = run_cli(["import", str(d), "--out", str(tmp_path / "fine")], capsys)
    assert code == 0, stderr
    assert sorted(classes(tmp_path / "fine")) == ["apple", "aquarium_fish", "baby", "bear"]
    code, stdout, stderr = run_cli(["import", str(d), "--out", str(tmp_path / "coarse"), "--labels", "coarse",
                                    "--test-ratio", "0.3"], capsys)
    assert code == 0, stderr
    assert "--test-ratio 0.3 not applied: the source has its own test split" in stderr
    c = classes(tmp_path / "coarse")
    assert c["fish"]["counts"] == {"train": 3, "test": 1} and c["aquatic_mammals"]["counts"] == {"train": 3, "test": 1}


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, capsys, gz):
    imgs, labels = write_mnist(tmp_path / "mnist", n_train=20, n_test=10, gz=gz)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["import", str(tmp_path / "mnist"), "--out", str(out)], capsys)
    assert code == 0, stderr
    assert "(train 20, test 10)" in stdout
    df = read_manifest(out)
    row = df[df["source_id"] == f"t10k-images-idx3-ubyte{'.gz' if gz else ''}:3"].iloc[0]
    assert row["label"] == str(labels[23]) and row["split"] == "test"
    assert np.array_equal(pixels(out / row["path"]), imgs[23])  # grayscale PNG, same pixels
    assert Image.open(out / row["path"]).mode == "L"


def test_fashion_mnist_names(tmp_path, capsys):
    write_mnist(tmp_path / "fashion-mnist", n_train=20, n_test=4)
    code, _, stderr = run_cli(["import", str(tmp_path / "fashion-mnist"), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, stderr
    assert classes(tmp_path / "o")["t_shirt_top"]["name"] == "T-shirt/top"
    (tmp_path / "names.json").write_text(json.dumps({"0": "Tee", "9": "Boot"}))  # --names overrides the source's
    code, _, stderr = run_cli(["import", str(tmp_path / "fashion-mnist"), "--out", str(tmp_path / "n"), "--names",
                               str(tmp_path / "names.json")], capsys)
    assert code == 0, stderr
    assert classes(tmp_path / "n")["tee"]["name"] == "Tee" and classes(tmp_path / "n")["trouser"]["id"] == "1"


def test_emnist_upright_with_mapping(tmp_path, capsys):
    folder = tmp_path / "gzip"
    imgs, labels = write_emnist(folder, n_train=20, n_test=10)
    write_mnist(folder, n_train=4, n_test=2, prefix="emnist-digits-", transpose=True)
    out = tmp_path / "emnist"
    code, _, stderr = run_cli(["import", str(folder), "--out", str(out)], capsys)
    assert code == 2 and "2 IDX sets" in stderr and "--subset" in stderr and "balanced" in stderr
    assert not out.exists()
    code, stdout, stderr = run_cli(["import", str(folder), "--subset", "balanced", "--out", str(out)], capsys)
    assert code == 0, stderr
    df = read_manifest(out)
    row = df[df["source_id"] == "emnist-balanced-train-images-idx3-ubyte.gz:7"].iloc[0]
    upright = pixels(out / row["path"])
    assert np.array_equal(upright, imgs[7]) and not np.array_equal(upright, imgs[7].T)
    assert classes(out)[str(labels[7])]["name"] == str(labels[7])  # digits keep their character
    assert "transposed images turned upright" in stderr


def test_emnist_letter_folders(tmp_path, capsys):
    folder = tmp_path / "gzip"
    imgs, _ = digits(6)
    letters = np.array([10, 36, 10, 36, 11, 37], dtype=np.uint8)  # A, a, A, a, B, b
    write_idx(folder / "emnist-balanced-train-images-idx3-ubyte", imgs.transpose(0, 2, 1))
    write_idx(folder / "emnist-balanced-train-labels-idx1-ubyte", letters)
    (folder / "emnist-balanced-mapping.txt").write_text("10 65\n11 66\n36 97\n37 98\n")
    code, _, stderr = run_cli(["import", str(folder), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, stderr
    c = classes(tmp_path / "o")
    assert {k: v["name"] for k, v in c.items()} == {"A_upper": "A", "B_upper": "B", "a_lower": "a", "b_lower": "b"}
    # the letters split merges cases: "label upper lower" lines
    for f in folder.iterdir():
        f.rename(folder / f.name.replace("balanced", "letters"))
    (folder / "emnist-letters-mapping.txt").write_text("10 65 97\n11 66 98\n36 67 99\n37 68 100\n")
    code, _, stderr = run_cli(["import", str(folder), "--out", str(tmp_path / "l")], capsys)
    assert code == 0, stderr
    assert {k: v["name"] for k, v in classes(tmp_path / "l").items()} == {"Aa": "Aa", "Bb": "Bb", "Cc": "Cc", "Dd": "Dd"}


def test_pixel_csv_gray_and_rgb(tmp_path, capsys):
    imgs, labels = digits(30)
    write_pixel_csv(tmp_path / "g" / "mnist_train.csv", imgs[:20], labels[:20])
    write_pixel_csv(tmp_path / "g" / "mnist_test.csv", imgs[20:], labels[20:])
    code, stdout, stderr = run_cli(["import", str(tmp_path / "g"), "--out", str(tmp_path / "go")], capsys)
    assert code == 0, stderr
    assert "(pixel-csv)" in stdout and "(train 20, test 10)" in stdout
    df = read_manifest(tmp_path / "go")
    row = df[df["source_id"] == "mnist_test.csv:4"].iloc[0]  # line 4 = third image (line 1 is the header)
    assert np.array_equal(pixels(tmp_path / "go" / row["path"]), imgs[22]) and row["label"] == str(labels[22])

    rgb, rl = photo_crops(8)
    src = write_pixel_csv(tmp_path / "rgb.csv", rgb, rl, header=False)
    code, stdout, stderr = run_cli(["import", str(src), "--out", str(tmp_path / "ro")], capsys)
    assert code == 0, stderr
    df = read_manifest(tmp_path / "ro")
    row = df[df["source_id"] == "rgb.csv:2"].iloc[0]
    assert np.array_equal(pixels(tmp_path / "ro" / row["path"]), rgb[1])


def test_path_csv_dacon(tmp_path, capsys):
    src = write_dacon(tmp_path / "dacon", n=12)
    (src / "train" / "TRAIN_00003.jpg").unlink()  # listed but missing: one problem line
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(["import", str(src), "--out", str(out), "--test-ratio", "0.25", "--seed", "3"], capsys)
    assert code == 1, stderr
    assert "train.csv:5: ./train/TRAIN_00003.jpg not found" in stderr
    assert "test.csv: no image path and label columns, not imported" in stderr
    df = read_manifest(out)
    assert sorted(classes(out)) == sorted(PHOTOS) and len(df) == 11
    assert set(df["split"]) == {"train", "test"}
    row = df[df["source_id"] == "train.csv:2"].iloc[0]
    assert (out / row["path"]).read_bytes() == (src / "train" / "TRAIN_00000.jpg").read_bytes()  # bytes kept


def test_hf_parquet_and_arrow(tmp_path, capsys):
    src = write_hf_parquet(tmp_path / "hub", n_train=12, n_test=4)
    code, stdout, stderr = run_cli(["import", str(src), "--out", str(tmp_path / "p")], capsys)
    assert code == 0, stderr
    assert "(hf)" in stdout and "(train 12, test 4)" in stdout
    imgs, labels = photo_crops(16)
    df = read_manifest(tmp_path / "p")
    row = df[df["source_id"] == "data/test-00000-of-00001.parquet:1"].iloc[0]
    assert row["label"] == PHOTOS[labels[13]] and row["format"] == "PNG"
    assert np.array_equal(pixels(tmp_path / "p" / row["path"]), imgs[13])

    src = write_hf_arrow(tmp_path / "saved", n=8)
    code, stdout, stderr = run_cli(["import", str(src), "--out", str(tmp_path / "a"), "--val-ratio", "0.25"], capsys)
    assert code == 0, stderr
    assert "(train 4, val 4)" in stdout and sorted(classes(tmp_path / "a")) == sorted(PHOTOS)


def test_unsplit_folder_group_aware(tmp_path, capsys):
    """3 classes of 7-9 photos; two near-copies of one photo must land in the same split."""
    imgs, labels = photo_crops(30, side=96)
    src = tmp_path / "glasses"
    for i, (img, lab) in enumerate(zip(imgs, labels, strict=True)):
        if lab < 3:
            (src / PHOTOS[lab]).mkdir(parents=True, exist_ok=True)
            (src / PHOTOS[lab] / f"{i:03d}.jpg").write_bytes(jpeg(img))
    (src / "chelsea" / "000_copy.jpg").write_bytes(jpeg(imgs[0], quality=70))  # a re-encoded copy
    (src / "cat_to_name.json").write_text(json.dumps({"chelsea": "Cat", "coffee": "Coffee cup"}))
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(["import", str(src), "--out", str(out), "--val-ratio", "0.1", "--test-ratio", "0.1"],
                                   capsys)
    assert code == 1 and "cat_to_name.json: file outside any class folder" in stderr  # listed, not imported
    df = read_manifest(out).set_index("source_id")
    assert df.loc["chelsea/000.jpg", "split"] == df.loc["chelsea/000_copy.jpg", "split"]
    per = df.groupby(["label", "split"]).size().unstack(fill_value=0)
    assert (per["val"] >= 1).all() and (per["test"] >= 1).all() and (per["train"] >= 5).all()
    assert classes(out)["coffee"]["name"] == "Coffee cup"  # folders keep their names; names come beside them
    assert set(per.index) == {"chelsea", "coffee", "astronaut"}


def test_same_output_whatever_workers(tmp_path, capsys):
    imgs, labels = digits(40)
    src = write_pixel_csv(tmp_path / "train.csv", imgs, labels)
    for w in ("1", "2"):
        code, _, stderr = run_cli(["import", str(src), "--out", str(tmp_path / w), "--val-ratio", "0.2", "-j", w], capsys)
        assert code == 0, stderr
    assert (tmp_path / "1" / "manifest.parquet").read_bytes() == (tmp_path / "2" / "manifest.parquet").read_bytes()
    assert (tmp_path / "1" / "classes.json").read_bytes() == (tmp_path / "2" / "classes.json").read_bytes()


def test_resume_after_interruption(tmp_path, capsys):
    imgs, labels = digits(20)
    src = write_pixel_csv(tmp_path / "train.csv", imgs, labels)
    out = tmp_path / "o"
    code, _, _ = run_cli(["import", str(src), "--out", str(out), "--val-ratio", "0.2"], capsys)
    done = read_manifest(out)
    # an interrupted run: the record says incomplete, one file is missing and the manifest is gone
    info = json.loads((out / "curate.json").read_text())
    info["steps"]["import"]["state"] = "incomplete"
    (out / "curate.json").write_text(json.dumps(info))
    (out / done["path"][0]).unlink()
    (out / "manifest.parquet").unlink()
    code, _, stderr = run_cli(["import", str(src), "--out", str(out), "--val-ratio", "0.2"], capsys)
    assert code == 0, stderr
    assert read_manifest(out).equals(done) and (out / done["path"][0]).is_file()
    assert read_info(out)["steps"]["import"]["state"] == "complete"
    code, _, stderr = run_cli(["import", str(src), "--out", str(out), "--val-ratio", "0.3"], capsys)
    assert code == 2 and "--overwrite" in stderr


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing left


def bad(tmp_path, capsys, args) -> str:
    out = tmp_path / "bad-out"
    code, stdout, stderr = run_cli(["import", *args, "--out", str(out)], capsys)
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()
    return stderr


def test_truncated_archive(tmp_path, capsys):
    folder, _ = write_cifar10(tmp_path / "src")
    archive = tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert "cifar-10-python.tar.gz" in bad(tmp_path, capsys, [str(archive)])


def test_truncated_cifar_batch(tmp_path, capsys):
    folder, _ = write_cifar10(tmp_path / "src")
    b = folder / "data_batch_1"
    b.write_bytes(b.read_bytes()[:4000])
    assert "data_batch_1 is not a readable CIFAR pickle" in bad(tmp_path, capsys, [str(folder)])


def test_cifar_label_count_mismatch(tmp_path, capsys):
    folder, arrays = write_cifar10(tmp_path / "src")
    imgs, labels = arrays["data_batch_1"]
    (folder / "data_batch_1").write_bytes(cifar_batch(imgs, list(labels)[:-1]))
    assert "has 12 images but 11 labels" in bad(tmp_path, capsys, [str(folder)])


def test_cifar_pickle_with_code_is_refused(tmp_path, capsys):
    folder, _ = write_cifar10(tmp_path / "src")
    (folder / "data_batch_1").write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    assert "refusing to load os.system" in bad(tmp_path, capsys, [str(folder)])


def test_idx_label_count_and_truncation(tmp_path, capsys):
    imgs, labels = digits(10)
    d = tmp_path / "m"
    write_idx(d / "train-images-idx3-ubyte", imgs)
    write_idx(d / "train-labels-idx1-ubyte", labels[:9])
    assert "has 10 images but train-labels-idx1-ubyte.gz has 9 labels" in bad(tmp_path, capsys, [str(d)])
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 10]) + labels[:7].tobytes()))
    assert "header promises 10 bytes, it holds 7" in bad(tmp_path, capsys, [str(d)])
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels.tobytes())[:20])
    assert "truncated or corrupt gzip" in bad(tmp_path, capsys, [str(d)])


def test_ragged_pixel_csv(tmp_path, capsys):
    imgs, labels = digits(5)
    src = write_pixel_csv(tmp_path / "train.csv", imgs, labels)
    lines = src.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # one pixel short
    src.write_text("\n".join(lines) + "\n")
    assert "Expected 785 columns, got 784" in bad(tmp_path, capsys, [str(src)])


def test_ragged_path_csv(tmp_path, capsys):
    src = write_dacon(tmp_path / "dacon", n=4)
    (src / "train.csv").write_text((src / "train.csv").read_text() + "TRAIN_9,./train/TRAIN_00000.jpg,chelsea,extra\n")
    assert "train.csv:6: 4 fields, the header has 3" in bad(tmp_path, capsys, [str(src)])


def test_val_ratio_on_a_source_with_val(tmp_path, capsys):
    src = tmp_path / "split"
    for split in ("train", "valid"):
        for lab, img in zip(("cup", "mug"), photo_crops(2, side=64)[0], strict=True):
            (src / split / lab).mkdir(parents=True)
            (src / split / lab / "a.jpg").write_bytes(jpeg(img))
    assert "the source has its own val split" in bad(tmp_path, capsys, [str(src), "--val-ratio", "0.1"])


def test_unknown_format(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert "cannot tell the format" in bad(tmp_path, capsys, [str(tmp_path / "notes.txt")])
    assert "unknown format 'tfrecord'" in bad(tmp_path, capsys, [str(tmp_path), "--format", "tfrecord"])
    assert "does not exist" in bad(tmp_path, capsys, [str(tmp_path / "missing")])


def test_hf_without_columns(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    imgs, _ = photo_crops(4)
    t = pa.table({"picture": pa.array([jpeg(a) for a in imgs], type=pa.binary()), "y2": pa.array([0, 1, 2, 3])})
    pq.write_table(t, tmp_path / "train-00000-of-00001.parquet")
    assert "no image column and label column" in bad(tmp_path, capsys, [str(tmp_path / "train-00000-of-00001.parquet")])


# ---------------------------------------------------------------- the shipped pipelines on small stand-ins


def glasses_folder(root):
    """An unsplit folder of 3 class folders of JPEG photos (crops of three different package photos)."""
    imgs, labels = photo_crops(24, side=96, seed=2)
    for i, (img, lab) in enumerate(zip(imgs, labels, strict=True)):
        if lab < 3:
            (root / ["cup", "beer_glass", "soju_glass"][lab]).mkdir(parents=True, exist_ok=True)
            (root / ["cup", "beer_glass", "soju_glass"][lab] / f"IMG_{i:04d}.jpg").write_bytes(jpeg(img))
    return root


def stand_in(name, tmp_path):
    if name == "cifar10":
        folder, _ = write_cifar10(tmp_path / "src", per_batch=16, batches=2)
        return tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    if name == "emnist-balanced":
        write_emnist(tmp_path / "gzip", n_train=60, n_test=20)
        return tmp_path / "gzip"
    return glasses_folder(tmp_path / "photos")


@pytest.mark.parametrize("name", ["cifar10", "emnist-balanced", "glasses"])
def test_shipped_pipeline_dry_run(name, tmp_path, capsys):
    from conftest import REPO

    src, out = stand_in(name, tmp_path), tmp_path / "tree"
    code, stdout, stderr = run_cli(["run", str(REPO / "pipelines" / f"{name}.yaml"), "--set", f"source={src}",
                                    "--set", f"out={out}", "--dry-run"], capsys)
    assert code == 0, stderr
    assert stdout.count("would-run") == 4 and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10", "emnist-balanced", "glasses"])
def test_shipped_pipeline_runs(name, tmp_path, capsys):
    from conftest import REPO

    pytest.importorskip("torch")
    src, out = stand_in(name, tmp_path), tmp_path / "tree"
    small = ["--set", "size=64"] if name == "glasses" else []
    code, stdout, stderr = run_cli(["-q", "run", str(REPO / "pipelines" / f"{name}.yaml"), "--set", f"source={src}",
                                    "--set", f"out={out}", "--set", "weights=none", "--set", "epochs=1", *small], capsys)
    assert code == 0, stdout + stderr
    steps = read_info(out)["steps"]
    assert steps["import"]["state"] == "complete"
    assert set(steps["run"]["steps"]) == {"import", "dedupe", "report", "train"}
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    names = {"cifar10": CIFAR10_NAMES[:4], "emnist-balanced": [str(d) for d in range(10)],
             "glasses": ["beer_glass", "cup", "soju_glass"]}[name]
    assert sorted(metrics["per_class"]) == sorted(names)  # per-class scores under readable names


@pytest.mark.slow
def test_s3_source(tmp_path, capsys, monkeypatch):
    """An s3:// prefix (a local moto server) is copied to the local cache, then imported as a folder would be."""
    from test_storage import moto_s3

    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    write_mnist(tmp_path / "mnist", n_train=8, n_test=4)
    with moto_s3(tmp_path) as fs:
        fs.mkdir("curate-import")
        for f in sorted((tmp_path / "mnist").iterdir()):
            fs.put(str(f), f"curate-import/mnist/{f.name}")
        code, stdout, stderr = run_cli(["import", "s3://curate-import/mnist", "--out", str(tmp_path / "o")], capsys)
        assert code == 0, stderr
        assert "(train 8, test 4)" in stdout
        code, _, stderr = run_cli(["import", "s3://curate-import/mnist", "--out", str(tmp_path / "o")], capsys)
        assert code == 0 and "up to date" in stderr


def test_truncated_parquet_and_arrow(tmp_path, capsys):
    src = write_hf_parquet(tmp_path / "hub", n_train=4, n_test=2)
    f = src / "data" / "train-00000-of-00001.parquet"
    f.write_bytes(f.read_bytes()[:-100])
    assert "train-00000-of-00001.parquet is not a readable parquet file" in bad(tmp_path, capsys, [str(src)])
    src = write_hf_arrow(tmp_path / "saved", n=4)
    f = src / "train" / "data-00000-of-00001.arrow"
    f.write_bytes(f.read_bytes()[:300])
    assert "data-00000-of-00001.arrow is not a readable arrow file" in bad(tmp_path, capsys, [str(src)])
