"""Reference trainer for curated trees: `train`, `predict`, `compare`.

torch and torchvision are optional (`pip install 'curate[train]'`); the modules that import them are
bound lazily (curate.core.lazy), so importing `curate.train` stays light.
"""

from __future__ import annotations

from curate.core.lazy import lazy
from curate.train.config import TrainConfig, TrainResult, require_torch

loop = lazy("curate.train.loop")
predictor = lazy("curate.train.predictor")
comparison = lazy("curate.train.comparison")


def train(root, *, out=None, resume: bool = False, overwrite: bool = False, quiet: bool = False, log=None,
          on_epoch_end=None, **options) -> TrainResult:
    """Train a torchvision classifier on a curated tree; see TrainConfig for every option.

    Example: `train("data/coins", out="runs/coins", arch="resnet18", weights="none", epochs=1)`.
    `resume` continues the run in `out` from its last.pt; `overwrite` replaces a finished run there.
    Returns a TrainResult with `.out_dir` and `.metrics` (the content of metrics.json).
    """
    require_torch()
    cfg = TrainConfig.from_options(**options)
    return loop.fit(root, cfg, out=out, resume=resume, overwrite=overwrite, quiet=quiet, log=log, on_epoch_end=on_epoch_end)


def predict(checkpoint, inputs, *, top_k: int = 5, device: str = "auto", batch_size: int = 64,
            quiet: bool = False):
    """Top-k class names and probabilities for an image or a folder of images."""
    require_torch()
    return predictor.predict(checkpoint, inputs, top_k=top_k, device=device, batch_size=batch_size, quiet=quiet)


def compare(root, archs, *, out=None, overwrite: bool = False, quiet: bool = False, log=None,
            alone: bool | None = None, **options):
    """Train each architecture with the same options and write one comparison table (compare.md/.csv/.json);
    returns its rows. On CPU each model trains in its own process unless `alone=False`."""
    require_torch()
    return comparison.compare(root, archs, out=out, overwrite=overwrite, quiet=quiet, log=log, alone=alone, **options)


__all__ = ["TrainConfig", "TrainResult", "train", "predict", "compare"]
