"""`curate run PIPELINE.yaml`: run a declarative pipeline of curate commands."""

from __future__ import annotations

import typer

from curate.commands import common
from curate.commands.common import err, info, out
from curate.core.lazy import lazy

pipeline_api = lazy("curate.pipeline")

ORDER = 90

HELP = """Run a pipeline file: a list of curate commands with their flags.

Every step is checked against the command's own flags before anything runs (errors name file, line and field). Steps run in order on the same tree; each result is recorded in OUT/curate.json and a re-run skips steps whose inputs and parameters are unchanged. Exit code: the first failing step's.

Examples:

  curate run pipelines/coins.yaml --set source=~/Downloads/coin-images.zip

  curate run pipelines/demo.yaml --set source=demo-src --set out=demo-out --dry-run

  curate run pipelines/coins.yaml --from dedupe --until report

  curate run coins --set source=coin-images.zip --dry-run   (a shipped pipeline by name, from any folder)
"""


def register(app: typer.Typer) -> None:
    app.command("run", help=HELP)(run)


def run(
    pipeline: str = typer.Argument(..., help="Pipeline YAML file, or a shipped pipeline's name: coins, demo, "
                                             "openimages-person-animal-gun."),
    set_: list[str] = typer.Option(None, "--set", help="Override a variable: NAME=VALUE (repeatable)."),
    from_step: str = typer.Option(None, "--from", help="Start at this step (name or number); it and later steps run."),
    until_step: str = typer.Option(None, "--until", help="Stop after this step (name or number)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan; run nothing."),
    force: bool = typer.Option(False, "--force", help="Run every selected step, even if unchanged."),
) -> None:
    from rich.markup import escape


    def on_step(step, res) -> None:
        if res is None:
            info(f"[bold]▶ {escape(step.id)}[/]: {escape(' '.join(['curate', step.command, *step.argv]))}", markup=True)
        elif res.status == "failed":
            err(f"step {step.id} failed (exit {res.exit_code}){': ' + res.message if res.message else ''}")
        elif res.exit_code:
            info(f"step {step.id} finished with problems (exit {res.exit_code}); continuing")

    result = pipeline_api.run_pipeline(pipeline, variables=pipeline_api.parse_set(set_), from_step=from_step, until_step=until_step,
                          dry_run=dry_run, quiet=common.state().quiet, verbose=common.state().verbose, force=force,
                          on_step=on_step)
    for line in result.lines(commands=dry_run):
        out.print(line, soft_wrap=True, markup=False)
    raise typer.Exit(result.exit_code)
