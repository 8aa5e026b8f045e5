"""`curate train` input-pipeline overhead: training images/s of curate's loop against a pure-compute
ceiling (the same model, loss and optimizer on synthetic tensors already on the device), in one run.

    python bench/train.py [--device auto] [--arch resnet18[,resnet50]] [--size 48] [--images 192]
                          [--batch-size 32] [--steps N] [--threads 1] [--workers N] [--freeze-until none]
                          [--json results.json] [--profile DIR]

Writes a tree of real-photo crops (3 classes, bench/train_tree.py) into a temp folder, then times, on the
same device and with the same freeze setting (default none: every layer trained) on every row:
  ceiling      forward + backward + AdamW step on a fixed random batch already on the device
               (the optimizer, precision and memory format curate's loop uses)
  curate       curate's loop (decoded uint8 cache on the device, batched flip + ColorJitter there)
  stream       curate's loop with --cache-gb 0 (DataLoader decoding JPEGs in --workers processes)
  imagefolder  the usual baseline: torchvision ImageFolder + PIL transforms + DataLoader (same workers)
  ceiling_fused  (CUDA only) the ceiling with AdamW(fused=True): no per-step host sync in GradScaler.step
and prints images/s and each one's ratio to the ceiling (1.0 = the input pipeline costs nothing).
Each row times at least --steps optimizer steps (default: 200 on CUDA, one epoch elsewhere) after a
warm-up (the ceiling: 10 steps; the loops: their first epoch, where cuDNN autotunes and workers start);
the loops' evaluation is not timed. --profile DIR writes DIR/profile-ARCH.txt, a torch.profiler summary
of one curate epoch (synchronising calls and device-to-host copies per batch, with where they come
from). Defaults are tiny so it runs in seconds on a CPU; on CUDA: --device cuda --size 224 --images 4096
--batch-size 128 --threads 0.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchvision  # noqa: E402
from train_tree import make_tree  # noqa: E402  (bench/ is on sys.path when this file runs)

from curate.core.tree import atomic_write_json, atomic_write_text  # noqa: E402
from curate.train import loop, train  # noqa: E402
from curate.train.config import TrainConfig  # noqa: E402
from curate.train.data import loader_workers  # noqa: E402
from curate.train.loop import precision_for, resolve_device, tune_backend  # noqa: E402
from curate.train.losses import build_loss  # noqa: E402
from curate.train.models import build_model, logits_of, train_mode  # noqa: E402

CLASSES = 3


def train_step(model, crit, opt, scaler, prec, x, y) -> None:
    """One optimisation step, the same for the ceiling and the baselines (AMP-aware)."""
    with prec.autocast():
        loss = crit(logits_of(model(x)), y)
    opt.zero_grad(set_to_none=True)
    if scaler:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup(cfg: TrainConfig, device, n_cls: int, fused: bool = False):
    """Model, precision, loss, optimizer and scaler as curate's loop makes them (fused: AdamW's fused
    kernel, which takes GradScaler's scale on the device instead of reading found-inf back every step)."""
    torch.manual_seed(0)
    model, info = build_model(cfg.arch, n_cls, weights="none", dropout=cfg.dropout, freeze_until=cfg.freeze_until)
    cl = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last if cl else torch.contiguous_format)
    prec = precision_for(device, cfg.amp)
    crit = build_loss(cfg, [1] * n_cls).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay, **({"fused": True} if fused else {}))
    scaler = torch.amp.GradScaler(device.type) if prec.enabled and prec.dtype == torch.float16 else None
    train_mode(model, info["frozen_norms"])
    return model, info, prec, crit, opt, scaler, cl


def ceiling(cfg: TrainConfig, device, steps: int, fused: bool = False) -> dict:
    model, _, prec, crit, opt, scaler, cl = setup(cfg, device, CLASSES, fused)
    x = torch.randn(cfg.batch_size, 3, cfg.size, cfg.size, device=device)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (cfg.batch_size,), device=device)
    for _ in range(10):  # warm-up: cuDNN autotuning, allocator
        train_step(model, crit, opt, scaler, prec, x, y)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, crit, opt, scaler, prec, x, y)
    sync(device)
    return {"images_per_s": steps * cfg.batch_size / (time.perf_counter() - t0), "steps": steps}


def timed_epochs(history: list[dict], batch_size: int) -> dict:
    """Images/s over every epoch but the first (warm-up), from curate's history rows."""
    rows = history[1:]
    images = sum(h["images_per_s"] * h["seconds"] for h in rows)
    seconds = sum(h["seconds"] for h in rows)
    steps = sum(math.ceil(round(h["images_per_s"] * h["seconds"]) / batch_size) for h in rows)
    return {"images_per_s": images / seconds, "steps": steps, "epochs": len(rows)}


