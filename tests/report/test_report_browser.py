"""report.html in a real browser: headless Debian Chromium, driven over the DevTools protocol (playwright).

Every <img> must load (charts and thumbnails are data: URIs) and the console must stay free of errors.
Offline: any request that is not a data: URI fails the test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

JS_IMAGES = "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(what: str, hint: str):
    """Skip on a developer machine; in CI (where .ci/run installs chromium) a missing piece is a failure."""
    if IN_CI:
        pytest.fail(f"{what} is missing in CI ({hint})")
    pytest.skip(f"{what} is not installed ({hint})")


@pytest.mark.slow
def test_report_loads_in_chromium(tmp_path):
    if CHROMIUM is None:
        _need("Debian chromium", "apt-get install chromium; .ci/run does it")
    try:
        from playwright import sync_api
    except ImportError:
        _need("playwright", "pip install -e '.[dev]'")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import build_planted

    from curate.report import build_report

    res = build_report(build_planted(tmp_path / "ds"), tmp_path / "out", workers=1, quiet=True)
    errors, requests = [], []
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS, offline=True)
        try:
            page = ctx.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(res.html_path.as_uri(), wait_until="load")
            images = page.evaluate(JS_IMAGES)
            # control: the same probes catch a broken image and a console error
            bad = tmp_path / "bad.html"
            bad.write_text('<img alt="x" src="data:image/png;base64,AAAA"><script>console.error("boom")</script>')
            control = ctx.new_page()
            control_errors = []
            control.on("console", lambda m: control_errors.append(m.text) if m.type == "error" else None)
            control.goto(bad.as_uri(), wait_until="load")
            assert control.evaluate(JS_IMAGES) == [["x", True, 0]]
            assert "boom" in control_errors
        finally:
            ctx.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("data:", "file:"))] == []
    assert len(images) > 30  # charts, issue examples, duplicate clusters, label grids
    broken = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert broken == []
