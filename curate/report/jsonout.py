"""report.json: the machine-readable report (schema in docs/report.md, versioned by SCHEMA)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from curate import __version__
from curate.core.labelnames import label_names
from curate.report.build import Analysis, sample_paths
from curate.report.checks import SEVERITY, _num
from curate.report.checks.crops import fill_share
from curate.report.checks.detection import detection_section
from curate.report.checks.splits import counts

SCHEMA = "curate.report/1"
ATTRIBUTES = ("is_group_of", "is_depiction", "is_truncated", "is_occluded", "is_inside", "ambiguous")


def summary(values) -> dict | None:
    """min, quartiles, p5/p95, max and mean of a numeric series (None when empty)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().astype("float64").to_numpy()
    if v.size == 0:
        return None
    q = np.percentile(v, [0, 5, 25, 50, 75, 95, 100])
    keys = ("min", "p5", "p25", "median", "p75", "p95", "max")
    out = {k: round(float(x), 4) for k, x in zip(keys, q, strict=True)}
    out["mean"] = round(float(v.mean()), 4)
    out["count"] = int(v.size)
    return out


def split_table(a: Analysis) -> dict:
    c = counts(a.ctx)
    labels = sorted({lab for per in c.values() for lab in per} | {lab for _, lab in a.ctx.tree.empty_labels})
    splits = {}
    for s, per in c.items():
        nonzero = [n for n in per.values() if n]
        splits[s] = {
            "images": int(sum(per.values())),
            "labels": len(nonzero),
            "imbalance_ratio": round(max(nonzero) / min(nonzero), 4) if nonzero else None,
            "missing_labels": [lab for lab in labels if not per.get(lab)],
        }
    return {"labels": labels, "counts": {s: {lab: c[s].get(lab, 0) for lab in labels} for s in c},
            "splits": splits}


def distributions(a: Analysis) -> dict:
    df = a.ctx.readable
    w, h = df["width"].astype("float64"), df["height"].astype("float64")
    return {
        "width": summary(w),
        "height": summary(h),
        "aspect_ratio": summary(w / h),
        "megapixels": summary(w * h / 1e6),
        "file_size": summary(a.ctx.images["size"]),
        "formats": {str(k): int(v) for k, v in sorted(df["format"].value_counts().items())},
        "modes": {str(k): int(v) for k, v in sorted(df["mode"].value_counts().items())},
    }


def label_profile(a: Analysis) -> dict:
    """Per label: what a model could use as a shortcut instead of content (size, format, tone)."""
    df = a.ctx.readable
    out = {}
    for label, g in df.groupby("label", sort=True):
        fmts = g["format"].value_counts()
        out[str(label)] = {
            "images": int(len(g)),
            "median_width": float(g["width"].astype("float64").median()),
            "median_height": float(g["height"].astype("float64").median()),
            "median_file_size": float(g["size"].astype("float64").median()),
            "formats": {str(k): int(v) for k, v in sorted(fmts.items())},
            "mean_brightness": round(float(g["brightness"].mean()), 4),
            "mean_sharpness": round(float(g["sharpness"].mean()), 2),
            "grayscale_share": round(float((g["colorfulness"] < 0.01).mean()), 4),
        }
    return out


def issues_per_label(a: Analysis) -> dict:
    """{label: {check: files}} for the file-level checks: issues piled up in one class are a shortcut."""
    out: dict[str, dict[str, int]] = {}
    for name, (check, findings) in sorted(a.results.items()):
        if check.group not in ("quality", "crops", "files"):
            continue
        for f in findings:
            if "label" in f:
                row = out.setdefault(str(f["label"]), {})
                row[name] = row.get(name, 0) + 1
    return dict(sorted(out.items()))


