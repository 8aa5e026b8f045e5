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
from curate.core.storage import as_location, is_url, scan, write_bytes
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
    """(html, json): OUT/report.html + OUT/report.json, or OUT.html + OUT.json when OUT ends in .html.
    An object-store tree (s3://…) reports by default into ./<tree name>-report/; OUT may be a URL."""

    if is_url(root) or is_url(out or ""):
        return _url_output_paths(root, out)
    if out is None:
        folder = state_dir(root) / "report"
        return folder / "report.html", folder / "report.json"
    out = Path(out).resolve()
    html_path, json_path = ((out, out.with_suffix(".json")) if out.suffix.lower() in (".html", ".htm")
                            else (out / "report.html", out / "report.json"))
    root = root.resolve()
    for folder in detect_splits(root).values():
        split_root = root / folder if folder else root
        if html_path.parent == split_root or split_root in html_path.parents:
            raise InputError(f"--out {out} is inside the tree's split folder {split_root}",
                             "write the report outside split folders (the default is ROOT/.curate/report)")
    if html_path.parent.exists() and not html_path.parent.is_dir():
        raise InputError(f"--out {html_path.parent} is not a folder", "pass a folder or a .html path")
    return html_path, json_path


def _url_output_paths(root, out) -> tuple[Path | str, Path | str]:

    if out is None:
        out = Path(str(root).rstrip("/").rsplit("/", 1)[-1] + "-report").resolve()
    out = as_location(out)
    text = str(out)
    if text.lower().endswith((".html", ".htm")):
        html_path, json_path = out, (text.rsplit(".", 1)[0] + ".json" if is_url(out) else out.with_suffix(".json"))
    elif is_url(out):
        html_path, json_path = f"{text}/report.html", f"{text}/report.json"
    else:
        html_path, json_path = out / "report.html", out / "report.json"
    if is_url(root) and is_url(out):
        for folder in scan(root).split_dirs.values():
            split_root = f"{root}/{folder}" if folder else str(root)
            if str(html_path).startswith(split_root + "/"):
                raise InputError(f"--out {out} is inside the tree's split folder {split_root}",
                                 "write the report outside split folders")
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
