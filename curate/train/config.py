"""Training options (one dataclass, usable from the CLI and from a pipeline step) and results."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTS = ("flip", "jitter", "crop")
STEMS = ("auto", "small", "imagenet")
SCHEDULERS = ("cosine", "warmup-cosine", "none")
SMALL_STEM_BELOW = 64  # --stem auto picks the small stem for inputs smaller than this
# Defaults that depend on where the weights start: fine-tuning ImageNet (or file) weights, or from scratch.
RECIPES = {
    "fine-tune": {"lr": 1e-5, "freeze_until": "auto", "epochs": 50, "patience": 3, "scheduler": "cosine"},
    "scratch": {"lr": 1e-3, "freeze_until": "none", "epochs": 100, "patience": 10, "scheduler": "warmup-cosine"},
}
INSTALL_HINT = "pip install 'curate[train]'"


def require_torch() -> None:
    """Raise one clear line when torch/torchvision are not installed."""
    for mod in ("torch", "torchvision"):
        try:
            found = importlib.util.find_spec(mod) is not None
        except ValueError:  # a module set to None in sys.modules
            found = False
        if not found:
            raise InputError(f"training needs {mod}, which is not installed", INSTALL_HINT)


@dataclass
class TrainConfig:
    """Defaults follow the reference recipe: ResNet18, ImageNet weights, all blocks frozen but the
    last, dropout 0.3, focal loss (gamma 2, alpha 1), AdamW, cosine annealing, early stopping on
    validation loss (patience 3), ColorJitter(0.2, 0.2, 0.2, 0.1) + horizontal flip.

    Options left at None take the defaults of the recipe (RECIPES): "fine-tune" for ImageNet or file
    weights, "scratch" for --weights none (nothing frozen, lr 1e-3, warmup + cosine, 100 epochs,
    patience 10). simple-cnn has no pretrained weights, so its weights default to none. Options the
    user sets always win."""

    arch: str = "resnet18"
    weights: str | None = None  # imagenet | none | PATH (.pt/.pth state dict or curate checkpoint)
    loss: str = "focal"  # focal | ce
    gamma: float = 2.0
    alpha: str = "1"  # a number, or "balanced" (per class, inverse frequency)
    class_weights: str = "none"  # none | inverse-freq
    label_smoothing: float = 0.0
    epochs: int | None = None  # recipe default: 50, or 100 from scratch
    batch_size: int = 128
    lr: float | None = None  # recipe default: 1e-5, or 1e-3 from scratch
    weight_decay: float = 0.01
    freeze_until: str | None = None  # auto (last block per family) | none | head | a module name (layer4)
    dropout: float = 0.3
    patience: int | None = None  # epochs without a lower validation loss before stopping; 0 = never stop early
    scheduler: str | None = None  # cosine | warmup-cosine (a linear warm-up, then cosine) | none
    stem: str = "auto"  # auto (small below 64 px where the family has one) | small | imagenet
    augment: str = "flip,jitter"  # comma list of flip, jitter, crop; or none
    jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.1)
    mixup: float = 0.0  # Beta(alpha, alpha) mixup; 0 = off
    size: int = 224  # input side in pixels
    eval_split: str = "val"  # val | test
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: bool | None = None  # None = auto (on for CUDA); on CPU it means bf16 autocast
    channels_last: bool | None = None  # None = auto (on for CUDA)
    workers: int | None = None  # decode processes
    threads: int | None = None  # torch CPU threads (None: torch's default, one per core)
    seed: int = 0
    cache_gb: float | None = None  # decoded uint8 cache limit; None = half the free memory; 0 = stream
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes stored with the run

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(unknown)}",
                             f"known: {', '.join(sorted(names))}")
        cfg = cls(**{k: v for k, v in options.items() if v is not None or k in ("amp", "channels_last")})
        cfg.validate()
        return cfg

    def __post_init__(self) -> None:
        if self.weights is None:
            self.weights = "none" if self.arch == "simple-cnn" else "imagenet"
        for key, value in RECIPES[self.recipe].items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    @property
    def recipe(self) -> str:
        """'scratch' for random starting weights, else 'fine-tune'."""
        return "scratch" if self.weights == "none" else "fine-tune"

    def recipe_note(self) -> str:
        """One line for the summary: which defaults apply."""
        if self.recipe == "scratch":
            return (f"from scratch: {self.freeze_until if self.freeze_until != 'none' else 'nothing'} frozen, "
                    f"lr {self.lr:g}, {self.scheduler}, {self.epochs} epochs, patience {self.patience}")
        return f"fine-tuning {self.weights} weights: frozen until {self.freeze_until}, lr {self.lr:g}, {self.scheduler}"

    def validate(self) -> None:
        def bad(msg: str, hint: str) -> None:
            raise InputError(msg, hint)

        if self.loss not in ("focal", "ce"):
            bad(f"unknown loss '{self.loss}'", "choose focal or ce")
        if self.gamma < 0:
            bad("--gamma must be >= 0", "2 is the usual focal loss value")
        if self.alpha != "balanced":
            try:
                if float(self.alpha) <= 0:
                    raise ValueError
            except ValueError:
                bad(f"--alpha '{self.alpha}' is neither a positive number nor 'balanced'", "use 1 or balanced")
        if self.class_weights not in ("none", "inverse-freq"):
            bad(f"unknown --class-weights '{self.class_weights}'", "choose none or inverse-freq")
        if self.epochs < 1 or self.batch_size < 1 or self.size < 16:
            bad("--epochs and --batch-size must be >= 1 and --size >= 16", "e.g. --epochs 10 --size 224")
        if self.lr < 0 or self.weight_decay < 0 or not 0 <= self.dropout < 1 or self.mixup < 0:
            bad("--lr, --weight-decay, --mixup must be >= 0 and --dropout in [0, 1)", "see curate train --help")
        if self.threads is not None and self.threads < 1:
            bad("--threads must be >= 1", "e.g. --threads 1 on a machine shared with other jobs")
        if self.patience < 0:
            bad("--patience must be >= 0", "0 disables early stopping")
        if self.scheduler not in SCHEDULERS:
            bad(f"unknown --scheduler '{self.scheduler}'", f"choose {', '.join(SCHEDULERS)}")
        if self.stem not in STEMS:
            bad(f"unknown --stem '{self.stem}'", f"choose {', '.join(STEMS)}")
        if self.eval_split not in ("val", "test"):
            bad(f"--eval-split must be val or test, not '{self.eval_split}'", "val/valid/validation all count as val")
        for a in self.augment_list():
            if a not in AUGMENTS:
                bad(f"unknown augmentation '{a}'", f"choose from {', '.join(AUGMENTS)} or none")
        if self.arch == "simple-cnn" and self.weights == "imagenet":
            bad("simple-cnn has no ImageNet weights", "use --weights none (its default) or a simple-cnn checkpoint")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            bad(f"--weights '{self.weights}' is not imagenet, none or an existing file",
                "pass a .pt/.pth file, or --weights none to train from scratch")

    def augment_list(self) -> list[str]:
        if self.augment.strip().lower() in ("", "none"):
            return []
        return [a.strip().lower() for a in self.augment.split(",") if a.strip()]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["jitter"], d["mean"], d["std"] = list(self.jitter), list(self.mean), list(self.std)
        return d


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "best.pt"
