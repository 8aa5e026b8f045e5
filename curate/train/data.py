"""The torch half of the input pipeline.

Curated crops are small (224 px: about 150 kB decoded), so the default is a decoded uint8 tensor cache
(N x 3 x S x S, or N x 1 x S x S for a split whose images are all grayscale: replicated to 3 channels
batch by batch on the device, never in the cache), decoded once by the executor's worker processes and kept on the device when it fits
(else in pinned host memory). Augmentation (flip, ColorJitter, random resized crop) then runs as
batched tensor ops on the device, with per-image random parameters drawn from a seeded CPU generator,
so the same seed gives the same batches on any device and with any number of workers.
Sets larger than the cache limit stream through a DataLoader (pinned memory, persistent workers)
that feeds the same device-side augmentation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from curate.core.errors import UnreadableImage
from curate.engine.executor import make_executor
from curate.train.config import TrainConfig
from curate.train.prep import Dataset, Split, check_chunk, load_chunk, load_dataset, load_square

CHUNK = 32  # files per executor task


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


@dataclass
class Cached:
    """A decoded split: uint8 images N x C x S x S (C = 1 when every image is grayscale, else 3) and int64
    targets, on `images.device`."""

    name: str
    images: torch.Tensor
    targets: torch.Tensor
    paths: list[str]
    unreadable: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.targets)


def decode_split(split: Split, size: int, *, workers: int | None, quiet: bool) -> Cached:
    """Decode every file of a split once (in parallel, results in file order)."""
    paths = [str(p) for p in split.paths]
    jobs = [(paths[i : i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    ex = make_executor("local", workers=workers if len(paths) > 2 * CHUNK else 1, quiet=quiet)
    arrays, reasons = [], []
    for arr, why in ex.map(load_chunk, jobs, desc=f"decode {split.name}", units=lambda j: len(j[0]), unit="images"):
        arrays.append(arr[..., :1] if is_gray(arr) else arr)  # one channel while every image is gray
        reasons.extend(why)
    if any(a.shape[-1] == 3 for a in arrays):
        arrays = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in arrays]
    images = np.concatenate(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    ok = np.array([not r for r in reasons], dtype=bool)
    bad = [(p, r) for p, r in zip(paths, reasons, strict=True) if r]
    t = torch.from_numpy(images[ok]).permute(0, 3, 1, 2).contiguous()
    targets = torch.tensor(split.targets, dtype=torch.int64)[torch.from_numpy(ok)]
    return Cached(split.name, t, targets, [p for p, k in zip(paths, ok, strict=True) if k], bad)


def is_gray(arr: np.ndarray) -> bool:
    """Whether every image of an N x H x W x 3 array has R == G == B (decoded grayscale files)."""
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))


def readable_split(split: Split, size: int, *, workers: int | None, quiet: bool) -> tuple[Split, list[tuple[str, str]]]:
    """The streaming path's check: decode every file once (in parallel, nothing kept) and drop the unreadable
    ones, so streaming trains on exactly the images the cache would hold, in the same order."""
    paths = [str(p) for p in split.paths]
    jobs = [(paths[i : i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    ex = make_executor("local", workers=workers if len(paths) > 2 * CHUNK else 1, quiet=quiet)
    reasons: list[str] = []
    for why in ex.map(check_chunk, jobs, desc=f"check {split.name}", units=lambda j: len(j[0]), unit="images"):
        reasons.extend(why)
    keep = [i for i, r in enumerate(reasons) if not r]
    bad = [(p, r) for p, r in zip(paths, reasons, strict=True) if r]
    return Split(split.name, [split.paths[i] for i in keep], [split.targets[i] for i in keep]), bad


def place(cached: Cached, device: torch.device, budget: int) -> tuple[Cached, int]:
    """Move a cache onto the device if it fits in `budget` bytes; else it stays in host memory and
    `Batches` gathers each batch into pinned memory (pinning a whole large cache can fail)."""
    nbytes = cached.images.numel()
    if cached.images.device.type != "cpu":  # placed by an earlier run (compare)
        return cached, budget - nbytes
    if device.type != "cpu" and nbytes <= budget:
        cached.images = cached.images.to(device)
        cached.targets = cached.targets.to(device)  # batches are then gathered on the device, no host trip
        return cached, budget - nbytes
    return cached, budget


class FileImages(torch.utils.data.Dataset):
    """Streaming fallback: decode on the fly in DataLoader workers (unreadable files get target -1)."""

    def __init__(self, split: Split, size: int):
        self.paths = [str(p) for p in split.paths]
        self.targets = list(split.targets)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):

        try:
            arr = load_square(self.paths[i], self.size)
            return torch.from_numpy(arr).permute(2, 0, 1), self.targets[i]
        except UnreadableImage:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), -1


class Batches:
    """Yields (uint8 images, targets) on the device, shuffled by a per-epoch seeded generator."""

    def __init__(self, source: Cached | FileImages, batch_size: int, device: torch.device, workers: int = 0):
        self.source, self.batch_size, self.device, self.workers = source, batch_size, device, workers
        self._loader = None

    def __len__(self) -> int:
        n = len(self.source.targets)
        return math.ceil(n / self.batch_size)

    def num_images(self) -> int:
        return len(self.source.targets)

    def __call__(self, order: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.source, Cached):
            yield from self._from_cache(order)
        else:
            yield from self._from_files(order)

    def _from_cache(self, order):
        src = self.source
        idx = order if order is not None else torch.arange(len(src))
        idx = idx.to(src.images.device)  # once an epoch; slicing it then never syncs the device
        # A host cache feeding a GPU gathers each batch straight into pinned memory, so the copy is truly
        # asynchronous (torch's pinned-memory allocator keeps the buffer until the copy is done).
        pin = self.device.type == "cuda" and src.images.device.type == "cpu"
        for i in range(0, len(idx), self.batch_size):
            j = idx[i : i + self.batch_size]
            if pin:
                x = torch.empty((len(j), *src.images.shape[1:]), dtype=src.images.dtype, pin_memory=True)
                torch.index_select(src.images, 0, j, out=x)
            else:
                x = src.images[j]
            yield x.to(self.device, non_blocking=True), src.targets[j].to(self.device, non_blocking=True)

    def _from_files(self, order):
        if self._loader is None:
            self._sampler = _OrderSampler()
            self._loader = torch.utils.data.DataLoader(
                self.source, batch_size=self.batch_size, sampler=self._sampler, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers else None,
                generator=torch.Generator().manual_seed(0),  # never draw from the global RNG (dropout's)
            )
        self._sampler.order = (order if order is not None else torch.arange(len(self.source))).tolist()
        for x, y in self._loader:
            keep = y >= 0
            if not bool(keep.all()):
                x, y = x[keep], y[keep]
            if len(y):
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class _OrderSampler(torch.utils.data.Sampler):
    """Yields the order set for the current epoch (the DataLoader and its workers persist)."""

    def __init__(self):
        self.order: list[int] = []

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


# ------------------------------------------------------------------ device-side augmentation

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _on(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """A small CPU-drawn parameter tensor to the device without a stream sync (the CPU keeps queueing)."""
    return t.to(dev, non_blocking=True)


class Augment:
    """Batched train-time augmentation with independent random parameters per image.

    crop: RandomResizedCrop(scale=(0.35, 1), ratio=(3/4, 4/3)) by an affine grid; flip: p=0.5;
    jitter: ColorJitter(brightness, contrast, saturation, hue) applied in that fixed order, hue as a
    rotation of the YIQ chroma plane.
    """

    def __init__(self, kinds: list[str], jitter=(0.2, 0.2, 0.2, 0.1), mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), channels_last: bool = False):
        self.kinds = set(kinds)
        self.jitter = tuple(float(j) for j in jitter)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self._consts: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.channels_last = channels_last

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W (C = 1 or 3) -> normalised float32 N x 3 x H x W (the eval/predict path)."""
        x = to_rgb(x).float().div_(255)
        mean, std = self._stats(x.device)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _stats(self, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if dev not in self._consts:  # copied once, not every batch
            self._consts[dev] = (self.mean.to(dev), self.std.to(dev))
        return self._consts[dev]

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        x = to_rgb(x).float().div_(255)
        if "crop" in self.kinds:
            x = self._crop(x, g)
        if "flip" in self.kinds:
            m = _on(torch.rand(n, generator=g) < 0.5, dev).view(n, 1, 1, 1)
            x = torch.where(m, x.flip(3), x)
        if "jitter" in self.kinds:
            x = self._jitter(x, g)
        mean, std = self._stats(dev)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _crop(self, x, g):
        n, dev = x.shape[0], x.device
        area = _uniform(g, n, 0.35, 1.0)
        ratio = torch.exp(_uniform(g, n, math.log(3 / 4), math.log(4 / 3)))
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        grid = F.affine_grid(_on(theta, dev), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _jitter(self, x, g):
        n, dev = x.shape[0], x.device
        b, c, s, h = self.jitter
        view = (n, 1, 1, 1)
        if b:
            x = (x * _on(_uniform(g, n, 1 - b, 1 + b), dev).view(view)).clamp_(0, 1)
        if c:
            f = _on(_uniform(g, n, 1 - c, 1 + c), dev).view(view)
            m = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (f * x + (1 - f) * m).clamp_(0, 1)
        if s:
            f = _on(_uniform(g, n, 1 - s, 1 + s), dev).view(view)
            x = (f * x + (1 - f) * _gray(x)).clamp_(0, 1)
        if h:
            a = _uniform(g, n, -h, h) * 2 * math.pi
            cos, sin = torch.cos(a), torch.sin(a)
            rot = torch.zeros(n, 3, 3)
            rot[:, 0, 0] = 1
            rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
            m = torch.linalg.inv(_RGB2YIQ) @ rot @ _RGB2YIQ
            x = torch.einsum("nij,njhw->nihw", _on(m, dev), x).clamp_(0, 1)
        return x


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """A one-channel (grayscale) batch as three equal channels, on its device; three channels unchanged."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def default_cache_budget() -> int:
    return available_memory_bytes() // 2


def loader_workers(workers: int | None) -> int:
    if workers is not None:
        return max(0, workers)
    try:
        return min(8, len(os.sched_getaffinity(0)))
    except AttributeError:
        return min(8, os.cpu_count() or 1)


# ------------------------------------------------------------------ a decoded tree


@dataclass
class Prepared:
    """A decoded tree, reusable across runs (compare trains several models on one decode)."""

    dataset: Dataset
    size: int
    sources: dict[str, Cached | FileImages]
    unreadable: list[tuple[str, str]]
    streaming: bool
    decode_seconds: float


def prepare(root, cfg: TrainConfig, *, quiet: bool, log: Callable[[str], None], dataset: Dataset | None = None
            ) -> Prepared:
    ds = dataset or load_dataset(root, cfg.eval_split)
    for w in ds.warnings:
        log(f"warning: {w}")
    total = sum(len(s.paths) for s in ds.splits.values())
    need = total * 3 * cfg.size * cfg.size
    limit = default_cache_budget() if cfg.cache_gb is None else int(cfg.cache_gb * 2**30)
    t0 = time.perf_counter()
    sources: dict[str, Cached | FileImages] = {}
    bad: list[tuple[str, str]] = []
    streaming = need > limit
    if streaming:
        log(f"{total} images need {need / 2**30:.1f} GiB decoded (limit {limit / 2**30:.1f} GiB): streaming from disk")
        for name, split in ds.splits.items():
            split, why = readable_split(split, cfg.size, workers=cfg.workers, quiet=quiet)
            sources[name] = FileImages(split, cfg.size)
            bad += why
    else:
        for name, split in ds.splits.items():
            sources[name] = decode_split(split, cfg.size, workers=cfg.workers, quiet=quiet)
            bad += sources[name].unreadable
    if bad:
        log(f"warning: {len(bad)} unreadable image(s) left out, e.g. {bad[0][0]} ({bad[0][1]})")
    return Prepared(ds, cfg.size, sources, bad, streaming, time.perf_counter() - t0)
