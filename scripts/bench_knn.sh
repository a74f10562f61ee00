#!/usr/bin/env bash
# KNN's exact K-th neighbour search, oodpipe against faiss-cpu's exact `IndexFlatL2` (what
# OpenOOD's KNN uses) and numpy (an f32 GEMM and `np.partition`), on the same features in one run:
# the default run's `features.softmax.cifar10` (45,000 training rows against the 10,000 test and
# 5,000 validation rows, D = 64, K = 50: the work of `fit.knn.cifar10`), with one thread and with
# every core. Prints one table (best of 3 each) and how far the answers are apart.
#
#   scripts/bench_knn.sh [CACHE] [CONFIG]   (default: cache pipeline.toml; needs `make run`)
#
# faiss-cpu and numpy go into a venv of their own, .venv-bench/ (not .venv/, whose packages key
# the Python detectors' stages).
set -euo pipefail
cache=${1:-cache}
config=${2:-pipeline.toml}
venv=.venv-bench
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "numpy==2.4.6" "faiss-cpu==1.15.1"
  touch "$venv/.complete"
fi
features=$(./target/release/oodpipe -c "$config" --cache "$cache" show features.softmax.cifar10 --json | tail -1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["outputs"]["features.safetensors"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo bench -q -p oodpipe-stages --bench knn --no-run 2>/dev/null
OODPIPE_KNN_FEATURES=$features OODPIPE_KNN_OUT=$work/oodpipe.f64 cargo bench -q -p oodpipe-stages --bench knn >"$work/oodpipe.txt"
cores=$(nproc)
for t in 1 "$cores"; do
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t "$venv/bin/python" scripts/bench_knn.py "$features" "$t" "$work" >>"$work/python.txt"
done
"$venv/bin/python" - "$work" "$cores" <<'PY'
import sys, numpy as np
work, cores = sys.argv[1], sys.argv[2]
times = {}
for line in open(f"{work}/oodpipe.txt").read().split("\n") + open(f"{work}/python.txt").read().split("\n"):
    parts = line.split()
    if len(parts) == 3 and parts[0] in ("oodpipe", "faiss", "numpy"):
        times[(parts[0], parts[1])] = float(parts[2])
print("| search (45,000 x 15,000, D = 64, K = 50) | 1 thread (s) | %s threads (s) |" % cores)
print("|---|---:|---:|")
for tool, label in [("oodpipe", "oodpipe (f32 GEMM, exact f64 K-th)"), ("faiss", "faiss-cpu IndexFlatL2 (f32)"), ("numpy", "numpy (f32 GEMM + partition)")]:
    print(f"| {label} | {times[(tool, '1')]:.2f} | {times[(tool, cores)]:.2f} |")
ours = np.fromfile(f"{work}/oodpipe.f64", dtype="<f8")
for tool in ("faiss", "numpy"):
    theirs = np.fromfile(f"{work}/{tool}.f64", dtype="<f8")
    print(f"max |oodpipe - {tool}| of the K-th squared distance: {np.abs(ours - theirs).max():.2e}")
PY
echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $cores cores, $(date -u +%Y-%m-%d))"
