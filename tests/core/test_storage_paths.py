"""curate.core.storage's questions about a path (where it points, its name, is it fresh …) and the one write
contract of curate.core.filesets, on real local files and on fsspec's memory store."""

from __future__ import annotations

import itertools
import json
import os
import stat

import pytest

from curate.core import storage
from curate.core.errors import InputError
from curate.core.filesets import MARKER, MarkedFiles, StagedFiles, file_set

pytest.importorskip("fsspec")
_ids = itertools.count()


@pytest.fixture()
def store():
    """A fresh prefix on fsspec's memory store (removed afterwards)."""
    url = f"memory://curate-paths-{os.getpid()}-{next(_ids)}"
    yield url
    storage.remove_tree(url)


def test_locations_of_local_paths_and_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolved("a/../b") == tmp_path / "b" and storage.resolved("s3://x/y/") == "s3://x/y"
    assert storage.resolved(f"file://{tmp_path}/c") == tmp_path / "c"
    assert storage.name(".") == tmp_path.name and storage.name("s3://x/tree/") == "tree"
    assert storage.parent(tmp_path / "r.html") == tmp_path and storage.parent("s3://x/r/a.html") == "s3://x/r"
    assert storage.with_suffix(tmp_path / "r.html", ".json") == tmp_path / "r.json"
    assert storage.with_suffix("s3://x/r.v2/a.html", ".json") == "s3://x/r.v2/a.json"
    assert storage.with_suffix("s3://x/r.v2/a", ".json") == "s3://x/r.v2/a.json"
    assert storage.journal_copy(tmp_path) is None and storage.journal_copy("s3://x/t/") == "s3://x/t.journal"
    assert storage.journal_copy("s3://x/t", ".quarantine.journal") == "s3://x/t.quarantine.journal"
    assert storage.join_each(tmp_path, ["a/1.jpg"]) == [storage.join(tmp_path, "a", "1.jpg")]
    assert storage.join_each("s3://x/t/", ["a/1.jpg"]) == ["s3://x/t/a/1.jpg"]


def test_fresh_is_file_and_require_dir_locally(tmp_path):
    out = tmp_path / "out"
    assert storage.fresh(out)
    (out / ".curate").mkdir(parents=True)
    (out / ".curate" / "lock.json").write_text("{}")
    assert storage.fresh(out)  # only the lock its command took
    (out / "a.txt").write_text("x")
    assert not storage.fresh(out) and storage.is_file(out / "a.txt") and not storage.is_file(out)
    storage.require_dir(out, "hint")
    with pytest.raises(InputError, match="does not exist"):
        storage.require_dir(tmp_path / "nope", "hint")
    with pytest.raises(InputError, match="a.txt is not a folder"):
        storage.require_dir(out / "a.txt", "hint")
    storage.check_reachable(tmp_path / "nope")  # local folders: the caller decides what missing means


def test_fresh_is_file_and_require_dir_on_a_store(store):
    assert storage.fresh(store)
    with pytest.raises(InputError, match="does not exist"):
        storage.require_dir(store, "hint")
    with pytest.raises(InputError, match="no objects under"):
        storage.check_reachable(store)
    storage.write_bytes(f"{store}/t/a.txt", b"x")
    assert not storage.fresh(store) and storage.is_file(f"{store}/t/a.txt") and not storage.is_file(f"{store}/t")
    storage.require_dir(f"{store}/t", "hint")
    storage.check_reachable(store)
    with pytest.raises(InputError, match="is not a folder"):
        storage.require_dir(f"{store}/t/a.txt", "hint")


def _files(write, base):
    for rel in ("b/2.jpg", "a-b/1.jpg", "a/z.jpg", "a/.hidden.jpg", ".cache/x.jpg", "top.txt"):
        write(f"{base}/{rel}", b"x")


def test_list_files_in_path_order_local_and_store(tmp_path, store):
    def write_local(p, data):
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").write(data)

    _files(write_local, tmp_path)
    _files(storage.write_bytes, store)
    want = ["a/z.jpg", "a-b/1.jpg", "b/2.jpg", "top.txt"]  # folder by folder, like sorted Path objects
    assert storage.list_files(tmp_path) == want and storage.list_files(store) == want
    with pytest.raises(FileNotFoundError):
        storage.list_files(tmp_path / "nope")
    with pytest.raises(InputError, match="no objects under"):
        storage.list_files(f"{store}/nope")


