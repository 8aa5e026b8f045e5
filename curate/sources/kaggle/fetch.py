"""Kaggle credentials and download. The `kaggle` package is imported only in `_kaggle_api`: it
authenticates (and may print and exit) at import time."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

from platformdirs import user_cache_dir

from curate.core.errors import CredentialsError, CurateError, InputError, NetworkError

SOURCE_HINT = "or download the archive yourself and pass --source ZIP|DIR"
CREDENTIALS_HINT = (
    "set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or save kaggle.json from "
    "kaggle.com/settings/api to ~/.kaggle/kaggle.json (or a token to ~/.kaggle/access_token); " + SOURCE_HINT
)


def _config_dir() -> Path:
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return Path(env)
    home = Path.home() / ".kaggle"
    if home.exists():
        return home
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "kaggle"


def find_credentials() -> str | None:
    """Where the kaggle package would find credentials (without importing it), or None."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    cfg = _config_dir() / "kaggle.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CredentialsError(f"{cfg} is not valid JSON: {e}", "download a fresh kaggle.json from kaggle.com/settings/api") from e
        if isinstance(data, dict) and data.get("username") and data.get("key"):
            return str(cfg)
        raise CredentialsError(f"{cfg} lacks 'username' and 'key'", "download a fresh kaggle.json from kaggle.com/settings/api")
    home = Path.home() / ".kaggle"
    for name in ("access_token", "access_token.txt", "credentials.json"):
        if (home / name).is_file():
            return str(home / name)
    return None


def _kaggle_api():
    """Import the kaggle package (it authenticates at import) and return an authenticated api."""
    where = find_credentials()
    if where is None:
        raise CredentialsError("no Kaggle credentials found", CREDENTIALS_HINT)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            import kaggle  # noqa: PLC0415  (authenticates on import; may print and exit)

            api = kaggle.api
            api.authenticate()
    except ImportError as e:
        raise InputError("downloading from Kaggle needs the kaggle package", "pip install 'curate[kaggle]', " + SOURCE_HINT) from e
    except SystemExit as e:
        raise CredentialsError(f"Kaggle rejected the credentials from {where}", CREDENTIALS_HINT) from e
    except Exception as e:  # noqa: BLE001  (the package raises many kinds)
        raise _convert(e, "authenticate with Kaggle") from e
    return api


def _convert(e: BaseException, doing: str) -> CurateError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return CredentialsError(f"Kaggle refused to {doing} (HTTP {status})",
                                "check the credentials and accept the dataset's terms on kaggle.com; " + SOURCE_HINT)
    if status == 404:
        return InputError(f"Kaggle could not {doing}: not found (HTTP 404)", "check OWNER/DATASET on kaggle.com")
    kind = type(e).__name__
    if "Connection" in kind or "Timeout" in kind or isinstance(e, OSError):
        return NetworkError(f"cannot reach Kaggle to {doing} ({kind})", "check the network, " + SOURCE_HINT)
    detail = " ".join(str(e).split())[:200]
    return NetworkError(f"could not {doing}: {kind}: {detail}", "check the network, " + SOURCE_HINT)


def download(dataset: str, dest: str | Path, *, quiet: bool = False) -> Path:
    """Download a Kaggle dataset's zip into `dest` (resumes; skips when already complete)."""
    dest = Path(dest)
    api = _kaggle_api()
    dest.mkdir(parents=True, exist_ok=True)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink if quiet else sys.stderr):
            api.dataset_download_files(dataset, path=str(dest), quiet=quiet, unzip=False)
    except SystemExit as e:
        raise CredentialsError("Kaggle rejected the credentials", CREDENTIALS_HINT) from e
    except Exception as e:  # noqa: BLE001
        raise _convert(e, f"download {dataset}") from e
    slug = dataset.split("/")[1]
    zpath = dest / f"{slug}.zip"
    if not zpath.is_file():
        found = sorted(dest.glob("*.zip"))
        if len(found) != 1:
            raise NetworkError(f"the download of {dataset} left no zip in {dest}", SOURCE_HINT)
        zpath = found[0]
    return zpath


def default_download_dir(dataset: str) -> Path:
    return Path(user_cache_dir("curate")) / "kaggle" / dataset.replace("/", "__")
