"""A built wheel carries manifests/ and pipelines/, so a non-editable install works from any folder."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from curate.resources import find_pipeline, resource, shipped_pipelines

REPO = Path(__file__).resolve().parents[1]


def test_resources_resolve_in_the_checkout():
    assert resource("manifests", "datasets.yaml").is_file()
    assert resource("manifests", "demo", "classes.csv").is_file()
    assert {"coins", "demo", "openimages-person-animal-gun"} <= set(shipped_pipelines())


def test_find_pipeline_by_path_or_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_pipeline("coins") == resource("pipelines", "coins.yaml")
    assert find_pipeline("pipelines/demo.yaml") == resource("pipelines", "demo.yaml")
    own = tmp_path / "coins.yaml"
    own.write_text("steps: []\n")
    assert find_pipeline("coins.yaml").resolve() == own  # a file in the current folder wins over a shipped name
    from curate.core.errors import InputError

    with pytest.raises(InputError, match=r"shipped pipeline name: .*\bcoins\b"):
        find_pipeline("elsewhere/coins.yaml")
    with pytest.raises(InputError, match="is a folder"):
        find_pipeline(str(tmp_path))


@pytest.mark.slow
def test_wheel_ships_resources_and_runs_outside_the_checkout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("curate", "manifests", "pipelines"):
        shutil.copytree(REPO / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    if build.returncode and "No module named pip" in build.stderr:
        pytest.skip("pip is not available")
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("curate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("curate/resources/manifests/datasets.yaml", "curate/resources/manifests/openimages-aliases.yaml",
                 "curate/resources/manifests/demo/classes.csv", "curate/resources/pipelines/coins.yaml",
                 "curate/resources/pipelines/demo.yaml", "curate/report/templates/report.html.j2",
                 "curate/report/templates/macros.html.j2", "curate/report/templates/report.css"):
        assert must in names, must
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import curate, curate.sources.classes as c, curate.sources.kaggle as k;"
            "print(curate.__file__); print(k.PRESETS_FILE.is_file(), c.ALIASES_FILE.is_file())")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith(str(site)) and res.stdout.splitlines()[-1] == "True True"
    res = subprocess.run([sys.executable, "-m", "curate", "run", "demo", "--set", "source=s", "--set", "out=o",
                          "--dry-run"], cwd=work, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "would-run" in res.stdout and "curate openimages" in res.stdout


def test_cli_never_imports_the_testing_helpers(tmp_path):
    """curate.testing (generated test data) ships in the wheel, but neither `import curate.cli` nor `curate --help`
    loads it; and nothing under curate/ outside curate/testing/ names it."""
    code = ("import sys, curate, curate.cli\n"
            "try:\n    curate.cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "bad = sorted(m for m in sys.modules if m.startswith('curate.testing'))\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "usage" in res.stdout.lower()
    users = [p.relative_to(REPO).as_posix() for p in (REPO / "curate").rglob("*.py")
             if "curate.testing" in p.read_text() and (REPO / "curate" / "testing") not in p.parents]
    assert users == []
