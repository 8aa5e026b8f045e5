"""Readable class names of a tree: class folder -> name, from ROOT/classes.json or ROOT/cat_to_name.json.

classes.json is what `curate kaggle` and `curate import` write ({"classes": [{"id", "folder", "name"}]}),
a bare list of such rows, or {"folder": "name"}; cat_to_name.json is {"folder": "name"} as Kaggle and
torchvision tutorials ship it. report, train, predict and dedupe show these names beside the folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.core import storage
from curate.core.errors import InputError

FILES = ("classes.json", "cat_to_name.json")


def _read(root: str | Path, name: str):
    p = storage.join(root, name)
    if not storage.is_file(p):
        return None
    try:
        return json.loads(storage.read_bytes(p).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p} is not valid JSON: {e}", "fix or delete it") from e


def _rows(data) -> dict[str, str]:
    if isinstance(data, dict) and isinstance(data.get("classes"), list):
        data = data["classes"]
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float) and not isinstance(v, bool)}
    names = {}
    for r in data if isinstance(data, list) else []:
        if isinstance(r, dict) and r.get("name") is not None:
            key = r.get("folder", r.get("id"))
            if key is not None:
                names[str(key)] = str(r["name"])
    return names


def label_names(root: str | Path) -> dict[str, str]:
    """class folder -> readable name (classes.json first, then cat_to_name.json); {} when neither is there."""
    for name in FILES:
        data = _read(root, name)
        if data is not None:
            names = _rows(data)
            if names:
                return names
    return {}


def with_name(label: str, names: dict[str, str]) -> str:
    """'folder' or 'folder (name)' when the name says more than the folder."""
    name = names.get(label)
    return f"{label} ({name})" if name and name != label else label
