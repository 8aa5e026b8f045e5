"""Pipeline files: YAML with the line of every key, `${vars}` and `--set NAME=VALUE`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from curate.core.errors import InputError
from curate.pipeline.model import PipelineError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_-]*)\}")


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read pipeline file {path}: {e}", "pass a UTF-8 YAML file") from e
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PipelineError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}", "fix the YAML syntax") from e
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}

    def walk(n, key: tuple) -> None:
        lines[key] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                if str(k.value) in seen:  # PyYAML keeps the last silently; a repeat is always a mistake
                    dup = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in key + (k.value,))
                    raise PipelineError(f"{path}:{k.start_mark.line + 1}: {dup.replace('.[', '[')}: repeated key",
                                        "give each key once")
                seen.add(str(k.value))
                walk(v, key + (str(k.value),))
                lines[key + (str(k.value),)] = k.start_mark.line + 1  # the key's line, not the value's
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, key + (i,))

    if node is not None:
        walk(node, ())
    return data, lines


# ---------------------------------------------------------------- variables


def _substitute(value: Any, variables: dict[str, Any], err) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            name = whole.group(1)
            if name not in variables:
                err(f"unknown variable ${{{name}}}", f"declare it under vars: (known: {', '.join(variables) or 'none'})")
            return variables[name]

        def one(m):
            if m.group(1) not in variables:
                err(f"unknown variable ${{{m.group(1)}}}", f"declare it under vars: (known: {', '.join(variables) or 'none'})")
            return str(variables[m.group(1)])

        return _VAR.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, variables, err) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, err) for k, v in value.items()}
    return value


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`--set name=value` pairs; values are read as YAML scalars (3 -> int, true -> bool)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set {item!r} is not NAME=VALUE", "e.g. --set out=data/coins")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str) and parsed.startswith("~"):
            parsed = os.path.expanduser(parsed)
        out[name.strip()] = value if isinstance(parsed, dict | list) or parsed is None else parsed
    return out

