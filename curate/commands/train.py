"""`curate train` and `curate predict`: a thin layer over curate.train (torch is imported lazily)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from curate.commands import common
from curate.commands.common import info, out, reading, seed_option, table, workers_option
from curate.core.errors import EXIT_OK, Interrupted
from curate.core.lazy import lazy
from curate.core.storage import as_location

api = lazy("curate.train")  # torch: only when a command runs
comparison = lazy("curate.train.comparison")
metrics = lazy("curate.train.metrics")
rundir = lazy("curate.train.rundir")

ORDER = 80

TRAIN_HELP = """Train a torchvision classifier on a curated tree and measure it.

Defaults follow the reference recipe: ResNet18 with ImageNet weights, all blocks frozen but the last, lr 1e-5, dropout 0.3, focal loss (gamma 2, alpha 1), AdamW, cosine annealing, early stopping on validation loss (patience 3), ColorJitter + horizontal flip. With --weights none (and for --arch simple-cnn) the defaults are the from-scratch recipe instead: nothing frozen, lr 1e-3, a linear warm-up then cosine, 100 epochs, patience 10. Flags you give always win.

Small images (--size below 64): --stem auto switches to the small stem (3x3 stride-1 first convolution, no max-pool) for ResNet, ResNeXt, Wide ResNet, DenseNet, ShuffleNet, MobileNet, EfficientNet, RegNet and MNASNet; --stem imagenet keeps the ImageNet stem. Grayscale trees are cached with one channel.

Writes best.pt, last.pt, history.csv, metrics.json (with per-class accuracy and mean loss), classification_report.txt, confusion_matrix.png and curves.png to --out. --compare trains each model in turn (on CPU each in its own process, so its peak memory is its own) and writes compare.md/.csv/.json with training time, inference ms/image at batch 1 and batch N and peak memory; a model that fails gets its error in the table and the others go on.

Examples:

  curate train data/coins --out runs/coins

  curate train data/oi --arch resnet50 --epochs 20 --lr 1e-4 --alpha balanced

  curate train data/coins --weights none --mixup 0.2

  curate train data/cifar10 --size 32 --weights none --epochs 30

  curate train data/emnist --size 28 --arch simple-cnn --batch-size 256

  curate train data/cifar10 --size 32 --stem imagenet --weights none

  curate train data/coins --out runs/coins --resume

  curate train data/coins --compare resnet18,mobilenet_v2,efficientnet_b0 --epochs 10

  curate train data/glasses --compare vgg16,resnet50,mobilenet_v2 --epochs 5

  curate train s3://my-bucket/coins --out runs/coins
"""

PREDICT_HELP = """Predict classes of images with a best.pt written by `curate train`.

Examples:

  curate predict runs/coins/best.pt photo.jpg

  curate predict runs/coins/best.pt data/new --top-k 3 --json > predictions.json

  curate predict runs/coins/best.pt s3://my-bucket/incoming/
