"""The real CUDA path of `curate train` / `predict` / `--compare` (marker `cuda`).

Everything else in the suite checks this path on the CPU or the meta device; these tests need a GPU and
skip, with that reason, only when torch sees none (`pytest -m cuda` runs just them; `bench/gpu.sh` runs
them on the GPU machine). What they check on the GPU: fp16 autocast with a GradScaler (its state in
last.pt, exact resume), the decoded uint8 cache placed on the device (or, when it does not fit, batches
gathered into pinned host memory), batched augmentation on the device, channels_last inputs, cuDNN
autotuning, no host synchronisation per batch (torch's sync debug mode, counted per epoch), and
predict on CUDA agreeing with the CPU.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_train import make_tree  # noqa: E402

from curate.train import compare, loop, predict, train  # noqa: E402
from curate.train import data as train_data  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

GPU = dict(weights="none", size=64, batch_size=8, lr=1e-3, freeze_until="none", workers=2, seed=0, device="cuda",
           augment="flip,jitter,crop", patience=0, quiet=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    # 12 train images per class: 36 = 4 full batches of 8 plus 4, so the last batch has another shape
    return make_tree(tmp_path_factory.mktemp("cuda") / "tree", n_train=12, n_val=4, size=80)


def spy_inputs(monkeypatch) -> list[dict]:
    """Record what the model sees in training mode (device, dtype, layout, autocast) on every call."""
    seen: list[dict] = []
    build = loop.build_model

    def build_and_watch(*a, **k):
        model, info = build(*a, **k)

        def hook(module, args):
            x = args[0]
            if module.training:
                seen.append({"device": x.device.type, "dtype": x.dtype, "autocast": torch.is_autocast_enabled("cuda"),
                             "channels_last": x.is_contiguous(memory_format=torch.channels_last)})

        model.register_forward_pre_hook(hook)
        return model, info

    monkeypatch.setattr(loop, "build_model", build_and_watch)
    return seen


def spy_placement(monkeypatch) -> list[str]:
    """Record the device each decoded split lands on."""
    where: list[str] = []
    place = loop.place

    def place_and_record(cached, device, budget):
        cached, left = place(cached, device, budget)
        where.append(cached.images.device.type)
        return cached, left

    monkeypatch.setattr(loop, "place", place_and_record)
    return where


def test_train_on_cuda_fp16_scaler_device_cache_channels_last_and_resume(tree, tmp_path, monkeypatch):
    seen = spy_inputs(monkeypatch)
    where = spy_placement(monkeypatch)
    torch.backends.cudnn.benchmark = False
    whole = train(tree, out=tmp_path / "whole", epochs=2, **GPU)
    assert torch.backends.cudnn.benchmark is True  # one input size: cuDNN picks its fastest kernels
    assert where == ["cuda", "cuda"]  # train and val caches fit on the GPU, so they live there
    assert seen and all(s == {"device": "cuda", "dtype": torch.float32, "autocast": True, "channels_last": True}
                        for s in seen), seen[:3]
    m = whole.metrics
    assert m["device"].startswith("cuda") and m["precision"] == "fp16"
    assert m["peak_memory_kind"] == "cuda-allocated" and m["peak_memory_mb"] > 0
    assert m["inference_ms_per_image"] > 0 and 0 <= m["top1"] <= 1
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in whole.history)

    out = tmp_path / "resumed"

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tree, out=out, epochs=2, on_epoch_end=stop, **GPU)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["scaler"] and last["scaler"]["scale"] > 0
    assert all(v.device.type == "cpu" for v in last["model"].values())  # loadable without a GPU
    res = train(tree, out=out, epochs=2, resume=True, **GPU)
    assert [h["epoch"] for h in res.history] == [1, 2]
    # cuDNN autotuning may pick other kernels in another process: equal to float tolerance, not bit for bit
    for a, b in zip(whole.history, res.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-2)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=2e-2)


def sync_counts(monkeypatch) -> list[dict]:
    """Run every training epoch under torch's CUDA sync debug mode and record the synchronising calls it
    reports (as warnings, with the Python line that made them), and the batches of that epoch."""
    epochs: list[dict] = []
    one_epoch = loop.train_one_epoch

    def watched(model, batches, *a, **k):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                row = one_epoch(model, batches, *a, **k)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [f"{w.filename.rsplit('/', 1)[-1]}:{w.lineno}" for w in caught
                 if "synchroniz" in str(w.message).lower()]
        epochs.append({"epoch": k["epoch"], "batches": len(batches), "syncs": syncs})
        return row

    monkeypatch.setattr(loop, "train_one_epoch", watched)
    return epochs


@pytest.mark.parametrize("cache", ["device", "host", "stream"])
def test_no_host_sync_per_batch(cache, tmp_path, monkeypatch):
    """A CUDA epoch queues work and never waits for the GPU inside the batch loop: the only
    synchronising calls are once per epoch (the shuffled order sent to the device, the two sums read
    back at the end): at most 3 in an epoch of 12 batches, where one per batch would make 12. Mixup, focal loss with
    class weights and every augmentation are on; `host` is a cache that does not fit on the GPU (batches
    gathered into pinned memory), `stream` the DataLoader path."""
    tree = make_tree(tmp_path / "tree", n_train=32, n_val=4, size=64)  # 96 train images: 12 batches of 8
    epochs = sync_counts(monkeypatch)
    opts = {**GPU, "mixup": 0.2, "alpha": "balanced", "class_weights": "inverse-freq", "scheduler": "none"}
    if cache == "host":
        _, total = torch.cuda.mem_get_info()
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (0, total))  # cache budget 0 on the GPU
    if cache == "stream":
        opts["cache_gb"] = 0
    train(tree, out=tmp_path / "run", epochs=3, **opts)
    assert [e["batches"] for e in epochs] == [12, 12, 12]
    for e in epochs[1:]:  # epoch 1 also copies constants to the device once and autotunes cuDNN
        assert len(e["syncs"]) <= 3, f"{cache}: epoch {e['epoch']} synchronised {len(e['syncs'])} times in " \
                                     f"{e['batches']} batches, at {sorted(set(e['syncs']))}"


def test_sync_counting_sees_a_sync():
    """The counter above is not blind: reading a value inside the loop is reported."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            x = torch.ones(4, device="cuda")
            float(x.sum())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert any("synchroniz" in str(w.message).lower() for w in caught)


