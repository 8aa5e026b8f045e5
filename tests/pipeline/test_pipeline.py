"""`curate run`: validation against the registered commands, in-process steps, records, skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from test_kaggle_data import coin_files, write_zip

from curate.cli import main
from curate.core.errors import CurateError, InputError
from curate.core.manifest import read_info
from curate.pipeline import PipelineError, load_pipeline, parse_set, registered_commands, run_pipeline

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- a tiny test-only app


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root(quiet: bool = typer.Option(False, "-q"), verbose: bool = typer.Option(False, "-v")) -> None:
        pass

    @app.command("make")
    def make(out: Path = typer.Option(..., "--out"), n: int = typer.Option(2, "--n", min=1, max=50),
             tags: list[str] = typer.Option(None, "--tag"), big: bool = typer.Option(True, "--big/--small"),
             src: Path = typer.Option(None, "--src")) -> None:
        for i in range(n):
            p = out / "train" / "a" / f"{i}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{i} {tags} {big} {src.read_text() if src else ''}")

    @app.command("count")
    def count(root: Path = typer.Argument(...), fail_above: int = typer.Option(100, "--fail-above")) -> None:
        n = len(list(root.rglob("*.txt")))
        (root / "count.json").write_text(json.dumps(n))
        raise typer.Exit(1 if n > fail_above else 0)

    @app.command("fit")
    def fit(root: Path = typer.Argument(...), out: Path = typer.Option(..., "--out")) -> None:
        import time

        out.mkdir(parents=True, exist_ok=True)
        (out / "model.txt").write_text(f"{len(list(root.rglob('*.txt')))} {time.time_ns()}")  # new bytes each run

    @app.command("boom")
    def boom(root: Path = typer.Argument(...)) -> None:
        raise InputError("it went boom", "a hint")

    return app


def write(path: Path, doc: str) -> Path:
    path.write_text(doc)
    return path


PIPE = """\
vars:
  out: {out}
  n: 3
out: ${{out}}
steps:
  - make:
      n: ${{n}}
      tag: [x, y]
      big: false
  - count:
      fail-above: 10
