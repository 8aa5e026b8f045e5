"""curate.engine.shared: one payload for every task of a map, sent once."""

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from curate.engine.executor import make_executor


def _task(ref, k: int) -> tuple[int, float, int]:
    arr = ref.get()
    return k, float(arr[k]), os.getpid()


def test_a_pool_reads_the_payload_from_one_file_and_the_file_goes_after():
    ex = make_executor("local", workers=2, quiet=True)
    arr = np.arange(10_000, dtype=np.float64) * 0.5
    with ex.share(arr) as ref:
        folder = Path(ref.folder)
        assert folder.is_dir() and len(pickle.dumps(ref)) < 500  # a task carries the name only
        got = list(ex.map(partial(_task, ref), range(0, 10_000, 500)))
    assert [(k, v) for k, v, _ in got] == [(k, k * 0.5) for k in range(0, 10_000, 500)]
    assert len({pid for *_, pid in got}) >= 1 and os.getpid() not in {pid for *_, pid in got}
    assert not folder.exists()


def test_one_worker_gets_the_object_itself():
    ex = make_executor("local", workers=1, quiet=True)
    payload = {"a": 1}
    with ex.share(payload) as ref:
        assert ref.get() is payload


def test_a_killed_runs_payload_folder_goes_with_the_next_share(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = Path(tempfile.gettempdir()) / f"curate-shared-{int(dead.stdout)}-x1"
    orphan.mkdir()
    (orphan / "payload.pkl").write_bytes(b"left by a killed run")
    mine = Path(tempfile.gettempdir()) / f"curate-shared-{os.getpid()}-x2"  # a live process's: kept
    mine.mkdir()
    try:
        with make_executor("local", workers=2, quiet=True).share([1, 2]):
            assert not orphan.exists() and mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)

