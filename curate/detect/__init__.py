"""Detection datasets (`curate openimages --task detect`, `curate export`): select -> write -> export.

select (images and boxes from the crop task's selection, ignore regions, limits, background, splits),
formats (YOLO and COCO model, writers, strict readers), write (one image and its labels, shards),
build (the whole job), export (one format to the other).
"""

from curate.detect.build import build_detect
from curate.detect.select import DetectPrepared, prepare_detect
from curate.detect.write import DetectParams, DetectResult

__all__ = ["DetectParams", "DetectPrepared", "DetectResult", "build_detect", "prepare_detect"]
