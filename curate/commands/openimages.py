"""`curate openimages`: Open Images V7 detections -> letterboxed object crops in an ImageFolder tree."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.text import Text

from curate.commands import common
from curate.core.lazy import lazy
from curate.core.storage import as_location, join
from curate.engine.executor import make_executor
from curate.sources.classes import resolve

oi = lazy("curate.sources.openimages")
crop_build = lazy("curate.crop.build")  # pandas and OpenCV: never for a dry run
detect = lazy("curate.detect")

ORDER = 10

HELP = """Crop every usable Open Images V7 box of the chosen classes into an ImageFolder tree.

Each item of --classes is a display name (case-insensitive), an alias from
manifests/openimages-aliases.yaml (gun = Handgun+Rifle+Shotgun), or a group label=ClassA+ClassB;
classes with children take every descendant (animal = Animal and its 110 descendant classes).

With --task detect the same selection becomes whole images with YOLO or COCO box labels
(docs/detection.md); convert between the two with curate export.

Examples:

  curate openimages --classes person,animal,gun --out data/oi --max-per-label 5000

  curate openimages --classes person,animal --source ~/fiftyone/open-images-v7 --split validation --out data/oi-val

  curate openimages --classes animal --dry-run            # per-label table, nothing downloaded

  curate openimages --list-classes gun                    # what exists, what an item expands to

  curate openimages --classes person --source s3://bucket/oi --out s3://bucket/crops --engine ray --ray-address auto

  curate openimages --classes "Wine glass,Mug,Coffee cup" --task detect --label-format yolo --out data/glasses

  curate openimages --classes person,car --task detect --label-format coco --image-size 1024 --background 500 --out data/pc
