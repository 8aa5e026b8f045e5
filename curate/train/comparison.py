"""Train several architectures on one decoded tree and write one comparison table.

Every model is built (and its weights found) before any training. On CPU each model then trains in its
own process (spawned, reading the one decode from a file), so its peak memory is its own resident set; on
CUDA they train in turn in this process and the peak is the CUDA memory allocated during its training.
A model that fails while training gets its error in the table, and the others go on.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import curate
from curate.core.errors import CurateError, InputError
from curate.core.storage import as_location
from curate.core.tree import atomic_write_json, atomic_write_text
from curate.train.config import TrainConfig
from curate.train.data import prepare
from curate.train.loop import _default_log, fit, json_safe, resolve_device
from curate.train.metrics import _rss
from curate.train.models import _check_arch, build_model
from curate.train.prep import load_dataset
from curate.train.rundir import tree_name

COLUMNS = [
    ("arch", "arch", "{}"), ("top1", "top-1", "{:.3f}"), ("top5", "top-5", "{:.3f}"),
    ("macro_f1", "macro-F1", "{:.3f}"), ("loss", "loss", "{:.3f}"), ("params", "params (M)", "{:.2f}"),
    ("trainable_params", "trainable (M)", "{:.2f}"), ("train_seconds", "train s", "{:.1f}"),
    ("epochs_run", "epochs", "{}"), ("inference_ms_batch1", "ms/img b1", "{:.2f}"),
    ("inference_ms_per_image", "ms/img bN", "{:.2f}"), ("peak_memory_mb", "peak MB", "{:.0f}"),
    ("error", "error", "{}"),
]
DECODED = ".decoded.pt"  # the shared decode the per-model processes read (deleted at the end)


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
            alone: bool | None = None, **options) -> list[dict]:
    """Train each model of `archs` (a comma list or a list) with the same options; returns the table's rows.
    `alone`: each model in its own process (None: on CPU only; False: all in this process, faster to start,
    but then peak memory only grows from model to model)."""

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
                    size=cfg.size, classes=ds.classes, stem=cfg.stem)
    prepared = prepare(root, cfg0, quiet=quiet, log=log, dataset=ds)
    if alone is None:
        alone = resolve_device(cfg0.device).type == "cpu"
    decoded = out_dir / DECODED
    if alone:
        import torch

        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(prepared, decoded)
    rows = []
    try:
        for a in names:
            log(f"--- {a}")
            job = (root, a, options, out_dir / a, overwrite, quiet)
            result = _in_own_process(job, decoded) if alone else _run_one(job, prepared)
            rows.append(_row(a, result))
            if "error" in result:
                log(f"{a} failed: {result['error']}")
    finally:
        decoded.unlink(missing_ok=True)
    write_table(out_dir, json_safe(rows))
    return rows


def _run_one(job, prepared) -> dict:
    """Train one model; its metrics, or {"error": one line} when it fails."""

    root, arch, options, out, overwrite, quiet = job
    try:
        cfg = TrainConfig.from_options(**{**options, "arch": arch})
        res = fit(root, cfg, out=out, overwrite=overwrite, quiet=quiet, prepared=prepared)
        return {**res.metrics, "out_dir": str(res.out_dir)}
    except (CurateError, RuntimeError, ValueError, MemoryError) as e:  # torch errors are RuntimeErrors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return {"error": f"{type(e).__name__}: {first}"[:300]}
    finally:
        _free_device_memory()


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def child_main(job_path: str, decoded: str, result_path: str) -> None:
    """Entry point of a model's own process: read the job and the shared decode, train, write the result."""
    import pickle

    import torch


    job = pickle.loads(Path(job_path).read_bytes())
    if job[-1] is not None:
        torch.set_num_threads(job[-1])
    prepared = torch.load(decoded, map_location="cpu", weights_only=False, mmap=True)
    base = _rss()
    result = _run_one(job[:-1], prepared)
    if "error" not in result and base is not None:
        result["memory_before_model_mb"] = base / 2**20
    atomic_write_json(Path(result_path), json_safe(result))


def _in_own_process(job, decoded: Path) -> dict:
    """Run one job in a fresh interpreter (nothing of this process's memory counts, and no __main__ re-import
    as multiprocessing's spawn would do)."""
    import json
    import os
    import pickle
    import subprocess
    import sys

    out = Path(job[3])
    out.mkdir(parents=True, exist_ok=True)
    job_path, result_path = out / ".compare-job.pkl", out / ".compare-result.json"
    result_path.unlink(missing_ok=True)
    import torch

    job_path.write_bytes(pickle.dumps((*job, torch.get_num_threads())))
    env = dict(os.environ)
    here = str(Path(curate.__file__).resolve().parents[1])  # this curate, whatever the child's sys.path
    env["PYTHONPATH"] = os.pathsep.join([here, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    code = ("import sys; from curate.train.comparison import child_main; "
            "child_main(sys.argv[1], sys.argv[2], sys.argv[3])")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(job_path), str(decoded), str(result_path)],
                              env=env, check=False)
        if result_path.is_file():
            return json.loads(result_path.read_text())
        why = "killed: out of memory?" if proc.returncode < 0 else "see the messages above"
        return {"error": f"its training process ended with exit code {proc.returncode} ({why})"}
    finally:
        job_path.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)


def _row(arch: str, m: dict) -> dict:
    if "error" in m:
        return {"arch": arch, "error": m["error"]}
    return {"arch": arch, **{k: m.get(k) for k, _, _ in COLUMNS[1:]}, "split": m["split"],
            "stem": m.get("stem"), "inference_images_per_s": m["inference_images_per_s"],
            "inference_batch_size": m.get("inference_batch_size"), "peak_memory_kind": m["peak_memory_kind"],
            "memory_before_model_mb": m.get("memory_before_model_mb"), "out_dir": m.get("out_dir")}


def format_row(r: dict) -> list[str]:
    cells = []
    for key, _, fmt in COLUMNS:
        v = r.get(key)
        if v is None:
            cells.append("" if key == "error" else "-")
        elif key in ("params", "trainable_params"):
            cells.append(fmt.format(v / 1e6))
        else:
            cells.append(fmt.format(v))
    return cells


def write_table(out_dir: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "compare.csv", buf.getvalue())
    head = [h for _, h, _ in COLUMNS]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in format_row(r)) + " |" for r in rows]
    done = [r for r in rows if not r.get("error")]
    note = "\nNo model finished training.\n"
    if done:
        split, kind, bs = done[0]["split"], done[0]["peak_memory_kind"], done[0].get("inference_batch_size")
        note = (f"\nMetrics on the {split} split. Inference: ms per image at batch 1 and at batch {bs}. Peak "
                "memory: " + ("the CUDA memory allocated while the model trained (the decoded images on the device "
                              "included).\n" if kind == "cuda-allocated" else
                              "the resident set of the model's own training process (torch and the decoded images "
                              "included; memory_before_model_mb in compare.csv is that part).\n"))
    atomic_write_text(out_dir / "compare.md", "\n".join(md) + "\n" + note)
    atomic_write_json(out_dir / "compare.json", rows)
