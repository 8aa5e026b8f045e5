"""`curate resplit`: merge splits and deal them again, stratified and group-aware, undoable."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from curate.commands import common
from curate.core.lazy import lazy
from curate.core.storage import as_location

resplit_api = lazy("curate.resplit")

ORDER = 21

HELP = """Merge some splits and split them again: stratified per label, deterministic with --seed.

Near-duplicate clusters (found on the fly with the dedupe hashes, or the manifest's `cluster`) and crops
of one source image (manifest `source_id`) always land in one split. Evaluation splits get at least
--min-per-class files per label; a label too small for that gets one file in train, then the
evaluation splits in order up to the minimum, the rest in train: what there is is dealt, one warning
line lists the labels short of the minimum, and the run goes on (exit 0).

Split folders named valid/ or validation/ count as val and keep their names. Moves are journaled:
`curate resplit --undo DIR` puts every file back byte-identical. manifest.parquet is updated.

Examples:

  curate resplit data/coins --merge val,test --ratios 0.5,0.5 --dry-run

  curate resplit data/coins --ratios 0.8,0.1,0.1 --min-per-class 4 --seed 1

  curate resplit data/coins --merge train,valid --into train,val,test --ratios 0.8,0.1,0.1

  curate resplit --undo data/coins

  curate resplit s3://bucket/coins --ratios 0.8,0.1,0.1   (object stores: moves are copy, verify, delete)
"""


def register(app: typer.Typer) -> None:
    app.command("resplit", help=HELP)(resplit)


def resplit(
    root: Path = typer.Argument(..., path_type=str, help="Root of a tree with split folders, or an s3:// URL."),
    ratios: str = typer.Option(None, "--ratios", "-r", help="One ratio per target split, e.g. 0.8,0.1,0.1."),
    merge: str = typer.Option(None, "--merge", "-m", help="Splits to pool (default: all)."),
    into: str = typer.Option(None, "--into", help="Target splits (default: the merged ones, or train,val,test)."),
    min_per_class: int = typer.Option(0, "--min-per-class", help="Minimum files per label in each evaluation split."),
    no_dedupe: bool = typer.Option(False, "--no-dedupe-groups",
                                   help="Do not compute near-duplicate groups (manifest groups still apply)."),
    threshold: int = typer.Option(None, "--threshold", "-t", help="Near-duplicate threshold for the groups."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the before/after table; move nothing."),
    undo: bool = common.undo_options("resplit")[0],
    force: bool = common.undo_options("resplit")[1],
    seed: int = common.seed_option(),
    workers: int = common.workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
) -> None:

    eng = common.engine_of(engine, workers, ray_address)
    root = as_location(root)
    common.check_force(force, undo)
    if undo:
        with common.writing(root):
            _undo(root, force)
    if ratios is None:
        raise typer.BadParameter("--ratios is required (e.g. --ratios 0.8,0.1,0.1)", param_hint="--ratios")
    opts = dict(ratios=ratios, merge=merge, into=into, min_per_class=min_per_class, seed=seed,
                dedupe_groups=not no_dedupe, threshold=threshold, workers=workers, engine=eng)
    with common.guard(root, read_only=dry_run):  # a dry run only plans
        _resplit(root, dry_run, opts)


def _resplit(root, dry_run: bool, opts: dict) -> None:
    """Plan, print the table and (unless dry_run) move; ends with typer.Exit."""

    plan = resplit_api.plan_resplit(root, quiet=common.state().quiet, **opts)
    min_per_class = opts["min_per_class"]
    table = plan.table()
    if dry_run or common.state().verbose:
        _print_table(table)
    totals = table.sum()
    before = ", ".join(f"{c.split(':')[1]} {totals[c]}" for c in table.columns if c.startswith("before:"))
    after = ", ".join(f"{c.split(':')[1]} {totals[c]}" for c in table.columns if c.startswith("after:"))
    common.out.print(f"{', '.join(plan.pool)} → {', '.join(plan.targets)}: before {before}; after {after}",
                     soft_wrap=True)
    common.out.print(f"groups kept whole: {plan.group_source}; {len(plan.moves())} files change split",
                     soft_wrap=True)
    short = resplit_api.below_minimum(plan)
    if short:  # dealt what there is; the report's below-minimum check lists them as a warning
        labels = sorted({r["label"] for r in short})
        shown = ", ".join(f"{r['label']} ({r['split']} {r['count']})" for r in short[:8])
        many = "labels have" if len(labels) > 1 else "label has"
        common.warn(f"{len(labels)} {many} fewer than {min_per_class} files in an evaluation split and got what "
                    f"there is: {shown}{' …' if len(short) > 8 else ''}")
    if plan.outside_groups:
        common.warn(f"{plan.outside_groups} duplicate groups also have files in splits not merged: that "
                    "leakage remains (run curate dedupe)")
    if dry_run:
        common.out.print("dry run: nothing moved", soft_wrap=True)
        raise typer.Exit(0)
    moved, journal = resplit_api.apply_resplit(plan, quiet=common.state().quiet)
    if moved:
        common.out.print(f"moved {moved} files; undo with: curate resplit --undo {shlex.quote(str(root))}", soft_wrap=True)
    raise typer.Exit(0)


def _print_table(table) -> None:
    t = common.table("label", *[c for c in table.columns], show_edge=False)
    for label, row in table.iterrows():
        t.add_row(str(label), *[str(v) for v in row.tolist()])
    total = table.sum()
    t.add_row("total", *[str(v) for v in total.tolist()], style="bold")
    common.out.print(t)


def _undo(root: Path, force: bool = False) -> None:

    rep = resplit_api.undo_resplit(root, force)
    common.out.print(f"restored {rep.restored} files from {rep.journal}", soft_wrap=True)
    if rep.never_moved:
        common.warn(f"{len(rep.never_moved)} planned moves never happened (the resplit run stopped before them); "
                    "those files are where they were")
    if rep.torn:
        common.warn(f"skipped {rep.torn} torn journal line(s) (a crash mid-write)")
    for p in rep.files_changed_since:
        common.warn(f"{p} changed since resplit; left as it is")
    for p in rep.missing + rep.conflicts:
        common.err(f"not restored: {p}")
    if not rep.ok and not force:
        common.err(f"undo stopped there: fix those and undo again, or `curate resplit --undo --force {shlex.quote(str(root))}` "
                   "to restore the rest")
    raise typer.Exit(0 if rep.ok else 1)
