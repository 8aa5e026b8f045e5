"""Object-store paths: curate.core.storage and `curate openimages` reading/writing s3:// against a local
S3 server (moto's server mode on 127.0.0.1, started here; nothing leaves the machine)."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest

from curate.core import storage
from curate.core.errors import InputError

pytestmark = pytest.mark.slow
_ids = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_s3(tmp_path):
    """A local S3 server, with the AWS environment pointing at it (restored afterwards)."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import s3fs

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    old = {k: os.environ.get(k) for k in [*env, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield s3fs.S3FileSystem()
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("aws")) as fs:
        yield fs


@pytest.fixture()
def bucket(s3):
    name = f"curate-{next(_ids)}"
    s3.mkdir(name)
    return name


@pytest.fixture(scope="module")
def s3_source(s3, demo_source):
    """The demo source uploaded to s3://curate-src/oi (FiftyOne layout under a prefix)."""
    s3.mkdir("curate-src")
    s3.put(str(demo_source) + "/", "curate-src/oi/", recursive=True)
    return "s3://curate-src/oi"


def build(source, out, workers=1, **kw):
    from curate.crop.build import BuildParams
    from curate.sources import openimages as oi

    prep = oi.prepare("person,animal,vehicle,flag", source=source, seed=kw.get("seed", 0))
    return oi.build(prep, out, BuildParams(**kw), workers=workers, quiet=True)


# ---------------------------------------------------------------- storage functions


def test_local_paths_and_file_urls(tmp_path):
    p = tmp_path / "a" / "b.bin"
    storage.write_bytes(f"file://{p}", b"xy")
    assert p.read_bytes() == b"xy" and storage.read_bytes(p) == b"xy"
    assert storage.as_location(f"file://{p}") == p and not storage.is_url(f"file://{p}")
    assert storage.join(tmp_path, "a", "b.bin") == str(p)
    assert storage.list_names(tmp_path / "a") == ["b.bin"] and storage.list_names(tmp_path / "nope") == []
    assert storage.size(p) == 2 and storage.is_dir(tmp_path / "a")
    storage.remove_tree(tmp_path / "a")
    assert not storage.exists(p)
    assert storage.as_location("s3://b/x/") == "s3://b/x" and storage.join("s3://b/x/", "y", "z") == "s3://b/x/y/z"


def test_unknown_or_uninstalled_protocols_are_input_errors():
    with pytest.raises(InputError, match="Protocol not known"):
        storage.read_bytes("nosuch://x/y")
    with pytest.raises(InputError, match="foo"):
        storage.write_bytes("nosuch://foo/y", b"")


def test_file_urls_build_like_local_paths(demo_source, tmp_path):
    build(demo_source, tmp_path / "plain", shard_size=4)
    res = build(f"file://{demo_source}", f"file://{tmp_path}/url", shard_size=4)
    assert res.out == tmp_path / "url"
    assert _local_files(tmp_path / "url") == _local_files(tmp_path / "plain")


def test_s3_read_write_list_remove(bucket):
    base = f"s3://{bucket}/t"
    storage.write_many({f"{base}/a/1.bin": b"one", f"{base}/a/2.bin": b"two"})
    storage.write_bytes(f"{base}/c.json", b"{}")
    assert storage.read_bytes(f"{base}/a/2.bin") == b"two"
    with storage.open_read(f"{base}/a/1.bin") as f:
        assert f.read() == b"one"
    assert storage.list_names(base) == ["a", "c.json"] and storage.is_dir(f"{base}/a")
    assert storage.exists(f"{base}/c.json") and storage.size(f"{base}/a/1.bin") == 3
    storage.remove_tree(f"{base}/a")
    assert storage.list_names(base) == ["c.json"] and storage.list_names(f"s3://{bucket}/none") == []


def test_missing_bucket_is_one_actionable_line(s3):
    with pytest.raises(InputError, match="cannot access s3://no-such-bucket") as e:
        storage.write_bytes("s3://no-such-bucket/x", b"1")
    assert "\n" not in str(e.value) and "AWS_ENDPOINT_URL" in str(e.value)


# ---------------------------------------------------------------- openimages on object stores


def _objects(s3, url: str) -> dict[str, str]:
    root = url[len("s3://"):]
    s3.invalidate_cache()  # curate's own s3fs instance (its retry settings) wrote there, not this one
    return {k[len(root) + 1:]: hashlib.sha256(s3.cat_file(k)).hexdigest() for k in s3.find(root)}


def _local_files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".curate" not in p.parts}


def test_s3_source_and_out_match_local_bytes(s3, s3_source, bucket, demo_source, tmp_path):
    local = build(demo_source, tmp_path / "local", shard_size=4)
    res = build(s3_source, f"s3://{bucket}/out", shard_size=4)
    assert res.out == f"s3://{bucket}/out" and len(res.manifest) == len(local.manifest) > 10
    remote = _objects(s3, res.out)
    assert remote["manifest.parquet"] == _local_files(tmp_path / "local")["manifest.parquet"]
    crops = {k: v for k, v in remote.items() if not k.startswith(".curate/") and k != "curate.json"}
    assert crops == {k: v for k, v in _local_files(tmp_path / "local").items() if k != "curate.json"}
    assert set(local.manifest.path) == {k for k in crops if k != "manifest.parquet"}
    again = build(s3_source, res.out, shard_size=4)  # a rerun reuses every shard, same manifest
    assert again.reused_shards == len(s3.ls(f"{bucket}/out/.curate/shards"))
    assert _objects(s3, res.out)["manifest.parquet"] == remote["manifest.parquet"]


