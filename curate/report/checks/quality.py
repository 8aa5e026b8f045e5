"""Image-quality checks in the spirit of cleanvision, on measures from curate.report.measure.

Every measure is taken on a copy shrunk to at most 256 px on its longest side (luma = ITU-R 601).
A file is reported under the most specific issue only: a near-constant image is not also called
low-information or blurry, and a low-information one is not also called blurry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.report.checks import Check, Context, file_rows, register


class Threshold(Check):
    group = "quality"
    column: str  # measure compared with the check's first parameter
    below: bool = True  # True: fires when the measure is below the threshold
    excludes: tuple[str, ...] = ()  # checks whose files this one skips

    def mask(self, df: pd.DataFrame) -> pd.Series:
        limit = next(iter(self.params.values()))
        v = df[self.column]
        return (v < limit) if self.below else (v > limit)

    def run(self, ctx: Context):
        df = ctx.readable
        hit = self.mask(df)
        for name in self.excludes:
            hit &= ~QUALITY[name](ctx.params.get(name)).mask(df)
        return file_rows(df[hit], df[self.column], ascending=self.below)


@register
class Dark(Threshold):
    name = "dark"
    title = "Too dark"
    description = "99% of pixels have luma below {max_p99:g} (0 black, 1 white)."
    defaults = {"max_p99": 0.25}
    column = "dark_p99"


@register
class Bright(Threshold):
    name = "bright"
    title = "Too bright"
    description = "95% of pixels have luma above {min_p5:g} (0 black, 1 white)."
    defaults = {"min_p5": 0.85}
    column = "bright_p5"
    below = False


@register
class NearConstant(Threshold):
    name = "near-constant"
    title = "Near-constant"
    description = "Luma standard deviation below {max_std:g} (about {levels:.0f} of 255 levels): one flat colour."
    defaults = {"max_std": 0.02}
    column = "contrast"

    def describe(self):
        return self.description.format(levels=self.params["max_std"] * 255, **self.params)


@register
class LowInfo(Threshold):
    name = "low-info"
    title = "Low information"
    description = "Luma histogram entropy below {max_entropy:g} bits (of 8): few distinct tones, e.g. masks or icons."
    defaults = {"max_entropy": 2.0}
    column = "entropy"
    excludes = ("near-constant",)


@register
class Blurry(Threshold):
    name = "blurry"
    title = "Blurry"
    description = "Variance of the Laplacian below {max_sharpness:g} at 256 px: no sharp edges anywhere."
    defaults = {"max_sharpness": 20.0}
    column = "sharpness"
    excludes = ("near-constant", "low-info")


@register
class Grayscale(Threshold):
    name = "grayscale"
    title = "Grayscale"
    description = "Mean spread between the R, G and B channels below {max_colorfulness:g} (of 1): no colour."
    defaults = {"max_colorfulness": 0.01}
    column = "colorfulness"
    excludes = ("near-constant",)


@register
class OddSize(Check):
    name = "odd-size"
    title = "Odd size"
    group = "quality"
    description = ("Shorter side below {min_side:g} px, or area over {max_area_ratio:g}x (or under 1/{max_area_ratio:g}) "
                   "the median area of the dataset.")
    defaults = {"min_side": 32.0, "max_area_ratio": 10.0}

    def run(self, ctx):
        df = ctx.readable
        if df.empty:
            return []
        area = (df["width"] * df["height"]).astype("float64")
        ratio = area / float(np.median(area))
        r = self.params["max_area_ratio"]
        hit = (np.minimum(df["width"], df["height"]) < self.params["min_side"]) | (ratio > r) | (ratio < 1 / r)
        # score: area / median area; worst = furthest from 1 on a log scale
        return file_rows(df[hit.to_numpy(dtype=bool)], ratio, ascending=False, extra=("width", "height"),
                         key=np.abs(np.log(ratio)))


@register
class OddAspect(Check):
    name = "odd-aspect"
    title = "Odd aspect ratio"
    group = "quality"
    description = "Longer side over {max_aspect:g}x the shorter side."
    defaults = {"max_aspect": 3.0}

    def run(self, ctx):
        df = ctx.readable
        w, h = df["width"].astype("float64"), df["height"].astype("float64")
        aspect = np.maximum(w / h, h / w)
        return file_rows(df[(aspect > self.params["max_aspect"]).to_numpy(dtype=bool)], aspect, ascending=False,
                         extra=("width", "height"))


QUALITY = {c.name: c for c in (Dark, Bright, NearConstant, LowInfo, Blurry, Grayscale)}
