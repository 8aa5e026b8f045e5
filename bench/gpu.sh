#!/usr/bin/env bash
# One prepared run of `curate train` on a GPU machine (issue 16), sized for a ~15-minute lease: about
# 8 minutes in all, so a second run fits. From the repository root, with OUT an empty folder whose
# files come back:
#
#     OUT=/some/empty/dir bash bench/gpu.sh
#
# Stages, each under its own timeout (a hang costs that stage only) and logged to $OUT:
#   setup    python, torch, GPU; which needed packages are missing (printed with the pip command)
#   tests    pytest -m cuda tests/test_cuda.py                                     -> tests.log
#   bench    bench/train.py at 224 px, 4096 images, batch 128, >= 200 steps a row,
#            resnet18 and resnet50 (+ a fused-AdamW ceiling), + torch.profiler over
#            one curate epoch                                                       -> bench.log, bench.json,
#                                                                                      profile-ARCH.txt
#   compare  curate train --compare resnet18,mobilenet_v2,efficientnet_b0 --weights none
#            on a generated 20-class tree (bench/train_tree.py)                      -> compare.log, compare.json
# and a summary in gpu.log: 8 small files, no checkpoints.
#
# The machine has its own Python and torch (not the pinned versions) and no network. curate runs from
# this checkout through PYTHONPATH (nothing is installed). Packages it lacks travel as wheels in .whl/
# (a git-ignored folder: pass it with the device tool's carry [".whl"]), downloaded on a machine with
# network for CPython 3.12, e.g. for the two that are most often missing:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl typer==0.29.2 shellingham==1.5.4
#
# (the setup stage prints this command with exactly the missing NAME==VERSION list). They are installed
# here with pip install --no-index --no-deps --target /tmp/site.
#
# Dry run on a CPU (proves the script, measures nothing): GPU_SH_DEVICE=cpu GPU_SH_TINY=1 OUT=/tmp/x bash bench/gpu.sh
# Timeouts (seconds) can be changed with GPU_SH_T_TESTS, GPU_SH_T_BENCH, GPU_SH_T_COMPARE.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${OUT:?set OUT to an empty folder for the results}"
mkdir -p "$OUT"
DEVICE=${GPU_SH_DEVICE:-cuda}
TINY=${GPU_SH_TINY:-0}
PY=${PYTHON:-python3}
LOG=$OUT/gpu.log
WORK=$(mktemp -d /tmp/curate-gpu.XXXXXX)
export MPLCONFIGDIR=$WORK/mpl MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
START=$SECONDS
FAILED=0

log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - START))s] $*" | tee -a "$LOG"; }

# stage NAME LIMIT LOGFILE CMD...: run CMD under LIMIT seconds, output to LOGFILE, tail into gpu.log
stage() {
    local name=$1 limit=$2 file=$3 t0=$SECONDS rc
    shift 3
    log "stage $name (limit ${limit}s): $*"
    timeout -k 15 "$limit" "$@" >>"$file" 2>&1
    rc=$?
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "TIMED OUT after ${limit}s" >>"$file"
    log "stage $name: exit $rc after $((SECONDS - t0))s; last lines of $(basename "$file"):"
    tail -n 12 "$file" | cut -c1-300 | sed 's/^/    /' | tee -a "$LOG"
    [ $rc -eq 0 ] || FAILED=1
    return 0
}

if [ "$TINY" = 1 ]; then
    T_TESTS=${GPU_SH_T_TESTS:-120} T_BENCH=${GPU_SH_T_BENCH:-600} T_COMPARE=${GPU_SH_T_COMPARE:-400}
    BENCH=(--size 32 --images 48 --batch-size 8 --steps 3 --threads 1 --workers 2)
    TREE=(--classes 20 --images 100 --side 40)
    TRAIN=(--size 32 --epochs 1 --batch-size 16 --workers 2 --threads 1)