def test_s3_interrupted_run_resumes_from_markers(s3, s3_source, bucket, demo_source, tmp_path, monkeypatch):
    clean = build(demo_source, tmp_path / "clean", shard_size=3)
    out = f"s3://{bucket}/out"
    real_write = storage.write_bytes
    markers = {"n": 0}

    def dies_at_fourth_marker(path, data):
        if str(path).endswith("records.json"):
            markers["n"] += 1
            if markers["n"] == 4:  # the shard's crops are uploaded, its marker is not
                raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(storage, "write_bytes", dies_at_fourth_marker)
    with pytest.raises(KeyboardInterrupt):
        build(s3_source, out, shard_size=3)
    monkeypatch.setattr(storage, "write_bytes", real_write)
    assert not storage.exists(f"{out}/manifest.parquet")
    assert len(s3.ls(f"{bucket}/out/.curate/shards")) == 3
    res = build(s3_source, out, shard_size=3)
    assert res.reused_shards == 3
    assert storage.read_bytes(f"{out}/manifest.parquet") == (tmp_path / "clean" / "manifest.parquet").read_bytes()
    assert len(res.manifest) == len(clean.manifest)


def test_s3_out_must_be_new_or_a_curate_build(s3, s3_source, bucket):
    storage.write_bytes(f"s3://{bucket}/mine/precious.txt", b"keep me")
    with pytest.raises(InputError, match="not made by curate"):
        build(s3_source, f"s3://{bucket}/mine")
    assert storage.read_bytes(f"s3://{bucket}/mine/precious.txt") == b"keep me"
    build(s3_source, f"s3://{bucket}/out", size=64)
    with pytest.raises(InputError, match="--overwrite"):
        build(s3_source, f"s3://{bucket}/out", size=96)


def test_s3_source_errors_name_the_problem(s3, bucket):
    with pytest.raises(InputError, match="holds no objects"):
        build(f"s3://{bucket}/nothing", f"s3://{bucket}/out")
    storage.write_bytes(f"s3://{bucket}/half/train/metadata/classes.csv", b"/m/01,Thing\n")
    with pytest.raises(InputError, match="detections.csv is missing"):
        build(f"s3://{bucket}/half", f"s3://{bucket}/out")


def test_cli_s3_source_and_out(s3, s3_source, bucket):
    r = subprocess.run([sys.executable, "-m", "curate", "openimages", "--classes", "animal", "--source", s3_source,
                        "--out", f"s3://{bucket}/cli", "-j", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"s3://{bucket}/cli/manifest.parquet" in r.stdout
    assert storage.exists(f"s3://{bucket}/cli/curate.json")
    r = subprocess.run([sys.executable, "-m", "curate", "openimages", "--classes", "animal", "--source",
                        f"s3://{bucket}/none", "--out", f"s3://{bucket}/x"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "holds no objects" in r.stderr and "Traceback" not in r.stderr


def test_remove_tree_never_globs_into_other_prefixes(bucket):
    """fsspec's rm expands '?', '*' and '[': `crops?/train` also matched `cropsX/train` (another tree)."""
    for key in ("crops?/train/a/1.jpg", "crops?/train/a/x[1]*.jpg", "crops?/manifest.parquet", "crops?/train2/k.jpg",
                "cropsX/train/a/2.jpg", "cropsX/manifest.parquet"):
        storage.write_bytes(f"s3://{bucket}/{key}", b"data")
    storage.remove_tree(f"s3://{bucket}/crops?/train")
    storage.remove_tree(f"s3://{bucket}/crops?/manifest.parquet")
    storage.remove_tree(f"s3://{bucket}/crops?/nothing-here")
    assert sorted(storage.list_objects(f"s3://{bucket}/cropsX")) == ["manifest.parquet", "train/a/2.jpg"]
    assert sorted(storage.list_objects(f"s3://{bucket}/crops?")) == ["train2/k.jpg"]


def test_s3_requests_are_not_retried_for_minutes(s3, monkeypatch):
    """s3fs's 5 tries x botocore's 5 attempts x a 15-30 s read timeout held a run ~7 minutes on an endpoint
    that accepts connections and never answers; now 2 x 2 (about a minute; AWS_MAX_ATTEMPTS still wins)."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    fs, _ = storage.filesystem("s3://some-bucket/x")
    assert fs.retries == storage.S3_ATTEMPTS == 2
    assert fs.config_kwargs["retries"]["total_max_attempts"] == 2
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "6")
    assert "retries" not in storage.filesystem("s3://some-bucket/x")[0].config_kwargs
