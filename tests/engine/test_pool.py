"""curate.engine.executor's local pool: one pool for every map of a process, dropped when a map fails."""

import os
from functools import partial

import pytest

from curate.core.errors import CurateError
from curate.engine import executor, shared
from curate.engine.executor import make_executor


def _pid(_: int) -> int:
    return os.getpid()


def _loaded(_: int) -> list[str]:
    return list(shared._LOADED)


def _read(ref, k: int) -> int:
    return ref.get()[k]


def _fail(k: int) -> int:
    if k == 3:
        raise ValueError("broken item")
    return k


def _die(k: int) -> int:
    if k == 1:
        os._exit(1)  # a worker killed (OOM killer, segfault)
    return k


def test_maps_of_one_process_share_the_workers():
    ex = make_executor("local", workers=2, quiet=True)
    first = set(ex.map(_pid, range(8)))
    second = set(make_executor("local", workers=2, quiet=True).map(_pid, range(8)))  # another executor too
    assert os.getpid() not in first
    assert first & second, "the second map started new worker processes"
    assert list(ex.map(_pid, [], desc="nothing")) == []


def test_a_kept_worker_drops_the_payload_of_an_ended_map():
    ex = make_executor("local", workers=2, quiet=True)
    with ex.share(list(range(100))) as ref:
        assert list(ex.map(partial(_read, ref), range(0, 100, 10))) == list(range(0, 100, 10))
    assert all(got == [] for got in ex.map(_loaded, range(8)))  # the file is gone: so is the object


def test_a_failed_map_drops_the_pool_and_the_next_map_starts_a_new_one():
    ex = make_executor("local", workers=2, quiet=True)
    list(ex.map(_pid, range(4)))
    before = executor._POOLS[2]
    with pytest.raises(ValueError, match="broken item"):
        list(ex.map(_fail, range(8)))
    assert executor._POOLS.get(2) is not before
    assert list(ex.map(_fail, [0, 1, 2])) == [0, 1, 2]


def test_a_dead_worker_is_one_error_and_the_next_map_works():
    ex = make_executor("local", workers=2, quiet=True)
    with pytest.raises(CurateError, match="worker process died"):
        list(ex.map(_die, range(6)))
    assert list(ex.map(_fail, [0, 1])) == [0, 1]


def _blas_env(_: int) -> str | None:
    return os.environ.get("OPENBLAS_NUM_THREADS")


def test_workers_start_with_one_blas_thread_and_the_caller_keeps_its_setting(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)  # an API caller that set nothing
    ex = make_executor("local", workers=2, quiet=True)
    assert set(ex.map(_blas_env, range(4))) == {"1"}  # idle BLAS threads would spin on the workers' cores
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    executor.one_blas_thread()  # what the CLI does first
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")  # a user's own setting wins
    executor.one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"



WARM_CHECK = """
import sys
import cv2, numpy as np
from curate.engine.executor import make_executor

def state(_):
    lab = cv2.cvtColor(np.full((256, 256, 3), 200, np.uint8), cv2.COLOR_BGR2LAB)  # large enough to go parallel
    return "curate.engine.warm" in sys.modules, cv2.getNumThreads(), tuple(lab[0, 0].tolist())

if __name__ == "__main__":
    print(sorted(set(make_executor("local", workers=2, quiet=True).map(state, range(4)))))
"""


def test_workers_inherit_the_warm_up_and_opencv_still_works_in_them(tmp_path):
    """curate.engine.warm runs in the fork server (OpenCV's CIELAB tables, once, not per worker). It must not
    leave OpenCV threads behind there: a worker forked after them deadlocked on its first colour conversion
    (so the pool runs in a subprocess with a time limit)."""
    import subprocess
    import sys

    script = tmp_path / "warm_check.py"
    script.write_text(WARM_CHECK)
    try:
        got = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a pool worker hung on an OpenCV colour conversion")
    assert got.stdout.strip() == "[(True, 1, (206, 128, 128))]", got.stderr