else
    T_TESTS=${GPU_SH_T_TESTS:-120} T_BENCH=${GPU_SH_T_BENCH:-270} T_COMPARE=${GPU_SH_T_COMPARE:-90}
    BENCH=(--size 224 --images 4096 --batch-size 128 --steps 200 --threads 0 --workers 12)
    TREE=(--classes 20 --images 4000 --side 224)
    TRAIN=(--size 224 --epochs 5 --batch-size 128 --workers 12)
fi

# ---------------------------------------------------------------- setup
log "curate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(cat /etc/hostname 2>/dev/null || echo "?"), $(nproc) cores, device $DEVICE, tiny $TINY"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  df -h /dev/shm 2>&1 | tail -n 1; } | sed 's/^/    /' | tee -a "$LOG"
if compgen -G ".whl/*.whl" >/dev/null; then
    log "installing $(ls .whl/*.whl | wc -l) wheel(s) from .whl/ into $WORK/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
        2>&1 | tail -n 5 | tee -a "$LOG"
    export PYTHONPATH=$PYTHONPATH:$WORK/site
fi
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
# import name -> distribution==version (the versions curate is tested with; the closure of its core
# dependencies plus pytest)
import importlib, platform, sys
NEEDED = {
    "numpy": "numpy==2.4.6", "PIL": "pillow==13.0.0", "cv2": "opencv-python-headless==4.14.0.94",
    "imagehash": "imagehash==4.3.2", "pywt": "pywavelets==1.9.0", "pandas": "pandas==3.1.1",
    "dateutil": "python-dateutil==2.9.0.post0", "six": "six==1.17.0", "pyarrow": "pyarrow==26.0.1",
    "typer": "typer==0.29.2", "shellingham": "shellingham==1.5.4", "annotated_doc": "annotated-doc==0.0.7",
    "rich": "rich==15.0.0", "markdown_it": "markdown-it-py==4.3.0", "mdurl": "mdurl==0.1.2",
    "pygments": "pygments==2.21.0", "yaml": "pyyaml==6.0.4", "pydantic": "pydantic==2.14.4",
    "pydantic_core": "pydantic-core==2.50.5", "annotated_types": "annotated-types==0.8.0",
    "typing_inspection": "typing-inspection==0.4.5", "typing_extensions": "typing-extensions==4.16.0",
    "sklearn": "scikit-learn==1.9.1", "scipy": "scipy==1.17.1", "joblib": "joblib==1.6.0",
    "threadpoolctl": "threadpoolctl==3.8.0", "skimage": "scikit-image==0.26.0", "imageio": "imageio==2.38.1",
    "tifffile": "tifffile==2026.3.3", "networkx": "networkx==3.6.1", "lazy_loader": "lazy-loader==0.6",
    "matplotlib": "matplotlib==3.11.2", "contourpy": "contourpy==1.3.3", "cycler": "cycler==0.12.1",
    "fontTools": "fonttools==4.68.0", "kiwisolver": "kiwisolver==1.5.1", "pyparsing": "pyparsing==3.3.3",
    "packaging": "packaging==26.4", "platformdirs": "platformdirs==4.14.9", "pytest": "pytest==9.2.0",
    "pluggy": "pluggy==1.7.0", "iniconfig": "iniconfig==2.3.1", "pytest_timeout": "pytest-timeout==2.4.0",
}
missing = []
for mod, dist in NEEDED.items():
    try:
        importlib.import_module(mod)
    except Exception as e:  # absent, or present but broken (e.g. built for another numpy)
        missing.append(dist)
        print(f"    missing or broken: {mod} ({dist}): {type(e).__name__}: {str(e)[:120]}")
