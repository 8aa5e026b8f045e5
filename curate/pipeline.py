"""Declarative pipelines: a YAML list of `curate` commands with their flags, validated up front.

    vars: {out: data/coins, seed: 0}
    out: ${out}            # the tree every step works on (DIR argument, or --out of a source step)
    seed: ${seed}          # given to every step that has --seed (same for workers)
    steps:
      - kaggle: {dataset: coins, label-names: true}
      - dedupe: {threshold: 4}

A step is exactly a registered command: its keys are that command's flags (without `--`) or argument
names, checked against the command's own parameters, so errors name file, line and field before
anything runs. Steps run in-process, in order; each one's parameters hash, exit code and duration
go into OUT/curate.json, and a re-run skips steps whose inputs and parameters are unchanged.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError
from curate.lock import hold
from curate.resources import find_pipeline

TOP_KEYS = {"vars", "out", "seed", "workers", "steps", "name", "description"}
STEP_META = {"name", "continue-on-problems"}
SHARED = ("seed", "workers")
BLOCKED = {"run", "demo"}  # a pipeline never runs pipelines
# Commands whose exit 1 means "finished; the problems found were handled and listed" (unreadable files
# skipped, label conflicts reported and left in place): a pipeline goes on after them unless the step says
# `continue-on-problems: false`. Elsewhere exit 1 is a verdict (report --fail-on: untrustworthy data) and stops.
CONTINUE_BY_DEFAULT = {"kaggle", "openimages", "dedupe"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_-]*)\}")


class PipelineError(InputError):
    """A pipeline file is invalid: the message names file, line and field."""


@dataclass
class Step:
    id: str
    command: str
    argv: list[str]
    line: int
    continue_on_problems: bool = False
    external: list[str] = field(default_factory=list)  # input paths outside the tree
    outputs: list[str] = field(default_factory=list)  # what the step writes besides the tree (train --out, ...)


@dataclass
class Pipeline:
    path: Path
    out: Path | None
    steps: list[Step]
    variables: dict[str, Any]


@dataclass
class StepResult:
    id: str
    command: str
    argv: list[str]
    status: str  # ran | skipped | failed | not-run | would-run | would-skip
    exit_code: int | None = None
    duration: float = 0.0
    params_hash: str = ""
    message: str = ""


@dataclass
class PipelineResult:
    path: Path
    out: Path | None
    steps: list[StepResult]

    @property
    def exit_code(self) -> int:
        codes = [s.exit_code for s in self.steps if s.exit_code]
        failed = [s.exit_code for s in self.steps if s.status == "failed" and s.exit_code]
        return failed[0] if failed else (max(codes) if codes else 0)

    def lines(self, commands: bool = False) -> list[str]:
        """One line per step: number, name, status, exit code, duration (and the command line)."""
        width = max(len(s.id) for s in self.steps)
        out = []
        for i, s in enumerate(self.steps, 1):
            code = "" if s.exit_code is None else f" exit {s.exit_code}"
            took = f" {s.duration:.1f}s" if s.status in ("ran", "failed") else ""
            line = f"{i}. {s.id:<{width}}  {s.status:<10}{code}{took}"
            if commands or s.status == "would-run":
                line += f"  curate {s.command} {' '.join(s.argv)}"
            out.append(line)
        return out


# ---------------------------------------------------------------- YAML with line numbers


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


# ---------------------------------------------------------------- command introspection


def registered_commands(app=None) -> dict[str, Any]:
    import typer

    if app is None:
        from curate.cli import app
    return dict(typer.main.get_command(app).commands)


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


# ---------------------------------------------------------------- loading and validation


def load_pipeline(path: str | Path, variables: dict[str, Any] | None = None, app=None) -> Pipeline:
    """Read, substitute and validate a pipeline file (a path, or a shipped pipeline's name) against the
    registered commands."""
    path = find_pipeline(path)
    data, lines = _read_yaml(path)

    def fail(key: tuple, message: str, hint: str | None = None):
        line = lines.get(key) or lines.get(key[:-1]) or 1
        field_name = ".".join(str(k) if not isinstance(k, int) else f"[{k}]" for k in key).replace(".[", "[")
        raise PipelineError(f"{path}:{line}: {field_name + ': ' if field_name else ''}{message}", hint)

    if not isinstance(data, dict):
        fail((), "expects a mapping with steps:", "see docs/pipelines.md")
    for k in data:
        if k not in TOP_KEYS:
            fail((k,), "unknown key", _close(k, TOP_KEYS) or f"top-level keys: {', '.join(sorted(TOP_KEYS))}")

    declared = data.get("vars") or {}
    if not isinstance(declared, dict):
        fail(("vars",), "expects a mapping name: value")
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
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        fail(("steps",), "expects a non-empty list of steps", "e.g. steps: [{kaggle: {dataset: coins}}]")

    commands = registered_commands(app)
    steps: list[Step] = []
    seen: dict[str, int] = {}
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
        steps.append(_build_step(commands[cname], cname, opts, raw, key, out, shared, sub, fail, seen, lines))
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        fail(("steps",), f"step names repeat: {', '.join(ids)}", "give each repeated step its own name:")
    return Pipeline(path, Path(str(out)) if out not in (None, "") else None, steps, resolved)


def _build_step(cmd, cname, opts, raw, key, out, shared, sub, fail, seen, lines) -> Step:
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


def _close(word: str, choices) -> str | None:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean '{match[0]}'?" if match else None


# ---------------------------------------------------------------- fingerprints


def _walk_fingerprint(root: Path, skip_top: set[str]) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            files = [f for f in files if f not in skip_top]
        dirnames.sort()
        for f in sorted(files):
            p = Path(dirpath, f)
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{(rel_dir / f).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def tree_fingerprint(out: Path) -> str | None:
    """Names, sizes and times of every file of the tree, except curate's own bookkeeping."""
    if not out.is_dir():
        return None
    return _walk_fingerprint(out, {"curate.json", ".curate"})


def input_fingerprint(paths: list[str], out: Path | None) -> str:
    h = hashlib.sha256()
    out_r = out.resolve() if out else None
    for s in sorted(set(paths)):
        p = Path(s)
        if not p.exists():
            continue
        r = p.resolve()
        if out_r is not None and (r == out_r or out_r in r.parents or r in out_r.parents):
            continue  # the tree itself (or inside it) is tracked by the chain, not here
        h.update(s.encode())
        if p.is_file():
            st = p.stat()
            h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            h.update(_walk_fingerprint(p, set()).encode())
    return h.hexdigest()


def params_hash(step: Step) -> str:
    return hashlib.sha256(json.dumps([step.command, step.argv]).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- running


def _select(steps: list[Step], ref: str | None, flag: str) -> int | None:
    if ref is None:
        return None
    for i, s in enumerate(steps):
        if ref in (s.id, str(i + 1)):
            return i
    for i, s in enumerate(steps):
        if ref == s.command:
            return i
    raise InputError(f"{flag} {ref}: no such step", f"steps: {', '.join(s.id for s in steps)}")


def run_pipeline(
    path: str | Path,
    *,
    variables: dict[str, Any] | None = None,
    from_step: str | None = None,
    until_step: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    force: bool = False,
    app=None,
    on_step=None,
) -> PipelineResult:
    """Validate then run a pipeline. `on_step(step, result)` is called before (result None) and after each step."""
    from curate.manifest import read_info, update_info

    pipe = load_pipeline(path, variables, app)
    first = _select(pipe.steps, from_step, "--from") or 0
    last = _select(pipe.steps, until_step, "--until")
    last = len(pipe.steps) - 1 if last is None else last
    if last < first:
        raise InputError(f"--until {until_step} comes before --from {from_step}", "swap them")

    out = pipe.out
    record: dict[str, Any] = {}
    if out is not None and out.is_dir():
        record = dict(read_info(out).get("steps", {}).get("run", {}) or {})
    prev_steps = record.get("steps", {}) if isinstance(record.get("steps"), dict) else {}
    can_skip = not force and out is not None and record.get("tree") == tree_fingerprint(out) and first == 0

    results: list[StepResult] = []
    chain = ""
    stopped = False
    with nullcontext() if dry_run or out is None else hold(out):  # one writer for all of the steps
        for i, step in enumerate(pipe.steps):
            ph = params_hash(step)
            chain = hashlib.sha256(f"{chain}|{ph}|{input_fingerprint(step.external, out)}".encode()).hexdigest()[:16]
            res = StepResult(step.id, step.command, step.argv, "not-run", params_hash=ph)
            results.append(res)
            if i < first or i > last or stopped:
                continue
            old = prev_steps.get(step.id, {})
            ok_codes = (0, 1) if step.continue_on_problems else (0,)
            if (can_skip and old.get("key") == chain and old.get("exit_code") in ok_codes
                    and all(Path(o).exists() for o in step.outputs)):
                res.status = "would-skip" if dry_run else "skipped"
                res.exit_code = None if dry_run else old.get("exit_code")
                continue
            can_skip = False
            if dry_run:
                res.status = "would-run"
                continue
            if on_step:
                on_step(step, None)
            code, message, duration = _invoke(step, quiet, app)
            res.exit_code, res.message, res.duration = code, message, duration
            res.status = "ran" if code in ok_codes else "failed"
            if out is not None and out.is_dir():
                prev_steps[step.id] = {
                    "command": step.command, "argv": step.argv, "params_hash": ph, "key": chain,
                    "exit_code": code, "duration_s": round(duration, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
                record = {"pipeline": str(Path(path)), "steps": prev_steps, "tree": tree_fingerprint(out)}
                update_info(out, "run", record)
            if on_step:
                on_step(step, res)
            if res.status == "failed":
                stopped = True
    return PipelineResult(Path(path), out, results)


def _invoke(step: Step, quiet: bool, app=None) -> tuple[int, str, float]:
    """Run one command in-process exactly as `curate COMMAND ARGV` would, and return its exit code."""
    import typer

    from curate.commands import common

    if app is None:
        from curate.cli import app
    saved = (common.STATE.quiet, common.STATE.verbose)
    root = (["-q"] if quiet or saved[0] else []) + (["-v"] if saved[1] else [])
    start = time.perf_counter()
    message = ""
    try:
        rv = typer.main.get_command(app).main(args=[*root, step.command, *step.argv], prog_name="curate",
                                               standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except CurateError as e:
        code, message = e.exit_code, str(e)
    except typer.Abort:
        raise KeyboardInterrupt from None
    except typer.TyperException as e:  # click usage errors
        code = getattr(e, "exit_code", 2) or 2
        message = e.format_message() if hasattr(e, "format_message") else str(e)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001  (the CLI boundary does the same)
        if saved[1]:
            raise
        code, message = 1, f"unexpected {type(e).__name__}: {e}"
    finally:
        common.STATE.quiet, common.STATE.verbose = saved
    return code, message, time.perf_counter() - start
