"""curate dedupe, resplit and report on the real coins-dev slice (../shared/data/coins-dev, copied first).

The slice holds byte-identical copies, re-encoded copies and many look-alikes (other specimens of one coin
design, other coins on the same background). bench/coins-dev-truth.csv is the hand-checked list of its
copy pairs."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from curate.cli import main
from curate.dedupe.find import VERIFY_MIN, find_duplicates
from curate.report import build_report
from curate.resplit import plan_resplit

REPO = Path(__file__).resolve().parents[2]
COINS = REPO.parent / "shared" / "data" / "coins-dev"
TRUTH = REPO / "bench" / "coins-dev-truth.csv"


@pytest.fixture()
def coins(tmp_path) -> Path:
    if not (COINS / "train").is_dir():
        pytest.skip(f"real coins-dev data not found at {COINS} (a clone without ../shared)")
    root = tmp_path / "coins"
    shutil.copytree(COINS, root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the shared copy is read-only
    return root


def truth_groups() -> list[set[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    with TRUTH.open() as fh:
        for row in csv.DictReader(fh):
            parent[find(row["a"])] = find(row["b"])
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), set()).add(x)
    return list(groups.values())


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.slow
def test_clusters_are_exactly_the_true_copies(coins):
    res = find_duplicates(coins, workers=2, quiet=True)
    truth = truth_groups()
    group_of = {p: k for k, g in enumerate(truth) for p in g}
    for c in res.clusters:  # precision: a cluster never joins two different photos
        assert len({group_of.get(m, m) for m in c.members}) == 1, c.members
    for g in truth:  # recall: every true copy is found, against its cluster's kept file
        for m in g:
            assert any(m in c.members for c in res.clusters)
    # every member was compared with the kept file itself (or is an exact copy of it): no chains
    assert all(link["similarity"] >= VERIFY_MIN for c in res.clusters for link in c.links.values())
    assert all(set(c.links) == set(c.members) - {c.keep} for c in res.clusters)
    assert len(res.clusters) == len(truth)


@pytest.mark.slow
def test_dedupe_resplit_and_report_agree_and_no_eval_copy_of_train_is_left(coins, tmp_path):
    plan = plan_resplit(coins, ratios="0.5,0.5", merge="val,test", workers=2, quiet=True)
    out = tmp_path / "dry.json"
    with pytest.raises(SystemExit) as e:
        main(["-q", "dedupe", str(coins), "--dry-run", "--json", str(out), "-j", "2"])
    assert e.value.code in (0, 1)
    dry = json.loads(out.read_text())
    rep = build_report(coins, tmp_path / "rep", workers=2, quiet=True)
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    clusters = dry["clusters"]
    assert doc["duplicates"]["exact_clusters"] + doc["duplicates"]["near_clusters"] == len(clusters)
    assert doc["checks"]["leakage"]["count"] == dry["leakage_clusters"]
    assert doc["checks"]["label-conflict"]["count"] == dry["label_conflicts"]
    assert doc["duplicates"]["redundant_files"] == len(dry["removed"])
    sizes = plan.before.groupby("group").size()
    assert (sizes > 1).sum() == len(clusters) and int((sizes - 1).sum()) == len(dry["removed"])
    assert rep is not None
    with pytest.raises(SystemExit):
        main(["-q", "dedupe", str(coins), "-j", "2"])
    train = {sha(p) for p in (coins / "train").rglob("*.jpg")}
    for split in ("validation", "test"):
        assert not [p for p in (coins / split).rglob("*.jpg") if sha(p) in train]
