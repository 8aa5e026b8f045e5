"""A contact sheet of dedupe's clusters: one self-contained HTML page to audit a run by eye.

Near clusters come first (label conflicts, then leakage across splits, then the rest): each kept file
beside the files removed or left in place, with the distance and similarity each was measured at against
the kept file (`Cluster.links`), its split and label. Exact copies follow compactly (one thumbnail and a
count per cluster). Thumbnails are data: URIs (no network, no scripts); sections are capped so a set with
thousands of clusters stays readable, with a count of what was left out. `sheet_fragment` is the part the
QA report embeds in its duplicates section.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from pathlib import Path

from curate.core import storage
from curate.core.lazy import lazy
from curate.core.tree import atomic_write_bytes
from curate.engine.executor import is_local, make_executor

report_thumbs = lazy("curate.report.thumbs")  # reduced-size decoding (curate.core.images), in the workers

SECTION_CAP = 150  # near clusters shown per section
MEMBER_CAP = 12  # files shown per near cluster (the kept one first)
EXACT_CAP = 400  # exact clusters shown
THUMB_SIDE = 112
CHUNK = 16
IN_PROCESS_BELOW = 300  # fewer thumbnails are made in-process: a pool starts in ~0.5 s, ~3 ms a thumbnail

SECTIONS = (
    ("conflicts", "Label conflicts", "Copies filed under different labels: at least one label is wrong."),
    ("leakage", "Leakage across splits", "Copies in more than one split: evaluation sees training data."),
    ("near", "Near duplicates within a split", "Re-encoded, resized, cropped or retouched copies."),
)

CSS = """
.ds-summary td,.ds-summary th{padding:2px 10px}
.ds-cluster{border:1px solid #ddd;background:#fff;padding:6px;margin:8px 0}
.ds-head{font-size:13px;margin-bottom:4px}.ds-tag{display:inline-block;border-radius:3px;padding:0 6px;
font-size:12px;margin-right:6px;background:#eee}.ds-tag.bad{background:#fde2e1;color:#b42318}
.ds-row{display:flex;flex-wrap:wrap;gap:8px}.ds-fig{margin:0;width:150px;background:#fafafa;border:1px solid #ddd;
padding:3px;font-size:11px;line-height:1.3}.ds-fig img{display:block;margin:auto;max-width:140px;max-height:140px}
.ds-fig figcaption{word-break:break-all;color:#333}.ds-kept{border:2px solid #137333}
.ds-removed{border:2px solid #b42318;opacity:.9}.ds-role{font-weight:600}.ds-kept .ds-role{color:#137333}
.ds-removed .ds-role{color:#b42318}.ds-missing{width:140px;height:100px;display:flex;align-items:center;
justify-content:center;background:#eee;color:#888}.ds-more{color:#666;margin:4px 0}
.ds-exact{display:flex;flex-wrap:wrap;gap:8px}.ds-exact .ds-fig{width:120px}.ds-exact .ds-fig img{max-width:110px;
max-height:110px}.ds-num{font-variant-numeric:tabular-nums}
"""

FRAGMENT = """
{%- macro fig(m) -%}
<figure class="ds-fig ds-{{ m.role }}">
{%- if m.uri %}<img src="{{ m.uri }}" alt="{{ m.path }}" title="{{ m.path }}">
{%- else %}<div class="ds-missing" title="{{ m.path }}">unreadable</div>{% endif -%}
<figcaption><span class="ds-role">{{ m.role_text }}</span> · {{ m.split }} · {{ m.label }}
{%- if m.name %} ({{ m.name }}){% endif %}<br>{{ m.file }}
{%- if m.score %}<br><span class="ds-num">{{ m.score }}</span>{% endif %}</figcaption></figure>
{%- endmacro -%}
<table class="ds-summary"><tr><th>section</th><th>clusters</th><th>files removed</th></tr>
{%- for s in sections %}<tr><td><a href="#ds-{{ s.id }}">{{ s.title }}</a></td><td class="ds-num">{{ s.total }}</td>
<td class="ds-num">{{ s.removed }}</td></tr>{% endfor %}</table>
{%- for s in sections %}
<h3 id="ds-{{ s.id }}">{{ s.title }}: {{ s.total }}</h3><p class="ds-more">{{ s.about }}</p>
{%- if s.id == "exact" %}<div class="ds-exact">
{%- for c in s.shown %}
<figure class="ds-fig">{% if c.uri %}<img src="{{ c.uri }}" alt="{{ c.keep }}" title="{{ c.keep }}">
{%- else %}<div class="ds-missing" title="{{ c.keep }}">unreadable</div>{% endif -%}
<figcaption><b>{{ c.size }} copies</b>, {{ c.removed }} removed<br>{{ c.splits }} · {{ c.labels }}
{%- if c.flags %}<br><span class="ds-tag bad">{{ c.flags }}</span>{% endif %}<br>{{ c.file }}</figcaption></figure>
{%- endfor %}</div>
{%- else %}
{%- for c in s.shown %}
<div class="ds-cluster"><div class="ds-head"><span class="ds-tag">cluster {{ c.id }}</span>
<span class="ds-tag">{{ c.size }} files, {{ c.removed }} removed</span>
{%- for t in c.flags %}<span class="ds-tag bad">{{ t }}</span>{% endfor %}</div>
<div class="ds-row">{% for m in c.members %}{{ fig(m) }}{% endfor %}</div>
{%- if c.more %}<p class="ds-more">+{{ c.more }} more files in this cluster (the JSON report lists them)</p>{% endif %}
</div>
{%- endfor %}
{%- endif %}
{%- if s.left_out %}<p class="ds-more">{{ s.shown|length }} of {{ s.total }} shown; {{ s.left_out }} more
clusters are in the JSON report.</p>{% endif %}
{%- if not s.total %}<p class="ds-more">none</p>{% endif %}
{%- endfor %}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>curate dedupe sheet: {{ root }}</title><style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 28px 40px;color:#222;background:#fafafa}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;text-align:left}{{ css }}</style></head>
<body><h1>curate dedupe: {{ root }}</h1>
<p>{{ files }} files · {{ clusters }} clusters · {{ removed }} {{ verb }} · params: {{ params }}</p>
<p class="ds-more">Green: the kept copy. Red: removed. Distance (bits of the perceptual hash) and similarity are
measured against the kept copy.</p>
{{ body }}
</body></html>
"""


def _env():
    import jinja2

    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def as_dicts(clusters) -> list[dict]:
    """Clusters (dataclasses or dicts) as shallow dicts: dataclasses.asdict deep-copies every list, and that
    cost most of the time of a sheet with thousands of clusters."""
    return [{f.name: getattr(c, f.name) for f in fields(c)} if is_dataclass(c) else dict(c) for c in clusters]


def sections(clusters: list[dict]) -> dict[str, list[dict]]:
    """Near clusters by section (conflicts, leakage, near) and the exact ones, biggest first."""
    out: dict[str, list[dict]] = {"conflicts": [], "leakage": [], "near": [], "exact": []}
    for c in clusters:
        if c["kind"] == "exact":
            out["exact"].append(c)
        else:
            out["conflicts" if c["label_conflict"] else "leakage" if c["cross_split"] else "near"].append(c)
    for name, cs in out.items():
        flagged = (lambda c: (not c["label_conflict"], not c["cross_split"])) if name == "exact" else (lambda c: ())
        cs.sort(key=lambda c: (*flagged(c), -len(c["members"]), c["members"][0]))
    return out


def _ordered_members(c: dict) -> list[str]:
    """The kept file first, then removed files, then the ones left in place (by path)."""
    removed = set(c.get("remove") or [])
    rest = [m for m in c["members"] if m != c["keep"]]
    return [c["keep"], *sorted(rest, key=lambda m: (m not in removed, m))]


def shown_paths(clusters) -> list[str]:
    """Every file the sheet shows as a thumbnail (within the caps)."""
    sec = sections(as_dicts(clusters))
    paths = [c["keep"] for c in sec["exact"][:EXACT_CAP]]
    for name in ("conflicts", "leakage", "near"):
        for c in sec[name][:SECTION_CAP]:
            paths += _ordered_members(c)[:MEMBER_CAP]
    return paths


def _where(path: str, where: dict) -> tuple[str, str]:
    if path in where:
        return where[path]
    parts = path.split("/")
    return (parts[0], parts[-2]) if len(parts) > 2 else ("", parts[0] if len(parts) > 1 else "")


def _member(c: dict, p: str, thumbs: dict, where: dict, names: dict) -> dict:
    removed = set(c.get("remove") or [])
    split, label = _where(p, where)
    if p == c["keep"]:
        role, text, score = "kept", ("kept" if removed else "reference (nothing removed)"), ""
    else:
        role, text = ("removed", "removed") if p in removed else ("stays", "left in place")
        link = (c.get("links") or {}).get(p)
        if link is None and c["kind"] == "exact":
            link = {"distance": 0, "similarity": 1.0}
        score = ("not compared to it" if link is None else
                 f"distance {link['distance']} · similarity {float(link['similarity']):.3f}")
    return {"path": p, "file": p.rsplit("/", 1)[-1], "uri": thumbs.get(p), "role": role, "role_text": text,
            "split": split, "label": label, "name": names.get(label, ""), "score": score}


def _flags(c: dict) -> list[str]:
    out = []
    if c["label_conflict"]:
        out.append("labels: " + ", ".join(c["labels"]))
    if c["cross_split"]:
        out.append("splits: " + ", ".join(c["splits"]))
    return out


def sheet_fragment(clusters, thumbs: dict[str, str | None], where: dict | None = None,
                   names: dict[str, str] | None = None) -> str:
    """The sheet's body as an HTML fragment (needs CSS): a summary table, then every section.
    `where`: path -> (split, label) (default: read from the path); `names`: label -> display name."""
    where, names = where or {}, names or {}
    sec = sections(as_dicts(clusters))
    blocks = []
    for sid, title, about in SECTIONS:
        shown = []
        for c in sec[sid][:SECTION_CAP]:
            members = _ordered_members(c)
            shown.append({"id": c["id"], "size": len(members), "removed": len(c.get("remove") or []),
                          "flags": _flags(c), "more": max(0, len(members) - MEMBER_CAP),
                          "members": [_member(c, p, thumbs, where, names) for p in members[:MEMBER_CAP]]})
        blocks.append(_section(sid, title, about, sec[sid], shown, SECTION_CAP))
    shown = [{"keep": c["keep"], "file": c["keep"].rsplit("/", 1)[-1], "uri": thumbs.get(c["keep"]),
              "size": len(c["members"]), "removed": len(c.get("remove") or []), "flags": "; ".join(_flags(c)),
              "splits": ", ".join(c["splits"]), "labels": ", ".join(c["labels"])} for c in sec["exact"][:EXACT_CAP]]
    blocks.append(_section("exact", "Exact copies", "Byte- or pixel-identical files: one thumbnail per cluster.",
                           sec["exact"], shown, EXACT_CAP))
    return _env().from_string(FRAGMENT).render(sections=blocks)


def _section(sid: str, title: str, about: str, clusters: list[dict], shown: list[dict], cap: int) -> dict:
    return {"id": sid, "title": title, "about": about, "total": len(clusters), "shown": shown,
            "left_out": max(0, len(clusters) - cap), "removed": sum(len(c.get("remove") or []) for c in clusters)}


# ---------------------------------------------------------------- thumbnails (run in workers)


def _thumb_chunk(job: tuple[list[str], int]) -> list[str | None]:
    locations, side = job
    return [report_thumbs.thumb_uri(loc, side) for loc in locations]


def thumbnails(locations: dict[str, str], *, workers=None, engine="local", quiet=False,
               side: int = THUMB_SIDE) -> dict[str, str | None]:
    """{path: data URI, or None when unreadable} for {path: file or URL to read}, in parallel."""

    paths = sorted(locations)
    jobs = [([locations[p] for p in paths[i : i + CHUNK]], side) for i in range(0, len(paths), CHUNK)]
    few = is_local(engine) and len(paths) < IN_PROCESS_BELOW
    ex = make_executor(engine, workers=1 if few else workers, quiet=quiet)
    uris = [u for chunk in ex.map(_thumb_chunk, jobs, desc="sheet thumbnails", units=lambda j: len(j[0]),
                                  unit="images") for u in chunk]
    return dict(zip(paths, uris, strict=True))


def journal_locations(journal: str | Path | None, root) -> dict[str, str]:
    """Tree-relative path -> where a finished dedupe moved it (the quarantine), from its journal."""
    if journal is None or not Path(journal).is_file():
        return {}
    base = str(storage.resolved(root)) + "/"
    out: dict[str, str] = {}
    for line in Path(journal).read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line: that move never happened
        if "from" in e and str(e["from"]).startswith(base):
            out[str(e["from"])[len(base):]] = str(e["to"])
        elif "cancel" in e and str(e["cancel"]).startswith(base):
            out.pop(str(e["cancel"])[len(base):], None)
    return out


def _pair_links(result) -> dict[tuple[str, str], dict]:
    """(a, b) -> distance and similarity of every verified pair the search measured."""
    p = result.pairs
    if p is None or not len(p):
        return {}
    p = p[p["verified"]]
    return {(a, b): {"distance": int(d), "similarity": 1.0 if s is None or s != s else float(s)}
            for a, b, d, s in zip(p["a"], p["b"], p["distance"], p["similarity"], strict=True)}


def cluster_dicts(result) -> list[dict]:
    """The result's clusters as dicts; a member without a `links` entry gets the pair measured directly
    against the kept file, when the search measured one."""
    pairs = _pair_links(result)
    out = as_dicts(result.clusters)
    for c in out:
        links = dict(c.get("links") or {})
        for m in c["members"]:
            if m != c["keep"] and m not in links:
                got = pairs.get(tuple(sorted((m, c["keep"]))))
                if got is not None:
                    links[m] = got
        c["links"] = links
    return out


def render_sheet(result, root, thumbs: dict, names: dict | None = None, dry_run: bool = True,
                 clusters: list[dict] | None = None) -> str:
    clusters = cluster_dicts(result) if clusters is None else clusters
    where = dict(zip(result.files["path"], zip(result.files["split"], result.files["label"], strict=True),
                     strict=True))
    body = sheet_fragment(clusters, thumbs, where, names)
    import markupsafe

    removed = sum(len(c.get("remove") or []) for c in clusters)
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    return _env().from_string(PAGE).render(
        root=str(root), files=len(result.files), clusters=len(clusters), removed=removed,
        verb="would be removed" if dry_run else "removed", params=params, css=markupsafe.Markup(CSS),
        body=markupsafe.Markup(body))


def write_sheet(result, root, path: str | Path, names: dict[str, str] | None = None, *, moved=None,
                dry_run: bool = True, workers=None, engine: str = "local", quiet: bool = False) -> Path:
    """Write the contact sheet of a DedupeResult to the local file `path` (atomically).

    `root`: the tree (a folder or an object-store URL); `moved`: path -> where a finished run moved it
    (`journal_locations`), so removed files still get their thumbnail; `names`: label -> display name."""

    moved = moved or {}
    clusters = cluster_dicts(result)
    locations = {p: moved.get(p) or storage.join(root, p) for p in shown_paths(clusters)}
    thumbs = thumbnails(locations, workers=workers, engine=engine, quiet=quiet)
    page = render_sheet(result, root, thumbs, names, dry_run, clusters)
    path = Path(path)
    atomic_write_bytes(path, page.encode("utf-8", "backslashreplace"))
    return path
