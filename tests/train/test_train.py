"""curate train / predict on tiny real-image trees (CPU, weights none, 32 px)."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from curate import cli  # noqa: E402
from curate.core.errors import InputError, NetworkError  # noqa: E402
from curate.sources.samples import load_photo  # noqa: E402
from curate.train import compare, predict, train  # noqa: E402
from curate.train.models import build_model, train_mode  # noqa: E402
from curate.train.rundir import resolve_out  # noqa: E402

CLASSES = ("astronaut", "chelsea", "coffee")
FULL_NAMES = {"astronaut": "Eileen Collins", "chelsea": "Chelsea the cat", "coffee": "Cup of coffee"}
FAST = dict(weights="none", size=32, stem="imagenet", batch_size=12, lr=3e-3, freeze_until="none", scheduler="cosine",
            workers=1, seed=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_tree(root: Path, classes=CLASSES, n_train=8, n_val=3, size=48, seed=0, names=True) -> Path:
    """Random square crops of real photos, one photo per class."""
    rng = np.random.default_rng(seed)
    for c in classes:
        img = load_photo(c)
        h, w = img.shape[:2]
        for split, n in (("train", n_train), ("val", n_val)):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                s = int(rng.integers(min(h, w) // 2, min(h, w)))
                y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                Image.fromarray(img[y : y + s, x : x + s]).resize((size, size)).save(d / f"{c}_{i}.jpg")
    if names:  # as `curate kaggle` writes it
        rows = [{"id": str(i), "folder": c, "name": FULL_NAMES.get(c, c), "counts": {"train": n_train}}
                for i, c in enumerate(classes)]
        (root / "classes.json").write_text(json.dumps({"dataset": "x/y", "classes": rows, "unknown_ids": [],
                                                       "unmapped_names": []}))
    return root


def interrupted_after(n: int, root, **kwargs) -> None:
    """A training run stopped by Ctrl-C right after epoch n (last.pt holds epoch n)."""

    def stop(epoch, row):
        if epoch == n:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(root, on_epoch_end=stop, **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("train") / "tree")


@pytest.fixture(scope="module")
def run(tree, tmp_path_factory):
    torch.set_num_threads(1)
    return train(tree, out=tmp_path_factory.mktemp("runs") / "a", epochs=3, patience=0, quiet=True, **FAST)


def test_outputs_exist_and_parse(run):
    out = run.out_dir
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("top1", "top5", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "per_class",
                "params", "trainable_params", "train_seconds", "inference_ms_per_image",
                "inference_images_per_s", "confusion_matrix", "top_confusions"):
        assert key in m, key
    assert m["split"] == "val" and m["images"] == 9 and m["top5_k"] == 3 and m["top5"] == 1.0
    assert set(m["per_class"]) == set(FULL_NAMES.values())
    assert np.array(m["confusion_matrix"]).sum() == 9
    assert 0 < m["trainable_params"] == m["params"]
    assert "Chelsea the cat" in (out / "classification_report.txt").read_text()
    for png in ("confusion_matrix.png", "curves.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] > 300
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["classes"] == list(CLASSES) and ck["size"] == 32 and ck["arch"] == "resnet18"
    assert ck["epoch"] == run.best_epoch


def test_loss_decreases_on_learnable_set(tree, tmp_path):
    opts = {**FAST, "loss": "ce", "augment": "none", "batch_size": 24, "lr": 1e-3, "scheduler": "none"}
    res = train(tree, out=tmp_path / "learn", epochs=6, patience=0, quiet=True, **opts)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0]
    assert res.history[-1]["train_acc"] > 0.9


def test_resume_continues_exactly(tree, run, tmp_path):
    out = tmp_path / "b"

    interrupted_after(1, tree, out=out, epochs=3, patience=0, quiet=True, **FAST)
    assert (out / "last.pt").exists()
    with pytest.raises(InputError, match="already holds"):
        train(tree, out=out, epochs=3, patience=0, quiet=True, **FAST)
    assert resolve_out(out, tree, "resnet18", resume=False, overwrite=True) == out
    with pytest.raises(InputError, match="was started with --lr 0.003, --dropout 0.3; this command differs"):
        train(tree, out=out, epochs=3, patience=0, quiet=True, resume=True, **{**FAST, "lr": 1e-3, "dropout": 0.5})
    res = train(tree, out=out, epochs=3, patience=0, quiet=True, resume=True, **FAST)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    for a, b in zip(run.history, res.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_cuda_recipe_runs_on_cpu_fp16_scaler_channels_last(tree, tmp_path, monkeypatch):
    """The CUDA branch (fp16 autocast + GradScaler + channels_last, scaler state in last.pt, resume)
    has no GPU in CI: run the same code with fp16 autocast on the CPU."""
    from curate.train import loop

    monkeypatch.setattr(loop, "precision_for", lambda device, amp: loop.Precision(True, torch.float16, "cpu"))
    opts = {**FAST, "channels_last": True, "patience": 0, "quiet": True}
    out = tmp_path / "fp16"

    interrupted_after(1, tree, out=out, epochs=2, **opts)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert last["scaler"] and last["scaler"]["scale"] > 0
    res = train(tree, out=out, epochs=2, resume=True, **opts)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) for h in res.history)
    assert res.metrics["precision"] == "fp16" and 0 <= res.metrics["top1"] <= 1
    whole = train(tree, out=tmp_path / "fp16-whole", epochs=2, **opts)
    assert whole.history[1]["train_loss"] == pytest.approx(res.history[1]["train_loss"], rel=1e-4)

def test_step_stays_on_the_device_and_never_reads_back_per_batch():
    """The meta device stands in for a GPU: any CPU tensor mixed into the step raises, and reading a
    value raises too. A whole epoch (cache placed on the device, every augmentation, mixup, focal loss
    with class weights, frozen BN, AdamW, channels_last) must get to its one read after the last batch."""
    from curate.train.config import TrainConfig
    from curate.train.data import Augment, Batches, Cached, place
    from curate.train.loop import Precision, evaluate, train_one_epoch
    from curate.train.losses import build_loss

    dev = torch.device("meta")
    cached = Cached("train", torch.randint(0, 255, (10, 3, 32, 32), dtype=torch.uint8), torch.arange(10) % 3,
                    [str(i) for i in range(10)], [])
    cached, _ = place(cached, dev, 10**9)
    assert cached.images.device == dev and cached.targets.device == dev
    batches = Batches(cached, 4, dev)
    augment = Augment(["flip", "jitter", "crop"], channels_last=True)
    model, info = build_model("resnet18", 3, weights="none")  # recipe freeze: frozen BatchNorm layers
    model = model.to(dev, memory_format=torch.channels_last)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    criterion = build_loss(TrainConfig.from_options(alpha="balanced", class_weights="inverse-freq"), [4, 3, 3]).to(dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    off = Precision(False, None, "meta")
    with pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        train_one_epoch(model, batches, augment, criterion, opt, None, off, info["frozen_norms"], seed=0, epoch=1,
                        mixup=0.4)
    assert len(calls) == len(batches) == 3
    with pytest.raises(NotImplementedError, match="meta"):
        evaluate(model, batches, augment, criterion, off)
    assert len(calls) == 6

def test_amp_on_cpu_is_bf16_autocast(tree, tmp_path):
    from curate.train.loop import precision_for

    assert precision_for(torch.device("cpu"), None).name == "fp32"  # opt-in on CPU
    assert precision_for(torch.device("cpu"), True).name == "bf16"
    assert precision_for(torch.device("cuda"), None).name == "fp16"  # on by default on CUDA
    assert precision_for(torch.device("cuda"), False).name == "fp32"
    res = train(tree, out=tmp_path / "bf16", epochs=1, patience=0, quiet=True, amp=True, **FAST)
    assert res.metrics["precision"] == "bf16" and np.isfinite(res.history[0]["train_loss"])
    ck = torch.load(res.out_dir / "best.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in ck["model"].values())  # weights stay float32

def test_early_stopping(tree, tmp_path):
    # Only the head trains, lr 0: validation loss never improves after epoch 1.
    opts = {**FAST, "freeze_until": "head", "lr": 0.0, "dropout": 0.0}
    res = train(tree, out=tmp_path / "es", epochs=10, patience=2, quiet=True, **opts)
    assert res.stopped_early and len(res.history) == 3 and res.best_epoch == 1


def test_streaming_matches_cache_with_all_augmentations(tree, tmp_path):
    opts = {**FAST, "augment": "flip,jitter,crop", "mixup": 0.4, "epochs": 1, "quiet": True}
    a = train(tree, out=tmp_path / "cache", **opts)
    b = train(tree, out=tmp_path / "stream", cache_gb=0, **opts)
    assert np.isfinite(a.history[0]["train_loss"])
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], rel=1e-5)
    assert a.history[0]["val_loss"] == pytest.approx(b.history[0]["val_loss"], rel=1e-5)


def test_freeze_keeps_frozen_batchnorm_still():
    model, info = build_model("resnet18", 3, weights="none")
    assert info["freeze_until"] == "layer4"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layer4.", "fc.")) for n in trainable)
    assert any(n.startswith("fc.1.") for n in trainable)  # Dropout + new Linear
    assert isinstance(model.fc[0], torch.nn.Dropout) and model.fc[0].p == 0.3
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    train_mode(model, info["frozen_norms"])
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64) * 3 + 1)
    after = model.state_dict()
    assert torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])
    assert torch.equal(before["layer3.1.bn2.running_mean"], after["layer3.1.bn2.running_mean"])
    assert not torch.equal(before["layer4.1.bn2.running_mean"], after["layer4.1.bn2.running_mean"])


def test_frozen_blocks_run_in_eval_mode_dropout_included():
    # EfficientNet's StochasticDepth in the frozen stages would make the features noisy only in training.
    model, info = build_model("efficientnet_b0", 3, weights="none")
    train_mode(model, info["frozen_norms"])
    point = info["freeze_until"]  # features.7: the last stage trains
    for n, m in model.named_modules():
        if type(m).__name__ in ("StochasticDepth", "Dropout", "BatchNorm2d"):
            assert m.training == (n.startswith((point + ".", "features.8", "classifier"))), n


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2_x0_5",
                                  "densenet121"])
def test_any_torchvision_model_gets_a_new_head(arch):
    model, info = build_model(arch, 4, weights="none", dropout=0.2)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert 0 < info["trainable_params"] < info["params"]
    assert all(n.startswith((info["freeze_until"] + ".", info["head"] + ".")) or n > "" for n in trainable)
    head_only, hinfo = build_model(arch, 4, weights="none", freeze_until="head")
    assert all(n.startswith(hinfo["head"] + ".") for n, p in head_only.named_parameters() if p.requires_grad)


def test_bad_freeze_point(monkeypatch):
    with pytest.raises(InputError, match="layer4"):
        build_model("mobilenet_v2", 3, weights="none", freeze_until="layer4")
    monkeypatch.setenv("CURATE_OFFLINE", "1")  # the typo is reported before any weights are looked for
    with pytest.raises(InputError, match="'layer9' is not a module"):
        build_model("resnet18", 3, weights="imagenet", freeze_until="layer9")


def test_unknown_arch(tree, tmp_path):
    with pytest.raises(InputError, match="unknown architecture"):
        train(tree, out=tmp_path / "x", arch="resnet19", **{k: v for k, v in FAST.items()})


def test_predict_round_trip(run, tree, tmp_path):
    preds = predict(run.checkpoint, tree / "val", top_k=2, quiet=True)
    assert len(preds) == 9
    for p in preds:
        assert len(p.top) == 2 and p.top[0][2] >= p.top[1][2] and p.top[0][1] in FULL_NAMES.values()
    acc = np.mean([Path(p.path).parent.name == p.top[0][0] for p in preds])
    assert acc == pytest.approx(run.metrics["top1"])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    [res] = predict(run.checkpoint, bad, quiet=True)
    assert res.error == "not-an-image"


def test_cli_train_and_predict(tree, tmp_path, capsys):
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as e:
        # -b 23 with 24 images: the lone last image must not reach BatchNorm (layer4 is 1x1 at 32 px)
        cli.main(["-q", "train", str(tree), "--weights", "none", "--size", "32", "--stem", "imagenet", "-b", "23",
                  "--epochs", "1", "-j", "1", "--out", str(out)])
    assert e.value.code == 0
    assert "top-1" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["-q", "predict", str(out / "best.pt"), str(tree / "val" / "chelsea"), "--json", "-k", "1"])
    assert e.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and rows[0]["predictions"][0]["name"] in FULL_NAMES.values()
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", str(tree / "val" / "chelsea" / "chelsea_0.jpg"), str(tree / "val")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not a readable PyTorch checkpoint" in err and "Traceback" not in err


def test_compare_writes_one_table(tree, tmp_path):
    rows = compare(tree, "resnet18,mobilenet_v3_small", out=tmp_path / "cmp", epochs=1, quiet=True, **FAST)
    assert [r["arch"] for r in rows] == ["resnet18", "mobilenet_v3_small"]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "mobilenet_v3_small" in md and "macro-F1" in md
    assert rows[1]["params"] < rows[0]["params"]
    assert all(r["inference_ms_per_image"] > 0 for r in rows)


# ------------------------------------------------------------------ bad input


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "t", n_train=2, n_val=1, names=False)
    (root / "train" / "dog").mkdir()
    with pytest.raises(InputError, match="dog has no images"):
        train(root, out=tmp_path / "r", **FAST)


def test_one_class_only(tmp_path):
    root = make_tree(tmp_path / "t", classes=("coffee",), n_train=2, n_val=1, names=False)
    with pytest.raises(InputError, match="at least 2 classes"):
        train(root, out=tmp_path / "r", **FAST)


def test_missing_val_split(tmp_path):
    root = make_tree(tmp_path / "t", n_train=2, n_val=1, names=False)
    (root / "val").rename(root / "test")
    with pytest.raises(InputError, match="no val split.*pass --eval-split test"):
        train(root, out=tmp_path / "r", **FAST)
    assert not (tmp_path / "r").exists()
    (root / "test").rename(root / "val")
    with pytest.raises(InputError, match="no test split.*pass --eval-split val"):
        train(root, out=tmp_path / "r", eval_split="test", **FAST)


def test_mismatched_checkpoint(run, tree, tmp_path):
    with pytest.raises(InputError, match="holds a resnet18 checkpoint"):
        train(tree, out=tmp_path / "r", **{**FAST, "arch": "mobilenet_v3_small", "weights": str(run.checkpoint)})
    wrong = tmp_path / "wrong.pth"
    torch.save(build_model("mobilenet_v3_small", 5, weights="none")[0].state_dict(), wrong)
    with pytest.raises(InputError, match="does not match resnet18"):
        train(tree, out=tmp_path / "r", **{**FAST, "weights": str(wrong)})
    assert not (tmp_path / "r").exists()


def test_weights_absent_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CURATE_OFFLINE", "1")
    with pytest.raises(NetworkError) as e:
        build_model("resnet18", 3, weights="imagenet")
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "torch") in msg and "--weights none" in msg


def cache_resnet18(tmp_path, monkeypatch):
    """A resnet18 with random weights saved where torchvision looks for its ImageNet checkpoint (offline)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CURATE_OFFLINE", "1")
    ref = torchvision.models.resnet18()
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    return ref


