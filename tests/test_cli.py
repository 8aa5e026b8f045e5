"""The command line as a whole: fast help, version, examples everywhere, light workers, error boundary."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from curate.executor import loaded_heavy_modules, make_executor


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_and_module_entry():
    r = run("-m", "curate", "--version")
    assert r.returncode == 0 and r.stdout.startswith("curate ")


def test_help_imports_no_heavy_package():
    code = ("import sys, curate.cli; from curate.executor import HEAVY_MODULES; "
            "print(','.join(m for m in HEAVY_MODULES if m in sys.modules))")
    r = run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def _commands():
    from curate.cli import app

    return sorted(c.name for c in app.registered_commands)


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_with_examples(name):
    r = run("-m", "curate", name, "--help", env={**os.environ, "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "Example" in r.stdout, f"curate {name} --help has no examples"
    if name in ("dedupe", "report", "openimages", "kaggle", "resplit"):  # rich markup must not eat [ray]
        assert "'curate[ray]'" in r.stdout, r.stdout


def test_workers_import_nothing_heavy():
    import curate.classes  # noqa: F401  (the parent may have anything loaded)

    results = list(make_executor("local", workers=2, quiet=True).map(loaded_heavy_modules, [1, 2, 3]))
    assert results == [[], [], []]


def test_unknown_engine_is_a_usage_error(demo_source):
    r = run("-m", "curate", "openimages", "--classes", "cat", "--source", str(demo_source), "--engine", "spark",
            "--dry-run")
    assert r.returncode == 2 and "spark" in r.stderr and "Traceback" not in r.stderr


def test_executor_keeps_input_order():
    out = list(make_executor("local", workers=2, quiet=True).map(abs, [-5, 3, -1, 0, -9]))
    assert out == [5, 3, 1, 0, 9]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    r = run("-m", "curate", "-q", "demo", "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stdout + r.stderr
    tree = tmp_path / "d" / "tree"
    assert (tree / "manifest.parquet").exists() and (tree / "curate.json").exists()
    assert "QA report:" in r.stdout and "training run:" in r.stdout
    import pandas as pd

    m = pd.read_parquet(tree / "manifest.parquet")
    kept = m[m.status == "kept"]
    assert set(kept.label) == {"person", "animal", "vehicle", "flag"}
    assert (m.status == "removed").sum() >= 1, "the re-encoded copy of the cat photo is found by dedupe"
    assert list((tmp_path / "d" / "runs").glob("*/metrics.json"))


def test_a_dying_worker_fails_the_run_instead_of_hanging():
    from curate.errors import CurateError
    from curate.executor import _die_for_test

    with pytest.raises(CurateError, match="worker process died"):
        list(make_executor("local", workers=2, quiet=True).map(_die_for_test, [0, 1, 2, 3]))


def test_ctrl_c_exits_130_with_a_resume_hint(monkeypatch, capsys, demo_source):
    from curate.cli import main
    from curate.sources import openimages as oi

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(oi, "prepare", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["openimages", "--classes", "cat", "--source", str(demo_source), "--out", "/tmp/never-written"])
    assert e.value.code == 130
    assert "re-run the same command to resume" in capsys.readouterr().err


def test_ctrl_c_in_train_gives_one_line_with_its_resume_command(monkeypatch, capsys, tmp_path):
    pytest.importorskip("torch")
    import curate.train
    from curate.cli import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(curate.train, "train", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path), "--out", str(tmp_path / "run")])
    assert e.value.code == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--out {tmp_path / 'run'} --resume" in lines[0]


def test_demo_never_replaces_a_folder_it_did_not_make(tmp_path):
    from curate.demo import MARKER, build_source
    from curate.errors import InputError

    theirs = tmp_path / "data" / "source" / "train" / "mine.jpg"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"precious")
    with pytest.raises(InputError, match="was not written by curate demo"):
        build_source(tmp_path / "data" / "source")
    assert theirs.read_bytes() == b"precious"
    built = build_source(tmp_path / "demo" / "source")
    assert (built / MARKER).is_file() and build_source(built) == built  # its own folder is rebuilt
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        build_source(tmp_path / "afile" / "source")
