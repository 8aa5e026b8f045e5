"""Train several architectures on one decoded tree and write one comparison table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from curate.errors import InputError
from curate.train.config import TrainConfig
from curate.train.models import _check_arch
from curate.tree import atomic_write_json, atomic_write_text

COLUMNS = [
    ("arch", "arch", "{}"), ("top1", "top-1", "{:.3f}"), ("top5", "top-5", "{:.3f}"),
    ("macro_f1", "macro-F1", "{:.3f}"), ("params", "params (M)", "{:.2f}"),
    ("trainable_params", "trainable (M)", "{:.2f}"), ("train_seconds", "train s", "{:.1f}"),
    ("epochs_run", "epochs", "{}"), ("inference_ms_per_image", "infer ms/img", "{:.2f}"),
    ("peak_memory_mb", "peak MB", "{:.0f}"),
]


def parse_archs(archs) -> list[str]:
    names = [a.strip() for a in (archs.split(",") if isinstance(archs, str) else archs) if a.strip()]
    if not names:
        raise InputError("--compare needs at least one architecture", "e.g. --compare resnet18,mobilenet_v2")
    if len(set(names)) != len(names):
        raise InputError("--compare lists an architecture twice", "list each once")
    for a in names:
        _check_arch(a)
    return names


def compare(root, archs, *, out=None, overwrite: bool = False, quiet: bool = False, log=None,
            **options) -> list[dict]:
    from curate.storage import as_location
    from curate.train.loop import _default_log, fit, json_safe, prepare, tree_name
    from curate.train.models import build_model
    from curate.train.prep import load_dataset

    names = parse_archs(archs)
    root = as_location(root)
    log = log or _default_log(quiet)
    out_dir = Path(out) if out is not None else Path("runs") / f"{tree_name(root)}-compare"
    if not overwrite and any((out_dir / a / "best.pt").exists() for a in names):
        raise InputError(f"{out_dir} already holds runs of these models", "pass --overwrite or another --out")
    options.pop("arch", None)
    cfg0 = TrainConfig.from_options(**options)
    ds = load_dataset(root, cfg0.eval_split)
    for a in names:  # check every model builds, takes --size and has its weights before hours of training
        cfg = TrainConfig.from_options(**{**options, "arch": a})
        build_model(a, len(ds.classes), weights=cfg.weights, dropout=cfg.dropout, freeze_until=cfg.freeze_until,
                    size=cfg.size, classes=ds.classes)
    prepared = prepare(root, cfg0, quiet=quiet, log=log, dataset=ds)
    rows = []
    for a in names:
        log(f"--- {a}")
        res = fit(root, TrainConfig.from_options(**{**options, "arch": a}), out=out_dir / a, overwrite=overwrite,
                  quiet=quiet, log=log, prepared=prepared)
        m = res.metrics
        rows.append({"arch": a, **{k: m.get(k) for k, _, _ in COLUMNS[1:]}, "split": m["split"],
                     "inference_images_per_s": m["inference_images_per_s"],
                     "peak_memory_kind": m["peak_memory_kind"], "out_dir": str(res.out_dir)})
    write_table(out_dir, json_safe(rows))
    return rows


def format_row(r: dict) -> list[str]:
    cells = []
    for key, _, fmt in COLUMNS:
        v = r.get(key)
        if v is None:
            cells.append("-")
        elif key in ("params", "trainable_params"):
            cells.append(fmt.format(v / 1e6))
        else:
            cells.append(fmt.format(v))
    return cells


def write_table(out_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "compare.csv", buf.getvalue())
    head = [h for _, h, _ in COLUMNS]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    split = rows[0]["split"]
    kind = rows[0]["peak_memory_kind"]
    note = f"\nMetrics on the {split} split; peak memory: " + (
        "CUDA memory allocated.\n" if kind == "cuda-allocated"
        else "the process's resident set (cpu-rss), which includes the shared decoded image cache.\n")
    atomic_write_text(out_dir / "compare.md", "\n".join(md) + "\n" + note)
    atomic_write_json(out_dir / "compare.json", rows)