"""


def test_runs_in_order_records_and_skips(tmp_path):
    app = make_app()
    out = tmp_path / "tree"
    p = write(tmp_path / "p.yaml", PIPE.format(out=out))
    res = run_pipeline(p, app=app, quiet=True)
    assert [(s.id, s.status, s.exit_code) for s in res.steps] == [("make", "ran", 0), ("count", "ran", 0)]
    assert res.steps[0].argv == ["--out", str(out), "--n", "3", "--tag", "x", "--tag", "y", "--small"]
    assert res.steps[1].argv == ["--fail-above", "10", str(out)]
    assert json.loads((out / "count.json").read_text()) == 3
    rec = read_info(out)["steps"]["run"]
    assert set(rec["steps"]) == {"make", "count"}
    assert rec["steps"]["make"]["exit_code"] == 0 and rec["steps"]["make"]["duration_s"] >= 0
    assert len(rec["steps"]["count"]["params_hash"]) == 16
    # unchanged: everything skipped
    again = run_pipeline(p, app=app, quiet=True)
    assert [s.status for s in again.steps] == ["skipped", "skipped"]
    # a changed parameter reruns that step and every later one
    changed = run_pipeline(p, app=app, quiet=True, variables={"n": 4})
    assert [s.status for s in changed.steps] == ["ran", "ran"]
    assert json.loads((out / "count.json").read_text()) == 4
    # the tree changed outside the pipeline: nothing can be trusted
    (out / "train" / "a" / "extra.txt").write_text("x")
    assert [s.status for s in run_pipeline(p, app=app, quiet=True, variables={"n": 4}).steps] == ["ran", "ran"]
    # --from forces from that step; --until stops after one
    res = run_pipeline(p, app=app, quiet=True, variables={"n": 4}, from_step="count")
    assert [s.status for s in res.steps] == ["not-run", "ran"]
    res = run_pipeline(p, app=app, quiet=True, variables={"n": 4}, until_step="make", force=True)
    assert [s.status for s in res.steps] == ["ran", "not-run"]


def test_external_input_change_reruns(tmp_path):
    app = make_app()
    src = tmp_path / "src.txt"
    src.write_text("v1")
    p = write(tmp_path / "p.yaml", f"out: {tmp_path / 't'}\nsteps:\n  - make: {{src: {src}}}\n  - count\n")
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["ran", "ran"]
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["skipped", "skipped"]
    src.write_text("version 2")
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["ran", "ran"]


def test_a_step_writing_outside_the_tree_is_skipped_until_its_output_is_gone(tmp_path):
    app = make_app()
    runs = tmp_path / "runs" / "m"
    p = write(tmp_path / "p.yaml", f"out: {tmp_path / 't'}\nsteps:\n  - make\n  - fit: {{out: {runs}}}\n")
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["ran", "ran"]
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["skipped", "skipped"]
    (runs / "model.txt").unlink()
    runs.rmdir()
    assert [s.status for s in run_pipeline(p, app=app, quiet=True).steps] == ["skipped", "ran"]
    assert (runs / "model.txt").exists()


def test_failure_stops_and_problems_policy(tmp_path):
    app = make_app()
    out = tmp_path / "t"
    p = write(tmp_path / "p.yaml", f"out: {out}\nsteps:\n  - make\n  - boom\n  - count\n")
    res = run_pipeline(p, app=app, quiet=True)
    assert [s.status for s in res.steps] == ["ran", "failed", "not-run"]
    assert res.exit_code == 2 and "it went boom" in res.steps[1].message
    p = write(tmp_path / "q.yaml", f"out: {out}\nsteps:\n  - make\n  - count: {{fail-above: 1}}\n  - count: {{}}\n    name: again\n")
    res = run_pipeline(p, app=app, quiet=True, force=True)
    assert [s.status for s in res.steps] == ["ran", "failed", "not-run"] and res.exit_code == 1
    p = write(tmp_path / "r.yaml", f"out: {out}\nsteps:\n  - make\n  - count: {{fail-above: 1}}\n"
                                   "    continue-on-problems: true\n  - count: {}\n    name: again\n")
    res = run_pipeline(p, app=app, quiet=True, force=True)
    assert [s.status for s in res.steps] == ["ran", "ran", "ran"] and res.exit_code == 1
    assert [s.id for s in res.steps] == ["make", "count", "again"]


def test_dry_run_writes_nothing(tmp_path):
    p = write(tmp_path / "p.yaml", PIPE.format(out=tmp_path / "tree"))
    res = run_pipeline(p, app=make_app(), dry_run=True)
    assert [s.status for s in res.steps] == ["would-run", "would-run"] and res.exit_code == 0
    assert not (tmp_path / "tree").exists()


@pytest.mark.parametrize("doc, where, needle", [
    ("out: o\nsteps:\n  - make:\n      nn: 3\n", ":4: steps[0].make.nn", "did you mean 'n'"),
    ("out: o\nsteps:\n  - make:\n      n: lots\n", ":4: steps[0].make.n", "invalid value 'lots'"),
    ("out: o\nsteps:\n  - make:\n      n: 99\n", ":4: steps[0].make.n", "less than or equal to 50"),
    ("out: o\nsteps:\n  - make:\n      big: maybe\n", ":4: steps[0].make.big", "true or false"),
    ("out: o\nsteps:\n  - make\n  - cuont: {}\n", ":4: steps[1].cuont", "did you mean 'count'"),
    ("steps:\n  - count: {}\n", ":2: steps[0].count", "needs argument ROOT"),
    ("out: ${nope}\nsteps:\n  - make\n", ":1: out", "unknown variable ${nope}"),
    ("vars:\n  x: null\nout: o\nsteps:\n  - make\n", ":2: vars.x", "--set x=VALUE"),
    ("out: o\nstep:\n  - make\n", ":2: step", "did you mean 'steps'"),
    ("out: o\nsteps:\n  - make: {n: 1\n", ":4", "not valid YAML"),
    ("out: o\nsteps:\n  - make: {}\n    count: {}\n", ":3: steps[0]", "give exactly one"),
    ("out: o\nsteps:\n  - make: [1, 2]\n", ":3: steps[0].make", "mapping of flags"),
    ("out: o\nsteps: []\n", ":2: steps", "non-empty list"),
    ("out: o\nsteps: make\n", ":2: steps", "non-empty list"),
    ("out: o\n", ":1: steps", "non-empty list"),
    ("vars: [a, b]\nout: o\nsteps:\n  - make\n", ":1: vars", "mapping name: value"),
    ("out: o\nworkers: 2\nstepz:\n  - make\n", ":3: stepz", "did you mean 'steps'"),
    ("out: o\nsteps:\n  - make: {n: 1, n: 2}\n", ":3: steps[0].make.n", "repeated key"),
    ("out: o\nsteps:\n  - make\nsteps:\n  - count: {}\n", ":4: steps", "repeated key"),
    ("out: o\nsteps:\n  - make: {}\n    name: [a]\n", ":4: steps[0].name", "text name"),
])
def test_validation_errors_name_file_line_field(tmp_path, doc, where, needle):
    p = write(tmp_path / "bad.yaml", doc)
    with pytest.raises(PipelineError) as e:
        load_pipeline(p, app=make_app())
    assert f"{p}{where}" in str(e.value) and needle in str(e.value)


def test_set_values_and_unknown_set(tmp_path):
    assert parse_set(["n=3", "name=a=b", "flag=true", "s="]) == {"n": 3, "name": "a=b", "flag": True, "s": ""}
    with pytest.raises(InputError):
        parse_set(["novalue"])
    p = write(tmp_path / "p.yaml", PIPE.format(out=tmp_path / "t"))
    with pytest.raises(PipelineError, match="--set nn: unknown variable.*did you mean 'n'"):
        load_pipeline(p, {"nn": 1}, app=make_app())
    assert load_pipeline(p, {"n": 7}, app=make_app()).steps[0].argv[3] == "7"


def test_cli_run_kaggle_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle", None)
    src = write_zip(tmp_path / "coin-images.zip", coin_files())
    out = tmp_path / "coins"
    p = write(tmp_path / "k.yaml", f"""\
