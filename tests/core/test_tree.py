"""curate.core.tree helpers every command writes through."""

import pytest


def test_json_curate_writes_is_strict(tmp_path):
    import json

    import numpy as np

    from curate.core.tree import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"nan": float("nan"), "inf": [float("inf")], "f32": np.float32(0.5),
                                            "i64": np.int64(3), "ok": 1.5})
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}")) == {
        "nan": None, "inf": [None], "f32": 0.5, "i64": 3, "ok": 1.5}
