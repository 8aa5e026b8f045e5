"""Dataset QA reports: `build_report(root)` writes report.json and a self-contained report.html.

Modules: measure (per-image measures, runs in workers), stats (cached measures of a tree), checks/
(one class per issue, registered by name), build (assembles everything), jsonout, html, charts, thumbs.
Heavy modules are imported inside build_report, so importing curate.report stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from curate.core import storage
from curate.core.errors import InputError
from curate.core.tree import state_dir
from curate.report.build import analyse
from curate.report.checks import parse_overrides, parse_rules
from curate.report.html import render, wanted_thumbnails
from curate.report.jsonout import build_json
from curate.report.thumbs import thumbnails


@dataclass
class ReportResult:
    html_path: Path
    json_path: Path
    fired_rules: list[str]  # --fail-on rules that found something (non-empty => exit 1)
    fired: list[str] = field(default_factory=list)  # every check that found something
    images: int = 0
    unreadable: int = 0
    report: dict = field(default_factory=dict, repr=False)  # the report.json document


def output_paths(root: Path | str, out: str | Path | None) -> tuple[Path | str, Path | str]:
    """(html, json): OUT/report.html + OUT/report.json, or OUT.html + OUT.json when OUT ends in .html;
    OUT a folder or an object-store prefix. By default ROOT's state folder/report, and for an
    object-store tree ./<tree name>-report/. Never inside one of the tree's split folders."""
    if out is None:  # an object-store tree's state folder is a hidden cache folder: its report goes to ./NAME-report
        out = Path(f"{storage.name(root)}-report") if storage.is_url(root) else state_dir(root) / "report"
    out = storage.resolved(out)
    if str(out).lower().endswith((".html", ".htm")):
        html_path, json_path = out, storage.with_suffix(out, ".json")
    else:
        html_path, json_path = (storage.as_location(storage.join(out, n)) for n in ("report.html", "report.json"))
    base = str(storage.resolved(root))
    if str(html_path).startswith(base + "/"):  # a report beside the tree's files would be read as one of them
        for folder in storage.split_dirs(root).values():
            split_root = f"{base}/{folder}" if folder else base
            if str(html_path).startswith(split_root + "/"):
                raise InputError(f"--out {out} is inside the tree's split folder {split_root}",
                                 "write the report outside split folders (the default is ROOT/.curate/report)")
    if storage.is_file(storage.parent(html_path)):
        raise InputError(f"--out {storage.parent(html_path)} is not a folder", "pass a folder or a .html path")
    return html_path, json_path


def build_report(
    root: str | Path,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    engine: str = "local",
    quiet: bool = False,
    fail_on=(),
    thresholds: list[str] | dict | None = None,
    duplicates: bool = True,
    per_label: int = 12,
    seed: int = 0,
) -> ReportResult:
    """Analyse the tree at `root` and write report.html + report.json; nothing in the tree changes.

    `fail_on`: check names (or "all") whose findings count as failures -> `fired_rules`.
    `thresholds`: overrides such as ["blurry=10", "small-class.min_images=20"].
    """

    root = storage.as_location(root)
    rules = parse_rules(fail_on)
    params = parse_overrides(thresholds)
    storage.require_dir(root, "pass the root of an image tree")
    html_path, json_path = output_paths(root, out)
    a = analyse(root, workers=workers, engine=engine, quiet=quiet, params=params, duplicates=duplicates)
    doc = build_json(a, rules, per_label=per_label, seed=seed)
    thumbs = thumbnails(root, wanted_thumbnails(a, doc), workers=workers, engine=engine, quiet=quiet)
    page = render(a, doc, thumbs)
    text, html = json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n", page.encode("utf-8", "backslashreplace")
    try:  # local files readable by others (umask), like open(): a report is meant to be shared
        storage.write_bytes(json_path, text.encode("utf-8"), shared=True)
        storage.write_bytes(html_path, html, shared=True)
    except OSError as e:  # a read-only tree: its default report folder cannot be written
        raise InputError(f"cannot write the report to {storage.parent(html_path)}: {e.strerror or e}",
                         "pass --out with a writable folder") from e
    return ReportResult(html_path, json_path, doc["failed"], doc["fired"], doc["summary"]["images"],
                        doc["summary"]["unreadable"], doc)
