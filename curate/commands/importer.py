"""`curate import`: CIFAR, MNIST/EMNIST IDX, pixel or path CSVs, class folders, HF Parquet/Arrow -> a tree."""

from __future__ import annotations

from pathlib import Path

import typer

from curate.commands import common
from curate.commands.common import info, out, warn, workers_option
from curate.core.lazy import lazy

formats = lazy("curate.sources.formats")
importer = lazy("curate.sources.importer")

ORDER = 21

HELP = """Import a dataset in a standard format into a verified curate tree (as `curate kaggle` writes it).

Formats (--format, detected by default): cifar (CIFAR-10/100 python archives or batches), idx (MNIST, Fashion-MNIST, EMNIST; .gz or not; EMNIST turned upright, names from its mapping file), pixel-csv (label,pixel0..pixelN; grayscale or planar RGB), path-csv (image paths + labels, Dacon's train.csv), folder (class folders, split or not), hf (Hugging Face datasets Parquet/Arrow with an Image and a ClassLabel column). SOURCE is a file, folder, .zip/.tar archive or s3:// URL.

Pixel arrays become PNG files, image files keep their bytes; every image is decoded and hashed. A test split the source has is kept; --val-ratio deals val out of train and --test-ratio deals test for sources without one (stratified per class, near-duplicates never straddle splits). OUT gets manifest.parquet, classes.json (readable names) and curate.json; a re-run resumes or does nothing. Exit 1 when files were skipped (all are listed), 2 on bad input.

Examples:

  curate import cifar-10-python.tar.gz --out data/cifar10 --val-ratio 0.1

  curate import emnist/gzip --subset balanced --out data/emnist --val-ratio 0.1

  curate import photos/ --out data/glasses --val-ratio 0.1

  curate import train.csv --format path-csv --label-column label --out data/contest
"""


def register(app: typer.Typer) -> None:
    app.command("import", help=HELP)(import_command)


def import_command(
    source: str = typer.Argument(..., help="File, folder, archive or s3:// URL of the dataset."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the tree."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto, cifar, idx, pixel-csv, path-csv, folder or hf."),
    val_ratio: float = typer.Option(0.0, "--val-ratio", help="Deal this share of train into val."),
    test_ratio: float = typer.Option(0.0, "--test-ratio", help="Deal this share into test (sources without one)."),
    subset: str = typer.Option(None, "--subset", help="EMNIST split when a folder holds several (balanced, ...)."),
    labels: str = typer.Option("fine", "--labels", help="CIFAR-100 labels: fine or coarse."),
    path_column: str = typer.Option(None, "--path-column", help="CSV/HF column of image paths (default: detected)."),
    label_column: str = typer.Option(None, "--label-column", help="CSV/HF column of labels (default: detected)."),
    names: Path = typer.Option(None, "--names", help="JSON class id -> readable name (overrides the source's)."),
    seed: int = common.seed_option(),
    workers: int = workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier import of another source."),
) -> None:
    eng = common.engine_of(engine, workers, ray_address)

    with common.writing(out_dir):
        res = importer.import_source(source, out_dir, fmt=fmt, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed,
                            options=formats.Options(subset, labels, path_column, label_column), names=names,
                            workers=workers, engine=eng, quiet=common.state().quiet, overwrite=overwrite)
    if res.up_to_date:
        info(f"{out_dir} is up to date with {source} (nothing to do)")
    for line in res.notes:
        info(line)
    for line in res.problems[:20]:
        warn(line)
    if len(res.problems) > 20:
        warn(f"… and {len(res.problems) - 20} more problems (see {out_dir}/curate.json)")
    split_txt = ", ".join(f"{s} {n}" for s, n in res.counts.items())
    out.print(f"{source} ({res.format}) -> {out_dir}: {sum(res.counts.values())} images ({split_txt}), "
              f"{res.classes} classes, {len(res.problems)} problems", soft_wrap=True)
    raise typer.Exit(res.exit_code)
