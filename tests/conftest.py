"""Fixtures shared by every test file (keep it small: per-area fixtures live in their test files).

Tests mirror the package (tests/core, tests/dedupe, …). Data builders that several areas use live in
test modules (test_kaggle_data, test_storage's moto_s3, test_train's trees): every test folder is put
on sys.path here, so they import by module name from anywhere, whatever order pytest collects in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for _folder in sorted(Path(__file__).parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith(("_", ".")) and str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
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
    from curate.sources.demo import build_source

    return build_source(tmp_path_factory.mktemp("demo") / "source")


@pytest.fixture()
def one_torch_thread():
    """torch on one thread for the test (two shared cores: OpenMP with two threads under load is far slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build_detect_tree(demo_source: Path, out: Path, label_format: str, seed: int) -> Path:
    """A detection set (YOLO or COCO) of the demo source with two background images."""
    from curate.detect import DetectParams, build_detect, prepare_detect
    from curate.sources.demo import DEMO_CLASSES

    prep = prepare_detect(DEMO_CLASSES, source=demo_source, seed=seed, background=2)
    build_detect(prep, out, DetectParams(label_format=label_format, seed=seed), quiet=True)
    return out
