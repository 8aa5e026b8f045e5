"""TrainConfig (a pydantic model): recipe defaults, and a bad value is one InputError line naming the option.
No torch needed."""

import pytest

from curate import cli
from curate.core.errors import InputError
from curate.train.config import TrainConfig


@pytest.mark.parametrize(("options", "message", "hint"), [
    ({"loss": "x"}, "unknown --loss 'x'", "focal or ce"),
    ({"gamma": -1}, "--gamma must be >= 0", "2 is the usual focal loss value"),
    ({"alpha": "0"}, "--alpha '0' is neither a positive number nor 'balanced'", "use 1 or balanced"),
    ({"class_weights": "x"}, "unknown --class-weights 'x'", "inverse-freq"),
    ({"epochs": 0}, "--epochs must be >= 1", "--epochs 10"),
    ({"epochs": "five"}, "--epochs 'five': Input should be a valid integer", "--epochs 10"),
    ({"batch_size": 0}, "--batch-size must be >= 1", "--batch-size 64"),
    ({"size": 8}, "--size must be >= 16", "--size 224"),
    ({"lr": -1}, "--lr must be >= 0", "curate train --help"),
    ({"weight_decay": -0.1}, "--weight-decay must be >= 0", "curate train --help"),
    ({"dropout": 1}, "--dropout must be < 1", "[0, 1)"),
    ({"mixup": -1}, "--mixup must be >= 0", "curate train --help"),
    ({"threads": 0}, "--threads must be >= 1", "--threads 1"),
    ({"patience": -1}, "--patience must be >= 0", "0 disables early stopping"),
    ({"scheduler": "step"}, "unknown --scheduler 'step'", "warmup-cosine"),
    ({"stem": "tiny"}, "unknown --stem 'tiny'", "small"),
    ({"eval_split": "train"}, "unknown --eval-split 'train'", "val/valid/validation all count as val"),
    ({"augment": "flip,blur"}, "unknown augmentation 'blur'", "flip, jitter, crop or none"),
    ({"jitter": (0.1, 0.1, "x", 0.1)}, "--jitter item 3 'x': Input should be a valid number", "--help"),
    ({"arch": "simple-cnn", "weights": "imagenet"}, "simple-cnn has no ImageNet weights", "--weights none"),
    ({"weights": "missing.pt"}, "--weights 'missing.pt' is not imagenet, none or an existing file", ".pt/.pth"),
    ({"bogus": 1}, "unknown training option(s): bogus", "known: alpha, amp"),
])
def test_a_bad_option_is_one_line(options, message, hint):
    with pytest.raises(InputError) as e:
        TrainConfig.from_options(**options)
    assert e.value.message.startswith(message), e.value.message
    assert hint in e.value.hint and "\n" not in str(e.value)


def test_recipes_fill_what_is_unset(tmp_path):
    fine = TrainConfig.from_options()
    assert (fine.weights, fine.lr, fine.epochs, fine.patience, fine.scheduler, fine.freeze_until) == (
        "imagenet", 1e-5, 50, 3, "cosine", "auto")
    scratch = TrainConfig.from_options(weights="none", epochs=None, lr=None)  # None means "not set"
    assert (scratch.lr, scratch.epochs, scratch.patience, scratch.scheduler) == (1e-3, 100, 10, "warmup-cosine")
    assert TrainConfig.from_options(arch="simple-cnn").weights == "none"
    assert TrainConfig.from_options(amp=None, channels_last=False).channels_last is False
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    assert TrainConfig.from_options(weights=str(ckpt)).recipe == "fine-tune"
    d = TrainConfig.from_options(alpha="balanced", augment=" Flip , JITTER ").to_dict()
    assert d["jitter"] == [0.2, 0.2, 0.2, 0.1] and d["mean"] == [0.485, 0.456, 0.406] and d["alpha"] == "balanced"
    assert TrainConfig(augment=" Flip , JITTER ").augment_list() == ["flip", "jitter"]
    assert TrainConfig(augment="none").augment_list() == []
    assert list(d) == list(TrainConfig.model_fields)  # the order of the fields, as metrics.json records them


def test_bad_option_on_the_command_line(tmp_path, capsys):
    pytest.importorskip("torch")  # `curate train` checks for torch first
    with pytest.raises(SystemExit) as e:
        cli.main(["-q", "train", str(tmp_path), "--dropout", "1.5", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--dropout must be < 1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