vars: {{source: null, out: {out}}}
out: ${{out}}
workers: 1
steps:
  - kaggle: {{dataset: coins, source: "${{source}}", check-counts: false}}
""")
    with pytest.raises(SystemExit) as e:
        main(["run", str(p), "--set", f"source={src}", "--dry-run"])
    assert e.value.code == 0 and "would-run" in capsys.readouterr().out and not out.exists()
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", str(p), "--set", f"source={src}"])
    assert e.value.code == 0, capsys.readouterr().err
    assert (out / "train" / "1").is_dir()
    info = read_info(out)
    assert info["steps"]["kaggle"]["state"] == "complete" and info["steps"]["run"]["steps"]["kaggle"]["exit_code"] == 0
    with pytest.raises(SystemExit) as e:
        main(["run", str(p), "--set", f"source={src}"])
    assert e.value.code == 0 and "skipped" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path / "missing.yaml")])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_kaggle_step_validated_against_real_command(tmp_path):
    p = write(tmp_path / "k.yaml", "out: o\nsteps:\n  - kaggle:\n      dataset: coins\n      lable-names: true\n")
    with pytest.raises(PipelineError, match=r"k.yaml:5: steps\[0\].kaggle.lable-names: unknown option.*label-names"):
        load_pipeline(p)
    p = write(tmp_path / "k.yaml", "out: o\nsteps:\n  - kaggle:\n      label-names: true\n")
    with pytest.raises(PipelineError, match="needs argument DATASET"):
        load_pipeline(p)
    p = write(tmp_path / "k.yaml", "out: o\nsteps:\n  - run: {}\n")
    with pytest.raises(CurateError, match="cannot run inside a pipeline"):
        load_pipeline(p)


# ---------------------------------------------------------------- shipped pipelines


def _commands_in(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    return [next(k for k in (s if isinstance(s, dict) else {s: None}) if k not in ("name", "continue-on-problems"))
            for s in doc["steps"]]


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_are_valid(path):
    """Fails loudly on any wrong flag or a step whose command does not exist."""
    text = path.read_text()
    assert text.startswith("#"), "each pipeline starts with a comment header saying what it reproduces"
    missing = sorted(set(_commands_in(path)) - set(registered_commands()))
    assert not missing, f"steps name commands curate does not have: {', '.join(missing)}"
    declared = yaml.safe_load(text).get("vars") or {}
    needed = {k: "/tmp/somewhere" for k, v in declared.items() if v is None}
    pipe = load_pipeline(path, needed)
    assert pipe.out is not None and pipe.steps


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, capsys, demo_source):
    """`curate run pipelines/demo.yaml` on the demo's offline Open Images-layout source."""
    path = ROOT / "pipelines" / "demo.yaml"
    assert set(_commands_in(path)) <= set(registered_commands())
    pytest.importorskip("torch")
    out = tmp_path / "tree"
    args = ["-q", "run", str(path), "--set", f"source={demo_source}", "--set", f"out={out}"]
    with pytest.raises(SystemExit) as e:
        main(args)
    cap = capsys.readouterr()
    assert e.value.code in (0, 1), cap.err
    rec = read_info(out)["steps"]["run"]["steps"]
    assert set(rec) == {"openimages", "dedupe", "report", "train"}
    assert all(r["exit_code"] in (0, 1) for r in rec.values())
    with pytest.raises(SystemExit) as e:
        main(args)
    assert "skipped" in capsys.readouterr().out  # nothing changed: every step is skipped