def test_device_augmentation_on_cuda_matches_cpu():
    """The same seed gives the same augmented batch on the GPU and the CPU (parameters are drawn on the CPU)."""
    x = torch.randint(0, 256, (16, 3, 48, 48), dtype=torch.uint8)
    aug = train_data.Augment(["flip", "jitter", "crop"], channels_last=True)
    cpu = aug(x, torch.Generator().manual_seed(3))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda" and gpu.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-2)  # float rounding (x 1/std); a different flip or crop is O(1)


def test_predict_and_compare_on_cuda(tree, tmp_path):
    rows = compare(tree, "resnet18,mobilenet_v2", out=tmp_path / "cmp", epochs=1, **GPU)
    assert [r["arch"] for r in rows] == ["resnet18", "mobilenet_v2"]
    assert all(r["peak_memory_kind"] == "cuda-allocated" and r["peak_memory_mb"] > 0 for r in rows)
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["arch"] for r in table] == ["resnet18", "mobilenet_v2"]
    best = tmp_path / "cmp" / "resnet18" / "best.pt"
    on_gpu = predict(best, tree / "val", device="cuda", top_k=3, quiet=True)
    on_cpu = predict(best, tree / "val", device="cpu", top_k=3, quiet=True)
    assert len(on_gpu) == len(on_cpu) == 12
    for g, c in zip(on_gpu, on_cpu, strict=True):
        assert g.path == c.path and not g.error
        pg = dict((lab, p) for lab, _, p in g.top)
        pc = dict((lab, p) for lab, _, p in c.top)
        assert set(pg) == set(pc)  # all 3 classes
        assert np.allclose([pg[k] for k in sorted(pg)], [pc[k] for k in sorted(pc)], atol=2e-2)  # TF32 convs
