"""`curate demo`: the whole pipeline offline on a small source built from package-shipped photos."""

from __future__ import annotations

from pathlib import Path

import typer

from curate.commands import common
from curate.core.lazy import lazy

demo_api = lazy("curate.sources.demo")

ORDER = 1

HELP = """Run curate end to end on a small built-in dataset: no network, under a minute.

Builds an Open Images–layout source from real photos shipped by scikit-image, scikit-learn and
matplotlib (boxes set by hand, real class ids; EXIF-rotated, CMYK, 16-bit, palette and grayscale
files among them), then runs pipelines/demo.yaml on it: openimages crop -> dedupe -> report -> a
one-epoch training run. Prints where the tree, the QA report and the training run are.

Examples:

  curate demo

  curate demo --out /tmp/curate-demo --workers 2
"""


def register(app: typer.Typer) -> None:
    app.command("demo", help=HELP)(demo)


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Where to put the source and results."),
    workers: int = common.workers_option(),
    seed: int = common.seed_option(),
) -> None:

    res = demo_api.run_demo(out, workers=workers, seed=seed, quiet=common.state().quiet)
    for line in res.summary:
        common.out.print(line)
    raise typer.Exit(res.exit_code)