def test_string_options_holding_paths_are_inputs_too(tmp_path):
    app = typer.Typer()

    @app.callback()
    def _root(quiet: bool = typer.Option(False, "-q")) -> None:
        pass

    @app.command("copy")
    def copy(src: str = typer.Option(..., "--src"), out: Path = typer.Option(..., "--out"),
             mode: str = typer.Option("train", "--mode")) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "copy.txt").write_text(Path(src).read_text())

    @app.command("other")
    def other() -> None:
        pass

    src = tmp_path / "in.txt"
    src.write_text("a")
    p = write(tmp_path / "p.yaml", f"out: {tmp_path / 't'}\nsteps:\n  - copy: {{src: {src}, mode: s3://x/y}}\n")
    step = load_pipeline(p, app=app).steps[0]
    assert sorted(step.external) == sorted([str(src), str(tmp_path / "t")])  # the tree is excluded when hashing
    assert run_pipeline(p, app=app, quiet=True).steps[0].status == "ran"
    assert run_pipeline(p, app=app, quiet=True).steps[0].status == "skipped"
    src.write_text("bb")
    assert run_pipeline(p, app=app, quiet=True).steps[0].status == "ran"


# ---------------------------------------------------------------- shipped pipelines on real data

COINS_DEV = ROOT.parent / "shared" / "data" / "coins-dev"


def test_steps_that_handle_problems_go_on_by_default(tmp_path):
    """kaggle/openimages/dedupe exit 1 = problems handled and listed: the pipeline goes on; report's exit 1
    (--fail-on) and train's stop it; a step can still say continue-on-problems: false."""
    p = write(tmp_path / "p.yaml", "out: t\nsteps:\n  - kaggle: {dataset: coins}\n  - dedupe: {}\n"
                                   "  - dedupe: {}\n    continue-on-problems: false\n  - report: {}\n  - train: {}\n")
    steps = load_pipeline(p).steps
    assert [(s.id, s.continue_on_problems) for s in steps] == [
        ("kaggle", True), ("dedupe", True), ("dedupe-2", False), ("report", False), ("train", False)]