def test_split_dirs_local_and_store(tmp_path, store):
    for base, write in ((str(tmp_path), lambda p: (os.makedirs(os.path.dirname(p), exist_ok=True),
                                                   open(p, "wb").write(b"x"))),
                        (store, lambda p: storage.write_bytes(p, b"x"))):
        write(f"{base}/train/cat/1.jpg")
        write(f"{base}/valid/cat/2.jpg")
        assert storage.split_dirs(base) == {"train": "train", "val": "valid"}


def test_local_copy_of_store_files_and_prefixes(tmp_path, store, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    assert storage.local_copy(tmp_path / "x.zip") == tmp_path / "x.zip"
    storage.write_bytes(f"{store}/src/data.zip", b"zip")
    storage.write_bytes(f"{store}/tree/a/1.jpg", b"one")
    one = storage.local_copy(f"{store}/src/data.zip")
    assert one.name == "data.zip" and one.read_bytes() == b"zip"
    folder = storage.local_copy(f"{store}/tree/")
    assert (folder / "a" / "1.jpg").read_bytes() == b"one"


def test_write_bytes_keeps_a_files_mode_unless_shared(tmp_path):
    for name in ("kept", "shared"):
        (tmp_path / name).write_bytes(b"old")
        (tmp_path / name).chmod(0o600)
    old = os.umask(0o022)
    try:
        storage.write_bytes(tmp_path / "kept", b"x")
        storage.write_bytes(tmp_path / "shared", b"x", shared=True)  # readable by others, like open()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644


# ---------------------------------------------------------------- one write contract, two implementations


def test_file_set_picks_the_strategy_once(tmp_path, store):
    assert isinstance(file_set(tmp_path, ".curate/shards/s"), StagedFiles)
    assert isinstance(file_set(f"file://{tmp_path}", ".curate/shards/s"), StagedFiles)
    assert isinstance(file_set(store, ".curate/shards/s"), MarkedFiles)


def test_staged_files_appear_complete_then_publish(tmp_path):
    files = file_set(tmp_path, ".curate/shards/s")
    assert files.marker() is None
    files.write("train/cat/1.jpg", b"one")
    files.write("val/dog/2.jpg", b"two")
    assert not (tmp_path / "train").exists() and files.marker() is None  # staged, not yet complete
    files.commit(json.dumps({"records": 2}).encode())
    assert json.loads(file_set(tmp_path, ".curate/shards/s").marker()) == {"records": 2}
    assert not (tmp_path / ".curate/shards/s.tmp").exists()
    assert files.publish(["train/cat/1.jpg", "val/dog/2.jpg"]) == []
    assert (tmp_path / "train/cat/1.jpg").read_bytes() == b"one"
    (tmp_path / "val/dog/2.jpg").unlink()
    assert files.publish(["train/cat/1.jpg", "val/dog/2.jpg"]) == ["val/dog/2.jpg"]  # gone from both


def test_staged_files_drop_what_an_interrupted_run_left(tmp_path):
    (tmp_path / ".curate/shards/s.tmp/files/old").mkdir(parents=True)
    files = file_set(tmp_path, ".curate/shards/s")
    files.commit(b"{}")
    assert not (tmp_path / ".curate/shards/s/files/old").exists() and files.marker() == b"{}"


def test_marked_files_go_to_final_keys_and_the_marker_last(store, monkeypatch):
    order = []
    real_many, real_write = storage.write_many, storage.write_bytes
    monkeypatch.setattr(storage, "write_many", lambda files: (order.extend(files), real_many(files)))
    monkeypatch.setattr(storage, "write_bytes", lambda p, d: (order.append(p), real_write(p, d)))
    files = MarkedFiles(store, ".curate/shards/s", batch=2)
    for i in range(3):
        files.write(f"train/cat/{i}.jpg", b"%d" % i)
    assert files.marker() is None
    files.commit(b'{"records": []}')
    assert order[-1] == f"{store}/.curate/shards/s/{MARKER}" and len(order) == 4
    assert storage.read_bytes(f"{store}/train/cat/2.jpg") == b"2"
    assert file_set(store, ".curate/shards/s").marker() == b'{"records": []}'
    assert files.publish(["train/cat/0.jpg"]) == []
