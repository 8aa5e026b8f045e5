"""Training options (one pydantic model, usable from the CLI and from a pipeline step) and results."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.core.errors import InputError

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
# The hint shown with a bad value of an option (default: its choices, or see --help).
HINTS = {
    "gamma": "2 is the usual focal loss value",
    "epochs": "e.g. --epochs 10 --size 224",
    "batch_size": "e.g. --batch-size 64",
    "size": "e.g. --epochs 10 --size 224",
    "dropout": "a fraction in [0, 1), e.g. 0.3",
    "threads": "e.g. --threads 1 on a machine shared with other jobs",
    "patience": "0 disables early stopping",
    "eval_split": "choose val or test; val/valid/validation all count as val",
}
BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than": ("<", "lt"),
          "less_than_equal": ("<=", "le")}


def require_torch() -> None:
    """Raise one clear line when torch/torchvision are not installed."""
    for mod in ("torch", "torchvision"):
        try:
            found = importlib.util.find_spec(mod) is not None
        except ValueError:  # a module set to None in sys.modules
            found = False
        if not found:
            raise InputError(f"training needs {mod}, which is not installed", INSTALL_HINT)


class Invalid(ValueError):
    """A bad option value with its own message and hint."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def option_error(e: ValidationError) -> InputError:
    """The first problem of a validation, as one line naming the option."""
    err = e.errors()[0]
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), Invalid):
        return InputError(ctx["error"].message, ctx["error"].hint)
    name = str(err["loc"][0]) if err["loc"] else ""
    flag = "--" + name.replace("_", "-")
    inner = "".join(f" item {p + 1}" if isinstance(p, int) else f" {p}" for p in err["loc"][1:])
    hint = HINTS.get(name, "see curate train --help")
    if err["type"] == "literal_error":
        choices = ctx["expected"].replace("'", "")
        return InputError(f"unknown {flag} '{err['input']}'", HINTS.get(name, f"choose {choices}"))
    if err["type"] in BOUNDS:
        op, key = BOUNDS[err["type"]]
        return InputError(f"{flag} must be {op} {ctx[key]:g}", hint)
    return InputError(f"{flag}{inner} {err['input']!r}: {err['msg']}", hint)


def parse_augment(text: str) -> list[str]:
    if text.strip().lower() in ("", "none"):
        return []
    return [a.strip().lower() for a in text.split(",") if a.strip()]


class TrainConfig(BaseModel):
    """Defaults follow the reference recipe: ResNet18, ImageNet weights, all blocks frozen but the
    last, dropout 0.3, focal loss (gamma 2, alpha 1), AdamW, cosine annealing, early stopping on
    validation loss (patience 3), ColorJitter(0.2, 0.2, 0.2, 0.1) + horizontal flip.

    Options left at None take the defaults of the recipe (RECIPES): "fine-tune" for ImageNet or file
    weights, "scratch" for --weights none (nothing frozen, lr 1e-3, warmup + cosine, 100 epochs,
    patience 10). simple-cnn has no pretrained weights, so its weights default to none. Options the
    user sets always win. A bad value raises InputError: one line naming the option."""

    model_config = ConfigDict(extra="forbid")

    arch: str = "resnet18"
    weights: str | None = None  # imagenet | none | PATH (.pt/.pth state dict or curate checkpoint)
    loss: Literal["focal", "ce"] = "focal"
    gamma: float = Field(2.0, ge=0)
    alpha: str = "1"  # a number, or "balanced" (per class, inverse frequency)
    class_weights: Literal["none", "inverse-freq"] = "none"
    label_smoothing: float = 0.0
    epochs: int | None = Field(None, ge=1)  # recipe default: 50, or 100 from scratch
    batch_size: int = Field(128, ge=1)
    lr: float | None = Field(None, ge=0)  # recipe default: 1e-5, or 1e-3 from scratch
    weight_decay: float = Field(0.01, ge=0)
    freeze_until: str | None = None  # auto (last block per family) | none | head | a module name (layer4)
    dropout: float = Field(0.3, ge=0, lt=1)
    patience: int | None = Field(None, ge=0)  # epochs without a lower validation loss before stopping; 0 = never
    scheduler: Literal[SCHEDULERS] | None = None  # cosine | warmup-cosine (a linear warm-up, then cosine) | none
    stem: Literal[STEMS] = "auto"  # auto (small below 64 px where the family has one) | small | imagenet
    augment: str = "flip,jitter"  # comma list of flip, jitter, crop; or none
    jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.1)
    mixup: float = Field(0.0, ge=0)  # Beta(alpha, alpha) mixup; 0 = off
    size: int = Field(224, ge=16)  # input side in pixels
    eval_split: Literal["val", "test"] = "val"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: bool | None = None  # None = auto (on for CUDA); on CPU it means bf16 autocast
    channels_last: bool | None = None  # None = auto (on for CUDA)
    workers: int | None = None  # decode processes
    threads: int | None = Field(None, ge=1)  # torch CPU threads (None: torch's default, one per core)
    seed: int = 0
    cache_gb: float | None = None  # decoded uint8 cache limit; None = half the free memory; 0 = stream
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict[str, Any] = Field(default_factory=dict)  # free-form notes stored with the run

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as e:
            raise option_error(e) from e

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """Options as the CLI and pipelines give them: None means "not set" (but for amp and channels_last)."""
        names = set(cls.model_fields)
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(unknown)}",
                             f"known: {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in options.items() if v is not None or k in ("amp", "channels_last")})

    @field_validator("alpha", mode="before")
    @classmethod
    def _alpha_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: str) -> str:
        if value != "balanced":
            try:
                ok = float(value) > 0
            except ValueError:
                ok = False
            if not ok:
                raise Invalid(f"--alpha '{value}' is neither a positive number nor 'balanced'", "use 1 or balanced")
        return value

    @field_validator("augment")
    @classmethod
    def _augment(cls, value: str) -> str:
        for a in parse_augment(value):
            if a not in AUGMENTS:
                raise Invalid(f"unknown augmentation '{a}'", f"choose from {', '.join(AUGMENTS)} or none")
        return value

    @model_validator(mode="after")
    def _recipe_and_weights(self) -> TrainConfig:
        """Fill the options left unset from the recipe, then check the weights against the architecture."""
        if self.weights is None:
            self.weights = "none" if self.arch == "simple-cnn" else "imagenet"
        for key, value in RECIPES[self.recipe].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.arch == "simple-cnn" and self.weights == "imagenet":
            raise Invalid("simple-cnn has no ImageNet weights",
                          "use --weights none (its default) or a simple-cnn checkpoint")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise Invalid(f"--weights '{self.weights}' is not imagenet, none or an existing file",
                          "pass a .pt/.pth file, or --weights none to train from scratch")
        return self

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

    def augment_list(self) -> list[str]:
        return parse_augment(self.augment)

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump()
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
