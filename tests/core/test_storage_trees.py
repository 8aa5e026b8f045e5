"""`curate dedupe` and `curate report` on object-store trees (s3://) against a local S3 server (moto's
server mode on 127.0.0.1): same listing, clusters, moves, undo and report as the same tree on local disk."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
from test_storage import _objects, moto_s3

from curate.core import storage
from curate.core.errors import InputError
from curate.core.images import decode
from curate.core.layout import scan_tree
from curate.testing import dupsynth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("aws")) as fs:
        yield fs


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))  # never the user's cache


@pytest.fixture(scope="module")
def demo_tree(demo_source, tmp_path_factory):
    """The demo build (train/val/test crops) plus known duplicates: a re-encoded copy, a byte copy
    leaking into test, a half-size copy and a hidden file that every listing must skip."""
    from curate.crop.build import BuildParams
    from curate.sources import openimages as oi

    out = tmp_path_factory.mktemp("trees") / "demo"
    prep = oi.prepare("person,animal,vehicle,flag", source=demo_source, seed=0)
    oi.build(prep, out, BuildParams(shard_size=8), workers=1, quiet=True)
    shutil.rmtree(out / ".curate", ignore_errors=True)
    files = scan_tree(out).files
    assert {f.split for f in files} >= {"train", "val"}
    first = next(f for f in files if f.split == "train")
    pixels = decode(out / first.path).pixels
    label_dir = out / "train" / first.label
    dupsynth.save(label_dir / "zz_copy_q60.jpg", dupsynth.jpeg(pixels, 60))
    dupsynth.save(label_dir / "zz_copy_half.png", dupsynth.resize(pixels, 0.5))
    (out / "test" / first.label).mkdir(parents=True, exist_ok=True)
    shutil.copy(out / first.path, out / "test" / first.label / "zz_leak.jpg")
    (label_dir / ".hidden.jpg").write_bytes((out / first.path).read_bytes())
    return out


def _upload(s3, local, bucket: str, prefix: str = "demo") -> str:
    s3.mkdir(bucket)
    s3.put(str(local) + "/", f"{bucket}/{prefix}/", recursive=True)
    return f"s3://{bucket}/{prefix}"


def _copy(demo_tree, tmp_path):
    dst = tmp_path / "demo"
    shutil.copytree(demo_tree, dst)
    return dst


def _files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _clusters(res) -> list[tuple]:
    return [(c.kind, tuple(c.members), c.keep, c.cross_split) for c in res.result.clusters]


def test_url_listing_matches_local_scan(s3, demo_tree):
    url = _upload(s3, demo_tree, "list")
    local, remote = scan_tree(demo_tree), storage.scan(url)
    assert remote.files == local.files and remote.split_dirs == local.split_dirs
    assert remote.root == url and remote.other == local.other
    single = storage.scan(f"{url}/train")  # a split root of class folders
    assert single.split_dirs == scan_tree(demo_tree / "train").split_dirs
    assert single.files == scan_tree(demo_tree / "train").files


def test_dry_run_on_s3_gives_local_clusters_and_writes_nothing(s3, demo_tree, tmp_path):
    from curate.dedupe.apply import dedupe

    url = _upload(s3, demo_tree, "dry")
    before = _objects(s3, url)
    local = dedupe(_copy(demo_tree, tmp_path), dry_run=True, workers=1, quiet=True)
    remote = dedupe(url, dry_run=True, workers=1, quiet=True, json_path=tmp_path / "d.json")
    assert _clusters(remote) == _clusters(local) and len(local.result.clusters) >= 1
    assert remote.splits == local.splits and remote.result.removals() == local.result.removals()
    assert _objects(s3, url) == before  # nothing in the bucket changed, no cache written there
    assert (tmp_path / "cache").is_dir() and json.loads((tmp_path / "d.json").read_text())["removed"]
    again = dedupe(url, dry_run=True, workers=1, quiet=True)  # served from the local hash cache
    assert _clusters(again) == _clusters(local)


def test_apply_on_s3_moves_like_local_and_undo_restores_bytes(s3, demo_tree, tmp_path):
    from curate.dedupe.apply import dedupe, undo_dedupe

    url = _upload(s3, demo_tree, "apply")
    before = _objects(s3, url)
    root = _copy(demo_tree, tmp_path)
    local = dedupe(root, workers=1, quiet=True)
    remote = dedupe(url, workers=1, quiet=True)
    assert remote.moved == local.moved >= 2
    q_local = _files(tmp_path / "demo.quarantine")
    assert _objects(s3, f"{url}.quarantine") == q_local
    after = _objects(s3, url)
    assert set(after) - {"dedupe.json", "dedupe-pairs.csv", "curate.json", "manifest.parquet"} == \
        {p for p in _files(root) if not p.startswith(".curate/")} - {"dedupe.json", "dedupe-pairs.csv",
                                                                       "curate.json", "manifest.parquet"}
    assert after["dedupe-pairs.csv"] == _files(root)["dedupe-pairs.csv"]
    assert after["manifest.parquet"] == _files(root)["manifest.parquet"]
    assert s3.find("apply/demo.quarantine.journal")  # the journal copy beside the quarantine
    rep = undo_dedupe(url)
    assert rep.ok and rep.restored == remote.moved
    assert _objects(s3, url) == before
    assert not s3.find("apply/demo.quarantine")
    with pytest.raises(InputError, match="nothing to undo"):
        undo_dedupe(url)


def test_undo_on_another_machine_uses_the_uploaded_journal(s3, demo_tree, tmp_path, monkeypatch):
    from curate.dedupe.apply import dedupe, undo_dedupe

    url = _upload(s3, demo_tree, "other")
    before = _objects(s3, url)
    out = dedupe(url, workers=1, quiet=True, keep="first")
    assert out.moved >= 2 and _objects(s3, url) != before
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "elsewhere"))  # no local journal here
    rep = undo_dedupe(url)
    assert rep.ok and rep.restored == out.moved and "manifest.parquet" in " ".join(rep.files_restored)
    assert _objects(s3, url) == before
    with pytest.raises(InputError, match="nothing to undo"):
        undo_dedupe(url)


def test_a_source_changed_after_hashing_is_never_deleted(s3, demo_tree, monkeypatch):
    from curate.core.errors import CurateError
    from curate.dedupe import apply as dedupe_apply

    url = _upload(s3, demo_tree, "changed")
    real = dedupe_apply.find_duplicates
    changed = {}

    def then_change_one(root, **kw):
        res = real(root, **kw)
        victim = sorted(res.removals())[-1]
        changed[victim] = b"new bytes written by someone else"
        storage.write_bytes(f"{url}/{victim}", changed[victim])
        return res

    monkeypatch.setattr(dedupe_apply, "find_duplicates", then_change_one)
    with pytest.raises(CurateError, match="changed since it was hashed"):
        dedupe_apply.dedupe(url, workers=1, quiet=True)
    (victim, data), = changed.items()
    assert storage.read_bytes(f"{url}/{victim}") == data  # still there, untouched
    assert not storage.exists(f"{url}.quarantine/{victim}")  # the bad copy was removed
    rep = dedupe_apply.undo_dedupe(url)  # the moves before it are put back
    assert rep.ok and not s3.find("changed/demo.quarantine")


def test_report_on_s3_matches_local(s3, demo_tree, tmp_path, monkeypatch):
    from curate.report import build_report

    url = _upload(s3, demo_tree, "rep")
    local = build_report(_copy(demo_tree, tmp_path), tmp_path / "local-report", workers=1, quiet=True)
    remote = build_report(url, f"{url}-reports/r1", workers=1, quiet=True)
    assert remote.json_path == f"{url}-reports/r1/report.json"
    doc = json.loads(storage.read_bytes(remote.json_path))
    want = json.loads(local.json_path.read_text())
    assert (doc.pop("root"), want.pop("root")) == (url, str(tmp_path / "demo"))
    assert doc["summary"]["name"] == "demo" and doc["summary"]["images"] > 10
    assert doc == want
    assert storage.read_bytes(f"{url}-reports/r1/report.html").startswith(b"<!")
    monkeypatch.chdir(tmp_path)  # default output for a URL tree: ./<tree name>-report/
    res = build_report(url, workers=1, quiet=True, duplicates=False)
    assert res.json_path == tmp_path / "demo-report" / "report.json" and res.json_path.exists()


def _curate(*args: str):
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120)


def test_cli_missing_bucket_or_prefix_is_one_line_exit_2(s3, demo_tree):
    _upload(s3, demo_tree, "cli")
    for args in (["dedupe", "s3://no-such-bucket/demo", "--dry-run"], ["report", "s3://cli/nothing-here"],
                 ["dedupe", "s3://cli/nothing-here", "--undo"]):
        r = _curate(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "s3://" in r.stderr
    r = _curate("dedupe", "s3://cli/demo", "--dry-run", "--workers", "1")
    assert r.returncode == 0 and "would remove" in r.stdout, r.stderr


def test_moves_of_odd_key_names_touch_only_that_object(s3, tmp_path):
    """fs.copy globbed '?' in a key: moving `a?b.jpg` copied `aXb.jpg`, `a b.jpg` … into a folder named
    after it, then failed with a FileNotFoundError traceback."""
    from curate.moves.journal import relocate
    from curate.moves.undo import undo

    s3.mkdir("odd-names")
    root = "s3://odd-names/deep/a/b/c/d/e/f/tree #1?"
    names = ["a?b.jpg", "aXb.jpg", "a b.jpg", "a#b+c ü %20.jpg", "a[1]*.jpg", "a1.jpg"]
    for name in names:
        storage.write_bytes(f"{root}/train/x y/{name}", name.encode())
    relocate(root, "dedupe", [(f"{root}/train/x y/{name}", f"{root}.quarantine/train/x y/{name}",
                               hashlib.sha256(name.encode()).hexdigest()) for name in ("a?b.jpg", "a#b+c ü %20.jpg", "a[1]*.jpg")],
             copy_to=f"{root}.quarantine.journal")
    assert sorted(storage.list_objects(f"{root}.quarantine")) == \
        ["train/x y/a#b+c ü %20.jpg", "train/x y/a?b.jpg", "train/x y/a[1]*.jpg"]
    assert sorted(storage.list_objects(root)) == ["train/x y/a b.jpg", "train/x y/a1.jpg", "train/x y/aXb.jpg"]
    rep = undo(root, "dedupe")
    assert rep.ok and rep.restored == 3
    assert {k: storage.read_bytes(f"{root}/{k}") for k in storage.list_objects(root)} == \
        {f"train/x y/{n}": n.encode() for n in names}


def test_a_source_gone_before_its_move_is_one_line_and_nothing_moves(s3, tmp_path):
    from curate.core.errors import CurateError
    from curate.moves.journal import relocate
    from curate.moves.undo import undo

    s3.mkdir("gone-src")
    root = "s3://gone-src/t"
    storage.write_bytes(f"{root}/train/a/kept.jpg", b"kept")
    with pytest.raises(CurateError, match="disappeared since it was hashed") as e:
        relocate(root, "dedupe", [(f"{root}/train/a/gone.jpg", f"{root}.quarantine/train/a/gone.jpg", "0" * 64)],
                 copy_to=f"{root}.quarantine.journal")
    assert "\n" not in str(e.value)
    assert not storage.exists(f"{root}.quarantine/train/a/gone.jpg")
    rep = undo(root, "dedupe")  # the cancelled move is not "missing"
    assert rep.ok and rep.restored == 0 and not rep.missing
