"""Checks for crop datasets (manifest with crop_w, crop_h, scale): tiny, upscaled, mostly padding."""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.report.checks import Check, Context, file_rows, register


def fill_share(df: pd.DataFrame) -> pd.Series:
    """Share of each output image that is letterbox fill (0 = the crop fills it).

    Content size is out_w x out_h when the manifest has them, else crop size x scale."""
    if {"out_w", "out_h"} <= set(df.columns) and df["out_w"].notna().all():
        content = df["out_w"].astype("float64") * df["out_h"].astype("float64")
    else:
        content = (df["crop_w"] * df["scale"]).astype("float64") * (df["crop_h"] * df["scale"]).astype("float64")
    area = (df["width"] * df["height"]).astype("float64")
    return (1.0 - content / area).clip(0.0, 1.0)


class CropCheck(Check):
    group = "crops"

    def applies(self, ctx: Context):
        return ctx.has_crops

    def crops(self, ctx: Context) -> pd.DataFrame:
        df = ctx.readable
        return df[df["scale"].notna()]


@register
class TinyCrop(CropCheck):
    name = "tiny-crop"
    title = "Tiny crops"
    description = "Crop box shorter side below {min_side:g} source pixels: too little detail to learn from."
    defaults = {"min_side": 32.0}

    def run(self, ctx):
        df = self.crops(ctx)
        side = np.minimum(df["crop_w"].astype("float64"), df["crop_h"].astype("float64"))
        return file_rows(df[(side < self.params["min_side"]).to_numpy(dtype=bool)], side, ascending=True,
                         extra=("crop_w", "crop_h"))


@register
class Upscaled(CropCheck):
    name = "upscaled"
    title = "Strongly upscaled crops"
    description = "Output pixels per source pixel above {max_scale:g}: the image is interpolated mush."
    defaults = {"max_scale": 2.0}

    def run(self, ctx):
        df = self.crops(ctx)
        s = df["scale"].astype("float64")
        return file_rows(df[(s > self.params["max_scale"]).to_numpy(dtype=bool)], s, ascending=False,
                         extra=("crop_w", "crop_h"))


@register
class MostlyFill(CropCheck):
    name = "mostly-fill"
    title = "Mostly letterbox fill"
    description = "More than {max_fill:g} of the output image is letterbox fill, not crop content."
    defaults = {"max_fill": 0.5}

    def run(self, ctx):
        df = self.crops(ctx)
        f = fill_share(df)
        return file_rows(df[(f > self.params["max_fill"]).to_numpy(dtype=bool)], f, ascending=False,
                         extra=("crop_w", "crop_h"))
