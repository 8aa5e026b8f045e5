"""The training loop: one epoch, evaluation, early stopping, checkpoints, resume, final metrics.

Plain on purpose, in the spirit of torchvision's references/classification/train.py.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from curate.core.errors import InputError
from curate.core.storage import as_location
from curate.core.tree import atomic_write_json, atomic_write_text, json_safe
from curate.engine.executor import _console, progress_bar
from curate.train.config import TrainConfig, TrainResult
from curate.train.data import (
    Augment,
    Batches,
    Cached,
    Prepared,
    loader_workers,
    place,
    prepare,
)
from curate.train.device import Precision, cpu_has_bf16, precision_for, resolve_device, tune_backend
from curate.train.losses import build_loss
from curate.train.metrics import (
    PeakMemory,
    classification_metrics,
    plot_confusion,
    plot_curves,
    time_inference,
)
from curate.train.models import (
    build_model,
    checkpoint_transform_input,
    logits_of,
    read_checkpoint,
    train_mode,
)
from curate.train.prep import Dataset, load_dataset
from curate.train.rundir import (
    CHECKPOINT_FORMAT,
    check_resume_options,
    cpu_state,
    resolve_out,
    save_torch,
    write_history,
)

# ------------------------------------------------------------------ one epoch


def _mix(x, y, alpha: float, rng: np.random.Generator, g: torch.Generator):
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(len(y), generator=g).to(y.device, non_blocking=True)
    return lam * x + (1 - lam) * x[perm], y[perm], lam


def train_one_epoch(model, batches: Batches, augment: Augment, criterion, optimizer, scaler, prec: Precision,
                    frozen_norms, *, seed: int, epoch: int, mixup: float, on_batch=None) -> dict:
    train_mode(model, frozen_norms)
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout: a pure function of (seed, epoch), so resume is exact
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    rng = np.random.default_rng([seed, epoch])
    order = torch.randperm(batches.num_images(), generator=g)
    if len(order) % batches.batch_size == 1 and len(order) > 1:
        order = order[:-1]  # a lone last image breaks BatchNorm in train mode; another one sits out each epoch
    # Sums stay on the device: reading them every batch would stall the GPU queue; they are read once.
    dev = batches.device
    acc_dtype = torch.float32 if dev.type == "mps" else torch.float64
    sum_loss, sum_hit = torch.zeros((), dtype=acc_dtype, device=dev), torch.zeros((), dtype=acc_dtype, device=dev)
    n = 0
    t0 = time.perf_counter()
    for xb, yb in batches(order):
        x = augment(xb, g)
        y2, lam = None, 1.0
        if mixup > 0:
            x, y2, lam = _mix(x, yb, mixup, rng, g)
        with prec.autocast():
            logits = logits_of(model(x))
        loss = criterion(logits, yb) if y2 is None else lam * criterion(logits, yb) + (1 - lam) * criterion(logits, y2)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        bs = len(yb)
        pred = logits.detach().argmax(1)
        hit = (pred == yb).sum()
        if y2 is not None:
            hit = lam * hit + (1 - lam) * (pred == y2).sum()
        sum_loss += loss.detach() * bs
        sum_hit += hit
        n += bs
        if on_batch:
            on_batch()
    total_loss, correct = float(sum_loss), float(sum_hit)  # waits for the device: the epoch's time is real
    secs = time.perf_counter() - t0
    if not math.isfinite(total_loss):
        raise InputError(f"training diverged in epoch {epoch} (loss is {total_loss})", "lower --lr or turn off --amp")
    return {"loss": total_loss / max(n, 1), "acc": correct / max(n, 1), "seconds": secs, "images": n}


@torch.inference_mode()
def evaluate(model, batches: Batches, augment: Augment, criterion, prec: Precision) -> dict:
    model.eval()
    losses, per_image, probs, targets = [], [], [], []
    for xb, yb in batches():  # kept on the device and copied once at the end
        with prec.autocast():
            logits = logits_of(model(augment.normalise(xb)))
        losses.append(criterion(logits, yb).float() * len(yb))
        per_image.append(criterion.per_image(logits, yb).float())
        probs.append(torch.softmax(logits.float(), 1))
        targets.append(yb)
    p = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, 0))
    y = torch.cat(targets).cpu().numpy() if targets else np.zeros(0, int)
    n = max(len(y), 1)
    loss = float(torch.stack(losses).sum()) if losses else 0.0
    return {"loss": loss / n, "acc": float((p.argmax(1) == y).mean()) if len(y) else 0.0, "probs": p, "targets": y,
            "losses": torch.cat(per_image).cpu().numpy() if per_image else np.zeros(0)}


# ------------------------------------------------------------------ fit


def _default_log(quiet: bool):

    return (lambda msg: None) if quiet else (lambda msg: _console.print(msg, markup=False, highlight=False,
                                                                         soft_wrap=True))


@dataclass
class Parts:
    """What a run trains with: the model on its device, the batches of each split, loss, optimiser, schedule."""

    model: torch.nn.Module
    minfo: dict
    device: torch.device
    prec: Precision
    batches: dict[str, Batches]
    criterion: torch.nn.Module
    augment: Augment
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler | None
    meta: dict  # stored in every checkpoint


@dataclass
class Progress:
    """Where a run stands: the history so far and the early-stopping state (saved in last.pt)."""

    history: list[dict] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    start: int = 1  # the next epoch
    train_seconds: float = 0.0
    stopped_early: bool = False


def choose_device(cfg: TrainConfig, log: Callable[[str], None]) -> tuple[torch.device, Precision, bool]:
    """The device, its precision and whether to use channels-last; sets torch's threads and backend."""
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tune_backend(device)
    prec = precision_for(device, cfg.amp)
    if prec.dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_bf16():
        log("warning: this CPU has no native bf16; --amp will be slower than fp32 here")
    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    return device, prec, channels_last


