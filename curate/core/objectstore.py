"""Object stores through fsspec: the filesystem of a URL (s3fs retries bounded), store errors as one
actionable line, listing a prefix, the tree scan of a prefix, and the local folder for an object-store
tree's caches and journals. curate.core.storage is the interface callers use; this is its store half.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from platformdirs import user_cache_dir

from curate.core.errors import InputError
from curate.core.layout import Tree, TreeFile, canonical_split, is_image_name, tree_splits

_GLOB_CHARS = frozenset("*?[")  # fsspec expands these in the paths given to copy/rm/cat/get/put

STORE_HINT = "check the bucket exists and the credentials/endpoint (AWS_PROFILE, AWS_ENDPOINT_URL …)"


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for an object-store URL."""
    try:
        import fsspec
    except ImportError as e:
        raise InputError(f"{url} needs fsspec", "pip install 'curate[s3]'") from e
    try:
        opts = _store_options(url)
        fs, path = fsspec.core.url_to_fs(url, **(opts or {}))
        if opts is not None:
            fs.retries = S3_ATTEMPTS  # s3fs's own retry loop (a class attribute, not an argument)
        return fs, path
    except ImportError as e:  # e.g. s3fs or gcsfs missing for this protocol
        raise InputError(f"{url}: {e}", "s3:// needs pip install 'curate[s3]'; gs:// needs gcsfs") from e
    except ValueError as e:
        raise InputError(f"{url}: {e}", "use s3://bucket/prefix, gs://bucket/prefix or file:///path") from e


# An endpoint that accepts connections but never answers must not stall a run for minutes: by default s3fs
# tries a request 5 times and botocore each of those 5 times (15 s read timeout each: about 7 minutes per
# request). Here s3fs's own loop (connection errors, timeouts, broken bodies, SlowDown; with backoff) tries
# S3_ATTEMPTS times and botocore's standard mode (5xx, throttling) 2 times: about a minute when nothing
# answers. AWS_MAX_ATTEMPTS / AWS_RETRY_MODE in the environment give botocore's settings back.
S3_ATTEMPTS = 2


def _store_options(url: str) -> dict | None:
    if url.split("://", 1)[0] not in ("s3", "s3a"):
        return None
    if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
        return {}
    return {"config_kwargs": {"retries": {"total_max_attempts": 2, "mode": "standard"}}}


@contextlib.contextmanager
def store_errors(url: str, writing: bool = False) -> Iterator[None]:
    """Object-store failures (no bucket, no credentials, refused) become one actionable line.
    A missing object stays FileNotFoundError for readers; for writers it means a missing bucket."""
    try:
        yield
    except InputError:
        raise
    except FileNotFoundError:
        if not writing:
            raise
        raise InputError(f"cannot access {url}: no such bucket", STORE_HINT) from None
    except Exception as e:  # botocore/aiohttp/google errors have no common base worth naming
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise InputError(f"cannot access {url}: {type(e).__name__}: {msg}", STORE_HINT) from e




def list_objects(url: str) -> dict[str, tuple[int, str]]:
    """{relative path: (size, version)} of every object under a prefix; version is the ETag.

    A missing bucket or an empty/missing prefix is an InputError (one line)."""
    fs, p = filesystem(url)
    with store_errors(url):
        fs.invalidate_cache(p)
        try:
            found = fs.find(p, detail=True)
        except FileNotFoundError:
            found = {}
    base = p.rstrip("/") + "/"
    out = {}
    for key, info in found.items():
        if not key.startswith(base) or info.get("type") == "directory":
            continue
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("LastModified") or ""
        out[key[len(base):]] = (int(info.get("size") or 0), str(tag).strip('"'))
    if not out:
        require_bucket(url)
        raise InputError(f"no objects under {url}", "check the prefix (an image tree: <split>/<label>/<image>)")
    return out


def require_bucket(url: str) -> None:
    fs, p = filesystem(url)
    bucket = p.split("/", 1)[0]
    with store_errors(url):
        there = fs.exists(bucket)
    if not there:
        raise InputError(f"cannot access {url}: no such bucket '{bucket}'", STORE_HINT)


def scan_url_tree(url: str, objects: dict[str, tuple[int, str]] | None = None):
    """curate.core.layout.scan_tree for an object-store prefix: the same split detection, sorted paths and labels.
    Object stores have no empty folders, so `empty_labels` stays empty."""
    url = str(url).rstrip("/")
    objects = list_objects(url) if objects is None else objects
    keys = sorted(k for k in objects if not any(part.startswith(".") for part in k.split("/")))
    top = sorted({k.split("/")[0] for k in keys if "/" in k})
    splits = tree_splits(top, url.rsplit("/", 1)[-1], url)
    tree = Tree(root=url, split_dirs=splits)  # root stays a URL string
    for split, folder in splits.items():
        prefix = f"{folder}/" if folder else ""
        for k in keys:
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):].split("/")
            if len(rest) < 2:  # a file directly in the split root is not in a class folder
                continue
            if not folder and canonical_split(rest[0]):
                continue
            if is_image_name(rest[-1]):
                tree.files.append(TreeFile(k, split, rest[0]))
            else:
                tree.other.append(k)
    tree.files.sort(key=lambda f: f.path)
    return tree


def url_state_dir(url: str) -> Path:
    """Local folder for caches and journals of an object-store tree (never written into the bucket)."""
    url = str(url).rstrip("/")
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in url.rsplit("/", 1)[-1])[:40]
    return Path(os.environ.get("CURATE_CACHE_DIR") or user_cache_dir("curate")) / "trees" / f"{name}-{key}"
