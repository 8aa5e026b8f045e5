"""Readable class names (classes.json or cat_to_name.json) in report and train, on a slice of the real coin set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curate.core.errors import InputError
from curate.core.labelnames import label_names, with_name

COINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coins-dev"


@pytest.fixture
def coins(tmp_path) -> Path:
    """Three classes of the real Kaggle coin tree (numeric folders + cat_to_name.json), a few images each."""
    if not (COINS / "cat_to_name.json").is_file():
        pytest.fail(f"the real coin slice is missing at {COINS}")
    root = tmp_path / "coins"
    for split in ("train", "validation"):
        for cid in ("1", "101", "120"):
            files = sorted((COINS / split / cid).iterdir())[:4]
            (root / split / cid).mkdir(parents=True)
            for f in files:
                shutil.copy(f, root / split / cid / f.name)
    shutil.copy(COINS / "cat_to_name.json", root / "cat_to_name.json")
    return root


def test_sources_of_names(tmp_path):
    assert label_names(tmp_path) == {}
    (tmp_path / "cat_to_name.json").write_text(json.dumps({"1": "1 Cent,Australian dollar,australia"}))
    assert label_names(tmp_path) == {"1": "1 Cent,Australian dollar,australia"}
    rows = [{"id": "1", "folder": "australia_1_cent", "name": "1 Cent"}, {"id": "2", "folder": "x", "name": None}]
    (tmp_path / "classes.json").write_text(json.dumps({"classes": rows}))
    assert label_names(tmp_path) == {"australia_1_cent": "1 Cent"}  # classes.json first
    (tmp_path / "classes.json").write_text("{oops")
    with pytest.raises(InputError, match="classes.json is not valid JSON"):
        label_names(tmp_path)
    assert with_name("cat", {"cat": "cat"}) == "cat" and with_name("3", {"3": "cat"}) == "3 (cat)"


def test_report_and_train_show_coin_names(coins, tmp_path):
    from curate.report import build_report
    from curate.train.prep import load_dataset

    res = build_report(coins, tmp_path / "report", duplicates=False, quiet=True, workers=1)
    doc = json.loads(res.json_path.read_text())
    assert doc["label_names"]["101"] == "10 Won,Korean Won,south_korea"
    html = res.html_path.read_text()
    assert "101 (10 Won,Korean Won,south_korea)" in html and "1 (1 Cent,Australian dollar,australia)" in html
    assert load_dataset(coins).display["120"] == "20 Cents,New Zealand dollar,new_zealand"
