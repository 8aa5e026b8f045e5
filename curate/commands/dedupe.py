"""`curate dedupe`: exact and near-duplicate removal (quarantine + journal), leakage across splits."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from curate.commands import common
from curate.core.labelnames import label_names, with_name
from curate.core.lazy import lazy
from curate.core.storage import as_location, is_url, require_dir
from curate.core.tree import json_bytes
from curate.engine.executor import make_executor

apply = lazy("curate.dedupe.apply")  # pandas, OpenCV: when the command runs
sheet_api = lazy("curate.dedupe.sheet")

ORDER = 20

HELP = """Find exact and near-duplicate images in a tree and move the extra copies to a quarantine.

Exact duplicates (same bytes, then same decoded pixels) come first; near duplicates are images whose
perceptual hashes differ by at most --threshold bits AND that verification confirms as one photo: after
aligning the two, their fine structure (gradients, block by block) must agree, so another photo of the
same coin, the other face, or a different object on the same background stays apart. The pairs are
searched on a code fitted to the set (its central region's main variations), so a set of look-alikes
on one background does not make every image a candidate of every other. Two images of at most 64 px
(thumbnails, icons) have too little detail for that: they are copies only when their 8 x 8 colour
layouts agree (re-encodes, resizes and a uniform colour shift; not crops or watermarks).

Clusters never chain: a cluster is one kept file plus the files verified directly against it. The kept
file is the best copy in the earliest split (train, then val, then test), then by --keep (largest =
most pixels, then bytes, then path; bytes; first).

Leakage is leakage: with --leakage train (default) every evaluation copy of a training file is removed,
whatever its label (a test image that was trained on is not a test image); val vs test likewise, the
later split's copy goes. --leakage report keeps them and only reports. Copies under different labels
inside one split are label conflicts: --conflicts keep (default) reports them and leaves them in place,
--conflicts drop quarantines every copy of such a cluster in that split.

Nothing is deleted: removed files are moved to a quarantine outside every split root (default
DIR.quarantine beside DIR) with a journal; `curate dedupe --undo DIR` puts them back byte-identical.
Writes DIR/dedupe.json, DIR/dedupe-pairs.csv and updates DIR/manifest.parquet.

--sheet PATH also writes a contact sheet: one self-contained HTML file (opens offline) showing each
near cluster's kept file beside its removed files with distance and similarity, label conflicts
first, then leakage, then the rest, and exact copies compactly (docs/dedupe.md).

DIR may be an s3:// (or gs://) prefix: moves become copy, verify (sha256), then delete; the journal
stays in the local cache dir with a copy in DIR.quarantine.journal/; caches never go into the bucket.

Exit code: 0; 1 when unreadable files or label conflicts were found (reported); 2 on bad input.

Examples:

  curate dedupe data/coins --dry-run

  curate dedupe data/coins --dry-run --sheet /tmp/coins-sheet.html

  curate dedupe data/coins --threshold 8 --keep first --workers 4

  curate dedupe data/coins --leakage report --json /tmp/dupes.json --dry-run

  curate dedupe data/coins --conflicts drop

  curate dedupe data/coins --dry-run --json - | jq .leakage_clusters

  curate dedupe --undo data/coins

  curate dedupe s3://bucket/coins --dry-run
"""


def register(app: typer.Typer) -> None:
    app.command("dedupe", help=HELP)(dedupe)


# Path params with path_type=str: still paths to `curate run`, but s3:// URLs arrive intact
def dedupe(
    root: Path = typer.Argument(..., path_type=str, help="Root of the tree (split folders or class folders), or an s3:// URL."),
    hash_name: str = typer.Option("phash", "--hash", help="Perceptual hash: phash, dhash, ahash, whash."),
    hash_size: int = typer.Option(8, "--hash-size", help="Hash side: 8 gives 64 bits."),
    threshold: int = typer.Option(None, "--threshold", "-t",
                                  help="Max Hamming distance of near duplicates (default 12 per 64 bits; 8 with --no-verify)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the pixel verification of near pairs."),
    keep: str = typer.Option("largest", "--keep", help="Copy kept per cluster: largest, bytes, first."),
    leakage: str = typer.Option("train", "--leakage", help="Across splits: train (remove eval copies) or report."),
    conflicts: str = typer.Option("keep", "--conflicts",
                                  help="Copies under other labels in one split: keep (report) or drop (quarantine all)."),
    quarantine: Path = typer.Option(None, "--quarantine", path_type=str, help="Where removed files go (default DIR.quarantine)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Report only; change nothing."),
    json_path: Path = typer.Option(None, "--json", path_type=str,
                                   help="Also write the report (and -pairs.csv) here; '-' prints the report JSON "
                                        "to stdout (the summary goes to stderr)."),
    sheet: Path = typer.Option(None, "--sheet", path_type=str,
                               help="Also write an HTML contact sheet of the clusters to this local file."),
    undo: bool = common.undo_options("dedupe")[0],
    force: bool = common.undo_options("dedupe")[1],
    workers: int = common.workers_option(),
    engine: str = common.engine_option(),
    ray_address: str = common.ray_address_option(),
) -> None:
    eng = common.engine_of(engine, workers, ray_address)
    root = as_location(root)
    quarantine = as_location(quarantine) if quarantine else None
    to_stdout = str(json_path) == "-"
    json_path = as_location(json_path) if json_path and not to_stdout else None

    def say(line: str) -> None:  # the human summary; on stderr when stdout carries the JSON report
        if to_stdout:
            common.info(line)
        else:
            common.out.print(line, soft_wrap=True)
    common.check_force(force, undo)
    opts = dict(dry_run=dry_run, quarantine=quarantine, hash_name=hash_name, hash_size=hash_size,
                threshold=threshold, verify=not no_verify, keep=keep, leakage=leakage, conflicts=conflicts,
                workers=workers, engine=eng)
    require_dir(root, "pass the root of an image tree (ROOT/<split>/<label>/<image> or ROOT/<label>/<image>)")
    with common.guard(root, read_only=dry_run and not undo):  # (the lock would make a missing ROOT)  # a dry run writes only its own cache
        if undo:
            _undo(root, force)
        _run(root, sheet, json_path, to_stdout, say, **opts)


def _run(root, sheet, json_path, to_stdout, say, **opts) -> None:
    """The dedupe run and its summary (ends with typer.Exit)."""
    dry_run, workers, engine = opts["dry_run"], opts["workers"], opts["engine"]
    names = _sheet_names(root, sheet)
    if engine.local:
        # the pool's fork server imports what every worker runs while this process imports the rest
        # (and the small-image pair search's k-d tree where the tree's first images are small)
        from curate.dedupe.small import looks_small

        make_executor(engine, workers, True).prestart("curate.dedupe.find", *["scipy.spatial"] * looks_small(root))
    res = apply.dedupe(root, json_path=json_path, quiet=common.state().quiet, **opts)
    verb = "would remove" if dry_run else "removed"
    for s in res.splits:
        line = (f"{s['split']}: {s['files']} → {s['kept']} kept ({s['removed']} {verb} "
                f"in {s['clusters']} clusters)")
        if s["unreadable"]:
            line += f", {s['unreadable']} unreadable"
        say(line)
    r = res.result
    exact = sum(c.kind == "exact" for c in r.clusters)
    say(f"{len(r.clusters)} clusters ({exact} exact, {len(r.clusters) - exact} near); "
        f"leakage: {res.leakage} clusters span splits; label conflicts: {res.label_conflicts}")
    rejected = int((~r.pairs["verified"]).sum()) if len(r.pairs) else 0
    turned = r.counts.colour + r.counts.prefilter + r.counts.small
    if rejected or turned:
        small = f" ({r.counts.small} of them small images)" if r.counts.small else ""
        say(f"{r.counts.candidates} candidate pairs: {turned} turned away by colour or fine structure{small}, "
            f"{r.counts.scored} compared on pixels, {rejected} of them kept apart")
    for p, reason in r.unreadable[:10]:
        common.warn(f"unreadable ({reason}), left in place: {p}")
    if len(r.unreadable) > 10:
        common.warn(f"… and {len(r.unreadable) - 10} more unreadable files (see dedupe.json)")
    for c in [c for c in r.clusters if c.label_conflict][:5]:
        labels = ", ".join(with_name(x, names) for x in c.labels)
        common.warn(f"label conflict ({labels}): {', '.join(c.members[:4])}")
    if dry_run:
        say("dry run: nothing moved" + ("" if json_path else " or written"))
    else:
        say(f"moved {res.moved} files to {res.quarantine}; undo with: curate dedupe --undo {shlex.quote(str(root))}")
    if sheet:
        _write_sheet(res, root, sheet, names, workers, engine)
        say(f"contact sheet: {sheet}")
    if to_stdout:
        sys.stdout.write(json_bytes(apply.report_json(res)).decode())
        sys.stdout.flush()
    raise typer.Exit(1 if r.unreadable or res.label_conflicts else 0)


def _sheet_names(root, sheet) -> dict[str, str]:
    """Checked before the run: the sheet is a local file. Label display names (for the sheet and the
    conflict lines): ROOT/classes.json or ROOT/cat_to_name.json (curate.core.labelnames)."""
    if sheet and is_url(sheet):
        raise typer.BadParameter("the sheet is a local file (the tree may be a URL)", param_hint="--sheet")
    if sheet and Path(sheet).is_dir():
        raise typer.BadParameter(f"{sheet} is a folder; pass a file name such as sheet.html", param_hint="--sheet")
    return label_names(root)



def _write_sheet(res, root, sheet, names, workers, engine) -> None:
    moved = None if res.dry_run else sheet_api.journal_locations(res.journal, root)
    sheet_api.write_sheet(res.result, root, sheet, names, moved=moved, dry_run=res.dry_run, workers=workers, engine=engine,
                quiet=common.state().quiet)


def _undo(root: Path | str, force: bool = False) -> None:
    rep = apply.undo_dedupe(root, force)
    common.out.print(f"restored {rep.restored} files from {rep.journal}", soft_wrap=True)
    if rep.never_moved:
        common.warn(f"{len(rep.never_moved)} planned moves never happened (the dedupe run stopped before them); "
                    "those files are where they were")
    if rep.torn:
        common.warn(f"skipped {rep.torn} torn journal line(s) (a crash mid-write)")
    for p in rep.files_changed_since:
        common.warn(f"{p} changed since dedupe; left as it is")
    for p in rep.missing:
        common.err(f"missing from the quarantine: {p}")
    for p in rep.conflicts:
        common.err(f"not restored (a file is in the way or its bytes changed): {p}")
    if not rep.ok and not force:
        common.err(f"undo stopped there: fix those and undo again, or `curate dedupe --undo --force {shlex.quote(str(root))}` "
                   "to restore the rest")
    raise typer.Exit(0 if rep.ok else 1)
