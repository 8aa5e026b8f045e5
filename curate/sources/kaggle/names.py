"""Class names: the id -> name file (cat_to_name.json), coin-name parsing, readable folder names."""

from __future__ import annotations

import json
from pathlib import Path

from curate.core.errors import InputError
from curate.sources.ingest import slug


def load_names(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"names file {path} does not exist", "pass --names FILE with a JSON object id -> name") from e
    except (OSError, ValueError) as e:
        raise InputError(f"names file {path} is not valid JSON: {e}", "expect a JSON object id -> name") from e
    if isinstance(data, list):
        data = {str(i): v for i, v in enumerate(data)}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"names file {path} is not a JSON object of id -> name strings", "e.g. {\"1\": \"1 Cent,Australian dollar,australia\"}")
    return {str(k): v.strip() for k, v in data.items()}


def parse_name(full: str) -> dict[str, str]:
    """'1 Cent,Australian dollar,australia' -> denomination, currency, country (when it has 3 parts)."""
    parts = [p.strip() for p in full.split(",")]
    if len(parts) == 3 and all(parts):
        return {"denomination": parts[0], "currency": parts[1], "country": parts[2].replace("_", " ")}
    return {}


def folder_names(ids: list[str], names: dict[str, str], readable: bool) -> dict[str, str]:
    """Class folder for each id: the id itself, or a readable, filesystem-safe, unique name."""
    out: dict[str, str] = {}
    used = {cid for cid in ids if not (readable and cid in names)}  # unnamed ids keep their folder
    for cid in ids:
        name = cid
        if readable and cid in names:
            f = parse_name(names[cid])
            name = slug(f"{f['country']} {f['denomination']}") if f else slug(names[cid])
            name = base = name[:80].rstrip("_") or slug(cid) or "class"
            if name in used:
                name = base = f"{name}_{slug(cid) or len(used)}"
            k = 2
            while name in used:  # two classes must never share a folder
                name, k = f"{base}_{k}", k + 1
            used.add(name)
        out[cid] = name
    return out
