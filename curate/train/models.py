"""Any torchvision classification model by name: weights, a new head, and a per-family freeze rule.

* Head: the model's last Linear (or SqueezeNet's final 1x1 conv) becomes Dropout(p) + a new layer
  with one output per class; an existing Dropout right before it just gets the new p.
* Freeze: `freeze_until=NAME` freezes every parameter registered before module NAME (torchvision
  registers modules in forward order), so NAME onwards and the head train. "auto" picks the last
  block of each family (resnet: layer4, densenet: features.denseblock4, vit: the last encoder
  layer, ...); "head" trains only the new head; "none" trains everything.
* requires_grad=False does not stop BatchNorm from updating running statistics in train mode, so
  frozen norm layers are put back in eval mode by `train_mode()` every epoch.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import torch
from torch import nn

from curate.core.errors import InputError, NetworkError
from curate.train.simple_cnn import NAME as SIMPLE_CNN
from curate.train.simple_cnn import SimpleCNN
from curate.train.stems import adapt_state, apply_small_stem, resolve_stem, stem_spec

OFFLINE_ENV = "CURATE_OFFLINE"
DOWNLOAD_TIMEOUT_S = 15


def classification_models() -> list[str]:
    """torchvision's classification models, and curate's simple-cnn."""
    import torchvision.models as tvm

    return [*tvm.list_models(module=tvm), SIMPLE_CNN]


def _check_arch(arch: str) -> None:
    import difflib

    names = classification_models()
    if arch not in names:
        near = difflib.get_close_matches(arch, names, n=5, cutoff=0.5) or ["resnet18", "resnet50", "mobilenet_v2"]
        raise InputError(f"unknown architecture '{arch}'", f"torchvision classification models include {', '.join(near)}")


# ------------------------------------------------------------------ weights


def weights_file(arch: str) -> tuple[object, Path]:
    """torchvision's default ImageNet weights for `arch` and where torch.hub caches their file."""
    import torchvision.models as tvm

    w = tvm.get_model_weights(arch).DEFAULT
    return w, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)


def imagenet_state_dict(arch: str) -> dict:
    """Load the cached ImageNet weights; download only when not offline, with a short socket timeout."""
    w, path = weights_file(arch)
    hint = (f"download {w.url} and place it at {path} (TORCH_HOME sets the cache folder), "
            "or use --weights none")
    if not path.is_file() and os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise NetworkError(f"ImageNet weights for {arch} are not cached and {OFFLINE_ENV} is set", hint)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        if not path.is_file():
            _resolves(w.url)
        return w.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # URLError, timeouts, DNS failures, truncated or foreign files
        if path.is_file():
            raise InputError(f"cannot load cached weights {path}: {e}", "delete the file and retry") from e
        reason = getattr(e, "reason", e)
        raise NetworkError(f"ImageNet weights for {arch} are not cached and could not be downloaded ({reason})",
                           hint) from e
    finally:
        socket.setdefaulttimeout(old)


def _resolves(url: str, timeout: float = 5.0) -> None:
    """Name lookup in a thread: socket timeouts do not cover DNS, which can stall offline."""
    import threading
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    done: list = []

    def look():
        try:
            socket.getaddrinfo(host, 443)
            done.append(None)
        except OSError as e:
            done.append(e)

    t = threading.Thread(target=look, daemon=True)
    t.start()
    t.join(timeout)
    if not done:
        raise OSError(f"no answer for {host} within {timeout:.0f} s")
    if done[0] is not None:
        raise done[0]


