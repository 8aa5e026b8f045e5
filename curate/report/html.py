"""report.html: one self-contained page (inline CSS, charts and thumbnails as data: URIs, no scripts).

The markup is in templates/ (jinja2, autoescaped); this module decides what each section shows. Only HTML
and data: URIs made by curate itself (charts, thumbnails, the dedupe sheet) are marked safe.
"""

from __future__ import annotations

from functools import cache

import jinja2
import numpy as np
from markupsafe import Markup

from curate.core.labelnames import with_name
from curate.dedupe.sheet import CSS as SHEET_CSS
from curate.dedupe.sheet import sheet_fragment, shown_paths
from curate.report import charts
from curate.report.build import Analysis
from curate.report.checks import SCORE_NAMES, SEVERITIES
from curate.report.checks.crops import fill_share
from curate.report.checks.detection import html_body

WORST = 12  # thumbnails shown per issue
MAX_CLUSTERS = 40  # mirrored pairs shown
MAX_ROWS = 200  # rows of a findings table
COMPACT_LABELS = 30  # past this many labels the sample grid uses small thumbnails
NAV = (("summary", "Summary"), ("checks", "Checks"), ("counts", "Counts"), ("balance", "Balance"),
       ("files", "Files"), ("duplicates", "Duplicates"), ("quality", "Quality"), ("crops", "Crops"),
       ("detection", "Boxes"), ("samples", "Samples"))


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("curate.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(thousands=lambda n: f"{n:,}")
    return env


@cache
def _macros():
    return _env().get_template("macros.html.j2").module


def _ours(text: str | None) -> Markup | None:
    """A data: URI or HTML fragment that curate made (never a user string): safe as it is."""
    return None if text is None else Markup(text)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def _short(path: str) -> str:
    """split folder / file name: the label is the heading already."""
    parts = path.split("/")
    return "/".join([parts[0], parts[-1]]) if len(parts) > 2 else parts[-1]


def _figure(path: str, uri: str | None, caption: str = "", score: str = "") -> dict:
    return {"path": path, "uri": _ours(uri), "caption": caption or path, "score": score}


def _table(rows: list[dict], cols: list[str] | None = None, limit: int = MAX_ROWS) -> dict:
    """Cells as (text, is a number); long column names wrap at their spaces."""
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    body = [[(_fmt(r.get(c, "")), isinstance(r.get(c), int | float)) for c in cols] for r in rows[:limit]]
    return {"head": [c.replace("_", " ") for c in cols], "rows": body, "more": max(0, len(rows) - limit)}


# table, _check_block and _passed give plain str (str + Markup would escape the str): checks/detection.py
# joins them into its section's HTML.
def table(rows: list[dict], cols: list[str] | None = None, limit: int = MAX_ROWS) -> str:
    return str(_macros().table(_table(rows, cols, limit)))


def wanted_thumbnails(a: Analysis, doc: dict) -> list[str]:
    """Every path the page shows as a thumbnail."""
    paths = [p for ps in doc["samples"].values() for p in ps]
    for check, findings in a.results.values():
        if check.group in ("quality", "crops"):
            paths += [f["path"] for f in findings[:WORST]]
    paths += shown_paths(doc["duplicates"]["clusters"])  # the dedupe contact sheet's files
    for f in doc["checks"].get("mirror-leakage", {}).get("findings", [])[:MAX_CLUSTERS]:
        paths += f["members"]
    return paths


def _by_severity(doc: dict) -> list[tuple[str, dict]]:
    """Checks with findings first (errors, warnings, notes; most findings first), then the passed ones."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(doc["checks"].items(), key=lambda kv: (not kv[1]["fired"], rank.get(kv[1].get("severity"), 1),
                                                         -kv[1]["count"], kv[0]))


def _fired_first(doc: dict, names) -> list[str]:
    """The checks among `names` that found something, worst severity and most findings first."""
    order = [n for n, _ in _by_severity(doc)]
    return [n for n in order if n in names and doc["checks"][n]["fired"]]


def _check(name: str, c: dict, doc: dict | None = None) -> dict:
    """One check's heading fields (with `doc`: also fail-on and what its count counts)."""
    out = {"name": name, "title": c["title"], "fired": c["fired"], "count": c["count"],
           "severity": c.get("severity", "warning"), "description": c["description"]}
    if doc is not None:
        out.update(gate=name in doc["fail_on"], unit=_unit(name, c, doc))
    return out


def _check_block(name: str, c: dict, body: str) -> str:
    """A check's heading and description above `body` (HTML made by curate)."""
    return str(_macros().check(_check(name, c), _ours(body)))


def _passed_items(doc: dict, names) -> list[tuple[str, str]]:
    return [(n, doc["checks"][n]["title"]) for n in names if n in doc["checks"] and not doc["checks"][n]["fired"]]


def _passed(doc: dict, names) -> str:
    """One line for the checks of a section that found nothing (each keeps its #check- anchor)."""
    return str(_macros().passed(_passed_items(doc, names)))


def _worst(findings: list[dict], thumbs: dict, name: str) -> dict:
    what = SCORE_NAMES.get(name, "score")
    figs = [_figure(f["path"], thumbs.get(f["path"]), f["path"], f"{what} {_fmt(f['score'])}")
            for f in findings[:WORST]]
    return {"figs": figs, "total": len(findings)}


def _checks(doc: dict, names, kind: str, thumbs: dict | None = None) -> dict:
    """A section's checks; `kind` is how findings show: "table", "worst" (thumbnails) or "none"."""
    fired = []
    for n in _fired_first(doc, names):
        b, findings = _check(n, doc["checks"][n]), doc["checks"][n]["findings"]
        b["body"] = (_table(findings) if kind == "table" else _worst(findings, thumbs, n) if kind == "worst"
                     else None)
        fired.append(b)
    return {"kind": kind, "fired": fired, "passed": _passed_items(doc, names)}


def _unit(name: str, c: dict, doc: dict) -> str:
    """What a count counts, with the share of all images for file-level checks."""
    n = c["count"]
    if c["group"] == "duplicates":
        return "pair" + ("s" if n != 1 else "") if name == "mirror-leakage" else "cluster" + ("s" if n != 1 else "")
    if c["group"] == "splits":
        return "split" + ("s" if n != 1 else "") if name == "imbalance" else "(split, label) pair" + ("s" if n != 1 else "")
    if name == "manifest-drift":
        return "files/rows"
    total = doc["summary"]["images"]
    share = f" ({n / total:.1%} of images)" if total and n else ""
    return ("file" if n == 1 else "files") + share


def _overview(doc: dict) -> dict:
    """The top of the page: size of the dataset, then every problem found, worst first."""
    s = doc["summary"]
    cards = [("images", s["images"]), ("unreadable", s["unreadable"]), ("labels", s["labels"])]
    cards += [(f"{sp} images", doc["splits"][sp]["images"]) for sp in doc["counts"]]
    if doc["duplicates"]["source"] != "off":
        cards.append(("redundant copies", doc["duplicates"]["redundant_files"]))
    fired = [_check(n, c, doc) for n, c in _by_severity(doc) if c["fired"]]
    tally = {sev: sum(1 for c in fired if c["severity"] == sev) for sev in SEVERITIES}
    parts = [f'{tally[sev]} {sev}{"s" if tally[sev] != 1 and sev != "info" else ""}' for sev in SEVERITIES if tally[sev]]
    return {"cards": cards, "fired": fired, "tally": parts}


def _cell(n: int, split: str, small: int) -> tuple[int, str]:
    """A count and its class: red when zero, yellow when a val/test split has fewer than `small` images."""
    return n, "n zero" if n == 0 else ("n low" if split != "train" and n < small else "n")


def _counts(doc: dict) -> dict:
    labels, counts, splits = doc["labels"], doc["counts"], doc["splits"]
    names = doc.get("label_names", {})
    small = doc["checks"].get("small-class", {}).get("params", {}).get("min_images", 0)
    rows = []
    for lab in labels:
        cells = [_cell(counts[sp].get(lab, 0), sp, small) for sp in counts]
        rows.append({"label": with_name(lab, names), "cells": cells, "total": sum(n for n, _ in cells)})
    per_split = _table([{"split": sp, "images": splits[sp]["images"], "labels with images": splits[sp]["labels"],
                         "imbalance (max/min)": splits[sp]["imbalance_ratio"] or "-",
                         "labels missing": len(splits[sp]["missing_labels"])} for sp in counts])
    return {"per_split": per_split, "chart": _ours(charts.counts_chart(counts, labels)) if labels else None,
            "all_bars": len(labels) if len(labels) > charts.MAX_BARS else 0, "small": _fmt(small) if small else "",
            "splits": list(counts), "rows": rows, "images": [splits[sp]["images"] for sp in counts],
            "ratios": [_fmt(splits[sp]["imbalance_ratio"] or "-") for sp in counts]}


def _files(a: Analysis, doc: dict) -> dict:
    df = a.ctx.readable
    d = doc["distributions"]
    w, h = df["width"].astype("float64").to_numpy(), df["height"].astype("float64").to_numpy()
    img = charts.histograms([
        {"values": w, "title": "width (px)", "log": True},
        {"values": h, "title": "height (px)", "log": True},
        {"values": w / np.maximum(h, 1), "title": "aspect ratio (w/h)", "log": True},
        {"values": a.ctx.images["size"].astype("float64").to_numpy() / 1024, "title": "file size (KiB)", "log": True},
    ], cols=4)
    measures = [{"measure": k, **v} for k in ("width", "height", "aspect_ratio", "megapixels", "file_size")
                if (v := d[k])]
    return {"chart": _ours(img), "measures": _table(measures),
            "formats": _table([{"format": k, "images": v} for k, v in d["formats"].items()]),
            "modes": _table([{"mode": k, "images": v} for k, v in d["modes"].items()]),
            "checks": _checks(doc, ("corrupt", "ext-mismatch", "manifest-drift"), "table")}


def _duplicates(a: Analysis, doc: dict, thumbs: dict) -> dict:
    dup, checks = doc["duplicates"], doc["checks"]
    where = dict(zip(a.ctx.images["path"], zip(a.ctx.images["split"], a.ctx.images["label"], strict=True),
                     strict=True))
    sheet = _ours(sheet_fragment(dup["clusters"], thumbs, where)) if dup["clusters"] else ""
    mirror = None
    if "mirror-leakage" in checks:
        findings = checks["mirror-leakage"]["findings"]
        pairs = [{"splits": f["splits"], "labels": f["labels"], "label_conflict": f["label_conflict"],
                  "distance": f["distance"], "similarity": _fmt(f["similarity"]),
                  "figs": [_figure(p, thumbs.get(p)) for p in f["members"]]} for f in findings[:MAX_CLUSTERS]]
        mirror = {**_check("mirror-leakage", checks["mirror-leakage"]), "body": {"pairs": pairs, "total": len(findings)}}
    return {"checks": _checks(doc, ("leakage", "label-conflict", "duplicates"), "none"), "sheet": sheet,
            "mirror": mirror}


def _per_label(doc: dict) -> dict:
    """Label profiles and issue counts side by side: a property that differs by class is a shortcut."""
    issues = doc["issues_per_label"]
    names = sorted({n for row in issues.values() for n in row})
    rows = []
    for label, prof in doc["label_profile"].items():
        row = {"label": label, **{k: v for k, v in prof.items() if k != "formats"},
               "formats": ", ".join(f"{k} {v}" for k, v in prof["formats"].items())}
        row.update({n: issues.get(label, {}).get(n, 0) for n in names})
        rows.append(row)
    return _table(rows, limit=len(rows))


def _quality(a: Analysis, doc: dict, thumbs: dict) -> dict:
    df = a.ctx.readable
    p = {n: doc["checks"][n]["params"] for n in doc["checks"]}

    def first(name):
        return next(iter(p[name].values())) if name in p else []

    img = charts.histograms([
        {"values": df["dark_p99"], "title": "luma 99th percentile (dark)", "threshold": first("dark")},
        {"values": df["bright_p5"], "title": "luma 5th percentile (bright)", "threshold": first("bright")},
        {"values": df["contrast"], "title": "luma std (near-constant)", "threshold": first("near-constant")},
        {"values": df["entropy"], "title": "entropy, bits (low-info)", "threshold": first("low-info")},
        {"values": df["sharpness"], "title": "Laplacian variance (blurry)", "log": True,
         "threshold": first("blurry")},
        {"values": df["colorfulness"], "title": "colour spread (grayscale)", "threshold": first("grayscale")},
    ])
    names = [n for n, c in doc["checks"].items() if c["group"] == "quality"]
    return {"chart": _ours(img), "per_label": _per_label(doc), "checks": _checks(doc, names, "worst", thumbs)}


def _crops(a: Analysis, doc: dict, thumbs: dict) -> dict:
    cr = doc["crops"]
    df = a.ctx.readable
    df = df[df["scale"].notna()]
    side = np.minimum(df["crop_w"].astype("float64"), df["crop_h"].astype("float64"))
    img = charts.histograms([
        {"values": side, "title": "crop shorter side (source px)", "log": True,
         "threshold": doc["checks"].get("tiny-crop", {}).get("params", {}).get("min_side", [])},
        {"values": df["scale"].astype("float64"), "title": "scale (output/source px)", "log": True,
         "threshold": [1.0]},
        {"values": fill_share(df), "title": "letterbox fill share"},
    ])
    per = [{"label": k, **{c: (", ".join(f"{n} ({m})" for n, m in x.items()) if isinstance(x, dict) else x)
                          for c, x in v.items()}} for k, v in cr["per_label"].items()]
    names = [n for n, c in doc["checks"].items() if c["group"] == "crops"]
    return {"crops": cr["crops"], "upscaled": f"{cr['upscaled_share']:.1%}",
            "letterboxed": f"{cr['letterboxed_share']:.1%}", "fill": f"{(cr['fill_share'] or {}).get('mean', 0):.1%}",
            "chart": _ours(img), "per_label": _table(per), "checks": _checks(doc, names, "worst", thumbs)}


def _samples(doc: dict, thumbs: dict) -> dict:
    names = doc.get("label_names", {})
    rows = [{"label": with_name(lab, names), "images": sum(doc["counts"][sp].get(lab, 0) for sp in doc["counts"]),
             "figs": [_figure(p, thumbs.get(p), _short(p)) for p in ps]} for lab, ps in doc["samples"].items()]
    return {"rows": rows, "compact": len(rows) > COMPACT_LABELS}  # many labels: smaller thumbnails


def render(a: Analysis, doc: dict, thumbs: dict[str, str | None]) -> str:
    s, dup = doc["summary"], doc["duplicates"]
    balance = ("empty-class", "missing-label", "small-class", "below-minimum", "imbalance")
    page = {"doc": doc, "s": s, "name": s.get("name") or doc["root"], "dup": dup, "sheet_css": _ours(SHEET_CSS),
            "overview": _overview(doc), "rules": [_check(n, c, doc) for n, c in _by_severity(doc)],
            "counts": _counts(doc), "balance": _checks(doc, balance, "table"), "files": _files(a, doc),
            "duplicates": _duplicates(a, doc, thumbs) if dup["source"] != "off" else None,
            "quality": _quality(a, doc, thumbs), "crops": _crops(a, doc, thumbs) if doc["crops"] else None,
            "detection": None, "samples": _samples(doc, thumbs)}
    if doc.get("detection"):

        page["detection"] = _ours(html_body(a, doc))
    page["nav"] = [(i, t) for i, t in NAV if page.get(i, True)]  # no link to a section that is not there
    return _env().get_template("report.html.j2").render(page)
