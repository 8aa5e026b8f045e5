"""Predict with a best.pt: everything needed (architecture, classes, preprocessing) is in the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curate.core import storage
from curate.core.errors import InputError, UnreadableImage
from curate.core.layout import is_image_name
from curate.engine.executor import progress_bar
from curate.train.device import resolve_device
from curate.train.models import build_model, checkpoint_transform_input, logits_of, read_checkpoint
from curate.train.prep import load_square
from curate.train.rundir import CHECKPOINT_FORMAT


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, str, float]]  # (class folder, display name, probability), best first
    error: str = ""  # unreadable reason, when the image could not be decoded

    def to_dict(self) -> dict:
        if self.error:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "predictions": [
            {"label": lab, "name": name, "probability": round(p, 6)} for lab, name, p in self.top]}


def load_classifier(path: str | Path, device: torch.device):
    ck = read_checkpoint(path)
    if ck.get("format") != CHECKPOINT_FORMAT or "model" not in ck:
        raise InputError(f"{path} is not a checkpoint written by curate train", "pass runs/NAME/best.pt")
    model, _ = build_model(ck["arch"], len(ck["classes"]), weights="none", dropout=ck.get("dropout", 0.0),
                           freeze_until="none", transform_input=checkpoint_transform_input(ck),
                           stem=ck.get("stem", "imagenet"))
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise InputError(f"{path} does not match its own architecture {ck['arch']}: {str(e).splitlines()[0]}",
                         "the file is damaged; retrain or use last.pt") from e
    return model.to(device).eval(), ck


def list_inputs(inputs) -> list[Path | str]:
    """Image files of the inputs: files, folders (recursively, hidden ones skipped) and s3:// objects or
    prefixes."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path | str] = []
    for raw in items:
        where = storage.as_location(raw)
        if storage.is_file(where):
            files.append(where)
            continue
        try:
            names = storage.list_files(where)  # a missing bucket or prefix: one line of its own
        except FileNotFoundError:
            raise InputError(f"{where} does not exist", "pass an image file or a folder of images") from None
        files += [storage.as_location(storage.join(where, k)) for k in names if is_image_name(k)]
    if not files:
        raise InputError(f"no images found in {', '.join(map(str, items))}", "pass an image file or a folder of images")
    return files


def predict(checkpoint, inputs, *, top_k: int = 5, device: str = "auto", batch_size: int = 64,
            quiet: bool = False) -> list[Prediction]:
    if top_k < 1:
        raise InputError("--top-k must be at least 1", "e.g. --top-k 5")
    dev = resolve_device(device)
    model, ck = load_classifier(checkpoint, dev)
    files = list_inputs(inputs)
    classes, display, size = ck["classes"], ck.get("display") or {}, int(ck["size"])
    mean = torch.tensor(ck["mean"]).view(1, 3, 1, 1).to(dev)
    std = torch.tensor(ck["std"]).view(1, 3, 1, 1).to(dev)
    k = min(top_k, len(classes))
    results: list[Prediction] = []
    with progress_bar(quiet or len(files) < 2 * batch_size) as bar, torch.inference_mode():
        task = bar.add_task("predict", total=len(files), unit="images")
        for i in range(0, len(files), batch_size):
            chunk = files[i : i + batch_size]
            arrays, ok = [], []
            for p in chunk:
                try:
                    arrays.append(load_square(p, size))
                    ok.append(True)
                except UnreadableImage as e:
                    ok.append(e.reason)
            probs = np.zeros((0, len(classes)))
            if arrays:
                x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(dev).float().div_(255)
                probs = torch.softmax(logits_of(model((x - mean) / std)).float(), 1).cpu().numpy()
            j = 0
            for p, status in zip(chunk, ok, strict=True):
                if status is not True:
                    results.append(Prediction(str(p), [], status))
                    continue
                order = np.argsort(-probs[j], kind="stable")[:k]
                results.append(Prediction(str(p), [(classes[c], display.get(classes[c], classes[c]),
                                                    float(probs[j, c])) for c in order]))
                j += 1
            bar.advance(task, len(chunk))
    return results
