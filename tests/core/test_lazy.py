"""curate.core.lazy: a module named at the top and imported on first use."""

import subprocess
import sys

import pytest

from curate.core.lazy import lazy


def test_import_waits_for_the_first_attribute():
    code = ("import sys; from curate.core.lazy import lazy; m = lazy('curate.train.comparison'); "
            "print('torch' in sys.modules); m.COLUMNS; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_reads_the_real_module_every_time(monkeypatch):
    import curate.core.layout as layout

    proxy = lazy("curate.core.layout")
    assert proxy.sort_splits is layout.sort_splits
    monkeypatch.setattr(layout, "sort_splits", "patched")
    assert proxy.sort_splits == "patched"


def test_a_missing_module_fails_on_first_use_not_before():
    proxy = lazy("curate.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        getattr(proxy, "anything")  # noqa: B009  (the read is the test)


def test_command_modules_bind_their_api_lazily():
    """`curate --help` imports every command module: none of them may load pandas, OpenCV or torch."""
    code = ("import sys, curate.cli; print(sorted(m for m in ('pandas', 'cv2', 'torch', 'pyarrow', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_prefetch_imports_in_the_background(capfd):
    import threading

    from curate.core.lazy import prefetch

    name = "xml.dom.minidom"
    sys.modules.pop(name, None)
    before = set(threading.enumerate())
    prefetch(name, "no_such_module_for_curate")  # a failing import stays silent: the real use reports it
    started = set(threading.enumerate()) - before  # (one that has ended already is not listed: done too)
    for t in started:
        t.join(timeout=10)
    assert name in sys.modules and "no_such_module_for_curate" not in sys.modules  # (nothing else imported it)
    assert lazy(name).parseString("<a>1</a>").documentElement.tagName == "a"
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Error" not in err
    prefetch(name)  # already loaded: no thread
    assert set(threading.enumerate()) <= before | started
