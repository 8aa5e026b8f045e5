"""Real photos that installed packages ship (scikit-image, scikit-learn, matplotlib), found offline.

Used by `curate demo` and by the tests: no network, no files of our own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from curate.core.errors import InputError
from curate.core.images import decode

# name -> (package, folder inside the package, file)
PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data", "astronaut.png"),  # 512x512 RGB, a person
    "chelsea": ("skimage", "data", "chelsea.png"),  # 451x300 RGB, a cat
    "coffee": ("skimage", "data", "coffee.png"),  # 600x400 RGB, a coffee cup
    "rocket": ("skimage", "data", "rocket.jpg"),  # 427x640 RGB JPEG, a rocket
    "motorcycle": ("skimage", "data", "motorcycle_left.png"),  # 741x500 RGB
    "camera": ("skimage", "data", "camera.png"),  # 512x512 grayscale, a man with a camera
    "coins": ("skimage", "data", "coins.png"),  # 384x303 grayscale, 24 coins
    "horse": ("skimage", "data", "horse.png"),  # binary silhouette
    "hubble": ("skimage", "data", "hubble_deep_field.jpg"),
    "retina": ("skimage", "data", "retina.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data", "grace_hopper.jpg"),  # 512x600 JPEG, a woman
    "china": ("sklearn", "datasets/images", "china.jpg"),  # 640x427 JPEG, a temple
    "flower": ("sklearn", "datasets/images", "flower.jpg"),  # 640x427 JPEG, a flower
}


def _package_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)  # locates without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the sample photos need the '{pkg}' package", f"pip install {pkg}")
    return Path(next(iter(spec.submodule_search_locations)))


def photo_path(name: str) -> Path:
    try:
        pkg, folder, fname = PHOTOS[name]
    except KeyError:
        raise InputError(f"no sample photo named '{name}'", f"choose from {', '.join(PHOTOS)}") from None
    p = _package_dir(pkg) / folder / fname
    if not p.exists():
        raise InputError(f"sample photo {p} is missing from the installed '{pkg}'", f"reinstall {pkg}")
    return p


def load_photo(name: str) -> np.ndarray:
    """The photo as an H x W x 3 uint8 RGB array."""

    return decode(photo_path(name)).pixels