def crop_section(a: Analysis) -> dict | None:
    if not a.ctx.has_crops:
        return None
    df = a.ctx.readable
    df = df[df["scale"].notna()]
    side = np.minimum(df["crop_w"].astype("float64"), df["crop_h"].astype("float64"))
    scale = df["scale"].astype("float64")
    fill = fill_share(df)
    per_label = {}
    for label, g in df.groupby("label", sort=True):
        gi = g.index
        row = {
            "crops": int(len(g)),
            "median_crop_side": round(float(side.loc[gi].median()), 2),
            "upscaled_share": round(float((scale.loc[gi] > 1).mean()), 4),
            "mean_fill_share": round(float(fill.loc[gi].mean()), 4),
        }
        if "source_class" in g.columns:
            vc = g["source_class"].dropna().astype(str).value_counts()
            row["source_classes"] = {k: int(v) for k, v in sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))}
        for col in ATTRIBUTES:
            if col in g.columns:
                row[f"{col}_share"] = round(float(pd.to_numeric(g[col], errors="coerce").fillna(0).astype(bool).mean()), 4)
        per_label[str(label)] = row
    return {
        "crops": int(len(df)),
        "crop_side": summary(side),
        "crop_w": summary(df["crop_w"]),
        "crop_h": summary(df["crop_h"]),
        "scale": summary(scale),
        "upscaled_share": round(float((scale > 1).mean()), 4) if len(df) else 0.0,
        "fill_share": summary(fill),
        "letterboxed_share": round(float((fill > 0.01).mean()), 4) if len(df) else 0.0,
        "per_label": per_label,
    }


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, str | bool) or obj is None:
        return obj
    v = _num(obj)
    return None if isinstance(v, float) and not math.isfinite(v) else v  # strict JSON: no NaN/Infinity


def _label_names(root, labels: list[str]) -> dict[str, str]:
    """Readable names of the labels (classes.json or cat_to_name.json at the root), for those that have one."""

    names = label_names(root)
    return {lab: names[lab] for lab in labels if lab in names}


def build_json(a: Analysis, fail_on: list[str], per_label: int = 12, seed: int = 0) -> dict:
    ctx = a.ctx
    table = split_table(a)
    checks = {}
    for name, (check, findings) in a.results.items():
        checks[name] = {
            "title": check.title,
            "group": check.group,
            "severity": SEVERITY.get(name, "warning"),
            "description": check.describe(),
            "params": check.params,
            "count": len(findings),
            "fired": bool(findings),
            "findings": findings,
        }
    fired = sorted(n for n, c in checks.items() if c["fired"])
    doc = {
        "schema": SCHEMA,
        "tool": f"curate {__version__}",
        "root": str(ctx.root),
        "summary": {
            "name": Path(ctx.root).name,
            "images": int(len(ctx.images)),
            "readable": int(len(ctx.readable)),
            "unreadable": int(ctx.images["error"].notna().sum()),
            "splits": list(ctx.tree.split_dirs),
            "labels": len(table["labels"]),
            "manifest": ctx.manifest is not None,
            "crop_dataset": ctx.has_crops,
            "duplicates_source": a.duplicates_source,
        },
        "labels": table["labels"],
        "label_names": _label_names(ctx.root, table["labels"]),
        **{k: v for k, v in table.items() if k != "labels"},
        "distributions": distributions(a),
        "label_profile": label_profile(a),
        "issues_per_label": issues_per_label(a),
        "duplicates": {
            "source": a.duplicates_source,
            "warning": a.duplicates_warning or None,
            "clusters": ctx.clusters,
            "exact_clusters": sum(1 for c in ctx.clusters if c["kind"] == "exact"),
            "near_clusters": sum(1 for c in ctx.clusters if c["kind"] != "exact"),
            "redundant_files": sum(len(c["members"]) - 1 for c in ctx.clusters),
        },
        "crops": crop_section(a),
        **({"detection": detection_section(ctx.tree)} if detection_section(ctx.tree) else {}),  # detection trees
        "checks": checks,
        "skipped_checks": a.skipped,
        "fired": fired,
        "fail_on": list(fail_on),
        "failed": sorted(set(fail_on) & set(fired)),
        "samples": sample_paths(ctx.images, per_label, seed),
    }
    return _clean(doc)
