"""The `curate` command line: a thin Typer layer over the Python API.

Each command lives in curate/commands/<name>.py and exposes `register(app)`. This module only builds
the app and is the one error boundary: CurateError -> one line + exit code, Ctrl-C -> 130.
"""

from __future__ import annotations

import sys

import typer

from curate import __version__, commands
from curate.commands import common
from curate.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, CurateError
from curate.engine.executor import one_blas_thread

app = typer.Typer(
    name="curate",
    help="Turn raw image collections into clean, trustworthy training sets.\n\n"
    "Examples:\n\n"
    "  curate demo                                  # offline end-to-end demo\n\n"
    "  curate openimages --classes person,animal,gun --out data/oi\n\n"
    "  curate dedupe data/oi --dry-run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the final summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail; tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = common.State(quiet, verbose)  # what common.state() gives the command


commands.register_all(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point and the one error boundary: every failure is one line on stderr and an exit code.

    Commands end with `raise typer.Exit(code)`; usage errors exit 2; CurateError carries its own code.
    """
    from typer.exceptions import Abort, TyperException

    one_blas_thread()  # before any command loads numpy
    args = sys.argv[1:] if argv is None else argv
    verbose = _verbose(args)
    try:
        rv = app(args=args, prog_name="curate", standalone_mode=False)
    except TyperException as e:  # usage errors from the (vendored) click layer
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()
        else:
            ctx = getattr(e, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            common.err(f"{e.format_message()}{where}")
        sys.exit(getattr(e, "exit_code", EXIT_USAGE))
    except CurateError as e:
        common.err(str(e))
        if verbose:
            raise
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, Abort):
        common.err("interrupted; re-run the same command to resume")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        if verbose:
            raise
        common.err(f"unexpected {type(e).__name__}: {e} (re-run with --verbose for the traceback)")
        sys.exit(EXIT_USAGE if isinstance(e, OSError) else 1)
    if rv == EXIT_INTERRUPTED:  # Typer turns Ctrl-C inside a command into exit code 130
        common.err("interrupted; re-run the same command to resume")
    sys.exit(rv if isinstance(rv, int) else 0)


def _verbose(args: list[str]) -> bool:
    """-v/--verbose among the root options (before the command name): tracebacks on errors."""
    for a in args:
        if not a.startswith("-"):
            return False
        if a in ("-v", "--verbose") or (a.startswith("-") and not a.startswith("--") and "v" in a[1:]):
            return True
    return False