print(f"    python {platform.python_version()} at {sys.executable}")
try:
    import torch, torchvision
    print(f"    torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
          f"torchvision {torchvision.__version__}, cuda available: {torch.cuda.is_available()}"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
except Exception as e:
    print(f"    torch/torchvision unusable: {type(e).__name__}: {e}")
    missing.append("torch+torchvision (the machine's own build is needed; none can travel as a wheel here)")
if missing:
    print("    MISSING: " + " ".join(missing))
    print("    fetch them where there is network, into .whl/, and rerun with carry ['.whl']:\n"
          "    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
          "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "
          "-d .whl " + " ".join(d for d in missing if "==" in d))
else:
    print("    every needed package imports")
EOF
"$PY" -c "import curate.train.loop" >>"$LOG" 2>&1 || { log "curate.train does not import here: stopping"; exit 3; }

# ---------------------------------------------------------------- stages
stage tests "$T_TESTS" "$OUT/tests.log" \
    "$PY" -m pytest tests/test_cuda.py -m cuda -v -rs -p no:cacheprovider -o addopts= --durations=10

stage bench "$T_BENCH" "$OUT/bench.log" \
    "$PY" bench/train.py --device "$DEVICE" --arch resnet18,resnet50 "${BENCH[@]}" \
    --json "$OUT/bench.json" --profile "$OUT"

stage compare "$T_COMPARE" "$OUT/compare.log" bash -c '
    set -e
    "$0" bench/train_tree.py "$1/tree20" '"${TREE[*]}"'
    "$0" -m curate train "$1/tree20" --compare resnet18,mobilenet_v2,efficientnet_b0 --weights none \
        --freeze-until none --lr 1e-3 --patience 0 --device "$2" '"${TRAIN[*]}"' --out "$1/compare" --overwrite
' "$PY" "$WORK" "$DEVICE"

# ---------------------------------------------------------------- summary
"$PY" - "$WORK/compare" "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
import csv, json, re, sys
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = json.loads((runs / "compare.json").read_text()) if (runs / "compare.json").exists() else []
for r in rows:  # one small file: the table, each model's metrics and its history
    d = runs / r["arch"]
    if (d / "metrics.json").exists():
        r["metrics"] = json.loads((d / "metrics.json").read_text())
    if (d / "history.csv").exists():
        r["history"] = list(csv.DictReader(open(d / "history.csv")))
if rows:
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    with open(out / "compare.log", "a") as f:
        f.write("\n" + (runs / "compare.md").read_text())
    print("compare: " + "; ".join(f"{r['arch']} top-1 {r['top1']:.3f}, {r['train_seconds']:.1f} s, "
                                   f"{r['peak_memory_mb']:.0f} MB" for r in rows))
tests = (out / "tests.log").read_text() if (out / "tests.log").exists() else ""
last = [ln for ln in tests.splitlines() if re.search(r"(passed|failed|skipped|error)", ln)]
print("tests: " + (last[-1].strip("= ") if last else "no result"))
if (out / "bench.json").exists():
    b = json.loads((out / "bench.json").read_text())
    e = b["environment"]
    print(f"bench: {e['device_name']}, torch {e['torch']}, {e['precision']}, freeze {e['freeze_until']}")
    for a in b["archs"]:
        res = a["results"]
        cells = ", ".join(f"{k} {v['images_per_s']:.0f} img/s ({v['of_ceiling']:.2f})" if "error" not in v
                          else f"{k} FAILED ({v['error']})" for k, v in res.items())
        ok = "meets" if res["curate"].get("of_ceiling", 0) >= 0.8 else "MISSES"
        print(f"  {a['arch']}: {cells}; curate {ok} the 0.8 target")
        if "profile" in a:
            per = a["profile"].get("per_batch", {})
            print(f"  {a['arch']} profile, per batch: "
                  + (", ".join(f"{k} {v:.2f}" for k, v in per.items()) or a["profile"].get("error", "nothing")))
EOF
log "done in $((SECONDS - START))s; files: $(cd "$OUT" && ls | tr '\n' ' ')"
rm -rf "$WORK"
exit $FAILED