def imagefolder(cfg: TrainConfig, root: Path, device, workers: int, epochs: int) -> dict:
    """The common hand-written pipeline: ImageFolder + PIL transforms in DataLoader workers."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.Resize(cfg.size), T.CenterCrop(cfg.size), T.RandomHorizontalFlip(),
                    T.ColorJitter(*cfg.jitter), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])
    ds = ImageFolder(str(root / "train"), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    model, _, prec, crit, opt, scaler, cl = setup(cfg, device, len(ds.classes))
    images, seconds, steps = 0, 0.0, 0
    for epoch in range(epochs):
        n, k, t0 = 0, 0, time.perf_counter()
        for x, y in dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            train_step(model, crit, opt, scaler, prec, x, y)
            n, k = n + len(y), k + 1
        sync(device)
        if epoch:  # the first epoch starts the workers and autotunes cuDNN
            images, seconds, steps = images + n, seconds + time.perf_counter() - t0, steps + k
    return {"images_per_s": images / seconds, "steps": steps, "epochs": epochs - 1}


# Host waits: cuda*Synchronize calls and device-to-host copies. aten::_local_scalar_dense is every
# `.item()` / `float(t)`: a wait when t is on the GPU, free on CPU tensors (AdamW's step counters).
# cudaMemcpyAsync from pageable host memory (the augmentation's parameters) may block the host too: its
# CPU time says whether it does.
PROFILED = ("Synchronize", "Memcpy DtoH", "aten::_local_scalar_dense", "cudaMemcpyAsync")


def profile_epoch(root: Path, out: Path, opts: dict, profile_dir: Path) -> dict:
    """torch.profiler over curate's second epoch (the first autotunes): counts per batch of the calls
    that make the host wait for the device, and the table of the costliest ops, written to DIR."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if opts["device"].startswith("cuda") else [])
    found: dict = {}
    one_epoch = loop.train_one_epoch

    def profiled(model, batches, *a, **k):
        if k["epoch"] != 2:
            return one_epoch(model, batches, *a, **k)
        verbose = getattr(torch._C._profiler, "_ExperimentalConfig", None)  # Python stacks need it (torch 2.x)
        extra = {"experimental_config": verbose(verbose=True)} if verbose else {}
        with profile(activities=acts, with_stack=True, **extra) as prof:
            row = one_epoch(model, batches, *a, **k)
        found.update(summarise(prof, len(batches), profile_dir / f"profile-{opts['arch']}.txt"))
        return row

    loop.train_one_epoch = profiled
    try:
        train(root, out=out, quiet=True, **{**opts, "epochs": 2})
    finally:
        loop.train_one_epoch = one_epoch
    return found


def summarise(prof, batches: int, path: Path) -> dict:
    counts: dict[str, int] = {}
    cpu_ms: dict[str, float] = {}
    for e in prof.key_averages():
        if any(p in e.key for p in PROFILED):
            counts[e.key] = counts.get(e.key, 0) + e.count
            cpu_ms[e.key] = cpu_ms.get(e.key, 0.0) + e.self_cpu_time_total / 1000
    lines = [f"one curate epoch, {batches} batches; calls that wait for the device or copy to the host",
             "(aten::_local_scalar_dense is .item(): a wait only on GPU tensors, see the stacks):"]
    lines += [f"  {k}: {v} ({v / batches:.2f} per batch), {cpu_ms[k]:.1f} ms on the CPU"
              for k, v in sorted(counts.items())]
    lines += ["", "where they are called from (5 innermost Python frames):"]
    for e in prof.key_averages(group_by_stack_n=5):
        if any(p in e.key for p in PROFILED):
            lines.append(f"  {e.key} x{e.count}: " + " <- ".join(e.stack[:5]))
    try:  # torch < 2.4 names it self_cuda_time_total
        on_gpu = any("CUDA" in str(a) for a in getattr(prof, "activities", ()))
        table = prof.key_averages().table(sort_by="self_device_time_total" if on_gpu else "self_cpu_time_total",
                                          row_limit=40)
    except (KeyError, AttributeError, ValueError):
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
    lines += ["", table]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return {"batches": batches, "counts": counts, "per_batch": {k: v / batches for k, v in counts.items()},
            "cpu_ms": cpu_ms}


