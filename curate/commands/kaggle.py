"""`curate kaggle`: a Kaggle class-folder dataset (e.g. world coins) -> a verified curate tree."""

from __future__ import annotations

from pathlib import Path

import typer

from curate.commands import common
from curate.commands.common import info, out, warn, workers_option
from curate.core.layout import sort_splits
from curate.core.lazy import lazy

kaggle_api = lazy("curate.sources.kaggle")

ORDER = 20

HELP = """Import a Kaggle image dataset of class folders into a verified curate tree.

Downloads through the official `kaggle` package (credentials: KAGGLE_USERNAME + KAGGLE_KEY, or KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json), or takes an archive/folder you already have with --source. The archive is extracted safely, split folders are found wherever they sit (train/, valid/, validation/, test/ or a single folder of class folders) and copied byte-for-byte to OUT/train|val|test/CLASS/. Every image is verified; OUT/manifest.parquet, OUT/classes.json and OUT/curate.json record what was imported. Exit 1 when problems were found (all are listed).

Examples:

  curate kaggle coins --out data/coins --label-names

  curate kaggle wanderdust/coin-images --out data/coins --source ~/Downloads/coin-images.zip

  curate kaggle OWNER/DATASET --out data/x --source extracted/ --names classes.json
"""


def register(app: typer.Typer) -> None:
    app.command("kaggle", help=HELP)(kaggle)


def kaggle(
    dataset: str = typer.Argument(..., help="OWNER/DATASET as on kaggle.com, or a preset name (coins)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the normalised tree."),
    source: Path = typer.Option(None, "--source", help="Use this downloaded .zip/.tar or folder (offline)."),
    names: Path = typer.Option(None, "--names", help="JSON id -> class name (default: cat_to_name.json in the data)."),
    label_names: bool = typer.Option(False, "--label-names", help="Name class folders by readable class names."),
    download_dir: Path = typer.Option(None, "--download-dir", help="Where the zip is downloaded (default: user cache)."),
    check_counts: bool = typer.Option(True, "--check-counts/--no-check-counts", help="Compare with the preset's expected counts."),
    workers: int = workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier import of another source version."),
) -> None:
    eng = common.engine_of(engine, workers, ray_address)

    with common.writing(out_dir):
        res = kaggle_api.import_dataset(
            dataset, out_dir, source=source, names=names, label_names=label_names, download_dir=download_dir,
            workers=workers, quiet=common.state().quiet, check_counts=check_counts, engine=eng,
            overwrite=overwrite,
        )
    if res.up_to_date:
        info(f"{out_dir} is up to date with {res.dataset} (nothing to do)")
    if res.unknown_ids and not label_names:  # with --label-names it is one of res.problems, listed below
        warn(f"{len(res.unknown_ids)} class ids have no name: {', '.join(res.unknown_ids[:10])}")
    if res.unmapped_names:
        warn(f"{len(res.unmapped_names)} names have no class folder: {', '.join(res.unmapped_names[:10])}")
    for line in res.problems[:20]:
        warn(line)
    if len(res.problems) > 20:
        warn(f"… and {len(res.problems) - 20} more problems (see {out_dir}/curate.json)")

    order = sort_splits(res.counts)
    split_txt = ", ".join(f"{s} {res.counts[s]}" for s in order)  # train, val, test: also when up to date
    out.print(f"{res.dataset} -> {out_dir}: {sum(res.counts.values())} images ({split_txt}), "
              f"{res.classes} classes, {len(res.problems)} problems", soft_wrap=True)
    raise typer.Exit(res.exit_code)
