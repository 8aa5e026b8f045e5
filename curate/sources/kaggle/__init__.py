"""Kaggle image datasets (class folders, e.g. the world-coins set) -> a verified curate tree.

presets: manifests/datasets.yaml (pydantic models); fetch: credentials and download (the `kaggle` package
is imported only to download: it authenticates at import); layout: where the split and class folders
sit; names: class names; importer: the import itself (`import_dataset`).
"""

from curate.sources.kaggle.fetch import (
    CREDENTIALS_HINT,
    SOURCE_HINT,
    default_download_dir,
    download,
    find_credentials,
)
from curate.sources.kaggle.importer import KaggleResult, Plan, import_dataset, make_plan
from curate.sources.kaggle.layout import MAX_DEPTH, Layout, find_layout, find_names, list_class_files
from curate.sources.kaggle.names import folder_names, load_names, parse_name
from curate.sources.kaggle.presets import (
    DATASET_RE,
    NAMES_FILE,
    PRESETS_FILE,
    DatasetSpec,
    load_presets,
    resolve_dataset,
)

__all__ = [
    "CREDENTIALS_HINT", "DATASET_RE", "MAX_DEPTH", "NAMES_FILE", "PRESETS_FILE", "SOURCE_HINT",
    "DatasetSpec", "KaggleResult", "Layout", "Plan",
    "default_download_dir", "download", "find_credentials", "find_layout", "find_names", "folder_names",
    "import_dataset", "list_class_files", "load_names", "load_presets", "make_plan", "parse_name",
    "resolve_dataset",
]
