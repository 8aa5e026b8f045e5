"""Loading a pipeline: read, substitute and check every step against its command before anything runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curate.pipeline.commands import (
    OUTPUT_OPTS,
    _close,
    _is_path,
    _long,
    _param_table,
    _to_args,
    registered_commands,
    tree_param,
)
from curate.pipeline.model import (
    BLOCKED,
    CONTINUE_BY_DEFAULT,
    SHARED,
    STEP_META,
    TOP_KEYS,
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
)
from curate.pipeline.yamlfile import _read_yaml, _substitute
from curate.resources import find_pipeline


def load_pipeline(path: str | Path, variables: dict[str, Any] | None = None, app=None) -> Pipeline:
    """Read, substitute and validate a pipeline file (a path, or a shipped pipeline's name) against the
    registered commands."""
    path = find_pipeline(path)
    data, lines = _read_yaml(path)

    def fail(key: tuple, message: str, hint: str | None = None):
        line = lines.get(key) or lines.get(key[:-1]) or 1
        field_name = ".".join(str(k) if not isinstance(k, int) else f"[{k}]" for k in key).replace(".[", "[")
        raise PipelineError(f"{path}:{line}: {field_name + ': ' if field_name else ''}{message}", hint)

    _check_shape(data, fail)
    declared = data.get("vars") or {}
    variables = dict(variables or {})
    for name in variables:
        if name not in declared:
            raise PipelineError(f"{path}: --set {name}: unknown variable",
                                _close(name, declared) or f"declared: {', '.join(declared) or 'none'}")
    resolved: dict[str, Any] = {}
    for name, value in declared.items():
        if name in variables:
            resolved[name] = variables[name]
            continue
        if value is None:
            fail(("vars", name), "needs a value", f"curate run {path} --set {name}=VALUE")
        resolved[name] = _substitute(value, resolved, lambda m, h, n=name: fail(("vars", n), m, h))

    def sub(key: tuple, value):
        return _substitute(value, resolved, lambda m, h: fail(key, m, h))

    out = sub(("out",), data.get("out"))
    if isinstance(out, str) and out.startswith("~"):
        out = os.path.expanduser(out)
    shared = {k: sub((k,), data.get(k)) for k in SHARED}
    steps_raw = data["steps"]

    commands = registered_commands(app)
    steps: list[Step] = []
    ctx = _Context(out, shared, sub, fail, {}, lines)
    for i, raw in enumerate(steps_raw):
        key = ("steps", i)
        if isinstance(raw, str):
            raw = {raw: None}
        if not isinstance(raw, dict):
            fail(key, "expects a mapping COMMAND: {flag: value}")
        names = [k for k in raw if k not in STEP_META]
        if len(names) != 1:
            fail(key, f"names {len(names)} commands ({', '.join(map(str, names)) or 'none'}); give exactly one",
                 f"commands: {', '.join(sorted(set(commands) - BLOCKED))}")
        cname = str(names[0])
        if cname not in commands or cname in BLOCKED:
            fail(key + (cname,), "unknown command" if cname not in BLOCKED else "cannot run inside a pipeline",
                 _close(cname, set(commands) - BLOCKED) or f"commands: {', '.join(sorted(set(commands) - BLOCKED))}")
        opts = raw[cname] or {}
        if not isinstance(opts, dict):
            fail(key + (cname,), "expects a mapping of flags, e.g. {threshold: 4}")
        steps.append(_build_step(commands[cname], cname, opts, raw, key, ctx))
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        fail(("steps",), f"step names repeat: {', '.join(ids)}", "give each repeated step its own name:")
    return Pipeline(path, Path(str(out)) if out not in (None, "") else None, steps, resolved)


def _check_shape(data: Any, fail) -> None:
    """The file's top level against PipelineFile; the first problem as one file:line message."""
    if not isinstance(data, dict):
        fail((), "expects a mapping with steps:", "see docs/pipelines.md")
    try:
        PipelineFile.model_validate(data)
    except ValidationError as e:
        order = {"extra_forbidden": 0}  # an unknown key first: it is often a misspelt known one
        err = sorted(e.errors(), key=lambda x: order.get(x["type"], 1))[0]
        key = tuple(err["loc"][:1])
        if err["type"] == "extra_forbidden":
            fail(key, "unknown key", _close(key[0], TOP_KEYS) or f"top-level keys: {', '.join(sorted(TOP_KEYS))}")
        if key == ("vars",):
            fail(key, "expects a mapping name: value")
        if key == ("steps",):
            fail(key, "expects a non-empty list of steps", "e.g. steps: [{kaggle: {dataset: coins}}]")
        fail(key, err["msg"])


@dataclass
class _Context:
    """What every step of one file is checked with."""

    out: Any  # the pipeline's out: (the tree), substituted
    shared: dict[str, Any]  # seed / workers given to every step that has them
    sub: Callable  # (key, value) -> value with ${vars} substituted
    fail: Callable  # (key, message, hint) -> raises PipelineError naming file:line
    seen: dict[str, int]  # step ids so far
    lines: dict[tuple, int]  # key path -> line in the file


def _build_step(cmd, cname: str, opts: dict, raw: dict, key: tuple, ctx: _Context) -> Step:
    """One step: its fields checked against the command's parameters and turned into its argv."""
    out, shared, sub, fail, seen, lines = ctx.out, ctx.shared, ctx.sub, ctx.fail, ctx.seen, ctx.lines
    table = _param_table(cmd)
    given: dict[str, tuple[Any, bool, Any, tuple]] = {}
    for k, v in opts.items():
        fkey = key + (cname, str(k))
        name = str(k).lstrip("-")
        if name not in table:
            fail(fkey, f"unknown option for `curate {cname}`",
                 _close(name, table) or f"see `curate {cname} --help`")
        p, neg = table[name]
        if p.name in given:
            fail(fkey, f"repeats --{name} (also given as {given[p.name][3][-1]})")
        given[p.name] = (p, neg, sub(fkey, v), fkey)
    tparam = tree_param(cmd)
    if tparam is not None and tparam.name not in given and out not in (None, ""):
        given[tparam.name] = (tparam, False, out, key + ("out",))
    for sname, sval in shared.items():
        p = next((q for q in cmd.params if q.name == sname), None)
        if p is not None and p.name not in given and sval is not None:
            given[p.name] = (p, False, sval, key + (sname,))

    argv: list[str] = []
    positional: list[str] = []
    external: list[str] = []
    outputs: list[str] = []
    for p in cmd.params:
        if p.name not in given:
            if p.required:
                what = "argument " + p.name.upper() if p.param_type_name == "argument" else "option " + _long(p)
                fail(key + (cname,), f"`curate {cname}` needs {what}", "add it to the step, or set out: at the top")
            continue
        _, neg, val, fkey = given[p.name]
        toks = _to_args(p, neg, val, lambda m, h, fk=fkey: fail(fk, m, h))
        (positional if p.param_type_name == "argument" else argv).extend(toks)
        if toks and isinstance(val, str | Path) and "://" not in str(val) and (_is_path(p) or "/" in str(val)):
            if p is not tparam and OUTPUT_OPTS & set(p.opts):
                outputs.append(str(val))  # written by the step: must exist to skip it, not part of its key
            else:
                external.append(str(val))  # an input path: its contents are part of the step's key
    if any(t.startswith("-") for t in positional):
        argv.append("--")
    argv.extend(positional)

    if not isinstance(raw.get("name") or "", str | int):
        fail(key + ("name",), "expects a text name")
    sid = str(raw.get("name") or cname)
    seen[sid] = seen.get(sid, 0) + 1
    if seen[sid] > 1 and not raw.get("name"):
        sid = f"{sid}-{seen[sid]}"
    cont = raw.get("continue-on-problems", cname in CONTINUE_BY_DEFAULT)
    if not isinstance(cont, bool):
        fail(key + ("continue-on-problems",), "expects true or false")
    return Step(sid, cname, argv, lines.get(key, 1), cont, external, outputs)

