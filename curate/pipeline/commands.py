"""What a step may say: the registered commands' own parameters, and a step's fields as their flags."""

from __future__ import annotations

import difflib
from typing import Any

from curate.core.lazy import lazy

commands = lazy("curate.commands")  # Typer and every command module: only when a pipeline loads


def registered_commands(app=None) -> dict[str, Any]:
    """{name: click command}: curate's command registry, or the commands of `app` (a Typer app; tests)."""
    if app is None:
        return commands.registry()
    import typer

    return dict(typer.main.get_group(app).commands)


def _is_path(p) -> bool:
    desc = getattr(p, "type_descriptor", None)
    if desc is not None:
        return bool(desc.is_path)
    ptype = getattr(p, "type", None)
    return hasattr(ptype, "exists") and hasattr(ptype, "dir_okay")


def _coerce(p, value) -> None:
    """Let the command's own parameter check a value (types, ranges, choices); raises its error."""
    if hasattr(p, "get_runtime_param"):
        p.get_runtime_param().coerce(value, param=p, ctx=None)
    elif getattr(p, "type", None) is not None:
        for v in value if isinstance(value, tuple) else (value,):
            p.type.convert(v, p, None)


def _param_table(cmd) -> dict[str, tuple[Any, bool]]:
    """Accepted step keys -> (click parameter, negated)."""
    table: dict[str, tuple[Any, bool]] = {}
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name in ("help",):
            continue
        if p.param_type_name == "argument":
            table[p.name] = (p, False)
            table[p.name.replace("_", "-")] = (p, False)
            continue
        for o in p.opts:
            if o.startswith("--"):
                table[o[2:]] = (p, False)
        for o in p.secondary_opts:
            if o.startswith("--"):
                table[o[2:]] = (p, True)
        table.setdefault(p.name.replace("_", "-"), (p, False))
        table.setdefault(p.name, (p, False))
    return table


OUTPUT_OPTS = {"--out", "--json", "--quarantine"}  # options naming what a step writes (when not the tree)


def tree_param(cmd):
    """The parameter that names the tree: a required path argument (DIR), else the --out option."""
    for p in cmd.params:
        if p.param_type_name == "argument" and p.required and _is_path(p):
            return p
    for p in cmd.params:
        if p.param_type_name == "option" and "--out" in p.opts:
            return p
    return None


def _long(p) -> str:
    return next((o for o in p.opts if o.startswith("--")), p.opts[0])


def _to_args(p, negated: bool, value: Any, err) -> list[str]:
    """One step field -> command-line tokens (options) or values (arguments)."""
    if value is None or value == "" or value == []:
        return []  # not given: the command's default
    if p.param_type_name == "option" and getattr(p, "is_flag", False) and not getattr(p, "count", False):
        if not isinstance(value, bool):
            err(f"expects true or false, got {value!r}", None)
        on = value != negated
        if on:
            return [_long(p)]
        if p.secondary_opts:
            return [p.secondary_opts[0]]
        if p.default:
            err("cannot be turned off: the command has no --no- form", None)
        return []
    if isinstance(value, dict):
        err(f"expects a value, got a mapping {value!r}", None)
    many = p.multiple or p.nargs == -1
    values = value if isinstance(value, list) and many else [value]
    if isinstance(value, list) and not many:
        values = [",".join(str(v) for v in value)]
    texts = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
    if not _is_path(p):  # paths may not exist yet: earlier steps create them
        try:
            _coerce(p, tuple(texts) if many else texts[0])
        except Exception as e:  # noqa: BLE001  (click's BadParameter and friends)
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            err(f"invalid value {', '.join(texts)!r}: {msg}", None)
    if p.param_type_name == "argument":
        return texts
    return [tok for t in texts for tok in (_long(p), t)]



def _close(word: str, choices) -> str | None:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean '{match[0]}'?" if match else None

