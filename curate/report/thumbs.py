"""Small JPEG thumbnails as data: URIs, so the HTML report opens offline from one file."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from curate.core.errors import UnreadableImage
from curate.core.images import decode
from curate.core.storage import join, read_image_bytes
from curate.engine.executor import is_local, make_executor

THUMB_SIDE = 128
CHUNK = 16
IN_PROCESS_BELOW = 32  # fewer thumbnails than this are made in-process (no pool start-up)


def thumb_uri(path: str | Path, side: int = THUMB_SIDE) -> str | None:
    """A JPEG thumbnail (longest side `side`) as a data URI; None when the file is unreadable."""
    from PIL import Image


    try:
        data = read_image_bytes(path)
        with Image.open(io.BytesIO(data)) as im:
            big = max(im.size)
        d = decode(data, min_scale=min(1.0, side / max(1, big)))
    except (UnreadableImage, OSError, ValueError, SyntaxError):
        return None
    im = Image.fromarray(d.pixels)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb_chunk(job: tuple[str, list[str], int]) -> list[str | None]:
    root, paths, side = job

    return [thumb_uri(join(root, p), side) for p in paths]


def thumbnails(root, paths, *, workers=None, engine="local", quiet=False, side=THUMB_SIDE) -> dict[str, str | None]:
    """{path: data URI or None} for the unique `paths` (relative to root), made through the executor."""
    paths = sorted(set(paths))
    jobs = [(str(root), paths[i : i + CHUNK], side) for i in range(0, len(paths), CHUNK)]
    few = is_local(engine) and len(paths) < IN_PROCESS_BELOW  # a pool costs more than it saves
    ex = make_executor(engine, workers=1 if few else workers, quiet=quiet)
    uris = [u for chunk in ex.map(_thumb_chunk, jobs, desc="thumbnails", units=lambda j: len(j[1]),
                                  unit="images") for u in chunk]
    return dict(zip(paths, uris, strict=True))
