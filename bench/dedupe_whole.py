"""A whole `curate dedupe` run against a plain one-process md5 + imagehash.phash loop, on look-alike-dense
sets (bench/dedupe_sets.py); part of bench/dedupe.py.

The run: `curate -q dedupe COPY --dry-run --workers 2 --json ...` in a subprocess, where COPY is a fresh
tree of hard links to the cached set (no state folder: a cold cache; --dry-run so the set can be reused
and nothing is moved). Its peak memory is ru_maxrss from wait4: the largest single process of the run
(the main process or one worker). It runs under an address-space cap and a time limit, so that a run
that would swamp a shared machine stops and is reported as stopped. Both sides read files that are
already in the page cache (every file is read once before timing), and both run compiled bytecode (curate's
is compiled first, as an install has it).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline(files: list[Path]) -> tuple[float, list[str]]:
    """Seconds for md5 + imagehash.phash(Image.open(p)) over files, one process; and the hashes."""
    import imagehash
    from PIL import Image

    t0 = time.perf_counter()
    out = []
    for p in files:
        hashlib.md5(p.read_bytes()).hexdigest()
        out.append(str(imagehash.phash(Image.open(p))))
    return time.perf_counter() - t0, out


def candidates(root: Path, files: list[Path], hashes: list[str], truth, threshold: int) -> tuple[int, int]:
    """(pairs of files whose phash is within threshold bits, how many of them are true copies)."""
    from curate.dedupe.search import hamming_pairs, pack

    i, j, _ = hamming_pairs(pack(hashes, 64), threshold, 64)
    photo = dict(zip(truth["path"], truth["photo"], strict=True))
    ph = np.array([photo[str(p.relative_to(root))] for p in files])
    return len(i), int((ph[i] == ph[j]).sum())


def clustered(members: list[list[str]], photo: dict[str, str]) -> tuple[int, int]:
    """(pairs of files put in one cluster, how many of them are true copies), counted per cluster."""
    pairs = true = 0
    for m in members:
        pairs += len(m) * (len(m) - 1) // 2
        _, counts = np.unique([photo.get(p, p) for p in m], return_counts=True)
        true += int((counts * (counts - 1) // 2).sum())
    return pairs, true


def run_dedupe(root: Path, threshold: int, workers: int, limit_s: float, cap_gib: float) -> dict:
    """A cold whole `curate dedupe --dry-run` in a subprocess: seconds, peak RSS (MiB), how it ended."""
    out = Path(tempfile.mkdtemp(prefix="dedupe-run-"))
    cmd = [sys.executable, "-m", "curate", "-q", "dedupe", str(root), "--dry-run", "--workers", str(workers),
           "--threshold", str(threshold), "--json", str(out / "dedupe.json")]
    cap = int(cap_gib * 2**30)

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    import curate  # the run uses the same curate as this bench (PYTHONPATH decides which checkout)

    home = str(Path(curate.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([home, os.environ.get("PYTHONPATH", "")])}
    log = open(out / "log.txt", "wb")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limits, start_new_session=True,
                         env=env)
    ended = "done"
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > limit_s:
            os.killpg(p.pid, signal.SIGKILL)
            _, status, usage = os.wait4(p.pid, 0)
            ended = f"stopped at the {limit_s:.0f} s limit"
            break
        time.sleep(0.01)  # the end of the run is seen within 10 ms (0.2 s added ~0.1 s to every run)
    secs = time.perf_counter() - t0
    log.close()
    try:
        os.killpg(p.pid, signal.SIGKILL)  # workers left behind by a killed run
    except ProcessLookupError:
        pass
    text = (out / "log.txt").read_text(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if ended == "done" and code not in (0, 1):
        ended = "MemoryError (address-space cap)" if "MemoryError" in text or "memory" in text.lower() else \
            f"failed (exit {code}): {text.strip().splitlines()[-1] if text.strip() else ''}"
    res = {"secs": secs, "rss_mib": usage.ru_maxrss / 1024, "ended": ended, "exit": code}
    if (out / "dedupe.json").is_file():
        d = json.loads((out / "dedupe.json").read_text())
        res["members"] = [c["members"] for c in d["clusters"]]
        res["near_clusters"] = sum(c["kind"] == "near" for c in d["clusters"])
        res["search"] = d.get("candidates")  # what dedupe's own search proposed and its gates turned away
    shutil.rmtree(out, ignore_errors=True)
    return res


def compiled() -> None:
    """curate's bytecode, as an installed package has it (pip compiles it; the baseline's imagehash and
    Pillow have theirs): with PYTHONDONTWRITEBYTECODE set, as on this machine, every run would otherwise
    compile curate's modules again (~0.08 s of a whole run on the grown coins)."""
    import compileall

    import curate

    compileall.compile_dir(str(Path(curate.__file__).resolve().parent), quiet=1)


