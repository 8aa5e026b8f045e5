"""The small-image stem (`--stem small`): the usual CIFAR adaptation of ImageNet models.

An ImageNet stem shrinks the input 4x (ResNet: 7x7 stride-2 conv + 3x3 stride-2 max-pool) before the
first block, so a 32 px image reaches the last block at 1x1. The small stem keeps the resolution: the
first convolution becomes 3x3 stride 1 (ResNet, DenseNet) or just stride 1 (families whose first conv is
already 3x3), and the max-pool after it, if any, is removed. Pretrained first-conv weights are kept
(the centre 3x3 of a 7x7 kernel), and the stem conv and its norm layer always train, whatever
--freeze-until says, since the layers after them now see other statistics. Families without a stem to adapt (VGG, AlexNet, SqueezeNet,
GoogLeNet, Inception, ConvNeXt, ViT, Swin, MaxViT) keep theirs; simple-cnn is built for small inputs.
"""

from __future__ import annotations

import re

from torch import nn

from curate.core.errors import InputError
from curate.train.config import SMALL_STEM_BELOW

# arch pattern -> (first conv, its norm layer, max-pool to drop or None, new kernel size or None to keep it)
SMALL_STEMS = [
    (r"(resnet|resnext|wide_resnet)", "conv1", "bn1", "maxpool", 3),
    (r"densenet", "features.conv0", "features.norm0", "features.pool0", 3),
    (r"shufflenet", "conv1.0", "conv1.1", "maxpool", None),
    (r"(mobilenet|efficientnet)", "features.0.0", "features.0.1", None, None),
    (r"regnet", "stem.0", "stem.1", None, None),
    (r"mnasnet", "layers.0", "layers.1", None, None),
]
FAMILIES = "ResNet, ResNeXt, Wide ResNet, DenseNet, ShuffleNet, MobileNet, EfficientNet, RegNet, MNASNet"


def stem_spec(arch: str):
    return next((spec for pat, *spec in SMALL_STEMS if re.match(pat, arch)), None)


def resolve_stem(arch: str, stem: str, size: int | None) -> str:
    """'small' or 'imagenet' for a --stem choice: auto picks small below 64 px where the family has one."""

    if arch == "simple-cnn":  # built for small inputs: 3x3 stride-1 convolutions, no ImageNet stem
        if stem == "imagenet":
            raise InputError("simple-cnn has no ImageNet stem", "drop --stem, or choose a torchvision --arch")
        return "small"
    spec = stem_spec(arch)
    if stem == "auto":
        return "small" if spec and size is not None and size < SMALL_STEM_BELOW else "imagenet"
    if stem == "small" and spec is None:
        raise InputError(f"--stem small does not apply to {arch}",
                         f"it exists for {FAMILIES}; use --stem imagenet (or auto) for {arch}")
    return stem


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    if attr.isdigit():
        owner[int(attr)] = module
    else:
        setattr(owner, attr, module)


def apply_small_stem(model: nn.Module, arch: str) -> list[str]:
    """Turn a freshly built model's stem into the small stem in place (weights are loaded afterwards,
    through adapt_state); returns the modules that always train: the stem conv and its norm layer."""
    conv_name, norm_name, pool_name, kernel = stem_spec(arch)
    old = model.get_submodule(conv_name)
    k = kernel or old.kernel_size[0]
    new = nn.Conv2d(old.in_channels, old.out_channels, k, stride=1, padding=k // 2, groups=old.groups,
                    bias=old.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits its convs
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    _set(model, conv_name, new)
    if pool_name:
        _set(model, pool_name, nn.Identity())
    return [conv_name, norm_name]


def adapt_state(state: dict, model: nn.Module, arch: str) -> dict:
    """ImageNet (or file) weights for a small-stem model: the stem conv's 7x7 kernel -> its centre 3x3."""
    conv_name = stem_spec(arch)[0]
    key = conv_name + ".weight"
    own = model.state_dict().get(key)
    w = state.get(key)
    if own is not None and w is not None and w.shape != own.shape and w.shape[:2] == own.shape[:2]:
        off = (w.shape[-1] - own.shape[-1]) // 2
        state = {**state, key: w[:, :, off : off + own.shape[-2], off : off + own.shape[-1]].clone()}
    return state