def attempt(name: str, run) -> dict:
    """One row; a failing baseline (e.g. DataLoader workers out of shared memory) is recorded, not fatal,
    so one run on a leased machine still measures the others. The ceiling must work."""
    try:
        return run()
    except Exception as e:
        if name == "ceiling":
            raise
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]}


def measure(arch: str, args, root: Path, tmp: Path, device) -> dict:
    opts = dict(arch=arch, weights="none", size=args.size, batch_size=args.batch_size, patience=0, lr=1e-4,
                freeze_until=args.freeze_until, workers=args.workers, amp=args.amp, device=str(device),
                threads=args.threads or None)
    cfg = TrainConfig.from_options(**opts)
    per_epoch = math.ceil(len(list((root / "train").rglob("*.jpg"))) / args.batch_size)
    steps = args.steps or (200 if device.type == "cuda" else per_epoch)
    epochs = 1 + math.ceil(steps / per_epoch)  # a warm-up epoch, then at least `steps` timed steps
    _, info = build_model(arch, CLASSES, weights="none", freeze_until=cfg.freeze_until)  # for the record
    rows = {
        "ceiling": lambda: ceiling(cfg, device, steps),
        "curate": lambda: timed_epochs(train(root, out=tmp / f"{arch}-curate", quiet=True, epochs=epochs, **opts).history,
                                       args.batch_size),
        "stream": lambda: timed_epochs(train(root, out=tmp / f"{arch}-stream", quiet=True, epochs=epochs, cache_gb=0,
                                             **opts).history, args.batch_size),
        "imagefolder": lambda: imagefolder(cfg, root, device, args.workers, epochs),
    }
    if device.type == "cuda":  # what a loop without GradScaler's per-step read-back could reach
        rows["ceiling_fused"] = lambda: ceiling(cfg, device, steps, fused=True)
    results = {name: attempt(name, run) for name, run in rows.items()}
    again = ceiling(cfg, device, steps)  # after the others too: the machine may be shared or warming up
    if again["images_per_s"] > results["ceiling"]["images_per_s"]:
        results["ceiling"] = again
    base = results["ceiling"]["images_per_s"]
    print(f"{arch}: freeze {info['freeze_until']} on every row ({info['trainable_params']:,} of "
          f"{info['params']:,} parameters trained), >= {steps} timed steps per row")
    print(f"{'pipeline':<12} {'train img/s':>12} {'of ceiling':>11} {'steps':>6}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<12} failed: {r['error']}")
            continue
        r["of_ceiling"] = r["images_per_s"] / base
        print(f"{name:<12} {r['images_per_s']:>12.1f} {r['of_ceiling']:>11.2f} {r['steps']:>6}")
    out = {"arch": arch, "freeze_until": info["freeze_until"], "params": info["params"],
           "trainable_params": info["trainable_params"], "steps_per_epoch": per_epoch, "epochs": epochs,
           "results": results}
    if args.profile:
        out["profile"] = attempt("profile", lambda: profile_epoch(root, tmp / f"{arch}-profile", opts, args.profile))
        per = out["profile"].get("per_batch", {})
        print("profile: " + (", ".join(f"{k} {v:.2f}/batch" for k, v in per.items()) or out["profile"].get("error", "")))
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def environment(device, args) -> dict:
    cuda = device.type == "cuda"
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "size": args.size,
            "images": args.images, "batch_size": args.batch_size, "workers": args.workers,
            "precision": precision_for(device, args.amp).name, "freeze_until": args.freeze_until}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="resnet18", help="one architecture or a comma list (one tree for all)")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--images", type=int, default=192, help="training images (plus 1/8 for validation)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=0, help="timed steps per row (0: 200 on CUDA, one epoch elsewhere)")
    ap.add_argument("--workers", type=int, default=None, help="decode / DataLoader processes (default: curate's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default; 1 keeps figures stable on a shared machine)")
    ap.add_argument("--freeze-until", default="none", help="the same on every row; auto = the recipe (last block)")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--profile", type=Path, help="folder for profile-ARCH.txt: torch.profiler over one curate epoch")
    args = ap.parse_args()
    args.workers = loader_workers(args.workers)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tune_backend(device)  # the ceiling gets the same cuDNN autotuning as curate's loop
    env = environment(device, args)
    print(f"device {device} ({env['device_name']}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"workers {args.workers}, {args.size} px, batch {args.batch_size}, {env['precision']}")
    report = {"environment": env, "archs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_tree(Path(tmp) / "tree", CLASSES, args.images, max(args.size, 64))
        for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
            report["archs"].append(measure(arch, args, root, Path(tmp), device))
            if args.json:  # after each architecture: a later timeout keeps what was measured
                atomic_write_json(args.json, report)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
