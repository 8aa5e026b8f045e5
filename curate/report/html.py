"""report.html: one self-contained page (inline CSS, charts and thumbnails as data: URIs, no scripts)."""

from __future__ import annotations

from html import escape

import numpy as np

from curate.dedupe_sheet import CSS as SHEET_CSS
from curate.dedupe_sheet import sheet_fragment, shown_paths
from curate.labelnames import with_name
from curate.report import charts
from curate.report.build import Analysis
from curate.report.checks import SCORE_NAMES, SEVERITIES
from curate.report.checks.crops import fill_share

WORST = 12  # thumbnails shown per issue
MAX_CLUSTERS = 40  # mirrored pairs shown
MAX_ROWS = 200  # rows of a findings table
COMPACT_LABELS = 30  # past this many labels the sample grid uses small thumbnails

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#24292f;color:#fff;padding:16px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9d1d9}header p.root{font-size:12px;color:#8b949e}nav{margin-top:8px}nav a{color:#9ecbff;margin-right:14px;text-decoration:none}
main{padding:8px 28px 40px;max-width:1400px}section{margin:26px 0}h2{border-bottom:2px solid #ddd;padding-bottom:4px}
h3{margin:18px 0 4px}table{border-collapse:collapse;margin:8px 0;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.zero{background:#fde2e1}td.low{background:#fff3cd}
.fired{color:#b42318;font-weight:600}.ok{color:#137333}.gate{background:#b42318;color:#fff;border-radius:3px;
padding:0 5px;font-size:12px}.muted{color:#666}.desc{color:#444;margin:2px 0 6px}
.grid{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0}figure{margin:0;width:136px;background:#fff;
border:1px solid #ddd;padding:3px;font-size:11px}figure img{display:block;margin:auto;max-width:128px;max-height:128px}
figcaption{word-break:break-all;color:#444}.cluster{border:1px solid #ddd;background:#fff;padding:6px;margin:8px 0}
.tag{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;margin-right:6px;background:#eee}
.tag.bad{background:#fde2e1;color:#b42318}.missing{width:128px;height:96px;display:flex;align-items:center;
justify-content:center;background:#eee;color:#888}.scroll{overflow:auto;max-width:100%;max-height:520px}
.scroll th{position:sticky;top:0;z-index:1}img.chart{max-width:100%;background:#fff;border:1px solid #ddd}
.sev{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;color:#fff}
.sev.error{background:#b42318}.sev.warning{background:#b54708}.sev.info{background:#5b6b7f}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}.card{background:#fff;border:1px solid #ddd;
padding:8px 14px;min-width:110px}.card b{display:block;font-size:22px}.verdict{font-size:16px;margin:10px 0}
.clusters{display:flex;flex-wrap:wrap;gap:0 10px;align-items:flex-start}.score{white-space:nowrap;color:#222}
.srow{display:flex;gap:10px;align-items:flex-start;border-top:1px solid #e5e5e5;padding-top:4px}
.srow h3{flex:none;width:210px;margin:4px 0;font-size:13px;word-break:break-word}
.srow .grid{flex:1;margin:0 0 4px}tr.passed td{color:#666}tr.passed .sev{opacity:.35}
.compact figure{width:84px}.compact figure img{max-width:76px;max-height:76px}
"""


def _e(v) -> str:
    return escape(str(v), quote=True)


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


def figure(path: str, uri: str | None, caption: str = "", score: str = "") -> str:
    """A thumbnail with its caption (escaped) and an optional score line that never breaks mid-number."""
    img = (f'<img src="{uri}" alt="{_e(path)}" title="{_e(path)}">' if uri
           else '<div class="missing">unreadable</div>')
    sc = f'<br><span class="score">{_e(score)}</span>' if score else ""
    cap = f"<figcaption>{_e(caption or path)}{sc}</figcaption>"
    return f"<figure>{img}{cap}</figure>"


def table(rows: list[dict], cols: list[str] | None = None, limit: int = MAX_ROWS) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols)  # lets long names wrap
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{_e(_fmt(r.get(c, "")))}</td>' if isinstance(r.get(c), int | float)
            else f"<td>{_e(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>"
        for r in rows[:limit])
    more = f'<p class="muted">… and {len(rows) - limit} more in report.json</p>' if len(rows) > limit else ""
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>{more}'


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


def _section(id_: str, title: str, body: str) -> str:
    return f'<section id="{id_}"><h2>{_e(title)}</h2>{body}</section>'


def _by_severity(doc: dict) -> list[tuple[str, dict]]:
    """Checks with findings first (errors, warnings, notes; most findings first), then the passed ones."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(doc["checks"].items(), key=lambda kv: (not kv[1]["fired"], rank.get(kv[1].get("severity"), 1),
                                                         -kv[1]["count"], kv[0]))


def _sev(c: dict) -> str:
    sev = c.get("severity", "warning")
    return f'<span class="sev {_e(sev)}">{_e(sev)}</span>'


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


def _overview(doc: dict) -> str:
    """The top of the page: size of the dataset, then every problem found, worst first, with links."""
    s = doc["summary"]
    cards = [("images", s["images"]), ("unreadable", s["unreadable"]), ("labels", s["labels"])]
    cards += [(f"{sp} images", doc["splits"][sp]["images"]) for sp in doc["counts"]]
    dup = doc["duplicates"]
    if dup["source"] != "off":
        cards.append(("redundant copies", dup["redundant_files"]))
    html = '<div class="cards">' + "".join(f'<div class="card"><b>{v:,}</b>{_e(k)}</div>' for k, v in cards) + "</div>"
    fired = [(n, c) for n, c in _by_severity(doc) if c["fired"]]
    tally = {sev: sum(1 for _, c in fired if c.get("severity") == sev) for sev in SEVERITIES}
    if not fired:
        html += '<p class="verdict ok">No check found anything.</p>'
    else:
        parts = [f'{tally[sev]} {_e(sev)}{"s" if tally[sev] != 1 and sev != "info" else ""}'
                 for sev in SEVERITIES if tally[sev]]
        html += f'<p class="verdict">Problems found by {len(fired)} of {len(doc["checks"])} checks: {", ".join(parts)}.</p>'
        rows = "".join(
            f'<tr><td>{_sev(c)}</td><td><a href="#check-{_e(n)}">{_e(c["title"])}</a>'
            + (' <span class="gate">fail-on</span>' if n in doc["fail_on"] else "")
            + f'</td><td class="n fired">{c["count"]:,}</td><td>{_e(_unit(n, c, doc))}</td></tr>'
            for n, c in fired)
        html += f"<table><tr><th>severity</th><th>issue</th><th>found</th><th></th></tr>{rows}</table>"
    if doc["failed"]:
        html += f'<p class="fired">--fail-on rule(s) fired: {_e(", ".join(doc["failed"]))} (exit code 1)</p>'
    if dup["warning"]:
        html += f'<p class="fired">{_e(dup["warning"])}</p>'
    return html


def _rules(doc: dict) -> str:
    rows = []
    for name, c in _by_severity(doc):
        state = f'<span class="fired">{c["count"]}</span>' if c["fired"] else '<span class="ok">0</span>'
        gate = ' <span class="gate">fail-on</span>' if name in doc["fail_on"] else ""
        rows.append(f'<tr{"" if c["fired"] else " class=passed"}><td><a href="#check-{_e(name)}">{_e(name)}</a>'
                    f'{gate}</td><td>{_sev(c)}</td><td>{_e(c["title"])}</td>'
                    f'<td class="n">{state}</td><td>{_e(c["description"])}</td></tr>')
    skipped = (f'<p class="muted">Not applicable here: {_e(", ".join(doc["skipped_checks"]))}</p>'
               if doc["skipped_checks"] else "")
    return ("<table><tr><th>check</th><th>severity</th><th>issue</th><th>found</th><th>rule</th></tr>"
            + "".join(rows) + "</table>" + skipped)


def _counts(doc: dict) -> str:
    labels, counts, splits = doc["labels"], doc["counts"], doc["splits"]
    names = doc.get("label_names", {})
    small = doc["checks"].get("small-class", {}).get("params", {}).get("min_images", 0)
    head = "<tr><th>label</th>" + "".join(f"<th>{_e(s)}</th>" for s in counts) + "<th>total</th></tr>"
    body = []
    for lab in labels:
        cells = []
        for s in counts:
            n = counts[s].get(lab, 0)
            cls = "n zero" if n == 0 else ("n low" if s != "train" and n < small else "n")
            cells.append(f'<td class="{cls}">{n}</td>')
        total = sum(counts[s].get(lab, 0) for s in counts)
        body.append(f"<tr><td>{_e(with_name(lab, names))}</td>{''.join(cells)}<td class='n'>{total}</td></tr>")
    foot = ("<tr><th>images</th>" + "".join(f"<th>{splits[s]['images']}</th>" for s in counts) + "<th></th></tr>"
            "<tr><th>imbalance (max/min)</th>"
            + "".join(f"<th>{_fmt(splits[s]['imbalance_ratio'] or '-')}</th>" for s in counts) + "<th></th></tr>")
    chart = (f'<p><img class="chart" alt="images per label and split" src="{charts.counts_chart(counts, labels)}"></p>'
             if labels else "")
    if len(labels) > charts.MAX_BARS:
        chart += (f'<p class="muted">All {len(labels)} labels, sorted by images (largest left); '
                  "the table has their names.</p>")
    per_split = table([{"split": sp, "images": splits[sp]["images"], "labels with images": splits[sp]["labels"],
                        "imbalance (max/min)": splits[sp]["imbalance_ratio"] or "-",
                        "labels missing": len(splits[sp]["missing_labels"])} for sp in counts])
    legend = (f'<p class="muted">Red: no images. Yellow: fewer than {_fmt(small)} images in a val/test split.</p>'
              if small else "")
    return (f"{per_split}{chart}<h3>Per label</h3>{legend}"
            f"<div class=\"scroll\"><table>{head}{''.join(body)}{foot}</table></div>")


def _files(a: Analysis, doc: dict) -> str:
    df = a.ctx.readable
    d = doc["distributions"]
    w, h = df["width"].astype("float64").to_numpy(), df["height"].astype("float64").to_numpy()
    img = charts.histograms([
        {"values": w, "title": "width (px)", "log": True},
        {"values": h, "title": "height (px)", "log": True},
        {"values": w / np.maximum(h, 1), "title": "aspect ratio (w/h)", "log": True},
        {"values": a.ctx.images["size"].astype("float64").to_numpy() / 1024, "title": "file size (KiB)", "log": True},
    ], cols=4)
    summ = [{"measure": k, **v} for k in ("width", "height", "aspect_ratio", "megapixels", "file_size")
            if (v := d[k])]
    fm = [{"format": k, "images": v} for k, v in d["formats"].items()]
    md = [{"mode": k, "images": v} for k, v in d["modes"].items()]
    return (f'<p><img class="chart" alt="size distributions" src="{img}"></p>{table(summ)}'
            f'<div class="grid"><div>{table(fm)}</div><div>{table(md)}</div></div>')


def _mirrors(findings: list[dict], thumbs: dict) -> str:
    rows = []
    for f in findings[:MAX_CLUSTERS]:
        tags = [f'<span class="tag bad">mirrored: {_e(", ".join(f["splits"]))}</span>']
        if f["label_conflict"]:
            tags.append(f'<span class="tag bad">labels: {_e(", ".join(f["labels"]))}</span>')
        tags.append(f'<span class="tag">distance {f["distance"]} · similarity {_fmt(f["similarity"])}</span>')
        figs = "".join(figure(p, thumbs.get(p)) for p in f["members"])
        rows.append(f'<div class="cluster">{"".join(tags)}<div class="grid">{figs}</div></div>')
    rows = [f'<div class="clusters">{"".join(rows)}</div>'] if rows else []
    if len(findings) > MAX_CLUSTERS:
        rows.append(f'<p class="muted">{MAX_CLUSTERS} of {len(findings)} pairs shown; all are in report.json.</p>')
    return "".join(rows)


def _check_block(name: str, c: dict, body: str) -> str:
    head = f'<h3 id="check-{_e(name)}">{_e(c["title"])} <span class="muted">({_e(name)})</span>: '
    head += f'<span class="{"fired" if c["fired"] else "ok"}">{c["count"]}</span>'
    head += f" {_sev(c)}</h3>" if c["fired"] else "</h3>"
    return f'{head}<p class="desc">{_e(c["description"])}</p>{body}'


def _passed(doc: dict, names) -> str:
    """One line for the checks of a section that found nothing (each keeps its #check- anchor)."""
    ok = [n for n in names if n in doc["checks"] and not doc["checks"][n]["fired"]]
    if not ok:
        return ""
    items = ", ".join(f'<span id="check-{_e(n)}">{_e(doc["checks"][n]["title"])} ({_e(n)})</span>' for n in ok)
    return f'<p class="ok passed">Found nothing: {items}.</p>'


def _fired_first(doc: dict, names) -> list[str]:
    """The checks among `names` that found something, worst severity and most findings first."""
    order = [n for n, _ in _by_severity(doc)]
    return [n for n in order if n in names and doc["checks"][n]["fired"]]


def _worst(findings: list[dict], thumbs: dict, name: str = "") -> str:
    if not findings:
        return '<p class="muted">none</p>'
    what = SCORE_NAMES.get(name, "score")
    figs = "".join(figure(f["path"], thumbs.get(f["path"]), f["path"], f"{what} {_fmt(f['score'])}")
                   for f in findings[:WORST])
    more = f'<p class="muted">worst {WORST} of {len(findings)} shown</p>' if len(findings) > WORST else ""
    return f'<div class="grid">{figs}</div>{more}'


def _per_label(doc: dict) -> str:
    """Label profiles and issue counts side by side: a property that differs by class is a shortcut."""
    issues = doc["issues_per_label"]
    names = sorted({n for row in issues.values() for n in row})
    rows = []
    for label, prof in doc["label_profile"].items():
        row = {"label": label, **{k: v for k, v in prof.items() if k != "formats"},
               "formats": ", ".join(f"{k} {v}" for k, v in prof["formats"].items())}
        row.update({n: issues.get(label, {}).get(n, 0) for n in names})
        rows.append(row)
    return ('<h3>Per label</h3><p class="desc">Size, format, tone and issues per label. A property that '
            "differs between labels (all of one class grayscale, or PNG, or small) is a shortcut a model "
            "can learn instead of the content.</p>" + table(rows, limit=len(rows)))


def _quality(a: Analysis, doc: dict, thumbs: dict) -> str:
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
    blocks = [f'<p><img class="chart" alt="quality measures" src="{img}"></p>'
              '<p class="muted">Red dashed lines are the thresholds.</p>', _per_label(doc)]
    names = [n for n, c in doc["checks"].items() if c["group"] == "quality"]
    for name in _fired_first(doc, names):
        blocks.append(_check_block(name, doc["checks"][name], _worst(doc["checks"][name]["findings"], thumbs, name)))
    return "".join(blocks) + _passed(doc, names)


def _crops(a: Analysis, doc: dict, thumbs: dict) -> str:
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
    lines = (f"<p>{cr['crops']} crops · upscaled (scale &gt; 1): <b>{cr['upscaled_share']:.1%}</b> · "
             f"letterboxed: <b>{cr['letterboxed_share']:.1%}</b> · mean fill share: "
             f"<b>{(cr['fill_share'] or {}).get('mean', 0):.1%}</b></p>")
    per = [{"label": k, **{c: (", ".join(f"{n} ({m})" for n, m in x.items()) if isinstance(x, dict) else x)
                          for c, x in v.items()}} for k, v in cr["per_label"].items()]
    blocks = [lines, f'<p><img class="chart" alt="crop distributions" src="{img}"></p>', table(per)]
    names = [n for n, c in doc["checks"].items() if c["group"] == "crops"]
    for name in _fired_first(doc, names):
        blocks.append(_check_block(name, doc["checks"][name], _worst(doc["checks"][name]["findings"], thumbs, name)))
    return "".join(blocks) + _passed(doc, names)


def render(a: Analysis, doc: dict, thumbs: dict[str, str | None]) -> str:
    s = doc["summary"]
    checks = doc["checks"]
    sections = [_section("summary", "Summary", _overview(doc)), _section("checks", "All checks", _rules(doc)),
                _section("counts", "Images per split and label", _counts(doc))]
    names = ("empty-class", "missing-label", "small-class", "below-minimum", "imbalance")
    split_checks = "".join(_check_block(n, checks[n], table(checks[n]["findings"]))
                           for n in _fired_first(doc, names)) + _passed(doc, names)
    sections.append(_section("balance", "Class balance", split_checks))
    names = ("corrupt", "ext-mismatch", "manifest-drift")
    file_checks = "".join(_check_block(n, checks[n], table(checks[n]["findings"]))
                          for n in _fired_first(doc, names)) + _passed(doc, names)
    sections.append(_section("files", "Sizes, formats and unreadable files", _files(a, doc) + file_checks))
    dup = doc["duplicates"]
    if dup["source"] != "off":
        note = f'<p class="fired">{_e(dup["warning"])}</p>' if dup["warning"] else ""
        head = (f"<p>{dup['exact_clusters']} exact and {dup['near_clusters']} near-duplicate clusters, "
                f"{dup['redundant_files']} redundant files.</p>{note}")
        names = ("leakage", "label-conflict", "duplicates")
        blocks = "".join(_check_block(n, checks[n], "") for n in _fired_first(doc, names)) + _passed(doc, names)
        where = dict(zip(a.ctx.images["path"], zip(a.ctx.images["split"], a.ctx.images["label"], strict=True),
                         strict=True))
        cl = sheet_fragment(dup["clusters"], thumbs, where) if dup["clusters"] else ""
        if "mirror-leakage" in checks:
            cl += _check_block("mirror-leakage", checks["mirror-leakage"],
                               _mirrors(checks["mirror-leakage"]["findings"], thumbs))
        sections.append(_section("duplicates", "Duplicates", head + blocks + cl))
    sections.append(_section("quality", "Image quality", _quality(a, doc, thumbs)))
    if doc["crops"]:
        sections.append(_section("crops", "Crops", _crops(a, doc, thumbs)))
    if doc.get("detection"):
        from curate.report.checks.detection import html_body

        sections.append(_section("detection", "Detection boxes", html_body(a, doc)))
    per = {lab: sum(doc["counts"][sp].get(lab, 0) for sp in doc["counts"]) for lab in doc["samples"]}
    names = doc.get("label_names", {})
    grid = "".join(f'<div class="srow"><h3>{_e(with_name(lab, names))} <span class="muted">({per[lab]:,})</span></h3><div class="grid">'
                   + "".join(figure(p, thumbs.get(p), _short(p)) for p in ps) + "</div></div>"
                   for lab, ps in doc["samples"].items())
    if len(doc["samples"]) > COMPACT_LABELS:  # many labels: smaller thumbnails, one row per label
        grid = f'<div class="compact">{grid}</div>'
    sections.append(_section("samples", "Samples per label", grid or '<p class="muted">none</p>'))
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("summary", "Summary"), ("checks", "Checks"), ("counts", "Counts"), ("balance", "Balance"), ("files", "Files"),
        ("duplicates", "Duplicates"), ("quality", "Quality"), ("crops", "Crops"), ("detection", "Boxes"), ("samples", "Samples"))
        if f'id="{i}"' in "".join(sections))  # no link to a section that is not there
    header = (f"<header><h1>curate report: {_e(s.get('name') or doc['root'])}</h1>"
              f"<p>{s['images']:,} images ({s['unreadable']:,} unreadable) · {s['labels']:,} labels · splits: "
              f"{_e(', '.join(s['splits']))} · manifest: {'yes' if s['manifest'] else 'no'} · "
              f"{len(doc['fired'])} of {len(doc['checks'])} checks found something</p>"
              f'<p class="root">{_e(doc["root"])} · {_e(doc["tool"])}</p><nav>{nav}</nav></header>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>curate report: {_e(doc['root'])}</title><style>{CSS}{SHEET_CSS}</style></head>"
            f"<body>{header}<main>{''.join(sections)}</main></body></html>\n")
