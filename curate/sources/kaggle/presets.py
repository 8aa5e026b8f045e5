"""Dataset presets (manifests/datasets.yaml): a name -> Kaggle id, class-name file and expected counts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate.core.errors import InputError
from curate.core.layout import SPLIT_ORDER
from curate.resources import resource

PRESETS_FILE = resource("manifests", "datasets.yaml")
DATASET_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/\d+)?$")
NAMES_FILE = "cat_to_name.json"
EXPECTED_KEYS = ("classes", *SPLIT_ORDER)
FIX_HINT = "fix the preset table"


class DatasetSpec(BaseModel):
    """One dataset: a preset from the table, or a plain Kaggle id."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str  # preset name, or the Kaggle id
    kaggle: str = Field(pattern=DATASET_RE.pattern)  # OWNER/DATASET
    names_file: str = Field(NAMES_FILE, alias="names")
    expected: dict[str, int] = Field(default_factory=dict)  # split -> images, plus "classes"
    title: str = ""

    @field_validator("expected", mode="before")
    @classmethod
    def _no_expected(cls, value):
        return value or {}

    @field_validator("expected")
    @classmethod
    def _known_keys(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(EXPECTED_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; use {', '.join(EXPECTED_KEYS)}")
        return value


def preset_error(path: Path, name: str, e: ValidationError) -> InputError:
    """The first problem of a preset entry, as one line."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing" and where == "kaggle":
        return InputError(f"{path}: preset '{name}' needs a 'kaggle: OWNER/DATASET' entry", FIX_HINT)
    msg = err["msg"].removeprefix("Value error, ")
    return InputError(f"{path}: preset '{name}': {where or 'entry'}: {msg} (got {err['input']!r})", FIX_HINT)


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, DatasetSpec]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}", FIX_HINT) from e
    out = {}
    for name, entry in (raw.get("datasets") or {}).items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: preset '{name}' needs a 'kaggle: OWNER/DATASET' entry", FIX_HINT)
        try:
            out[name] = DatasetSpec.model_validate({**entry, "name": name})
        except ValidationError as e:
            raise preset_error(path, name, e) from e
    return out


def resolve_dataset(spec: str) -> DatasetSpec:
    presets = load_presets()
    if spec in presets:
        return presets[spec]
    for p in presets.values():
        if p.kaggle == spec:
            return p
    if DATASET_RE.match(spec):
        return DatasetSpec(name=spec, kaggle=spec)
    choices = ", ".join(sorted(presets)) or "none"
    raise InputError(f"unknown dataset '{spec}'", f"use OWNER/DATASET as on kaggle.com, or a preset: {choices}")
