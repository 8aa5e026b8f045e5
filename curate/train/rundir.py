"""A training run's folder: where it goes, what a resume may change, checkpoints and history files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from curate.core import storage
from curate.core.errors import InputError
from curate.core.tree import atomic_write_bytes, atomic_write_text
from curate.train.config import TrainConfig

CHECKPOINT_FORMAT = "curate-classifier"
HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


def tree_name(root) -> str:
    """The tree's folder name (the last part of a URL), for default run folders."""
    return storage.name(root)


def resolve_out(out, root, arch: str, resume: bool, overwrite: bool = False) -> Path:
    if out is None:
        if resume:
            raise InputError("--resume needs --out, the folder of the run to continue", "e.g. --out runs/coins-resnet18")
        base = Path("runs") / f"{tree_name(root)}-{arch}"
        out, i = base, 1
        while out.exists() and any(out.iterdir()):
            i += 1
            out = base.with_name(f"{base.name}-{i}")
        return out
    out = Path(out)
    if resume and not (out / "last.pt").is_file():
        raise InputError(f"{out / 'last.pt'} does not exist, so there is nothing to resume", "drop --resume")
    if not resume and not overwrite and ((out / "last.pt").exists() or (out / "best.pt").exists()):
        raise InputError(f"{out} already holds a training run",
                         "pass --resume to continue it, --overwrite to replace it, or another --out")
    return out


# Options a resumed run may change: how long, where and how fast it runs, not what it learns.
RESUME_MAY_CHANGE = {"epochs", "patience", "device", "amp", "channels_last", "workers", "threads", "cache_gb",
                     "weights", "extra"}


def check_resume_options(saved: dict, cfg: TrainConfig, out_dir: Path) -> None:
    """A resumed run must learn the same way it started: a changed --lr, --loss, --size, ... is an error."""
    now = cfg.to_dict()
    diff = [k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k]]
    if diff:
        was = ", ".join(f"--{k.replace('_', '-')} {saved[k]}" for k in diff)
        hint = ("resume with the same options (only --epochs, --patience, --device and speed options "
                "may change), or start a new --out")
        if (saved.get("weights") == "none") != (cfg.weights == "none"):  # the other recipe's defaults
            hint = f"the run started with --weights {saved.get('weights')}: resume with it again, so its defaults apply"
        raise InputError(f"{out_dir / 'last.pt'} was started with {was}; this command differs", hint)


def save_torch(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def cpu_state(model) -> dict:
    """The model's state dict on the CPU, with its per-module version metadata (MNASNet refuses to load
    weights without it)."""
    from collections import OrderedDict

    sd = model.state_dict()
    out = OrderedDict((k, v.detach().cpu()) for k, v in sd.items())
    out._metadata = getattr(sd, "_metadata", None)
    return out


def write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in HISTORY_FIELDS})
    atomic_write_text(path, buf.getvalue())