def warm(files: list[Path]) -> None:
    for p in files:
        p.read_bytes()


def bench_set(name: str, root: Path, truth, thresholds: list[int], workers: int, limit_s: float,
              cap_gib: float, repeat: int = 3) -> list[dict]:
    """Print one line per threshold: the set, the baseline, the whole run, the ratio and peak memory. The
    loop and the run alternate `repeat` times and the best of each counts (a busy moment of a shared
    machine hurts both sides alike); a run stopped at the limit is not repeated."""
    from dedupe_sets import hardlink_copy, tree_files

    files = tree_files(root)
    warm(files)
    compiled()
    loops, hashes = [], None
    n_copies = len(truth) - truth["photo"].nunique()
    print(f"{name}: {len(files):,} files ({n_copies} true copies of {truth['photo'].nunique():,} photos)", flush=True)
    photo = dict(zip(truth["path"], truth["photo"], strict=True))
    _, counts = np.unique(truth["photo"], return_counts=True)
    n_pairs = int((counts * (counts - 1) // 2).sum())
    rows = []
    for t in thresholds:
        runs = []
        for _ in range(max(1, repeat)):
            secs, hashes = baseline(files)
            loops.append(secs)
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(run_dedupe(hardlink_copy(root, Path(tmp) / "tree"), t, workers, limit_s, cap_gib))
            if runs[-1]["ended"] != "done":
                break
        base_s = min(loops)
        r = {**min(runs, key=lambda x: x["secs"]), "rss_mib": max(x["rss_mib"] for x in runs)}
        n_cand, n_true = candidates(root, files, hashes, truth, t)
        r["ratio"] = base_s / r["secs"]
        more = "" if r["ended"] == "done" else f" ({r['ended']}: the ratio is at most this)"
        print(f"  threshold {t:2d}: {n_cand:,} candidate pairs within {t} bits, {n_true:,} of them true copies "
              f"({n_cand - n_true:,} look-alike pairs, {(n_cand - n_true) / max(1, n_cand):.1%})\n"
              f"    best of {len(runs)}: baseline md5 + imagehash.phash loop, 1 process {base_s:.1f}s "
              f"({_spread(loops)}); curate dedupe --workers {workers} --dry-run, cold: {r['secs']:.1f}s "
              f"({_spread([x['secs'] for x in runs])}){more}, peak RSS {r['rss_mib']:.0f} MiB -> "
              f"{r['ratio']:.2f}x the baseline (target >= 1.5x)", flush=True)
        if "members" in r:
            pairs, good = clustered(r["members"], photo)
            print(f"    {len(r['members'])} clusters ({r['near_clusters']} near): {pairs:,} pairs of files clustered, "
                  f"{good:,} of them true copies, of {n_pairs:,} true pairs", flush=True)
        if r.get("search"):
            c = r["search"]
            print(f"    dedupe's search: {c['candidates']:,} candidates; turned away by colour {c['colour']:,}, "
                  f"by the mid-band test {c['prefilter']:,}, by the small-image test {c.get('small', 0):,}; "
                  f"verified on pixels {c['scored']:,}", flush=True)
        rows.append({"set": name, "threshold": t, "files": len(files), "baseline_s": base_s, "candidates": n_cand,
                     "true_candidates": n_true, **r})
    return rows


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}s over {len(values)}" if len(values) > 1 else "one run"