"""


class Fmt(str, Enum):
    jpg = "jpg"
    png = "png"


class Task(str, Enum):
    crop = "crop"
    detect = "detect"


class LabelFormat(str, Enum):
    yolo = "yolo"
    coco = "coco"


def register(app: typer.Typer) -> None:
    app.command("openimages", help=HELP, no_args_is_help=False)(openimages)


def openimages(
    pattern: str = typer.Argument(None, help="With --list-classes: only classes containing this text."),
    classes: str = typer.Option(None, "--classes", "-c", help="Comma list: names, aliases, label=A+B groups."),
    out: str = typer.Option(None, "--out", "-o", metavar="DIR|URL",
                            help="Output tree (created; must be new or a curate build): a folder or s3://, gs:// URL."),
    source: str = typer.Option(None, "--source", metavar="DIR|URL",
                               help="Copy in FiftyOne's layout (no download): a folder or s3://, gs:// URL."),
    split: str = typer.Option("train", "--split", help="Open Images split to read: train|validation|test."),
    download_dir: Path = typer.Option(None, "--download-dir", help="Download cache (default: user cache dir)."),
    max_samples: int = typer.Option(None, "--max-samples", min=1, help="At most this many source images."),
    max_per_label: int = typer.Option(None, "--max-per-label", min=1, help="At most this many boxes per label (detect: images containing it)."),
    size: int = typer.Option(224, "--size", min=8, max=4096, help="Output canvas side in pixels."),
    min_size: int = typer.Option(None, "--min-size", min=1,
                                 help="Skip boxes whose shorter side is below this (px; default 32 for crops, "
                                      "1 for detect, where they become ignore regions)."),
    margin: float = typer.Option(0.0, "--margin", min=0.0, max=1.0, help="Grow each box side by this fraction."),
    val_ratio: float = typer.Option(0.2, "--val-ratio", min=0.0, max=0.95, help="Share of images for val/."),
    test_ratio: float = typer.Option(0.0, "--test-ratio", min=0.0, max=0.95, help="Share of images for test/ "
                                     "(--task detect)."),
    task: Task = typer.Option(Task.crop, "--task", help="crop: object crops in class folders; detect: whole "
                              "images with box labels (docs/detection.md)."),
    label_format: LabelFormat = typer.Option(LabelFormat.yolo, "--label-format",
                                             help="--task detect: yolo (data.yaml, labels/*.txt) or coco (JSON)."),
    image_size: int = typer.Option(None, "--image-size", min=8, help="--task detect: re-encode images whose "
                                   "longer side is above N down to N (default: copy the bytes)."),
    background: int = typer.Option(0, "--background", min=0, help="--task detect: add N images without any "
                                   "selected box."),
    fmt: Fmt = typer.Option(Fmt.jpg, "--format", help="Output format (detect: of re-encoded images only)."),
    quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG quality."),
    include_group: bool = typer.Option(False, "--include-group/--no-group", help="Group-of boxes (crowds)."),
    include_depiction: bool = typer.Option(True, "--include-depiction/--no-depiction", help="Drawings, toys."),
    include_truncated: bool = typer.Option(True, "--include-truncated/--no-truncated", help="Cut by the frame."),
    include_occluded: bool = typer.Option(True, "--include-occluded/--no-occluded", help="Partly hidden."),
    include_inside: bool = typer.Option(True, "--include-inside/--no-inside", help="Seen from inside."),
    ambiguous_iou: float = typer.Option(0.7, "--ambiguous-iou", min=0.0, max=1.0,
                                        help="Flag crops overlapping another label's box this much."),
    max_pixels: int = typer.Option(150_000_000, "--max-pixels", help="Skip images larger than this (bombs)."),
    seed: int = common.seed_option(),
    workers: int = common.workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the per-label plan; write and fetch nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an existing curate --out."),
    list_classes: bool = typer.Option(False, "--list-classes", help="List classes (matching PATTERN) and exit."),
) -> None:
    if list_classes:
        _list(oi, pattern or "", classes, source, split, download_dir)
        return
    if pattern:
        raise typer.BadParameter(f"unexpected argument '{pattern}' (PATTERN goes with --list-classes)")
    if not classes:
        raise typer.BadParameter("--classes is required, e.g. --classes person,animal,gun")
    if out is None and not dry_run:
        raise typer.BadParameter("--out is required (or use --dry-run)")
    eng = common.engine_of(engine, workers, ray_address)
    if not dry_run and eng.local:
        make_executor(workers=workers).prestart("curate.crop.shard")  # its imports overlap reading and planning
    include = {"group": include_group, "depiction": include_depiction, "truncated": include_truncated,
               "occluded": include_occluded, "inside": include_inside}
    if task is Task.detect:
        _detect(classes, out, source=source, split=split, download_dir=download_dir, include=include,
                max_per_label=max_per_label, max_samples=max_samples, ambiguous_iou=ambiguous_iou, seed=seed,
                background=background, dry_run=dry_run, workers=workers, engine=eng, overwrite=overwrite,
                params=dict(
                    label_format=label_format.value, image_size=image_size, format=fmt.value, quality=quality,
                    min_size=min_size or 1, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed,
                    max_pixels=max_pixels))
        return
    if test_ratio or image_size or background:
        raise typer.BadParameter("--test-ratio, --image-size and --background go with --task detect")
    _crop(oi, classes, out, dict(source=source, split=split, download_dir=download_dir, include=include,
                                 max_per_label=max_per_label, max_samples=max_samples,
                                 ambiguous_iou=ambiguous_iou, seed=seed),
          dict(size=size, min_size=32 if min_size is None else min_size, margin=margin, seed=seed,
               format=fmt.value, quality=quality, val_ratio=val_ratio, max_pixels=max_pixels),
          dry_run=dry_run, workers=workers, engine=eng, overwrite=overwrite)


def _crop(oi, classes, out, select: dict, build: dict, *, dry_run, workers, engine, overwrite) -> None:
    """--task crop: plan (printed), then letterboxed crops of every selected box into OUT."""
    prep = oi.prepare(classes, quiet=common.state().quiet, **select)
    _print_plan(prep, dry_run)
    if dry_run:
        return
    if not prep.chosen.n_boxes:
        common.err("no box matches the classes and filters; nothing to crop")
        raise typer.Exit(1)
    with common.writing(as_location(out)):
        res = oi.build(prep, out, crop_build.BuildParams(**build), workers=workers, engine=engine, quiet=common.state().quiet,
                       overwrite=overwrite, command=common.command_line())
    _print_result(res)
    raise typer.Exit(1 if res.problems else 0)

def _detect(classes, out, *, dry_run, workers, engine, overwrite, params, **select) -> None:
    """--task detect: the same selection, whole images with YOLO or COCO labels (curate.detect)."""
    prep = detect.prepare_detect(classes, quiet=common.state().quiet, **select)
    _print_plan(prep, dry_run)
    ch = prep.chosen
    if not common.state().quiet or dry_run:
        common.out.print(f"images: {len(prep.image_ids):,} ({len(ch.background):,} background); "
                         f"ignore regions (filtered boxes of selected classes): {len(ch.ignore):,} in "
                         f"{ch.ignore.ImageID.nunique():,} images"
                         + (" (left out of a YOLO set)" if params["label_format"] == "yolo" else ""))
    if dry_run:
        return
    if not prep.image_ids:
        common.err("no image matches the classes and filters; nothing to write")
        raise typer.Exit(1)
    with common.writing(as_location(out)):
        res = detect.build_detect(prep, out, detect.DetectParams(**params), workers=workers, engine=engine,
                           quiet=common.state().quiet, overwrite=overwrite, command=common.command_line())
    t = common.table("split", "images", "boxes", "ignore regions", "background")
    for split, c in res.counts.items():
        t.add_row(split, f"{c['images']:,}", f"{c['boxes']:,}", f"{c['ignore']:,}", f"{c['background']:,}")
    common.out.print(f"wrote {res.out} ({params['label_format']})", soft_wrap=True)
    common.out.print(t)
    if res.skips_by_reason:
        common.out.print("images left out: " + ", ".join(f"{k} {v:,}" for k, v in res.skips_by_reason.items())
                         + f" (listed in {res.out / '.curate' / 'skipped.json'})")
    raise typer.Exit(1 if res.problems else 0)


def _list(oi, pattern, classes, source, split, download_dir) -> None:
    layout, _ = oi.open_source(source, split, download_dir)
    index = layout.class_index()
    if classes:
        sel = resolve(classes, index)
        for label, names in sel.expansion(index).items():
            roots = ", ".join(index.name(m) for m in sel.items[label])
            common.out.print(Text.assemble((label, "bold"), f" ({roots}) -> {len(names)} classes: {', '.join(names)}"),
                             soft_wrap=True)
        return
    t = common.table("class", "MID", "subclasses", "parts", title=f"Open Images classes matching '{pattern}'")
    for mid in index.search(pattern):
        t.add_row(index.name(mid), mid, str(len(index.descendants(mid)) - 1), str(len(index.parts.get(mid, []))))
    common.out.print(t)


def _print_plan(prep, dry_run: bool) -> None:
    if common.state().quiet and not dry_run:
        return
    sel = prep.chosen
    t = common.table("label", "classes", "boxes available", "images available", "boxes selected", "images selected",
              title=f"Open Images {prep.layout.split}: plan" + (" (dry run)" if dry_run else ""))
    exp = prep.selection.expansion(prep.index)
    for label, counts in sel.counts.items():  # plain columns and counts: a dry run never imports pandas
        t.add_row(label, str(len(exp[label])), *(f"{n:,}" for n in counts))
    common.out.print(t)
    ids = sel.image_ids
    n_img = len(ids)
    if not prep.local:
        missing = sum(1 for i in ids if not prep.layout.image_path(i).exists())
        common.out.print(f"images to download: {missing:,} of {n_img:,} (cache: {prep.layout.split_dir})")
    filt = ", ".join(f"{k} {v:,}" for k, v in sel.filtered.items()) or "none"
    common.out.print(f"boxes filtered out: {filt}")
    common.out.print(f"same-label boxes merged (IoU >= 0.9): {sel.merged:,}; "
                     f"flagged ambiguous: {int(sel.columns['ambiguous'].sum()):,}")


def _print_result(res) -> None:
    t = common.table("split", "label", "crops")
    for split, labels in res.counts.items():
        for label, n in labels.items():
            t.add_row(split, label, f"{n:,}")
    common.out.print(f"wrote {res.out}", soft_wrap=True)  # not the table's title: a long path would be folded
    common.out.print(t)
    if res.skips_by_reason:
        common.out.print("skipped boxes: " + ", ".join(f"{k} {v:,}" for k, v in res.skips_by_reason.items()))
    bad = sorted({s["image_id"] for s in res.skipped if s["box_index"] is None})
    if bad:
        common.warn(f"{len(bad)} source images unreadable or missing (e.g. {bad[0]}); "
                    f"listed in {join(res.out, '.curate', 'skipped.json')}")
    common.out.print(f"manifest: {join(res.out, 'manifest.parquet')}  ({len(res.manifest):,} rows)")
