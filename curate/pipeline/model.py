"""Pipeline types: a parsed step, a pipeline, and what running them gave."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from curate.core.errors import InputError

STEP_META = {"name", "continue-on-problems"}
SHARED = ("seed", "workers")
BLOCKED = {"run", "demo"}  # a pipeline never runs pipelines
# Commands whose exit 1 means "finished; the problems found were handled and listed" (unreadable files
# skipped, label conflicts reported and left in place): a pipeline goes on after them unless the step says
# `continue-on-problems: false`. Elsewhere exit 1 is a verdict (report --fail-on: untrustworthy data) and stops.
CONTINUE_BY_DEFAULT = {"kaggle", "openimages", "dedupe"}


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


class PipelineFile(BaseModel):
    """The shape of a pipeline file, before variables are substituted and steps are checked against their
    commands (curate.pipeline.load turns a validation error into one file:line message)."""

    model_config = ConfigDict(extra="forbid")

    vars: dict[str, Any] | None = None  # name: value; a null value must come from --set
    out: Any = None  # the tree every step works on
    seed: Any = None  # given to every step that has --seed (same for workers)
    workers: Any = None
    steps: list[Any] = Field(min_length=1)  # each a command name, or {command: {flag: value}}
    name: Any = None
    description: Any = None


TOP_KEYS = set(PipelineFile.model_fields)
