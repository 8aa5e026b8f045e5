"""The command line as a whole: fast help, version, examples everywhere, light workers, error boundary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from curate.engine.executor import make_executor
from curate.testing.hooks import die_on_two, loaded_heavy_modules


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_and_module_entry():
    r = run("-m", "curate", "--version")
    assert r.returncode == 0 and r.stdout.startswith("curate ")


def test_help_imports_no_heavy_package():
    code = ("import sys, curate.cli; from curate.testing.hooks import HEAVY_MODULES; "
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
    import curate.sources.classes  # noqa: F401  (the parent may have anything loaded)

    results = list(make_executor("local", workers=2, quiet=True).map(loaded_heavy_modules, [1, 2, 3]))
    assert results == [[], [], []]


def test_unknown_engine_is_a_usage_error(demo_source):
    r = run("-m", "curate", "openimages", "--classes", "cat", "--source", str(demo_source), "--engine", "spark",
            "--dry-run")
    assert r.returncode == 2 and "spark" in r.stderr and "Traceback" not in r.stderr


def test_executor_keeps_input_order():
    out = list(make_executor("local", workers=2, quiet=True).map(abs, [-5, 3, -1, 0, -9]))
    assert out == [5, 3, 1, 0, 9]



@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_map_pulls_items_as_workers_free_up(workers):
    pulled = []

    def items():
        for i in range(-20, 0):
            pulled.append(i)
            yield i

    it = make_executor("local", workers=workers, quiet=True).map(abs, items(), stream=True)
    assert next(it) == 20
    assert len(pulled) <= 2 * workers + 1  # the rest is made while workers run
    assert list(it) == list(range(19, 0, -1)) and len(pulled) == 20

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
    from curate.core.errors import CurateError

    with pytest.raises(CurateError, match="worker process died"):
        list(make_executor("local", workers=2, quiet=True).map(die_on_two, [0, 1, 2, 3]))


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
    from curate.core.errors import InputError
    from curate.sources.demo import MARKER, build_source

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


BOX_OR_ANSI = re.compile("[\u2500-\u257f\x1b]")  # box-drawing characters, escape sequences


def _piped_env(**extra) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}, **extra}


def test_tables_are_plain_unfolded_text_in_pipes(demo_source):
    r = run("-m", "curate", "openimages", "--classes", "person,animal", "--source", str(demo_source), "--dry-run",
            env=_piped_env())
    assert r.returncode == 0, r.stderr
    assert not BOX_OR_ANSI.search(r.stdout), r.stdout
    assert "boxes available" in r.stdout and "images selected" in r.stdout, r.stdout  # headers not folded at 80
    assert "detections.csv" not in r.stdout  # progress stays on stderr


@pytest.fixture(scope="module")
def bracket_tree(demo_source, tmp_path_factory):
    """A small crop tree whose path holds rich-markup-like text, and the stdout that built it."""
    out = tmp_path_factory.mktemp("cli") / "crops[/x]"
    r = run("-m", "curate", "openimages", "--classes", "animal", "--source", str(demo_source), "--out", str(out),
            "-j", "1", env=_piped_env())
    return out, r


def test_paths_print_as_typed_never_as_markup(bracket_tree):
    out, r = bracket_tree
    assert r.returncode == 0, r.stderr  # '[/x]' once crashed the summary (unexpected MarkupError)
    assert f"wrote {out}" in r.stdout and f"manifest: {out}/manifest.parquet" in r.stdout, r.stdout


def test_dedupe_json_dash_is_clean_json_on_stdout(bracket_tree, tmp_path):
    out, _ = bracket_tree
    r = run("-m", "curate", "dedupe", str(out), "--dry-run", "--json", "-", "-j", "1", cwd=tmp_path, env=_piped_env())
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # the summary went to stderr
    assert "clusters" in rep and "leakage_clusters" in rep
    assert "dry run: nothing moved" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no file named '-' or '--pairs.csv'


def test_kaggle_lists_each_problem_once(tmp_path):
    from test_kaggle_data import coin_files, write_zip

    src = write_zip(tmp_path / "coins.zip", coin_files())
    r = run("-m", "curate", "kaggle", "coins", "--out", str(tmp_path / "o"), "--source", str(src), "--label-names",
            "--no-check-counts", "-j", "1", env=_piped_env())
    assert r.returncode == 1, r.stderr  # an id without a name is a problem with --label-names
    assert r.stderr.count("class ids have no name") == 1, r.stderr


def test_help_paragraphs_are_reflowed():
    r = run("-m", "curate", "dedupe", "--help", env=_piped_env(COLUMNS="250"))
    assert r.returncode == 0, r.stderr
    assert "near duplicates are images whose perceptual hashes differ" in r.stdout  # once split by a source newline


def test_engine_value_reaches_the_api_and_no_environment_changes(tmp_path, monkeypatch):
    """--engine, --workers and --ray-address reach the API as one Engine value; no command sets
    RAY_ADDRESS (it used to, so a pipeline step's address leaked into the next step)."""
    from typer.testing import CliRunner

    import curate.dedupe.apply
    import curate.resplit
    from curate.cli import app
    from curate.core.errors import InputError
    from curate.engine.executor import Engine

    seen = []

    def fake(root, **kw):
        seen.append(kw["engine"])
        raise InputError("stopped by the test")

    monkeypatch.setattr(curate.dedupe.apply, "dedupe", fake)
    monkeypatch.setattr(curate.resplit, "plan_resplit", fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "t" / "train" / "a").mkdir(parents=True)
    root = str(tmp_path / "t")
    runner = CliRunner()
    for args in (["dedupe", root, "-n", "--engine", "ray", "--ray-address", "ray://h:1", "-j", "3"],
                 ["dedupe", root, "-n"], ["resplit", root, "-r", "0.5,0.5", "--engine", "ray", "--ray-address", "auto"]):
        runner.invoke(app, args)
    assert seen == [Engine("ray", 3, "ray://h:1"), Engine("local"), Engine("ray", None, "auto")]
    assert "RAY_ADDRESS" not in os.environ
    r = runner.invoke(app, ["dedupe", root, "-n", "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address needs --engine ray" in r.output


def test_engine_names_and_ray_imported_only_when_asked_for():
    from curate.core.errors import InputError
    from curate.engine.executor import Engine, LocalExecutor

    assert isinstance(make_executor(Engine("local", 3)), LocalExecutor)
    assert make_executor(Engine("local", 3)).workers == 3
    assert make_executor(Engine("local", 3), workers=1).workers == 1  # a caller running few items in-process
    with pytest.raises(InputError, match="unknown engine 'spark'"):
        Engine("spark")
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        Engine("local", address="auto")
    code = ("import sys, curate.engine.executor, curate.cli, curate.dedupe.find, curate.crop.build; "
            "print(any(m == 'ray' or m.startswith(('ray.', 'curate.engine.ray_engine')) for m in sys.modules))")
    r = run("-c", code)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