def read_resume(out_dir: Path, cfg: TrainConfig, ds: Dataset) -> dict:
    """last.pt of the run to continue, checked against this command (before anything is decoded)."""
    last = read_checkpoint(out_dir / "last.pt")
    if last.get("arch") != cfg.arch or last.get("classes") != ds.classes:
        raise InputError(f"{out_dir / 'last.pt'} was trained as {last.get('arch')} on other classes",
                         "resume with the same tree and --arch, or start a new --out")
    check_resume_options(last.get("config") or {}, cfg, out_dir)
    return last


def make_parts(model, minfo: dict, prep: Prepared, cfg: TrainConfig, device: torch.device, prec: Precision,
               channels_last: bool) -> Parts:
    """Place the decoded splits, and build the loss, augmentation, optimiser, schedule and checkpoint metadata."""
    ds, n_cls = prep.dataset, len(prep.dataset.classes)
    budget = int(torch.cuda.mem_get_info(device)[0] * 0.4) if device.type == "cuda" else 0
    batches: dict[str, Batches] = {}
    for name, src in prep.sources.items():
        if isinstance(src, Cached):
            src, budget = place(src, device, budget)
        batches[name] = Batches(src, cfg.batch_size, device, loader_workers(cfg.workers) if prep.streaming else 0)
    train_b = batches["train"]
    if train_b.num_images() == 0:
        raise InputError("no readable training images", "check the tree with `curate report`")
    counts = [int(c) for c in torch.bincount(train_b.source.targets if isinstance(train_b.source, Cached)
                                             else torch.tensor(train_b.source.targets), minlength=n_cls)]
    criterion = build_loss(cfg, counts).to(device)
    augment = Augment(cfg.augment_list(), cfg.jitter, cfg.mean, cfg.std, channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused on CUDA: one kernel per step, and GradScaler hands it the scale on the device instead of reading
    # found_inf back every batch (a host sync per step with the plain AdamW)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(device.type) if prec.enabled and prec.dtype == torch.float16 else None
    meta = {
        "format": CHECKPOINT_FORMAT, "version": 1, "arch": cfg.arch, "classes": ds.classes,
        "display": ds.display, "size": cfg.size, "mean": list(cfg.mean), "std": list(cfg.std),
        "resize": "shorter side to size (area filter), centre crop", "dropout": cfg.dropout,
        "transform_input": minfo["transform_input"], "stem": minfo["stem"],
        "config": cfg.to_dict(),
    }
    return Parts(model, minfo, device, prec, batches, criterion, augment, optimizer, scheduler, scaler, meta)


def restore(last: dict, run: Parts, cfg: TrainConfig, out_dir: Path, log: Callable[[str], None]) -> Progress:
    """Load the weights and optimiser, schedule and scaler states of last.pt; the progress it saved."""
    run.model.load_state_dict(last["model"])
    run.optimizer.load_state_dict(last["optimizer"])
    scheduler = run.scheduler
    if scheduler is not None and last.get("scheduler"):
        scheduler.load_state_dict(last["scheduler"])
        if hasattr(scheduler, "T_max"):
            scheduler.T_max = cfg.epochs  # more --epochs: the cosine continues from here to the new end
        if cfg.epochs > last["epoch"] and run.optimizer.param_groups[0]["lr"] <= 1e-12:
            log(f"warning: the cosine schedule of {out_dir} has ended (learning rate 0), so more epochs "
                f"learn nothing; to train further start a new run with --weights {out_dir / 'best.pt'}")
    if run.scaler is not None and last.get("scaler"):
        run.scaler.load_state_dict(last["scaler"])
    progress = Progress(last["history"], last["best_loss"], last["best_epoch"], last["bad_epochs"],
                        last["epoch"] + 1, last.get("train_seconds", 0.0))
    log(f"resuming {out_dir} after epoch {last['epoch']}")
    return progress


def end_of_epoch(run: Parts, progress: Progress, epoch: int, lr: float, tr: dict, ev: dict, cfg: TrainConfig,
                 out_dir: Path, log: Callable[[str], None]) -> dict:
    """Record one epoch (trained at `lr`): its history row, best.pt when the evaluation loss improved, last.pt,
    history.csv."""
    if run.scheduler is not None:
        with warnings.catch_warnings():  # GradScaler may skip the first steps (inf grads): harmless
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            run.scheduler.step()
    progress.train_seconds += tr["seconds"]
    row = {"epoch": epoch, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": ev["loss"],
           "val_acc": ev["acc"], "lr": lr, "seconds": tr["seconds"],
           "images_per_s": tr["images"] / tr["seconds"] if tr["seconds"] else 0.0}
    progress.history.append(row)
    line = (f"[{epoch:02d}] train loss {tr['loss']:.3f} acc {tr['acc']:.3f} | {cfg.eval_split} loss "
            f"{ev['loss']:.3f} acc {ev['acc']:.3f} | {tr['seconds']:.1f} s, {row['images_per_s']:.0f} img/s")
    if ev["loss"] < progress.best_loss:
        progress.best_loss, progress.best_epoch, progress.bad_epochs = ev["loss"], epoch, 0
        save_torch({**run.meta, "model": cpu_state(run.model), "epoch": epoch, "val_loss": ev["loss"]},
                   out_dir / "best.pt")
        line += "  *best"
    else:
        progress.bad_epochs += 1
    log(line)
    save_torch({**run.meta, "model": cpu_state(run.model),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict() if run.scheduler else None,
                "scaler": run.scaler.state_dict() if run.scaler else None, "epoch": epoch,
                "history": progress.history, "best_loss": progress.best_loss, "best_epoch": progress.best_epoch,
                "bad_epochs": progress.bad_epochs, "train_seconds": progress.train_seconds}, out_dir / "last.pt")
    write_history(out_dir / "history.csv", progress.history)
    return row


def train_epochs(run: Parts, progress: Progress, cfg: TrainConfig, out_dir: Path, *, quiet: bool,
                 log: Callable[[str], None], on_epoch_end=None) -> PeakMemory:
    """Train from progress.start to cfg.epochs, stopping early after cfg.patience epochs without a better
    evaluation loss; returns the peak-memory reading of the epochs."""
    if progress.start > 1 and cfg.patience and progress.bad_epochs >= cfg.patience:
        progress.stopped_early = True
        progress.start = cfg.epochs + 1
    train_b, eval_b = run.batches["train"], run.batches[cfg.eval_split]
    n_train = train_b.num_images()
    steps = math.ceil((n_train - (n_train % cfg.batch_size == 1 and n_train > 1)) / cfg.batch_size)
    with PeakMemory(run.device) as mem, progress_bar(quiet) as bar:
        task = bar.add_task("train", total=steps, unit="batches")
        for epoch in range(progress.start, cfg.epochs + 1):
            bar.reset(task, total=steps, description=f"epoch {epoch}/{cfg.epochs}")
            lr = run.optimizer.param_groups[0]["lr"]
            tr = train_one_epoch(run.model, train_b, run.augment, run.criterion, run.optimizer, run.scaler, run.prec,
                                 run.minfo["frozen_norms"], seed=cfg.seed, epoch=epoch, mixup=cfg.mixup,
                                 on_batch=lambda: bar.advance(task))
            ev = evaluate(run.model, eval_b, run.augment, run.criterion, run.prec)
            if not math.isfinite(ev["loss"]):  # never the best epoch, so best.pt could be missing or stale
                raise InputError(f"training diverged in epoch {epoch} ({cfg.eval_split} loss is {ev['loss']})",
                                 "lower --lr or turn off --amp")
            row = end_of_epoch(run, progress, epoch, lr, tr, ev, cfg, out_dir, log)
            if on_epoch_end:
                on_epoch_end(epoch, row)
            if cfg.patience and progress.bad_epochs >= cfg.patience and epoch < cfg.epochs:
                progress.stopped_early = True
                log(f"early stop: {cfg.eval_split} loss has not improved for {progress.bad_epochs} epochs "
                    f"(best epoch {progress.best_epoch})")
                break
    return mem


def finish(run: Parts, progress: Progress, prep: Prepared, cfg: TrainConfig, out_dir: Path, mem: PeakMemory,
           log: Callable[[str], None]) -> dict:
    """Reload best.pt, measure it on every held-out split, time inference, write metrics.json and curves.png."""
    model, minfo, device, prec, ds = run.model, run.minfo, run.device, run.prec, prep.dataset
    history, best_epoch = progress.history, progress.best_epoch
    train_b, eval_b = run.batches["train"], run.batches[cfg.eval_split]
    best = torch.load(out_dir / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(best["model"])
    metrics = final_metrics(model, run.batches, run.augment, run.criterion, prec, ds, cfg, out_dir, history,
                            best_epoch)
    metrics.update({
        "arch": cfg.arch, "weights": cfg.weights, "device": str(device), "precision": prec.name,
        "params": minfo["params"], "trainable_params": minfo["trainable_params"],
        "freeze_until": minfo["freeze_until"], "stem": minfo["stem"], "recipe": cfg.recipe,
        "recipe_note": cfg.recipe_note(), "classes": ds.classes, "best_epoch": best_epoch,
        "epochs_run": len(history), "stopped_early": progress.stopped_early, "train_seconds": progress.train_seconds,
        "decode_seconds": prep.decode_seconds, "unreadable": len(prep.unreadable),
        "train_images": train_b.num_images(), "train_images_per_s": (
            sum(h["images_per_s"] * h["seconds"] for h in history) / max(sum(h["seconds"] for h in history), 1e-9)),
        "peak_memory_mb": mem.peak_mb, "peak_memory_kind": mem.kind, "config": cfg.to_dict(),
    })
    x = run.augment.normalise(next(iter(eval_b()))[0])
    metrics.update(time_inference(model, x, device=device, autocast=prec.autocast))
    one = time_inference(model, x[:1], device=device, autocast=prec.autocast)
    metrics["inference_ms_batch1"] = one["inference_ms_per_image"]
    atomic_write_json(out_dir / "metrics.json", json_safe(metrics))
    plot_curves(history, out_dir / "curves.png", best_epoch)
    log(f"best epoch {best_epoch}: {metrics['split']} top-1 {metrics['top1']:.3f}, macro-F1 {metrics['macro_f1']:.3f}; "
        f"wrote {out_dir}")
    return metrics


def fit(root, cfg: TrainConfig, *, out=None, resume: bool = False, overwrite: bool = False, quiet: bool = False,
        log: Callable[[str], None] | None = None, on_epoch_end=None, prepared: Prepared | None = None) -> TrainResult:
    root = as_location(root)  # a local Path, or an object-store URL string
    log = log or _default_log(quiet)
    out_dir = resolve_out(out, root, cfg.arch, resume, overwrite)
    device, prec, channels_last = choose_device(cfg, log)
    ds = prepared.dataset if prepared else load_dataset(root, cfg.eval_split)
    # checked before decoding; its weights replace the starting ones, so those are not loaded
    last = read_resume(out_dir, cfg, ds) if resume else None
    torch.manual_seed(cfg.seed)
    model, minfo = build_model(cfg.arch, len(ds.classes), weights="none" if last else cfg.weights,
                               dropout=cfg.dropout, size=cfg.size, freeze_until=cfg.freeze_until, classes=ds.classes,
                               stem=last.get("stem", "imagenet") if last else cfg.stem,
                               transform_input=checkpoint_transform_input(last) if last else None)  # fail fast
    prep = prepared or prepare(root, cfg, quiet=quiet, log=log, dataset=ds)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = make_parts(model, minfo, prep, cfg, device, prec, channels_last)
    progress = restore(last, run, cfg, out_dir, log) if last else Progress()
    out_dir.mkdir(parents=True, exist_ok=True)
    train_b, eval_b = run.batches["train"], run.batches[cfg.eval_split]
    log(f"{cfg.arch}: {len(ds.classes)} classes, {train_b.num_images()} train / {eval_b.num_images()} "
        f"{cfg.eval_split} images, {minfo['trainable_params']:,} of {minfo['params']:,} parameters trainable "
        f"(from {minfo['freeze_until']}), {minfo['stem']} stem, {device.type} {prec.name}, writing to {out_dir}")
    log(cfg.recipe_note())
    mem = train_epochs(run, progress, cfg, out_dir, quiet=quiet, log=log, on_epoch_end=on_epoch_end)
    metrics = finish(run, progress, prep, cfg, out_dir, mem, log)
    return TrainResult(out_dir, metrics, progress.history, progress.best_epoch, progress.stopped_early)


def make_scheduler(optimizer, cfg: TrainConfig):
    """Per-epoch learning-rate schedule: cosine to 0, or a linear warm-up (a tenth of the epochs, 1 to 5)
    then cosine (the from-scratch default), or none."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "warmup-cosine":
        warm = min(5, max(1, cfg.epochs // 10))
        span = max(1, cfg.epochs - warm)

        def factor(e: int) -> float:  # e: epochs done; epoch e + 1 runs at lr * factor(e)
            if e < warm:
                return (e + 1) / (warm + 1)
            return 0.5 * (1 + math.cos(math.pi * min(e - warm, span) / span))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def final_metrics(model, batches, augment, criterion, prec, ds: Dataset, cfg: TrainConfig, out_dir: Path,
                  history, best_epoch) -> dict:
    """Metrics of the best weights on every held-out split; the report and confusion matrix use test
    when the tree has one, else the evaluation split."""
    per_split = {}
    for name, b in batches.items():
        if name == "train" or b.num_images() == 0:
            continue
        ev = evaluate(model, b, augment, criterion, prec)
        m = classification_metrics(ev["targets"], ev["probs"], ds.classes, ds.display, losses=ev["losses"])
        m["loss"] = ev["loss"]
        per_split[name] = m
    final = "test" if "test" in per_split else cfg.eval_split
    m = dict(per_split[final])
    report = m.pop("report_text")
    names = [ds.display.get(c, c) for c in ds.classes]
    title = f"{cfg.arch} on {final} (best epoch {best_epoch}): top-1 {m['top1']:.3f}"
    atomic_write_text(out_dir / "classification_report.txt", f"{title}\n\n{report}")
    plot_confusion(np.array(m["confusion_matrix"]), names, out_dir / "confusion_matrix.png", title,
                   m["top_confusions"])
    for s in per_split.values():
        s.pop("report_text", None)
    m["split"] = final
    m["splits"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("per_class", "confusion_matrix")}
                   for k, v in per_split.items()}
    return m
