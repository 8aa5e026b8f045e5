"""Issue checks: one small class per issue, registered by name (the names `--fail-on` takes).

A check reads a `Context` (per-image stats joined with the manifest, the scanned tree, duplicate
clusters) and returns findings, worst first. Each finding is a plain dict: file-level checks give
`path`, `split`, `label`, `score`; dataset-level checks give `split`/`label` and their own fields;
duplicate checks give a cluster.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from curate.core.errors import InputError
from curate.core.layout import Tree

REGISTRY: dict[str, type[Check]] = {}

# How much a finding matters, for the report's summary (report.json `checks.<name>.severity`):
# error = the data is wrong (evaluation measures training data, labels or files are broken);
# warning = likely to hurt training or evaluation; info = worth a look, often intended.
SEVERITY = {
    "corrupt": "error", "leakage": "error", "mirror-leakage": "error", "label-conflict": "error",
    "empty-class": "error", "missing-label": "warning", "small-class": "warning", "below-minimum": "warning",
    "imbalance": "warning",
    "duplicates": "warning", "ext-mismatch": "warning", "manifest-drift": "warning", "dark": "warning",
    "bright": "warning", "near-constant": "warning", "blurry": "warning", "odd-size": "warning",
    "tiny-crop": "warning", "upscaled": "warning", "low-info": "info", "grayscale": "info",
    "odd-aspect": "info", "mostly-fill": "info",
}
SEVERITIES = ("error", "warning", "info")

# what a file-level finding's `score` measures (docs/report.md), for captions
SCORE_NAMES = {
    "dark": "luma p99", "bright": "luma p5", "near-constant": "luma std", "low-info": "entropy (bits)",
    "blurry": "sharpness", "grayscale": "colour spread", "odd-size": "area ÷ median", "odd-aspect": "aspect",
    "tiny-crop": "crop side (px)", "upscaled": "scale", "mostly-fill": "fill share",
}


@dataclass
class Context:
    root: str
    tree: Tree
    images: pd.DataFrame  # one row per file: path, split, label, stats, manifest columns when present
    manifest: pd.DataFrame | None  # kept rows of manifest.parquet, or None
    clusters: list[dict] = field(default_factory=list)  # duplicate clusters (Cluster fields as dicts)
    params: dict[str, dict[str, float]] = field(default_factory=dict)  # check name -> param overrides

    @property
    def readable(self) -> pd.DataFrame:
        return self.images[self.images["error"].isna()]

    @property
    def has_crops(self) -> bool:
        return {"crop_w", "crop_h", "scale"} <= set(self.images.columns) and self.images["scale"].notna().any()


class Check(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    group: ClassVar[str]  # splits | files | duplicates | quality | crops
    description: ClassVar[str]  # one sentence; may use {param} placeholders
    defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, overrides: dict[str, float] | None = None):
        self.params = {**self.defaults, **(overrides or {})}

    def applies(self, ctx: Context) -> bool:
        return True

    @abstractmethod
    def run(self, ctx: Context) -> list[dict[str, Any]]:
        """The findings: one dict per file (or group) with at least a `path`."""

    def describe(self) -> str:
        return self.description.format(**self.params)


def register(cls: type[Check]) -> type[Check]:
    REGISTRY[cls.name] = cls
    return cls


def file_rows(df: pd.DataFrame, score: pd.Series, ascending: bool, extra: tuple[str, ...] = (),
              key: pd.Series | None = None) -> list[dict]:
    """Findings for the files of `df`, worst first by `key` (default: the score; ties by path)."""
    if df.empty:
        return []
    key = score if key is None else key
    d = df.assign(score_=score.loc[df.index], key_=key.loc[df.index])
    d = d.sort_values(["key_", "path"], ascending=[ascending, True])
    out = []
    for r in d.itertuples(index=False):
        row = {"path": r.path, "split": r.split, "label": r.label, "score": _num(r.score_)}
        for c in extra:
            row[c] = _num(getattr(r, c))
        out.append(row)
    return out


def _num(v):
    if v is None or v is pd.NA:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        v = v.item()
    return round(v, 5) if isinstance(v, float) else v


def all_checks() -> dict[str, type[Check]]:
    from curate.report.checks import crops, detection, duplicates, files, quality, splits  # noqa: F401 (register)

    return dict(REGISTRY)


def parse_overrides(items: list[str] | dict | None) -> dict[str, dict[str, float]]:
    """'blurry=10' (the check's first parameter) or 'blurry.max_sharpness=10' -> {check: {param: v}}."""
    if not items:
        return {}
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    checks = all_checks()
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, _, param = key.strip().partition(".")
        cls = checks.get(name)
        if not sep or cls is None or not cls.defaults:
            tunable = ", ".join(n for n, c in checks.items() if c.defaults)
            raise InputError(f"bad threshold '{item}'", f"use CHECK=VALUE with CHECK one of: {tunable}")
        param = param or next(iter(cls.defaults))
        if param not in cls.defaults:
            raise InputError(f"check '{name}' has no parameter '{param}'",
                             f"choose from: {', '.join(cls.defaults)}")
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            raise InputError(f"threshold '{item}' is not a number", "e.g. blurry=15")
        out.setdefault(name, {})[param] = v
    return out


def parse_rules(rules) -> list[str]:
    """--fail-on value(s) -> sorted check names; 'all' means every check."""
    if not rules:
        return []
    if isinstance(rules, str):
        rules = [rules]
    names = [n.strip() for r in rules for n in str(r).split(",") if n.strip()]
    checks = all_checks()
    if "all" in names:
        return sorted(checks)
    bad = [n for n in names if n not in checks]
    if bad:
        raise InputError(f"unknown --fail-on rule(s): {', '.join(bad)}",
                         f"choose from: all, {', '.join(sorted(checks))}")
    return sorted(set(names))