def test_cached_imagenet_weights_are_used(tmp_path, monkeypatch):
    ref = cache_resnet18(tmp_path, monkeypatch)
    model, _ = build_model("resnet18", 3, weights="imagenet")
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    (tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"truncated")
    with pytest.raises(InputError, match="cannot load cached weights"):
        build_model("resnet18", 3, weights="imagenet")


def test_imports_stay_light():
    import subprocess

    code = "import sys, curate.cli, curate.train, curate.train.prep; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_without_torch_one_line(tree, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", str(tree)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'curate[train]'" in err and "Traceback" not in err


def test_dataset_aliases_manifest_and_class_names(tmp_path):
    import pandas as pd

    from curate.core.manifest import write_manifest
    from curate.train.prep import load_dataset

    root = make_tree(tmp_path / "t", n_train=3, n_val=2, names=False)
    (root / "val").rename(root / "valid")
    (root / "classes.json").write_text(json.dumps({"coffee": "Cup of coffee"}))
    rows = [{"path": f"train/coffee/coffee_{i}.jpg", "split": "train", "label": "coffee",
             "status": "removed" if i == 0 else "kept"} for i in range(3)]
    write_manifest(root, pd.DataFrame(rows))
    ds = load_dataset(root)
    assert ds.classes == list(CLASSES) and set(ds.splits) == {"train", "val"}
    assert ds.counts("train") == [3, 3, 2] and ds.counts("val") == [2, 2, 2]
    assert ds.display == {"coffee": "Cup of coffee"}
    assert any("not kept" in w for w in ds.warnings)
    (root / "classes.json").write_text(json.dumps([{"id": 7, "folder": "coffee", "name": "Mug"}]))  # a bare list
    assert load_dataset(root).display == {"coffee": "Mug"}
    with pytest.raises(InputError, match="no test split"):
        load_dataset(root, eval_split="test")