"""


def train_cmd(
    root: Path = typer.Argument(..., path_type=str, help="Curated tree: ROOT/train/<label>/, ROOT/val/<label>/ (test/ optional); a folder or s3://bucket/prefix."),
    arch: str = typer.Option("resnet18", "--arch", help="Any torchvision classification model (resnet50, mobilenet_v2, ...), or simple-cnn (a plain CNN for small images, trained from scratch)."),
    weights: str = typer.Option(None, "--weights", help="imagenet (torchvision weights, cached under TORCH_HOME; the default), none (from scratch; the default for simple-cnn), or a .pt/.pth file."),
    loss: str = typer.Option("focal", "--loss", help="focal or ce."),
    gamma: float = typer.Option(2.0, "--gamma", help="Focal loss focusing parameter (0 = cross-entropy)."),
    alpha: str = typer.Option("1", "--alpha", help="Focal loss alpha: a number, or balanced (per class, inverse frequency)."),
    class_weights: str = typer.Option("none", "--class-weights", help="none or inverse-freq."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs [default: 50; 100 with --weights none]."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Images per batch."),
    lr: float = typer.Option(None, "--lr", help="AdamW learning rate [default: 1e-5; 1e-3 with --weights none]."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    freeze_until: str = typer.Option(None, "--freeze-until", help="Freeze parameters before this module: auto (last block: layer4 for ResNets), head, none, or a name [default: auto; none with --weights none]."),
    dropout: float = typer.Option(0.3, "--dropout", help="Dropout before the final layer."),
    patience: int = typer.Option(None, "--patience", help="Stop after this many epochs without a lower validation loss (0 = never) [default: 3; 10 with --weights none]."),
    scheduler: str = typer.Option(None, "--scheduler", help="cosine, warmup-cosine (linear warm-up over a tenth of the epochs, then cosine) or none [default: cosine; warmup-cosine with --weights none]."),
    augment: str = typer.Option("flip,jitter", "--augment", help="Comma list of flip, jitter, crop; or none."),
    mixup: float = typer.Option(0.0, "--mixup", help="Mixup Beta(alpha, alpha); 0 = off."),
    size: int = typer.Option(224, "--size", help="Input side in pixels (28 or 32 for MNIST/CIFAR-like sets)."),
    stem: str = typer.Option("auto", "--stem", help="auto (small below 64 px where the family has one), small (3x3 stride-1 first conv, no max-pool) or imagenet."),
    eval_split: str = typer.Option("val", "--eval-split", help="Split for validation loss and early stopping: val or test."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="Mixed precision: fp16 on CUDA (default on), bf16 on CPU (opt-in)."),
    cache_gb: float = typer.Option(None, "--cache-gb", help="Limit for the decoded image cache (default: half the free memory; 0 = stream from disk)."),
    workers: int = workers_option(),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: one per core; 1 helps on a machine shared with other jobs)."),
    seed: int = seed_option(),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<tree>-<arch>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in --out (default: refuse)."),
    compare: str = typer.Option(None, "--compare", help="Comma list of architectures: train each, write compare.md/.csv."),
) -> None:
    reading(as_location(root))

    opts = dict(weights=weights, loss=loss, gamma=gamma, alpha=alpha, class_weights=class_weights, epochs=epochs,
                batch_size=batch_size, lr=lr, weight_decay=weight_decay, freeze_until=freeze_until, dropout=dropout,
                patience=patience, scheduler=scheduler, augment=augment, mixup=mixup, size=size, stem=stem,
                eval_split=eval_split, device=device, amp=amp, cache_gb=cache_gb, workers=workers, threads=threads,
                seed=seed)
    if compare:
        if resume:
            raise typer.BadParameter("--resume does not combine with --compare")
        rows = api.compare(root, compare, out=out_dir, overwrite=overwrite, quiet=common.state().quiet, **opts)
        failed = [r["arch"] for r in rows if r.get("error")]
        split = next((r["split"] for r in rows if not r.get("error")), "-")
        _table([h for _, h, _ in comparison.COLUMNS], [comparison.format_row(r) for r in rows], f"compare on {split}")
        info(f"wrote {(Path(out_dir) if out_dir else Path('runs') / f'{rundir.tree_name(root)}-compare') / 'compare.md'}")
        if failed:
            out.print(f"{len(failed)} of {len(rows)} models failed: {', '.join(failed)} (errors in the table)")
        raise typer.Exit(1 if failed else EXIT_OK)
    if resume and overwrite:
        raise typer.BadParameter("choose one of --resume and --overwrite")
    try:
        res = api.train(root, out=out_dir, arch=arch, quiet=common.state().quiet, resume=resume, overwrite=overwrite, **opts)
    except KeyboardInterrupt:
        where = f"--out {shlex.quote(str(out_dir))}" if out_dir else "--out RUN_FOLDER"
        raise Interrupted("interrupted; every finished epoch is in last.pt",
                          f"continue with the same command and options plus `{where} --resume`") from None
    m = res.metrics
    out.print(f"{m['arch']} on {m['split']}: top-1 {m['top1']:.3f}  top-{m['top5_k']} {m['top5']:.3f}  "
              f"macro-F1 {m['macro_f1']:.3f}  ({m['epochs_run']} epoch{'s' if m['epochs_run'] > 1 else ''}, "
              f"best {res.best_epoch}"
              f"{', stopped early' if res.stopped_early else ''}; {m['inference_ms_per_image']:.2f} ms/image; "
              f"{m['stem']} stem; {m['recipe_note']})", soft_wrap=True)
    _per_class_table(m)
    out.print(f"wrote {res.out_dir}")
    raise typer.Exit(EXIT_OK)


def predict_cmd(
    checkpoint: Path = typer.Argument(..., help="best.pt written by curate train."),
    inputs: list[str] = typer.Argument(..., help="Image files or folders (searched recursively); s3:// objects or prefixes."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Classes to show per image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per image) instead of a table."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
) -> None:
    for p in inputs:  # folders that are curate trees: not while another process changes them
        if Path(p).is_dir():
            reading(Path(p))
    preds = api.predict(checkpoint, inputs, top_k=top_k, device=device, batch_size=batch_size, quiet=common.state().quiet)
    bad = [p for p in preds if p.error]
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        rows = []
        for p in preds:
            if p.error:
                rows.append([p.path, f"unreadable ({p.error})", ""])
                continue
            for i, (_, name, prob) in enumerate(p.top):
                rows.append([p.path if i == 0 else "", name, f"{prob:.3f}"])
        _table(["image", "class", "probability"], rows, None)
    raise typer.Exit(1 if bad else EXIT_OK)


PER_CLASS_ROWS = 30  # more classes: the worst ones, the rest in classification_report.txt


def _per_class_table(m: dict) -> None:
    rows = metrics.per_class_rows(m["per_class"])
    title = f"per class on {m['split']}, worst first"
    if len(rows) > PER_CLASS_ROWS:
        title += f": {PER_CLASS_ROWS} of {len(rows)}, all in classification_report.txt"
    _table(["class", "images", "accuracy", "mean loss"], rows[:PER_CLASS_ROWS], title)


def _table(header: list[str], rows: list[list[str]], title: str | None) -> None:
    t = table(title=title, show_lines=False)
    for i, h in enumerate(header):
        t.add_column(h, overflow="fold", no_wrap=i == 0)
    for r in rows:
        t.add_row(*r)
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("train", help=TRAIN_HELP, no_args_is_help=True)(train_cmd)
    app.command("predict", help=PREDICT_HELP, no_args_is_help=True)(predict_cmd)
