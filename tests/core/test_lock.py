"""The tree lock (curate.core.lock): one writer per tree, readers wait for no one but refuse a running writer,
stale locks are taken over, `curate run` holds it once for all its steps.

Real files: a slice of ../shared/data/coins-dev (copied first), run through the real command line in
separate processes, so two writers really overlap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.core import lock
from curate.core.lock import LOCK_NAME, TreeLocked, check_unlocked, hold, lock_path

REPO = Path(__file__).resolve().parents[2]
COINS = REPO.parent / "shared" / "data" / "coins-dev"
CLI = [sys.executable, "-m", "curate"]
HOLDER = """
import sys, time
from curate.core.lock import hold
with hold(sys.argv[1], command="curate dedupe (test holder)"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture()
def coins(tmp_path) -> Path:
    """Three labels of coins-dev, every split (byte copies across splits included)."""
    if not COINS.is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    root = tmp_path / "coins"
    for split in ("train", "validation", "test"):
        for label in sorted(p.name for p in (COINS / "train").iterdir())[:3]:
            if (COINS / split / label).is_dir():
                shutil.copytree(COINS / split / label, root / split / label)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def files_of(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file outside the state folder."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".curate" not in p.parts}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def start_holder(root: Path, seconds: float = 60) -> subprocess.Popen:
    """Another process holding ROOT's write lock until killed (returns once it holds it)."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_hold_writes_who_and_releases(tmp_path):
    root = tmp_path / "tree"
    (root / "train" / "a").mkdir(parents=True)
    with hold(root, command="curate dedupe tree") as path:
        assert path == root / ".curate" / LOCK_NAME
        raw = json.loads(path.read_text())
        assert raw["pid"] == os.getpid() and raw["host"] == socket.gethostname()
        assert raw["command"] == "curate dedupe tree" and raw["started"]
        with hold(root):  # re-entrant: `curate run` holds it, its steps run in the same process
            assert path.exists()
        assert path.exists()
        check_unlocked(root)  # a reader in the holding process (a report step of a pipeline) goes on
    assert not path.exists()


def test_lock_for_a_new_out_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "tree"
    with hold(out):
        assert (out / ".curate" / LOCK_NAME).exists()
        assert lock.fresh(out)  # an import may still treat it as a new folder
    assert not out.exists() and not out.parent.exists()


def test_second_writer_and_readers_stop_with_one_line(coins):
    before = files_of(coins)
    holder = start_holder(coins)
    try:
        for args in (["dedupe", str(coins)], ["resplit", str(coins), "--ratios", "0.8,0.1,0.1"],
                     ["dedupe", "--undo", str(coins)], ["report", str(coins)], ["dedupe", "-n", str(coins)]):
            r = cli(*args)
            assert r.returncode == 2, (args, r.stdout, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
            assert "is being changed by `curate dedupe (test holder)`" in lines[0]
            assert f"pid {holder.pid}" in lines[0]
    finally:
        holder.kill()
        holder.wait()
    assert files_of(coins) == before
    assert not (Path(str(coins) + ".quarantine")).exists()


def test_stale_lock_is_taken_over_with_a_note(coins):
    path = lock_path(coins)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "command": "curate dedupe old",
                                "started": "2026-01-01T00:00:00"}))
    check_unlocked(coins)  # a dead writer stops no reader
    r = cli("dedupe", str(coins))
    assert r.returncode in (0, 1), r.stderr
    assert "took over the lock of `curate dedupe old`" in r.stderr
    assert not path.exists()


def test_torn_or_foreign_lock(tmp_path):
    root = tmp_path / "tree"
    path = root / ".curate" / LOCK_NAME
    path.parent.mkdir(parents=True)
    path.write_text('{"pid": 12')  # a torn write from long ago: taken over
    old = time.time() - 60
    os.utime(path, (old, old))
    notes = []
    with hold(root, note=notes.append):
        pass
    assert notes == ["took over the lock of a torn lock file, which is no longer running"]
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "curate resplit x", "started": "t"}))
    with pytest.raises(TreeLocked, match="another host; if it is gone, delete"):  # cannot tell: refuse
        with hold(root):
            pass
    assert json.loads(path.read_text())["host"] == "elsewhere"  # someone else's lock is never removed


def test_two_real_writers_nothing_lost_and_undo(coins):
    """Two `curate dedupe` runs on one tree: the second stops at once, the first finishes, a plain undo
    restores the tree byte for byte."""
    before = files_of(coins)
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.Popen([*CLI, "dedupe", str(coins), "--workers", "1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    path = lock_path(coins)
    deadline = time.time() + 60
    while not path.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert path.exists(), "the first writer never took the lock"
    second = cli("dedupe", str(coins))
    out, err = first.communicate(timeout=300)
    assert second.returncode == 2 and "is being changed by `curate dedupe" in second.stderr, second.stderr
    assert first.returncode == 0, err
    quarantine = Path(str(coins) + ".quarantine")
    moved = {str(p.relative_to(quarantine)) for p in quarantine.rglob("*") if p.is_file()}
    assert moved and set(files_of(coins)) | moved >= set(before)  # every file is in the tree or quarantined
    assert not path.exists()
    r = cli("dedupe", "--undo", str(coins))
    assert r.returncode == 0, r.stderr
    assert files_of(coins) == before


def test_pipeline_holds_the_lock_once(coins, tmp_path):
    from curate.pipeline import run_pipeline

    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"out: {coins}\nworkers: 1\nsteps:\n  - dedupe: {{dry-run: true}}\n  - report: {{}}\n")
    res = run_pipeline(pipe, quiet=True)
    assert [s.exit_code for s in res.steps] == [0, 0]  # its own steps pass the lock it holds
    holder = start_holder(coins)
    try:
        with pytest.raises(TreeLocked):
            run_pipeline(pipe, quiet=True, force=True)
    finally:
        holder.kill()
        holder.wait()


def test_imports_lock_their_out_and_leave_no_trace(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    out = tmp_path / "new"
    r = cli("import", str(bad), "--out", str(out))
    assert r.returncode == 2 and "corrupt or incomplete archive" in r.stderr, r.stderr
    assert not out.exists()  # the lock's folders went with the failed import
    (out / "train" / "a").mkdir(parents=True)
    holder = start_holder(out)
    try:
        r = cli("kaggle", "coins", "--out", str(out), "--source", str(bad))
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2 and "is being changed by `curate dedupe (test holder)`" in r.stderr, r.stderr
