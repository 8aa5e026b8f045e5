"""Files curate ships: the top-level `manifests/` and `pipelines/` folders.

In a checkout, `curate/resources/manifests` and `.../pipelines` are symlinks to those folders; a built
wheel copies their files in, so a non-editable install (`pip install .` or from git) finds them too.
"""

from __future__ import annotations

from pathlib import Path

from curate.core.errors import InputError

HERE = Path(__file__).resolve().parent


def resource(*parts: str) -> Path:
    """Path of a shipped file, e.g. resource("manifests", "datasets.yaml")."""
    return HERE.joinpath(*parts)


def shipped_pipelines() -> list[str]:
    return sorted(p.stem for p in (HERE / "pipelines").glob("*.yaml"))


def find_pipeline(name: str | Path) -> Path:
    """A pipeline file by path, or a shipped one by name ("coins", "demo.yaml", "pipelines/coins.yaml")."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise InputError(f"{name} is a folder, not a pipeline file", "pass a .yaml file, e.g. pipelines/demo.yaml")
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    shipped = HERE / "pipelines" / f"{stem}.yaml"
    if shipped.is_file() and (path.parent in (Path("."), Path("pipelines"))):
        return shipped
    raise InputError(f"pipeline file {name} does not exist",
                     f"pass a YAML file or a shipped pipeline name: {', '.join(shipped_pipelines())}")
