"""One module per command; each exposes `register(app)` and, optionally, ORDER for --help.

`register_all(app)` adds every command to a Typer app (curate.cli's, with its root options);
`registry()` gives them as click commands by name, for callers that run a command in-process without
the CLI app and its root options (the pipeline runner, the demo).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import typer


def register_all(app: typer.Typer) -> None:
    mods = [m.name for m in pkgutil.iter_modules(__path__) if m.name != "common"]
    loaded = [importlib.import_module(f"{__name__}.{name}") for name in mods]
    for mod in sorted(loaded, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        mod.register(app)
    for cmd in app.registered_commands:
        if isinstance(cmd.help, str):
            cmd.help = _reflow(cmd.help)


def _reflow(text: str) -> str:
    """Join the hard-wrapped lines of each prose paragraph: rich help keeps every newline, so source-wrapped
    text came out ragged at any terminal width. Indented paragraphs (examples) stay as written."""
    paras = text.split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.strip("\n").split("\n")) for p in paras)


@cache
def registry() -> dict:
    """{name: click command} of every registered command."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
    register_all(app)
    return dict(typer.main.get_group(app).commands)
