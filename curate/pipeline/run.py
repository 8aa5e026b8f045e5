"""Running a pipeline: steps in order, in-process, one lock on the tree; records and skips."""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from curate.commands.common import State
from curate.core.errors import CurateError, InputError
from curate.core.lock import hold
from curate.core.manifest import read_info, update_info
from curate.core.tree import files_fingerprint
from curate.pipeline.commands import registered_commands
from curate.pipeline.load import load_pipeline
from curate.pipeline.model import PipelineResult, Step, StepResult


def tree_fingerprint(out: Path) -> str | None:
    """Names, sizes and times of every file of the tree, except curate's own bookkeeping."""
    if not out.is_dir():
        return None
    return files_fingerprint(out, {"curate.json", ".curate"})


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
            h.update(files_fingerprint(p).encode())
    return h.hexdigest()


def params_hash(step: Step) -> str:
    return hashlib.sha256(json.dumps([step.command, step.argv]).encode()).hexdigest()[:16]



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
    verbose: bool = False,
    force: bool = False,
    app=None,
    on_step=None,
) -> PipelineResult:
    """Validate then run a pipeline. `on_step(step, result)` is called before (result None) and after each
    step. `verbose`: a step's unexpected error raises with its traceback instead of failing the step."""

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
            code, message, duration = _invoke(step, State(quiet, verbose), app)
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


def _invoke(step: Step, state: State, app=None) -> tuple[int, str, float]:
    """Run one command in-process exactly as `curate COMMAND ARGV` would, from the command registry (not
    the CLI app), with its own --quiet/--verbose state; return its exit code, message and duration."""
    import typer

    command = registered_commands(app)[step.command]
    start = time.perf_counter()
    message = ""
    try:
        rv = command.main(args=list(step.argv), prog_name=f"curate {step.command}", standalone_mode=False,
                          obj=state)
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
        if state.verbose:
            raise
        code, message = 1, f"unexpected {type(e).__name__}: {e}"
    return code, message, time.perf_counter() - start

