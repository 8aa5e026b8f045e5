"""curate.moves.journal: one journal and one undo for dedupe and resplit, local and object-store trees.

Crashes are real: a subprocess runs the command and `os._exit(9)`s (as kill -9 would) after N moves; the
rerun must end where an uninterrupted run ends, and an undo must give back the original tree."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from curate.core import storage
from curate.dedupe.apply import dedupe, undo_dedupe
from curate.moves.journal import journal_dir, read_journal, relocate
from curate.moves.undo import undo
from curate.resplit import apply_resplit, plan_resplit, undo_resplit

REPO = Path(__file__).resolve().parents[2]
COINS = REPO.parent / "shared" / "data" / "coins-dev"

KILLER = """
import os, sys
import curate.moves.movers as m
n, real, done = int(os.environ["KILL_AFTER_MOVES"]), m.LocalFiles.move, [0]
def move(self, src, dst, sha):
    real(self, src, dst, sha)
    done[0] += 1
    if done[0] == n:
        os._exit(9)
m.LocalFiles.move = move
from curate.cli import main
main(sys.argv[1:])
"""


@pytest.fixture()
def coins(tmp_path) -> Path:
    if not (COINS / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    return COINS


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _curate(*args: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if kill_after is None:
        cmd = [sys.executable, "-m", "curate", *args]
    else:
        cmd, env["KILL_AFTER_MOVES"] = [sys.executable, "-c", KILLER, *args], str(kill_after)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _shas(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the roots (state folders left out; the trees' folder in JSON files as DIR;
    curate.json without its timestamps)."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            rel = f"{root.name}/{p.relative_to(root).as_posix()}"
            if not p.is_file() or "/.curate/" in f"/{rel}":
                continue
            data = p.read_bytes()
            if p.suffix == ".json":  # paths of the tree's folder in dedupe.json and curate.json
                data = data.replace(str(root.parent).encode(), b"DIR")
            if p.name == "curate.json":
                info = json.loads(data)
                data = json.dumps(info.get("steps", {}), sort_keys=True).encode()
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _same(a: Path, b: Path) -> None:
    """Tree a and tree b (and their quarantines) hold the same files, byte for byte."""
    qa, qb = a.with_name(a.name + ".quarantine"), b.with_name(b.name + ".quarantine")
    got = {k.replace(qa.name, "Q", 1).replace(a.name, "T", 1): v for k, v in _shas(a, qa).items()}
    want = {k.replace(qb.name, "Q", 1).replace(b.name, "T", 1): v for k, v in _shas(b, qb).items()}
    assert got.keys() == want.keys()
    assert got == want


def test_kill_9_during_dedupe_moves_then_rerun_ends_like_an_uninterrupted_run(coins, tmp_path):
    whole = _copy(coins, tmp_path / "a" / "coins")
    killed = _copy(coins, tmp_path / "b" / "coins")
    r = _curate("-q", "dedupe", str(whole), "-j", "1")
    moved = sum(1 for p in (tmp_path / "a" / "coins.quarantine").rglob("*") if p.is_file())
    assert r.returncode == 0 and moved > 20, r.stderr
    n = random.Random(os.getpid()).randrange(1, moved)
    r = _curate("-q", "dedupe", str(killed), "-j", "1", kill_after=n)
    assert r.returncode == 9, (n, r.stderr)
    assert sum(1 for p in (tmp_path / "b" / "coins.quarantine").rglob("*") if p.is_file()) == n
    r = _curate("-q", "dedupe", str(killed), "-j", "1")  # the same command again: finishes its plan
    assert r.returncode == 0, r.stderr
    _same(killed, whole)
    assert [j.name for j in (killed / ".curate" / "journal").glob("*.pending")] == []


def test_kill_9_during_dedupe_then_undo_gives_back_the_original_tree(coins, tmp_path):
    original = _copy(coins, tmp_path / "orig" / "coins")
    root = _copy(coins, tmp_path / "run" / "coins")
    r = _curate("-q", "dedupe", str(root), "-j", "1", kill_after=7)
    assert r.returncode == 9, r.stderr
    (journal,) = (root / ".curate" / "journal").glob("*-dedupe.jsonl")
    with open(journal, "a") as f:
        f.write('{"cancel": "/some/wh')  # and a crash mid-write of a journal line
    r = _curate("dedupe", "--undo", str(root))
    assert r.returncode == 0, r.stderr
    assert "restored 7 files" in r.stdout
    assert "planned moves never happened" in r.stderr and "skipped 1 torn journal line" in r.stderr
    _same(root, original)
    assert not (tmp_path / "run" / "coins.quarantine").exists()


def test_a_journaled_move_that_never_happened_is_reported_as_never_moved(tmp_path):
    root = tmp_path / "t"
    for name in ("a", "b", "c"):
        (root / "train" / "x").mkdir(parents=True, exist_ok=True)
        (root / "train" / "x" / f"{name}.png").write_bytes(name.encode())
    q = tmp_path / "t.quarantine"
    relocate(root, "dedupe", [(root / "train/x/a.png", q / "train/x/a.png", None)])
    path = next(journal_dir(root).glob("*.jsonl"))
    lines = path.read_text().splitlines()
    entry = json.loads(lines[1])  # now a second run that crashed right after journaling its move
    entry.update({"from": str(root / "train/x/b.png"), "to": str(q / "train/x/b.png"),
                  "sha256": hashlib.sha256(b"b").hexdigest()})
    second = path.with_name(path.stem + "-2.jsonl")
    second.write_text("\n".join([lines[0], json.dumps(entry), '{"planned": 1}', '{"from": "/x", "t']) + "\n")
    j = read_journal(second)
    assert j.torn == 1 and len(j.moves) == 1 and j.planned and not j.done
    rep = undo(root, "dedupe")
    assert rep.ok and rep.never_moved == [str(root / "train/x/b.png")] and rep.torn == 1
    assert rep.restored == 1 and not rep.missing
    assert sorted(p.name for p in (root / "train/x").iterdir()) == ["a.png", "b.png", "c.png"]
    assert not q.exists()


def test_kill_9_during_resplit_then_rerun_and_undo(coins, tmp_path):
    whole = _copy(coins, tmp_path / "a" / "coins")
    killed = _copy(coins, tmp_path / "b" / "coins")
    original = _copy(coins, tmp_path / "c" / "coins")
    args = ("--ratios", "0.8,0.1,0.1", "-j", "1")
    assert _curate("-q", "resplit", str(whole), *args).returncode == 0
    r = _curate("-q", "resplit", str(killed), *args, kill_after=30)
    assert r.returncode == 9, r.stderr
    r = _curate("-q", "resplit", str(killed), *args)
    assert r.returncode == 0, r.stderr
    _same(killed, whole)
    r = _curate("resplit", "--undo", str(killed))
    assert r.returncode == 0, r.stderr
    _same(killed, original)


def test_a_rerun_with_other_options_or_a_changed_tree_says_how_to_undo(coins, tmp_path):
    root = _copy(coins, tmp_path / "coins")
    assert _curate("-q", "dedupe", str(root), "-j", "1", kill_after=3).returncode == 9
    r = _curate("-q", "dedupe", str(root), "-j", "1", "--keep", "first")
    assert r.returncode == 2 and "other options" in r.stderr and "--undo" in r.stderr
    assert len([x for x in r.stderr.splitlines() if not x.startswith("warning:")]) == 1, r.stderr
    plan = read_journal(next((root / ".curate" / "journal").glob("*-dedupe.jsonl"))).moves
    Path(plan[-1]["from"]).write_bytes(b"changed by someone")
    r = _curate("-q", "dedupe", str(root), "-j", "1")
    assert r.returncode == 2 and "cannot finish the interrupted" in r.stderr and "--undo" in r.stderr
    assert len([x for x in r.stderr.splitlines() if not x.startswith("warning:")]) == 1, r.stderr


def test_old_format_journal_still_undoes(tmp_path):
    """A journal written before the plan-first format (ROOT/.curate/journal): move lines and a state file."""
    root = tmp_path / "t"
    (root / "train" / "x").mkdir(parents=True)
    q = tmp_path / "t.quarantine"
    (q / "train" / "x").mkdir(parents=True)
    (q / "train" / "x" / "a.png").write_bytes(b"a")
    (root / "manifest.parquet").write_bytes(b"new")
    jdir = root / ".curate" / "journal"
    jdir.mkdir(parents=True)
    (jdir / "old.bin").write_bytes(b"old")
    lines = [{"op": "dedupe", "root": str(root), "created": 0},
             {"from": str(root / "train/x/a.png"), "to": str(q / "train/x/a.png"),
              "sha256": hashlib.sha256(b"a").hexdigest(), "made": str(q)}, {"done": True}]
    (jdir / "20240101-000000-dedupe.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    state = {"files": [{"path": str(root / "manifest.parquet"), "backup": str(jdir / "old.bin"),
                        "sha256": hashlib.sha256(b"new").hexdigest()}]}
    (jdir / "20240101-000000-dedupe.state.json").write_text(json.dumps(state))
    rep = undo_dedupe(root)
    assert rep.ok and rep.restored == 1 and rep.files_restored == [str(root / "manifest.parquet")]
    assert (root / "train/x/a.png").read_bytes() == b"a" and (root / "manifest.parquet").read_bytes() == b"old"
    assert not q.exists()


# ---------------------------------------------------------------- object stores (fsspec memory://)


def _upload(local: Path, url: str) -> None:
    for p in sorted(local.rglob("*")):
        if p.is_file() and ".curate" not in p.parts:
            storage.write_bytes(f"{url}/{p.relative_to(local).as_posix()}", p.read_bytes())


def _objects(url: str) -> dict[str, str]:
    try:
        keys = storage.list_objects(url)
    except Exception:
        return {}
    return {k: hashlib.sha256(storage.read_bytes(f"{url}/{k}")).hexdigest() for k in keys}


@pytest.fixture()
def store(coins, request):
    url = f"memory://journal-{request.node.name}/coins"
    _upload(coins, url)
    yield url
    fs, _ = storage.filesystem(url)
    fs.rm(f"/journal-{request.node.name}", recursive=True)


def test_undo_force_on_an_object_store(store):
    before = _objects(store)
    out = dedupe(store, workers=1, quiet=True)
    assert out.moved > 2
    gone = sorted(_objects(f"{store}.quarantine"))[0]
    storage.filesystem(store)[0].rm_file(storage.filesystem(f"{store}.quarantine/{gone}")[1])
    rep = undo_dedupe(store)
    assert not rep.ok and rep.missing == [f"{store}.quarantine/{gone}"] and rep.restored == out.moved - 1
    assert not rep.files_restored  # stopped: manifest.parquet etc. stay
    rep = undo_dedupe(store, force=True)
    assert rep.missing == [f"{store}.quarantine/{gone}"] and rep.files_restored
    assert _objects(store) == {k: v for k, v in before.items() if k != gone}
    with pytest.raises(Exception, match="nothing to undo"):
        undo_dedupe(store)


def test_resplit_on_an_object_store_plan_apply_undo(store, coins, tmp_path):
    local = _copy(coins, tmp_path / "coins")
    before = _objects(store)
    kw = dict(ratios="0.8,0.1,0.1", workers=1, quiet=True)
    plan = plan_resplit(store, **kw)
    lplan = plan_resplit(local, **kw)
    assert plan.moves() == lplan.moves() and len(plan.moves()) > 0
    moved, journal = apply_resplit(plan)
    apply_resplit(lplan)
    assert moved == len(lplan.moves()) and journal is not None
    assert storage.exists(f"{store}.journal/{journal.name}")
    got = {k: v for k, v in _objects(store).items() if k != "curate.json"}
    want = {k: v for k, v in _shas(local).items() if not k.endswith("curate.json")}
    assert got == {k.split("/", 1)[1]: v for k, v in want.items()}
    rep = undo_resplit(store)
    assert rep.ok and rep.restored == moved
    assert _objects(store) == before


def test_resplit_command_on_an_object_store(store):
    """`curate resplit s3://…`: the URL reaches the API as a URL (not a mangled path), moves and undoes."""
    from typer.testing import CliRunner

    from curate.cli import app

    before = _objects(store)
    runner = CliRunner()
    r = runner.invoke(app, ["resplit", store, "--ratios", "0.8,0.1,0.1", "-j", "1"])
    assert r.exit_code == 0 and "moved" in r.output, r.output
    assert _objects(store) != before
    r = runner.invoke(app, ["resplit", "--undo", store])
    assert r.exit_code == 0 and "restored" in r.output, r.output
    assert _objects(store) == before
