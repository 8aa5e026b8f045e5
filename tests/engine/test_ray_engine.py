"""The Ray engine: one local Ray cluster (2 CPUs) for the module, started inside a local S3 server's
environment so its workers read and write s3:// too. Results must be identical to the local engine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from curate.core import storage
from curate.core.errors import InputError
from curate.dedupe import find as dedupe
from curate.engine.executor import make_executor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    from test_storage import moto_s3  # the same local S3 server helper (tests/ is on sys.path)

    with moto_s3(tmp_path_factory.mktemp("aws")) as fs:
        from curate.engine.ray_engine import connect

        connect(None, 2)  # workers inherit the S3 environment set above
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test helpers run on workers
        try:
            yield fs
        finally:
            ray.shutdown()


def build(source, out, workers=1, engine="local", **kw):
    from curate.crop.build import BuildParams
    from curate.sources import openimages as oi

    prep = oi.prepare("person,animal,vehicle,flag", source=source)
    return oi.build(prep, out, BuildParams(**kw), workers=workers, engine=engine, quiet=True)


def tree_files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".curate" not in p.parts}


# ---------------------------------------------------------------- helpers that run as Ray tasks


def _slow_identity(x):
    import time

    time.sleep(0.02 * (x % 3))
    return x


def _fail_once(arg):
    marker, value = arg
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise OSError("transient failure")
    return value


def _crash_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker process dies; Ray restarts the task elsewhere
    return "ok"


def _always_fails(x):
    raise ValueError(f"bad item {x}")


# ---------------------------------------------------------------- executor contract


def test_results_in_input_order_with_bounded_in_flight(cluster):
    ex = make_executor("ray", workers=2, quiet=True, max_in_flight=3)
    assert list(ex.map(_slow_identity, range(24), desc="t")) == list(range(24))
    assert ex.peak_in_flight == 3
    assert list(ex.map(_slow_identity, [])) == []


def test_a_task_failing_once_is_retried(cluster, tmp_path):
    items = [(str(tmp_path / f"m{i}"), i) for i in range(4)]
    assert list(make_executor("ray", workers=2, quiet=True).map(_fail_once, items)) == [0, 1, 2, 3]
    assert all(os.path.exists(m) for m, _ in items)  # each one did fail once


def test_a_crashed_worker_is_retried(cluster, tmp_path):
    out = list(make_executor("ray", workers=2, quiet=True).map(_crash_once, [str(tmp_path / "m")]))
    assert out == ["ok"]


def test_exhausted_retries_raise_the_tasks_own_error(cluster):
    ex = make_executor("ray", workers=2, quiet=True, max_retries=1)
    with pytest.raises(ValueError, match="bad item 7"):
        list(ex.map(_always_fails, [7]))


def test_ray_address_needs_ray_engine():
    with pytest.raises(InputError, match="--engine ray"):
        make_executor("local", workers=1, ray_address="auto")


def test_missing_ray_is_one_actionable_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "curate.engine.ray_engine", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(InputError, match=r"pip install 'curate\[ray\]'"):
        make_executor("ray", workers=1)


def test_local_pool_stops_at_once_on_ctrl_c_or_error():
    """Ctrl-C (or an error) used to wait for every running and queued item: 37 s for 20 s items."""
    import time

    ex = make_executor("local", workers=2, quiet=True)
    it = ex.map(time.sleep, [0, 30, 30, 30, 30])
    assert next(it) is None
    start = time.monotonic()
    it.close()  # what an exception in the consumer, or KeyboardInterrupt, does to the generator
    assert time.monotonic() - start < 10


def test_an_address_where_nothing_listens_is_one_line_not_a_ten_minute_wait(demo_source, tmp_path):
    pytest.importorskip("ray")
    from test_storage import _free_port

    r = subprocess.run([sys.executable, "-m", "curate", "-q", "openimages", "--classes", "animal", "--source",
                        str(demo_source), "--out", str(tmp_path / "x"), "--engine", "ray", "--ray-address",
                        f"127.0.0.1:{_free_port()}"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 2 and "cannot reach a Ray cluster at 127.0.0.1:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------- the pipelines on Ray


def test_crop_on_ray_is_identical_to_local(cluster, demo_source, tmp_path):
    local = build(demo_source, tmp_path / "local", workers=1, shard_size=3)
    on_ray = build(demo_source, tmp_path / "ray", workers=2, engine="ray", shard_size=3)
    assert tree_files(tmp_path / "ray") == tree_files(tmp_path / "local")  # crops, manifest, curate.json
    assert len(on_ray.manifest) == len(local.manifest) > 10


def test_crop_on_ray_from_s3_to_s3(cluster, demo_source, tmp_path):
    fs = cluster
    fs.mkdir("ray-src")
    fs.put(str(demo_source) + "/", "ray-src/oi/", recursive=True)
    build(demo_source, tmp_path / "local", shard_size=4)
    res = build("s3://ray-src/oi", "s3://ray-src/out", workers=2, engine="ray", shard_size=4)
    assert storage.read_bytes("s3://ray-src/out/manifest.parquet") == \
        (tmp_path / "local" / "manifest.parquet").read_bytes()
    for path in res.manifest.path[:5]:
        assert storage.read_bytes(f"s3://ray-src/out/{path}") == (tmp_path / "local" / path).read_bytes()


def test_dedupe_on_ray_is_identical_to_local(cluster, demo_source, tmp_path):
    build(demo_source, tmp_path / "crops", shard_size=4)
    for name in ("a", "b"):  # separate trees: the hash cache of one run must not serve the other
        shutil.copytree(tmp_path / "crops", tmp_path / name, ignore=shutil.ignore_patterns(".curate"))
    local = dedupe.find_duplicates(tmp_path / "a", workers=1, quiet=True)
    on_ray = dedupe.find_duplicates(tmp_path / "b", workers=2, engine="ray", quiet=True)
    assert on_ray.to_json() == local.to_json()
    assert on_ray.pairs.equals(local.pairs)
    assert len(local.pairs) > 0  # the demo holds a re-encoded copy


def test_cli_joins_the_running_cluster_quietly(cluster, demo_source, tmp_path):
    build(demo_source, tmp_path / "local", shard_size=4)
    r = subprocess.run([sys.executable, "-m", "curate", "-q", "openimages", "--classes", "person,animal,vehicle,flag",
                        "--source", str(demo_source), "--out", str(tmp_path / "cli"), "--engine", "ray",
                        "--ray-address", "auto", "-j", "2"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""  # no Ray banner, no worker logs
    assert (tmp_path / "cli" / "manifest.parquet").read_bytes() == \
        (tmp_path / "local" / "manifest.parquet").read_bytes()
    r = subprocess.run([sys.executable, "-m", "curate", "openimages", "--classes", "person", "--source",
                        str(demo_source), "--out", str(tmp_path / "x"), "--ray-address", "auto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "needs --engine ray" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_kaggle_verify_on_ray_is_identical_to_local(cluster, tmp_path):
    from test_kaggle_data import coin_files, write_zip

    from curate.sources import kaggle as kg

    src = write_zip(tmp_path / "coins.zip", coin_files())
    local = kg.import_dataset("wanderdust/coin-images", tmp_path / "local", source=src, workers=1, quiet=True,
                              check_counts=False)
    on_ray = kg.import_dataset("wanderdust/coin-images", tmp_path / "ray", source=src, workers=2, quiet=True,
                               check_counts=False, engine="ray")
    assert (tmp_path / "local" / "manifest.parquet").read_bytes() == (tmp_path / "ray" / "manifest.parquet").read_bytes()
    assert local.counts == on_ray.counts and sum(local.counts.values()) > 0
    assert local.problems == on_ray.problems
