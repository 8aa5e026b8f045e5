"""Options and output helpers shared by every command."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.table import Table

from curate.core.lock import check_unlocked, hold
from curate.engine.executor import ENGINE_NAMES, Engine


@dataclass
class State:
    quiet: bool = False
    verbose: bool = False


def state() -> State:
    """--quiet / --verbose of the running command: the State its root context carries (set by the CLI's
    root options, or given by whoever runs the command in-process); defaults outside a command."""
    try:  # Typer vendors click since 0.2x; older Typer runs on click itself
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
    ctx = get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, State) else State()
# results and summaries (stdout). markup=False: paths, labels and names are printed as typed, never read as
# rich markup ('data[1]' stays, '[/x]' does not crash); pass markup=True where a message is built for it.
out = Console(highlight=False, markup=False)
if not out.is_terminal and not os.environ.get("COLUMNS"):
    out = Console(highlight=False, markup=False, width=10_000)  # pipes, files, CI logs: no folded lines or cells
_err = Console(stderr=True, highlight=False)


def plain_output() -> bool:
    """stdout is a pipe, a file or a dumb terminal: tables get no box-drawing characters."""
    return not out.is_terminal or out.is_dumb_terminal


def table(*headers: str, **kwargs) -> Table:
    """A results table for `out`: boxed on a terminal, plain aligned columns in pipes and CI logs."""
    if plain_output():
        kwargs.update(box=None, show_edge=False)
    return Table(*headers, **kwargs)


def err(message: str) -> None:
    from rich.markup import escape  # messages quote user text and hints like 'curate[train]'

    _err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    from rich.markup import escape

    _err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def info(message: str, markup: bool = False) -> None:
    if not state().quiet:
        _err.print(message, soft_wrap=True, markup=markup)


def writing(root):
    """Context: hold ROOT's write lock (curate.core.lock) for a command that changes the tree."""

    return hold(root, note=warn)


def guard(root, read_only: bool):
    """The lock a command needs on ROOT: for a read-only run (a dry run) none, after checking that no
    other process is changing the tree; else the write lock."""
    from contextlib import nullcontext

    if read_only:
        reading(root)
        return nullcontext()
    return writing(root)


def undo_options(what: str):
    """(--undo, --force) for a command whose moves are journaled."""
    return (typer.Option(False, "--undo", help=f"Put back the files the last {what} moved."),
            typer.Option(False, "--force", help="With --undo: when some files are missing or changed, "
                         "still restore the rest, list those, and go on to older runs."))


def check_force(force: bool, undo: bool) -> None:
    if force and not undo:
        raise typer.BadParameter("--force goes with --undo", param_hint="--force")


def reading(root) -> None:
    """For commands that only read ROOT: stop while another process is changing it (curate.core.lock)."""

    check_unlocked(root)


def workers_option(default=None):
    return typer.Option(default, "--workers", "-j", help="Worker processes (default: CPU count).", min=1)


def seed_option(default: int = 0):
    return typer.Option(default, "--seed", help="Seed; same inputs + seed give identical outputs.")


def _check_engine(value: str) -> str:

    if value not in ENGINE_NAMES:
        raise typer.BadParameter(f"'{value}' is not one of {', '.join(ENGINE_NAMES)}")
    return value


def engine_option():
    return typer.Option("local", "--engine", callback=_check_engine,
                        help="Executor: local (process pool) or ray (pip install 'curate\\[ray]').")


def ray_address_option():
    return typer.Option(None, "--ray-address", metavar="auto|ray://HOST:PORT",
                        help="With --engine ray: join this cluster (default: start a local one).")


def engine_of(engine: str, workers: int | None, ray_address: str | None):
    """The Engine value a command passes to the API: --engine, --workers and --ray-address together."""

    if ray_address is not None and engine != "ray":
        raise typer.BadParameter("--ray-address needs --engine ray")
    return Engine(engine, workers, ray_address)


def command_line(drop: tuple[str, ...] = ("--workers", "-j", "--engine", "--ray-address")) -> str:
    """The command as typed, minus options that cannot change the output (so it is reproducible)."""
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in drop:
            skip = True
            continue
        if a.split("=", 1)[0] in drop:
            continue
        args.append(shlex.quote(a))
    return " ".join(["curate", *args])
