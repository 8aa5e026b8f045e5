"""Detection datasets (`curate openimages --task detect`, `curate export`): select -> write -> export.

select (images and boxes from the crop task's selection, ignore regions, limits, background, splits),
formats (YOLO and COCO model, writers, strict readers), write (one image and its labels, shards),
build (the whole job), export (one format to the other).
"""

import importlib

_API = {"build_detect": "build", "DetectPrepared": "select", "prepare_detect": "select", "DetectParams": "write",
        "DetectResult": "write"}


def __getattr__(name: str):  # the API on first use: `curate.detect.formats` alone stays light (dedupe needs it)
    if name in _API:
        return getattr(importlib.import_module(f"curate.detect.{_API[name]}"), name)
    raise AttributeError(f"module 'curate.detect' has no attribute {name!r}")


__all__ = ["DetectParams", "DetectPrepared", "DetectResult", "build_detect", "prepare_detect"]