def read_checkpoint(path: str | Path) -> dict:
    """A torch file as a dict; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist", "pass a best.pt written by curate train")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, unsupported globals
        raise InputError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__})",
                         "pass a best.pt written by curate train or a .pth state dict") from e
    if not isinstance(obj, dict):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a state dict", "save model.state_dict()")
    return obj


# ------------------------------------------------------------------ head


def _find_head(model: nn.Module) -> tuple[str, nn.Module]:
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (name, m)
    sq = getattr(model, "classifier", None)
    if isinstance(sq, nn.Sequential) and any(isinstance(m, nn.Conv2d) for m in sq):  # SqueezeNet
        i = max(i for i, m in enumerate(sq) if isinstance(m, nn.Conv2d))
        return f"classifier.{i}", sq[i]
    if last is None:
        raise InputError(f"cannot find the classifier layer of {type(model).__name__}", "choose another --arch")
    return last


def _get_parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parts = name.split(".")
    parent = model
    for p in parts[:-1]:
        parent = getattr(parent, p) if not p.isdigit() else parent[int(p)]
    return parent, parts[-1]


def replace_head(model: nn.Module, num_classes: int, dropout: float) -> str:
    """Put a fresh classifier with `num_classes` outputs in place; returns its module name."""
    name, old = _find_head(model)
    parent, attr = _get_parent(model, name)
    if isinstance(old, nn.Conv2d):
        new: nn.Module = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size)
    else:
        new = nn.Linear(old.in_features, num_classes)
    # The module registered just before the head: a Sequential's previous layer, or an attribute such as
    # GoogLeNet's and Inception v3's `dropout` (registered, and run, right before `fc`).
    siblings = list(parent.named_children())
    i = [n for n, _ in siblings].index(attr)
    prev = siblings[i - 1][1] if i > 0 else None
    if isinstance(prev, nn.Dropout):
        prev.p = dropout
    elif dropout > 0:
        new = nn.Sequential(nn.Dropout(dropout), new)
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    return name


# ------------------------------------------------------------------ freezing


def _top_names(model: nn.Module, prefix: str) -> list[str]:
    """Names of the children of module `prefix` that hold parameters."""
    sub = model.get_submodule(prefix) if prefix else model
    return [f"{prefix}.{n}" if prefix else n for n, m in sub.named_children() if any(True for _ in m.parameters())]


def auto_freeze_point(arch: str, model: nn.Module) -> str:
    """The first module of the last block for each torchvision family."""
    if re.match(r"(resnet|resnext|wide_resnet)", arch):
        return "layer4"
    if arch == SIMPLE_CNN:
        return "features.2"
    if arch.startswith("regnet"):
        return "trunk_output.block4"
    if arch.startswith("densenet"):
        return "features.denseblock4"
    if arch.startswith(("vgg", "alexnet")):
        return "classifier"
    if arch.startswith("vit"):
        return _top_names(model, "encoder.layers")[-1]
    if arch.startswith("maxvit"):
        return _top_names(model, "blocks")[-1]
    if arch.startswith("inception"):
        return "Mixed_7a"
    if arch.startswith("googlenet"):
        return "inception5a"
    if arch.startswith("shufflenet"):
        return "stage4"
    if arch.startswith("mnasnet"):
        return _top_names(model, "layers")[-3]  # last inverted-residual stage + final conv
    if hasattr(model, "features"):  # mobilenet, efficientnet, convnext, swin, squeezenet: last stage + tail
        return _top_names(model, "features")[-2]
    return "head"


def check_freeze_point(model: nn.Module, arch: str, point: str) -> int:
    """Index of the first parameter of module `point`; a clear error when there is none."""
    hits = [i for i, (n, _) in enumerate(model.named_parameters()) if n.startswith(point + ".")]
    if not hits:
        tops = [n for n, _ in model.named_children()]
        raise InputError(f"--freeze-until '{point}' is not a module with parameters in {arch}",
                         f"use auto, head, none or a module name such as {', '.join(tops[-4:])}")
    return hits[0]


def freeze(model: nn.Module, arch: str, freeze_until: str, head: str,
           also_train: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """Freeze parameters before `freeze_until` (but never the modules in `also_train`); returns (resolved
    point, names of the modules train_mode keeps in eval mode: every wholly frozen block, and frozen
    BatchNorm layers elsewhere)."""
    point = auto_freeze_point(arch, model) if freeze_until == "auto" else freeze_until
    names = [n for n, _ in model.named_parameters()]
    if point == "none":
        cut = 0
    elif point == "head":
        cut = next(i for i, n in enumerate(names) if n.startswith(head + "."))
    else:
        cut = check_freeze_point(model, arch, point)
    for i, (n, p) in enumerate(model.named_parameters()):
        p.requires_grad = i >= cut or n.startswith(head + ".") or any(n.startswith(a + ".") for a in also_train)
    # A wholly frozen block is a fixed feature extractor: in eval mode its BatchNorm statistics stay put and
    # its Dropout / StochasticDepth stay off, so the head trains on the features it will see at inference.
    frozen: list[str] = []
    for n, m in model.named_modules():  # parents come before their children: the outermost block wins
        ps = list(m.parameters())
        if n and ps and not any(p.requires_grad for p in ps) and not any(n.startswith(f + ".") for f in frozen):
            frozen.append(n)
    frozen_norms = [
        n for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and all(not p.requires_grad for p in m.parameters(recurse=False))
        and n not in frozen and not any(n.startswith(f + ".") for f in frozen)
    ]
    return point, frozen + frozen_norms


def train_mode(model: nn.Module, frozen_norms: list[str]) -> None:
    """model.train(), with wholly frozen blocks and frozen BatchNorm layers kept in eval mode (running
    statistics untouched, dropout off inside frozen blocks)."""
    model.train()
    for n in frozen_norms:
        model.get_submodule(n).eval()


# ------------------------------------------------------------------ building


def checkpoint_transform_input(ck: dict) -> bool:
    """Whether a curate checkpoint's GoogLeNet/Inception v3 ran with transform_input (ImageNet weights);
    files written before the key existed say so through the weights they started from."""
    if "transform_input" in ck:
        return bool(ck["transform_input"])
    return (ck.get("config") or {}).get("weights") == "imagenet"


def check_input_size(model: nn.Module, arch: str, size: int) -> None:
    """One forward pass on a blank image: a clear error, before any decoding or training, for an input
    side the model cannot take (ViT and Swin need their fixed size, Inception v3 and AlexNet a minimum)."""

    def fits(s: int) -> str:
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, s, s))
            return ""
        except (RuntimeError, AssertionError, ValueError) as e:
            return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

    was_training = model.training
    model.eval()
    try:
        why = fits(size)
        if why:
            ok = next((s for s in (32, 64, 96, 128, 160, 192, 224, 256, 299, 384) if s > size and not fits(s)), None)
            raise InputError(f"{arch} cannot take --size {size} inputs ({why[:160]})",
                             f"use --size {ok}" if ok else "choose a larger --size or another --arch")
    finally:
        model.train(was_training)


def build_model(arch: str, num_classes: int, *, weights: str = "none", dropout: float = 0.3,
                freeze_until: str = "auto", size: int | None = None, classes: list[str] | None = None,
                transform_input: bool | None = None, stem: str = "imagenet") -> tuple[nn.Module, dict]:
    """A torchvision model (or simple-cnn) with a new head; returns (model, info) with the freeze point,
    frozen norm layers, the head name, the stem and parameter counts. `size` checks the model takes inputs
    of that side; `classes` (with a curate checkpoint as weights) keeps its head only when they are the same
    classes; `transform_input` (GoogLeNet, Inception v3) defaults to what the weights expect; `stem` is
    imagenet, small or auto (small below 64 px, see curate.train.stems)."""
    _check_arch(arch)
    if arch == SIMPLE_CNN and weights == "imagenet":
        raise InputError("simple-cnn has no ImageNet weights", "use --weights none or a simple-cnn checkpoint")
    state = None
    if weights not in ("imagenet", "none"):
        state = read_checkpoint(weights)
    curate_ckpt = state is not None and isinstance(state.get("model"), dict)  # a curate best.pt/last.pt
    if curate_ckpt and state.get("arch") not in (None, arch):
        raise InputError(f"{weights} holds a {state.get('arch')} checkpoint, not {arch}",
                         f"pass --arch {state.get('arch')} or another weights file")
    if curate_ckpt and stem == "auto":  # fine-tuning a curate run: its own stem, unless asked otherwise
        stem = state.get("stem", "imagenet")
    stem = resolve_stem(arch, stem, size)
    kwargs = {}
    if arch in ("inception_v3", "googlenet"):  # no auxiliary heads; ImageNet weights expect transform_input
        if transform_input is None:
            transform_input = checkpoint_transform_input(state) if curate_ckpt else weights == "imagenet"
        kwargs = {"aux_logits": False, "init_weights": False, "transform_input": transform_input}
    model = _new_model(arch, kwargs)
    stem_modules = apply_small_stem(model, arch) if stem == "small" and stem_spec(arch) else []
    if freeze_until not in ("auto", "none", "head"):
        check_freeze_point(model, arch, freeze_until)  # before weights: a typo must not wait for a download
    if size is not None:
        check_input_size(model, arch, size)
    ckpt_state = None
    if weights == "imagenet":
        state = imagenet_state_dict(arch)
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.") and not k.startswith("aux")}
        model.load_state_dict(adapt_state(state, model, arch) if stem_modules else state)
    elif curate_ckpt:
        ckpt_state = state["model"]
    elif state is not None:
        try:
            model.load_state_dict(adapt_state(state, model, arch) if stem_modules else state)
        except RuntimeError as e:
            raise InputError(f"{weights} does not match {arch}: {str(e).splitlines()[0]}",
                             "pass weights saved from the same architecture") from e
    head = replace_head(model, num_classes, dropout)
    if ckpt_state is not None:  # fine-tune from a curate run: keep the head only if the classes match
        own = model.state_dict()
        same_classes = classes is None or state.get("classes") == list(classes)
        keep = {k: v for k, v in ckpt_state.items() if k in own and own[k].shape == v.shape
                and (same_classes or not k.startswith(head + "."))}
        missing = [k for k in own if k not in keep and not k.startswith(head + ".")]
        if missing:
            raise InputError(f"{weights} does not match {arch}: {len(missing)} tensors missing or of another shape",
                             "pass a checkpoint of the same architecture")
        from collections import OrderedDict

        keep = OrderedDict(keep)
        keep._metadata = getattr(ckpt_state, "_metadata", None)  # MNASNet needs its version metadata
        model.load_state_dict(keep, strict=False)
    point, frozen_norms = freeze(model, arch, freeze_until, head, tuple(stem_modules))
    info = {
        "arch": arch,
        "head": head,
        "freeze_until": point,
        "frozen_norms": frozen_norms,
        "transform_input": bool(getattr(model, "transform_input", False)),
        "stem": stem,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    return model, info


def _new_model(arch: str, kwargs: dict) -> nn.Module:
    if arch == SIMPLE_CNN:
        return SimpleCNN()
    import torchvision.models as tvm

    return tvm.get_model(arch, weights=None, **kwargs)


def logits_of(out) -> torch.Tensor:
    """Inception/GoogLeNet return named tuples in train mode; everything else a tensor."""
    return out if isinstance(out, torch.Tensor) else out[0]
