"""report.html markup: the jinja2 templates escape every name that comes from the tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.report import build_report
from curate.report import html as H

NASTY = "<script>alert(1)</script>\"&'"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;&#39;"  # markupsafe's entities for " and '
FOLDER = "a\"&'<b>c"  # a label folder (no slash allowed in a name)
FOLDER_ESC = "a&#34;&amp;&#39;&lt;b&gt;c"
FILE = "x\"&'<i>.png"
FILE_ESC = "x&#34;&amp;&#39;&lt;i&gt;.png"


def _tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for label in ("plain", FOLDER):
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(d / f"{i}.png")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(root / "train" / FOLDER / FILE)  # dark: a finding
    (root / "train" / FOLDER / "bad&<u>.jpg").write_bytes(b"not a jpeg")  # corrupt: a table row
    (root / "cat_to_name.json").write_text(json.dumps({FOLDER: NASTY, "plain": "plain"}))
    return root


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    root = _tree(tmp_path_factory.mktemp("nasty") / "ds")
    res = build_report(root, tmp_path_factory.mktemp("out"), workers=1, quiet=True)
    return res.html_path.read_text()


def test_names_from_the_tree_are_escaped(page):
    assert "<script" not in page.lower() and "<b>c" not in page and "<i>" not in page and "<u>" not in page
    assert "\"&'" not in page
    assert ESCAPED in page  # the class name: counts table and sample grid headings
    assert FOLDER_ESC in page and f'title="train/{FOLDER_ESC}/{FILE_ESC}"' in page  # thumbnail of the dark file
    assert f"<figcaption>train/{FOLDER_ESC}/{FILE_ESC}<br>" in page
    assert f"<td>train/{FOLDER_ESC}/bad&amp;&lt;u&gt;.jpg</td>" in page  # the corrupt file's table row
    assert "&amp;lt;" not in page and "&amp;#" not in page  # escaped once, not twice


def test_own_markup_is_not_escaped(page):
    """Charts, thumbnails, the dedupe sheet and the CSS are curate's own: they go in as they are."""
    assert re.search(r'<img class="chart" alt="quality measures" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)
    assert re.search(r'<img src="data:image/jpeg;base64,[A-Za-z0-9+/=]+" alt=', page)
    assert "body{font:14px/1.45" in page and ".ds-summary td" in page
    assert "&lt;table" not in page and "&lt;p" not in page and "&lt;h3" not in page


def test_pieces_used_by_the_detection_section():
    """table, _check_block and _passed give plain str, so joining them with other HTML escapes nothing."""
    rows = [{"path": NASTY, "count": 3}]
    tab = H.table(rows)
    assert type(tab) is str and ESCAPED in tab and '<td class="n">3</td>' in tab
    c = {"title": "Odd", "fired": True, "count": 1, "severity": "warning", "description": NASTY}
    doc = {"checks": {"odd": c, "fine": {**c, "fired": False, "count": 0, "title": "Fine & dandy"}}}
    joined = "<p>x</p>" + H._check_block("odd", c, tab) + H._passed(doc, ["odd", "fine"])
    assert type(joined) is str and joined.startswith("<p>x</p><h3")
    assert f'<p class="desc">{ESCAPED}</p>' in joined and "<table>" in joined
    assert '<span id="check-fine">Fine &amp; dandy (fine)</span>' in joined
    assert H.table([]).strip() == '<p class="muted">none</p>'


def test_a_missing_variable_fails_loudly():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        H._env().get_template("report.html.j2").render({})
