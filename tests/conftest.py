"""Fixtures shared by every test file (keep it small: per-area fixtures live in their test files)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_OI = REPO.parent / "shared" / "openimages"


@pytest.fixture(scope="session")
def shared_openimages() -> Path:
    """The real Open Images class list and hierarchy (../shared/openimages), or skip."""
    if not (SHARED_OI / "class-descriptions-boxable.csv").exists():
        pytest.skip(f"real Open Images metadata not found at {SHARED_OI} (a clone without ../shared)")
    return SHARED_OI


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """The demo's Open Images-layout source (real photos, hand-set boxes); read-only for tests."""
    from curate.demo import build_source

    return build_source(tmp_path_factory.mktemp("demo") / "source")
