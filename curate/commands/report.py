"""`curate report`: a dataset QA report (report.json + self-contained report.html) of any curate tree."""

from __future__ import annotations

from pathlib import Path

import typer

from curate.commands import common
from curate.core.lazy import lazy
from curate.core.storage import as_location

report_api = lazy("curate.report")

ORDER = 40

HELP = (
    "Write a QA report of an image tree: report.json (stable schema, docs/report.md) and report.html "
    "(one file, opens offline). Reads only; nothing in the tree changes.\n\n"
    "Covers counts per split and label, imbalance, labels missing from a split, starved val/test classes, "
    "sizes and formats, unreadable files, exact and near duplicates (leakage across splits, label "
    "conflicts, mirrored copies), image quality (dark, bright, blurry, low information, near-constant, odd size or aspect, "
    "grayscale), for crop datasets crop sizes, upscaling and letterbox fill, and for detection trees (YOLO, "
    "COCO) boxes per image and label, box sizes, images without boxes and starved val labels.\n\n"
    "Checks (each usable in --fail-on): empty-class, missing-label, small-class, below-minimum, imbalance, corrupt, "
    "ext-mismatch, manifest-drift, leakage, mirror-leakage, duplicates, label-conflict, dark, bright, blurry, "
    "low-info, "
    "near-constant, odd-size, odd-aspect, grayscale, tiny-crop, upscaled, mostly-fill, no-boxes, tiny-box, "
    "few-val-boxes, crowded-image; or all.\n\n"
    "Exit code: 0, or 1 when a --fail-on rule found something, 2 on bad input.\n\n"
    "Examples:\n\n"
    "  curate report data/oi\n\n"
    "  curate report data/oi --out reports/oi     # report.html + report.json\n\n"
    "  curate report data/oi --fail-on leakage,corrupt,empty-class     # in CI\n\n"
    "  curate report data/oi --threshold blurry=10 --threshold small-class=20\n\n"
    "  curate report s3://bucket/oi --out s3://bucket/reports/oi     # object store (needs curate\\[s3])"
)


def register(app: typer.Typer) -> None:
    app.command("report", help=HELP, short_help="Dataset QA report (HTML + JSON); --fail-on rules for CI.")(report)


# Path params with path_type=str: still paths to `curate run`, but s3:// URLs arrive intact
def report(
    root: Path = typer.Argument(..., path_type=str, help="Root of the tree (split folders or class folders), or an s3:// URL."),
    out: Path = typer.Option(None, "--out", "-o", path_type=str,
                            help="Folder (or s3:// prefix) for report.html + report.json, or a .html path "
                                 "(default: ROOT/.curate/report; ./NAME-report for an s3:// tree)."),
    fail_on: list[str] = typer.Option([], "--fail-on",
                                      help="Comma-separated checks that make the exit code 1 when they "
                                           "find anything; 'all' for every check."),
    threshold: list[str] = typer.Option([], "--threshold", "-t",
                                        help="Override a check's threshold: CHECK=VALUE or "
                                             "CHECK.PARAM=VALUE (repeatable)."),
    no_duplicates: bool = typer.Option(False, "--no-duplicates", help="Skip duplicate search."),
    per_label: int = typer.Option(12, "--samples", min=0, help="Thumbnails per label in the grid."),
    workers: int = common.workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
    seed: int = common.seed_option(),
) -> None:
    eng = common.engine_of(engine, workers, ray_address)

    common.reading(as_location(root))
    res = report_api.build_report(as_location(root), as_location(out) if out else None, workers=workers, engine=eng, quiet=common.state().quiet,
                       fail_on=fail_on, thresholds=threshold, duplicates=not no_duplicates,
                       per_label=per_label, seed=seed)
    if res.report["duplicates"]["warning"]:
        common.warn(res.report["duplicates"]["warning"])
    checks = res.report["checks"]
    found = ", ".join(f"{n} ({checks[n]['count']})" for n in res.fired) or "none"
    common.out.print(f"{res.images} images, {res.unreadable} unreadable; issues: {found}")
    common.out.print(f"report: {res.html_path}")
    common.out.print(f"json:   {res.json_path}")
    if res.fired_rules:
        common.err(f"--fail-on rule(s) fired: {', '.join(res.fired_rules)}")
        raise typer.Exit(1)
    raise typer.Exit(0)
