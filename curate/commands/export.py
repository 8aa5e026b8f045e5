"""`curate export`: convert a detection tree (built with --task detect) between YOLO and COCO."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from curate.commands import common
from curate.core.lazy import lazy

detect_export = lazy("curate.detect.export")

ORDER = 15

HELP = """Convert a detection tree between YOLO and COCO; the source tree is only read.

The source format is found from the tree (data.yaml + labels/ is YOLO, annotations/instances_*.json is
COCO). Every label is validated first: a broken label line, a box outside its image or an unknown class
id stops the export with one line (exit 2) before anything is written. COCO -> YOLO leaves out images
with an ignore region (YOLO cannot mark one); they are listed. docs/detection.md has the details.

Examples:

  curate export data/glasses --to coco --out data/glasses-coco

  curate export data/pc-coco --to yolo --out data/pc-yolo
"""


class To(str, Enum):
    yolo = "yolo"
    coco = "coco"


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP, short_help="Convert a detection tree: YOLO <-> COCO.")(export)


def export(
    tree: Path = typer.Argument(..., help="A tree built with curate openimages --task detect (or any YOLO/COCO set)."),
    to: To = typer.Option(..., "--to", help="Target format: yolo or coco."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the converted tree."),
) -> None:

    common.reading(tree)  # reads the tree: not while another process changes it
    res = detect_export.export(tree, to.value, out, quiet=common.state().quiet)
    common.out.print(f"wrote {res.out} ({res.source_format} -> {res.to}): {res.images:,} images, "
                     f"{res.boxes:,} boxes", soft_wrap=True)
    if res.left_out:
        common.warn(f"{len(res.left_out)} images with ignore regions left out (e.g. {res.left_out[0]}); "
                    f"listed in {res.out / 'curate.json'}")