def test_device_augmentation_is_per_image_and_seeded():
    from curate.train.data import Augment

    x = torch.from_numpy(np.stack([load_photo(c)[:64, :64] for c in CLASSES])).permute(0, 3, 1, 2).contiguous()
    x = x.repeat(4, 1, 1, 1)  # 12 images
    plain = Augment([]).normalise(x)
    assert torch.equal(Augment([])(x, torch.Generator().manual_seed(0)), plain)
    flipped = Augment(["flip"])(x, torch.Generator().manual_seed(1))
    same = [torch.equal(flipped[i], plain[i]) for i in range(12)]
    mirrored = [torch.equal(flipped[i], plain[i].flip(2)) for i in range(12)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True)) and any(same) and any(mirrored)
    full = Augment(["crop", "flip", "jitter"])
    a, b = full(x, torch.Generator().manual_seed(2)), full(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and a.shape == plain.shape and torch.isfinite(a).all()
    assert not torch.allclose(a[0], a[3])  # same source image, different random parameters
    lo, hi = Augment([]).normalise(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert (a >= lo.view(1, 3, 1, 1) - 1e-5).all() and (a <= hi.view(1, 3, 1, 1) + 1e-5).all()


def test_trains_from_an_s3_tree(tree, tmp_path, monkeypatch):
    """An object-store tree (moto's S3 server on 127.0.0.1) trains like the same tree on disk: the same
    files, class names from classes.json, files the manifest marks removed left out."""
    import pandas as pd
    from test_storage import moto_s3

    from curate.train.prep import load_dataset

    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    with moto_s3(tmp_path / "aws") as fs:
        fs.mkdir("bucket")
        fs.put(str(tree), "bucket/tree", recursive=True)
        gone = "train/coffee/coffee_0.jpg"
        buf = tmp_path / "manifest.parquet"
        pd.DataFrame({"path": [gone], "split": ["train"], "label": ["coffee"], "status": ["duplicate"]}).to_parquet(buf)
        fs.put(str(buf), "bucket/tree/manifest.parquet")
        ds = load_dataset("s3://bucket/tree")
        local = load_dataset(tree)
        assert ds.classes == local.classes and ds.display == local.display
        assert [str(p).rsplit("/tree/", 1)[1] for p in ds.splits["val"].paths] == \
            [str(p.relative_to(tree)) for p in local.splits["val"].paths]
        assert f"s3://bucket/tree/{gone}" not in ds.splits["train"].paths
        assert len(ds.splits["train"].paths) == len(local.splits["train"].paths) - 1
        monkeypatch.chdir(tmp_path)
        res = train("s3://bucket/tree", epochs=1, patience=0, quiet=True, **FAST)
        assert res.out_dir == Path("runs") / "tree-resnet18"
        assert res.metrics["train_images"] == len(ds.splits["train"].paths) and res.metrics["unreadable"] == 0
        with pytest.raises(InputError, match="does not exist"):
            train("s3://bucket/nothing-here", epochs=1, quiet=True, **FAST)
        preds = predict(res.out_dir / "best.pt", ["s3://bucket/tree/val/chelsea", "s3://bucket/tree/val/coffee/coffee_1.jpg"],
                        top_k=1, quiet=True)
        assert [p.path for p in preds] == [f"s3://bucket/tree/val/chelsea/chelsea_{i}.jpg" for i in range(3)] + \
            ["s3://bucket/tree/val/coffee/coffee_1.jpg"]
        assert all(p.top and not p.error for p in preds)
        with pytest.raises(InputError, match="no objects under"):
            predict(res.out_dir / "best.pt", "s3://bucket/tree/val/missing.jpg", quiet=True)


def test_resume_with_more_epochs_stretches_the_cosine(tree, tmp_path):
    out = tmp_path / "longer"

    opts = {**FAST, "patience": 0, "quiet": True}
    interrupted_after(2, tree, out=out, epochs=4, **opts)
    res = train(tree, out=out, epochs=6, resume=True, **opts)  # asked for more epochs while resuming
    lrs = [h["lr"] for h in res.history]
    assert len(lrs) == 6 and lrs[0] == pytest.approx(3e-3)
    assert all(a > b > 0 for a, b in zip(lrs[1:-1], lrs[2:], strict=True)), lrs  # still decreasing, not yet zero at epoch 6
    lines = []
    train(tree, out=out, epochs=7, resume=True, log=lines.append, **opts)  # the schedule has ended at 6
    assert any("cosine schedule" in x and "--weights" in x for x in lines)


# ------------------------------------------------------------------ regressions (QA pass)


def test_size_a_model_cannot_take_is_one_clear_line(tree, tmp_path, capsys):
    """AlexNet cannot take 32 px: exit 2 with the size that works, before decoding or creating --out
    (also for --compare, before the first model trains)."""
    for extra in (["--arch", "alexnet"], ["--compare", "resnet18,alexnet"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["-q", "train", str(tree), "--weights", "none", "--size", "32", "--epochs", "1", "-j", "1",
                      "--out", str(tmp_path / "r"), *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "alexnet cannot take --size 32" in err and "--size 64" in err and "Traceback" not in err
        assert not (tmp_path / "r").exists()


def test_streaming_leaves_out_unreadable_images_like_the_cache(tmp_path):
    root = make_tree(tmp_path / "t", n_train=5, n_val=1, names=False)
    (root / "train" / "coffee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    opts = {**FAST, "epochs": 1, "patience": 0, "quiet": True, "mixup": 0.4, "workers": 0}
    a = train(root, out=tmp_path / "cache", **opts)
    b = train(root, out=tmp_path / "stream", cache_gb=0, **opts)
    assert a.metrics["unreadable"] == b.metrics["unreadable"] == 1
    assert a.metrics["train_images"] == b.metrics["train_images"] == 15
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], rel=1e-5)


def test_googlenet_keeps_transform_input_and_one_dropout(tree, tmp_path, monkeypatch):
    """GoogLeNet with ImageNet weights runs transform_input: predict and resume must rebuild it so, and
    resume must not need the ImageNet file again. Its own `dropout` before fc gets --dropout (not a second one)."""
    import torchvision

    from curate.train.models import weights_file
    from curate.train.predictor import load_classifier

    model, _ = build_model("googlenet", 3, weights="none", dropout=0.25)
    assert model.dropout.p == 0.25 and isinstance(model.fc, torch.nn.Linear)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CURATE_OFFLINE", "1")
    _, cached = weights_file("googlenet")
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.GoogLeNet(aux_logits=False, init_weights=False).state_dict(), cached)
    opts = {**FAST, "arch": "googlenet", "weights": "imagenet", "freeze_until": "head", "patience": 0, "quiet": True}
    out = tmp_path / "g"

    interrupted_after(1, tree, out=out, epochs=2, **opts)
    cached.unlink()  # everything a resume needs is in last.pt
    res = train(tree, out=out, epochs=2, resume=True, **opts)
    assert len(res.history) == 2
    loaded, _ = load_classifier(res.checkpoint, torch.device("cpu"))
    assert loaded.transform_input is True
    (out / "last.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        train(tree, out=out, epochs=3, resume=True, **opts)


def test_fine_tune_keeps_the_head_only_for_the_same_classes(run):
    ck = torch.load(run.checkpoint, weights_only=True)
    same, info = build_model("resnet18", 3, weights=str(run.checkpoint), classes=list(CLASSES))
    assert torch.equal(same.fc[1].weight, ck["model"]["fc.1.weight"])
    other, _ = build_model("resnet18", 3, weights=str(run.checkpoint), classes=["a", "b", "c"])
    assert not torch.equal(other.fc[1].weight, ck["model"]["fc.1.weight"])
    assert torch.equal(other.conv1.weight, ck["model"]["conv1.weight"])


def test_macro_averages_leave_out_classes_the_split_cannot_score():
    from curate.train.metrics import classification_metrics

    y = np.array([0, 0, 1, 1])
    probs = np.eye(3)[[0, 0, 1, 1]]  # perfect on classes 0 and 1; class 2 is not in the split
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["macro_recall"] == 1.0
    assert "c" in m["per_class"] and "(left out of the averages): c" in m["report_text"]


def test_non_finite_validation_loss_is_a_clear_error_and_metrics_stay_strict_json(tree, tmp_path, monkeypatch):
    from curate.train import loop

    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: {**real(*a, **k), "loss": float("nan")})
    with pytest.raises(InputError, match="diverged in epoch 1"):
        train(tree, out=tmp_path / "nan", epochs=1, quiet=True, **FAST)
    assert json.dumps(loop.json_safe({"a": [1.0, float("inf")], "b": float("nan")}), allow_nan=False) == \
        '{"a": [1.0, null], "b": null}'
