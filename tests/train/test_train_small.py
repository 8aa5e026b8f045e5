"""Small-image training: the small stem, one-channel caches for grayscale trees, the from-scratch recipe,
simple-cnn, per-class accuracy and loss, and --compare's per-model processes and errors.

Trees are real scans: scikit-learn's handwritten digits (8x8, upscaled), written as grayscale PNGs."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from curate import cli  # noqa: E402
from curate.core.errors import InputError  # noqa: E402
from curate.train import TrainConfig, compare, predict, train  # noqa: E402
from curate.train.data import Augment, decode_split  # noqa: E402
from curate.train.loop import make_scheduler  # noqa: E402
from curate.train.models import build_model  # noqa: E402
from curate.train.prep import load_dataset  # noqa: E402

QUICK = dict(size=28, batch_size=16, workers=1, seed=0, patience=0, augment="none", threads=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_digits(root: Path, digits=(0, 1, 7), n_train=12, n_val=6, side=28, colour=False) -> Path:
    """ROOT/{train,val}/<digit>/ of real digit scans as grayscale (or RGB) PNGs of `side` px."""
    from sklearn.datasets import load_digits

    d = load_digits()
    for digit in digits:
        idx = np.flatnonzero(d.target == digit)
        for split, part in (("train", idx[:n_train]), ("val", idx[n_train : n_train + n_val])):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                im = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8), "L").resize((side, side),
                                                                                             Image.BILINEAR)
                (im.convert("RGB") if colour else im).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits") / "tree")


# ------------------------------------------------------------------ the small stem


def _layer4_side(model, size: int) -> int:
    seen = []
    h = model.layer4.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    h.remove()
    return seen[0]


def test_small_stem_is_picked_below_64_px_and_can_be_overridden():
    small, info = build_model("resnet18", 3, weights="none", size=32, stem="auto")
    assert info["stem"] == "small" and small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert _layer4_side(small, 32) == 4  # the ImageNet stem leaves 1x1 here
    big, info = build_model("resnet18", 3, weights="none", size=64, stem="auto")
    assert info["stem"] == "imagenet" and big.conv1.kernel_size == (7, 7)
    forced, info = build_model("resnet18", 3, weights="none", size=32, stem="imagenet")
    assert info["stem"] == "imagenet" and _layer4_side(forced, 32) == 1
    for arch, name in (("densenet121", "features.conv0"), ("mobilenet_v3_small", "features.0.0"),
                       ("efficientnet_b0", "features.0.0"), ("regnet_x_400mf", "stem.0")):
        m, info = build_model(arch, 3, weights="none", size=28, stem="auto")
        assert info["stem"] == "small" and m.get_submodule(name).stride == (1, 1), arch
    # families with no stem to adapt keep theirs on auto, and refuse --stem small
    assert build_model("squeezenet1_1", 3, weights="none", size=32, stem="auto")[1]["stem"] == "imagenet"
    with pytest.raises(InputError, match="--stem small does not apply to vgg11"):
        build_model("vgg11", 3, weights="none", size=32, stem="small")


def test_small_stem_keeps_the_centre_of_pretrained_kernels_and_trains_the_stem(tmp_path, monkeypatch):
    from test_train import cache_resnet18

    ref = cache_resnet18(tmp_path, monkeypatch)
    model, info = build_model("resnet18", 3, weights="imagenet", size=32, stem="auto")
    assert torch.equal(model.conv1.weight, ref.conv1.weight[:, :, 2:5, 2:5])
    assert torch.equal(model.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"conv1", "bn1", "layer4", "fc"}  # freeze auto: layer4 on, and the new stem trains
    assert "bn1" not in info["frozen_norms"]


def test_small_stem_run_predicts_with_its_own_stem(digits, tmp_path):
    res = train(digits, out=tmp_path / "r", arch="resnet18", weights="none", epochs=1, quiet=True, **QUICK)
    assert res.metrics["stem"] == "small"
    assert torch.load(res.checkpoint, weights_only=True)["stem"] == "small"
    preds = predict(res.checkpoint, digits / "val" / "7", top_k=1, quiet=True)
    assert len(preds) == 6 and all(p.top and not p.error for p in preds)


# ------------------------------------------------------------------ grayscale


def test_grayscale_splits_are_cached_with_one_channel(digits, tmp_path):
    ds = load_dataset(digits)
    gray = decode_split(ds.splits["train"], 28, workers=1, quiet=True)
    assert gray.images.shape == (36, 1, 28, 28)  # one channel in the cache
    colour_root = make_digits(tmp_path / "rgb", colour=True)
    first = sorted((colour_root / "train" / "1").iterdir())[0]
    img = np.asarray(Image.open(first)).copy()
    img[0, 0] = (255, 0, 0)  # one coloured pixel makes the split colour
    Image.fromarray(img).save(first)
    mixed = decode_split(load_dataset(colour_root).splits["train"], 28, workers=1, quiet=True)
    assert mixed.images.shape == (36, 3, 28, 28)
    # the same pixels once replicated: the device-side path gives the model three equal channels
    rgb_gray = decode_split(load_dataset(make_digits(tmp_path / "rgb2", colour=True)).splits["train"], 28,
                            workers=1, quiet=True)
    assert rgb_gray.images.shape[1] == 1  # RGB files of gray pixels count as gray
    aug = Augment(["flip", "jitter"])
    x = aug.normalise(gray.images[:4])
    assert x.shape == (4, 3, 28, 28)
    ref = Augment([]).normalise(gray.images[:4].expand(-1, 3, -1, -1).contiguous())
    assert torch.equal(x, ref)
    assert aug(gray.images[:4], torch.Generator().manual_seed(0)).shape == (4, 3, 28, 28)


def test_grayscale_tree_trains_like_its_rgb_copy(digits, tmp_path):
    rgb = make_digits(tmp_path / "rgb", colour=True)
    opts = dict(arch="simple-cnn", epochs=1, quiet=True, **{**QUICK, "augment": "flip,jitter"})
    a = train(digits, out=tmp_path / "gray", **opts)
    b = train(rgb, out=tmp_path / "rgb-run", **opts)
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], rel=1e-5)
    assert a.metrics["top1"] == b.metrics["top1"]


# ------------------------------------------------------------------ from scratch, simple-cnn


def test_weights_none_takes_the_from_scratch_recipe_and_explicit_flags_win():
    fine = TrainConfig.from_options()
    assert (fine.weights, fine.lr, fine.freeze_until, fine.epochs, fine.patience, fine.scheduler) == (
        "imagenet", 1e-5, "auto", 50, 3, "cosine")
    scratch = TrainConfig.from_options(weights="none")
    assert (scratch.lr, scratch.freeze_until, scratch.epochs, scratch.patience, scratch.scheduler) == (
        1e-3, "none", 100, 10, "warmup-cosine")
    assert scratch.recipe_note().startswith("from scratch: nothing frozen")
    mine = TrainConfig.from_options(weights="none", lr=5e-4, freeze_until="layer3", epochs=7, scheduler="none")
    assert (mine.lr, mine.freeze_until, mine.epochs, mine.scheduler, mine.patience) == (
        5e-4, "layer3", 7, "none", 10)
    cnn = TrainConfig.from_options(arch="simple-cnn")
    assert cnn.weights == "none" and cnn.lr == 1e-3
    with pytest.raises(InputError, match="simple-cnn has no ImageNet weights"):
        TrainConfig.from_options(arch="simple-cnn", weights="imagenet")
    with pytest.raises(InputError, match="unknown --stem"):
        TrainConfig.from_options(stem="tiny")


def test_warmup_cosine_schedule():
    cfg = TrainConfig.from_options(weights="none", epochs=20, lr=1e-3)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    lrs = []
    for _ in range(cfg.epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[1] == pytest.approx(2e-3 / 3)  # 2 warm-up epochs
    assert lrs[2] == pytest.approx(1e-3) and lrs[-1] < 2e-5 and lrs == sorted(lrs[:3]) + lrs[3:]
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))


def test_simple_cnn_learns_digits_from_scratch(digits, tmp_path):
    res = train(digits, out=tmp_path / "cnn", arch="simple-cnn", epochs=6, quiet=True, **{**QUICK, "batch_size": 8})
    m = res.metrics
    assert m["weights"] == "none" and m["freeze_until"] == "none" and m["trainable_params"] == m["params"]
    assert m["recipe"] == "scratch" and m["config"]["scheduler"] == "warmup-cosine"
    assert res.history[-1]["train_loss"] < 0.6 * res.history[0]["train_loss"]
    assert m["top1"] >= 0.75  # 3 digits, 18 validation scans; chance is 0.33


# ------------------------------------------------------------------ reports


def test_per_class_accuracy_and_mean_loss(digits, tmp_path, capsys):
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as e:
        cli.main(["train", str(digits), "--arch", "simple-cnn", "--size", "28", "--epochs", "2", "-b", "16",
                  "-j", "1", "--threads", "1", "--out", str(out)])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "from scratch: nothing frozen, lr 0.001, warmup-cosine, 2 epochs" in text
    assert "small stem" in text and "mean loss" in text and "per class on val" in text
    m = json.loads((out / "metrics.json").read_text())
    per = m["per_class"]
    assert set(per) == {"0", "1", "7"}
    cm = np.array(m["confusion_matrix"])
    for i, c in enumerate(("0", "1", "7")):
        assert per[c]["accuracy"] == pytest.approx(cm[i, i] / cm[i].sum())
        assert per[c]["loss"] > 0
    # the per-class means, weighted by images, give back the split's mean loss (focal, alpha 1)
    mean = sum(per[c]["loss"] * per[c]["support"] for c in per) / sum(per[c]["support"] for c in per)
    assert mean == pytest.approx(m["loss"], rel=1e-5)
    assert "mean loss" in (out / "classification_report.txt").read_text()
    assert m["inference_ms_batch1"] > 0 and m["inference_batch_size"] == 16


def test_bad_stem_flags_are_one_line(digits, tmp_path, capsys):
    for extra, msg in ((["--weights", "none", "--stem", "tiny"], "unknown --stem 'tiny'"),
                       (["--arch", "vgg11", "--stem", "small"], "--stem small does not apply to vgg11"),
                       (["--arch", "simple-cnn", "--weights", "imagenet"], "simple-cnn has no ImageNet weights")):
        with pytest.raises(SystemExit) as e:
            cli.main(["-q", "train", str(digits), "--size", "28", "--out", str(tmp_path / "x"), *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.slow  # three fresh interpreters, each importing torch
def test_compare_runs_each_model_alone_and_reports_a_failure(tmp_path, capsys):
    # GoogLeNet has no small stem: at 28 px its last BatchNorm sees 1x1 maps, and with batches of one image
    # training fails ("Expected more than 1 value per channel"); it builds, so the failure comes mid-run.
    tree = make_digits(tmp_path / "tree", digits=(0, 1), n_train=6, n_val=3)
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as e:
        cli.main(["-q", "train", str(tree), "--compare", "resnet18,googlenet,simple-cnn", "--weights", "none",
                  "--size", "28", "-b", "1", "--epochs", "1", "-j", "1", "--threads", "1", "--augment", "none",
                  "--out", str(out)])
    assert e.value.code == 1
    assert "1 of 3 models failed: googlenet" in capsys.readouterr().out
    rows = json.loads((out / "compare.json").read_text())
    assert [r["arch"] for r in rows] == ["resnet18", "googlenet", "simple-cnn"]
    assert "Expected more than 1 value per channel" in rows[1]["error"] and rows[1].get("top1") is None
    r18, cnn = rows[0], rows[2]
    for r in (r18, cnn):
        assert r.get("error") is None and r["train_seconds"] > 0 and r["peak_memory_kind"] == "cpu-rss"
        assert r["inference_ms_batch1"] > 0 and r["inference_ms_per_image"] > 0
    # Each in its own process: simple-cnn (1 M parameters), trained after resnet18 (11 M), peaks lower.
    assert cnn["peak_memory_mb"] < r18["peak_memory_mb"] - 40
    md = (out / "compare.md").read_text()
    assert "ms/img b1" in md and "Expected more than 1 value" in md and "own training process" in md
    assert not (out / ".decoded.pt").exists()


FOURTEEN = ["simple-cnn", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
            "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1", "mnasnet0_5",
            "mnasnet0_75", "efficientnet_b0", "regnet_x_400mf", "regnet_y_400mf"]


@pytest.mark.slow
def test_compare_takes_fourteen_models(tmp_path):
    tree = make_digits(tmp_path / "tree", digits=(3, 8), n_train=4, n_val=2)
    # in this process (alone=False): fourteen fresh interpreters would spend minutes importing torch
    rows = compare(tree, FOURTEEN, out=tmp_path / "cmp", weights="none", epochs=1, quiet=True, alone=False, **QUICK)
    assert [r["arch"] for r in rows] == FOURTEEN
    bad = [(r["arch"], r.get("error"), r.get("peak_memory_mb")) for r in rows
           if r.get("error") or not r.get("peak_memory_mb")]
    assert not bad
    assert len((tmp_path / "cmp" / "compare.md").read_text().splitlines()) >= 16


def test_mnasnet_checkpoints_reload(digits, tmp_path):
    """MNASNet loads weights only with their version metadata: best.pt keeps it, for the final metrics,
    predict and fine-tuning."""
    res = train(digits, out=tmp_path / "m", arch="mnasnet0_5", weights="none", epochs=1, quiet=True, **QUICK)
    assert len(predict(res.checkpoint, digits / "val" / "0", quiet=True)) == 6
    again = train(digits, out=tmp_path / "m2", arch="mnasnet0_5", weights=str(res.checkpoint), epochs=1, quiet=True,
                  **QUICK)
    assert again.metrics["stem"] == "small"


def test_state_dict_file_loads_into_the_small_stem(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    model, info = build_model("resnet18", 3, weights=str(path), size=32, stem="auto", freeze_until="none")
    assert info["stem"] == "small" and torch.equal(model.conv1.weight, ref.conv1.weight[:, :, 2:5, 2:5])
    assert torch.equal(model.layer2[0].conv1.weight, ref.layer2[0].conv1.weight)


def test_resuming_a_scratch_run_without_weights_none_says_so(digits, tmp_path, capsys):
    out = tmp_path / "run"
    opts = dict(arch="resnet18", stem="imagenet", size=28, batch_size=16, workers=1, threads=1, patience=0)
    train(digits, out=out, weights="none", epochs=1, quiet=True, **opts)
    with pytest.raises(InputError, match="resume with it again") as e:
        train(digits, out=out, epochs=2, resume=True, quiet=True, **opts)  # --weights left out: imagenet defaults
    assert "--lr 0.001" in str(e.value)