def test_openimages_pipeline_takes_a_split(tmp_path, capsys):
    path = ROOT / "pipelines" / "openimages-person-animal-gun.yaml"
    pipe = load_pipeline(path, {"split": "validation", "source": str(tmp_path / "oi")})
    argv = pipe.steps[0].argv
    assert argv[argv.index("--split") + 1] == "validation"
    with pytest.raises(SystemExit) as e:
        main(["run", str(path), "--dry-run", "--set", "split=validation", "--set", f"out={tmp_path / 'o'}"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--split validation" in out and "would-run" in out
    assert not (tmp_path / "o").exists()


def _coins_zip(path: Path) -> Path:
    """coins-dev zipped as the Kaggle archive lays it out: coins/data/<split>/<id>/*.jpg + cat_to_name.json."""
    files = {f"coins/data/{p.relative_to(COINS_DEV).as_posix()}": p.read_bytes()
             for p in sorted(COINS_DEV.rglob("*")) if p.is_file() and p.name != "README.md"}
    return write_zip(path, files)


@pytest.mark.slow
def test_coins_pipeline_runs_every_step_on_real_coins(tmp_path, capsys):
    """`curate run coins` on the real coins-dev slice zipped like the Kaggle archive: kaggle reports the
    counts of the full set (exit 1), dedupe lists label conflicts (exit 1), resplit deals classes too small
    for --min-per-class 2 and says so; report and train still run."""
    if not (COINS_DEV / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS_DEV} (a clone without ../shared)")
    pytest.importorskip("torch")
    src, out = _coins_zip(tmp_path / "coin-images.zip"), tmp_path / "data" / "coins"
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "coins", "--set", f"source={src}", "--set", f"out={out}", "--set", "weights=none",
              "--set", "epochs=1", "--set", "size=32"])
    cap = capsys.readouterr()
    rec = read_info(out)["steps"]["run"]["steps"]
    assert rec["kaggle"]["exit_code"] == 1 and "expected 211 classes for coins, found 16" in cap.err
    assert rec["resplit"]["exit_code"] == 0
    short = [line for line in cap.err.splitlines() if "fewer than 2 files in an evaluation split" in line]
    assert len(short) == 1  # one line, and the resplit went on
    report = json.loads((out / ".curate" / "report" / "report.json").read_text())
    assert report["checks"]["below-minimum"]["severity"] == "warning" and "below-minimum" not in report["failed"]
    assert set(rec) == {"kaggle", "dedupe", "resplit", "report", "train"}, cap.err
    assert rec["report"]["exit_code"] == 0 and rec["train"]["exit_code"] == 0
    assert e.value.code == 1  # the highest code seen: problems handled along the way
    assert (tmp_path / "data" / "runs" / "coins").is_dir()


def test_pipelines_run_commands_from_the_registry_not_the_cli_app(tmp_path):
    """The library never imports curate.cli (the app and its root options): steps come from
    curate.commands.registry() and each gets its own --quiet/--verbose state (no module globals)."""
    code = ("import sys; from curate.pipeline import load_pipeline, run_pipeline\n"
            f"p = load_pipeline('demo', {{'source': 's', 'out': {str(tmp_path / 'o')!r}}})\n"
            "assert [s.command for s in p.steps] == ['openimages', 'dedupe', 'report', 'train'], p.steps\n"
            f"r = run_pipeline('demo', variables={{'source': 's', 'out': {str(tmp_path / 'o')!r}}}, dry_run=True)\n"
            "print('cli' if 'curate.cli' in sys.modules else 'no cli', r.exit_code)\n"
            "import curate.commands.common as c; print(hasattr(c, 'STATE'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["no", "cli", "0", "False"], r.stdout
