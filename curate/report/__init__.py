"""Dataset QA reports: `build_report(root)` writes report.json and a self-contained report.html.

Modules: measure (per-image measures, runs in workers), stats (cached measures of a tree), checks/
(one class per issue, registered by name), build (assembles everything), jsonout, html, charts, thumbs.
Heavy modules are imported inside build_report, so importing curate.report stays cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from curate.core.errors import InputError
from curate.core.layout import detect_splits
from curate.core.storage import as_location, is_url, join, scan, write_bytes
from curate.core.tree import atomic_write_bytes, atomic_write_text, state_dir
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
    if out is None:
        name = str(root).rstrip("/").rsplit("/", 1)[-1]
        out = Path(f"{name}-report").resolve() if is_url(root) else state_dir(root) / "report"
    out = as_location(out)
    out = out if is_url(out) else out.resolve()
    text = str(out)
    if text.lower().endswith((".html", ".htm")):
        html_path, json_path = out, (text.rsplit(".", 1)[0] + ".json" if is_url(out) else out.with_suffix(".json"))
    else:
        html_path, json_path = join(out, "report.html"), join(out, "report.json")
        html_path, json_path = (html_path, json_path) if is_url(out) else (Path(html_path), Path(json_path))
    if is_url(root) == is_url(out):  # a report beside the tree's files would be read as one of them
        splits = scan(root).split_dirs if is_url(root) else detect_splits(root.resolve())
        base = str(root).rstrip("/") if is_url(root) else str(root.resolve())
        for folder in splits.values():
            split_root = f"{base}/{folder}" if folder else base
            if str(html_path).startswith(split_root + "/"):
                raise InputError(f"--out {out} is inside the tree's split folder {split_root}",
                                 "write the report outside split folders (the default is ROOT/.curate/report)")
    if not is_url(html_path) and html_path.parent.exists() and not html_path.parent.is_dir():
        raise InputError(f"--out {html_path.parent} is not a folder", "pass a folder or a .html path")
    return html_path, json_path


def _shareable(*paths: Path) -> None:
    """Temp files are created 0600; a report is meant to be read by others (umask decides, like open())."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        os.chmod(p, 0o666 & ~mask)


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

    root = as_location(root)
    rules = parse_rules(fail_on)
    params = parse_overrides(thresholds)
    if not is_url(root) and not root.is_dir():
        raise InputError(f"{root} is not a folder", "pass the root of an image tree")
    html_path, json_path = output_paths(root, out)
    from curate.report.build import analyse  # imports curate.dedupe: when a report is built, not before

    a = analyse(root, workers=workers, engine=engine, quiet=quiet, params=params, duplicates=duplicates)
    doc = build_json(a, rules, per_label=per_label, seed=seed)
    thumbs = thumbnails(root, wanted_thumbnails(a, doc), workers=workers, engine=engine, quiet=quiet)
    page = render(a, doc, thumbs)
    text, html = json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n", page.encode("utf-8", "backslashreplace")
    if is_url(html_path):
        write_bytes(json_path, text.encode("utf-8"))
        write_bytes(html_path, html)
    else:
        try:
            atomic_write_text(json_path, text)
            atomic_write_bytes(html_path, html)  # odd bytes in file names
        except OSError as e:  # a read-only tree: its default report folder cannot be written
            raise InputError(f"cannot write the report to {html_path.parent}: {e.strerror or e}",
                             "pass --out with a writable folder") from e
        _shareable(json_path, html_path)
    return ReportResult(html_path, json_path, doc["failed"], doc["fired"], doc["summary"]["images"],
                        doc["summary"]["unreadable"], doc)
