#!/usr/bin/env bash
# What a Python detector's stage costs beyond its own computation, on the default config: MaxLogit
# written in Python (one numpy max per split, so its computation is next to nothing) against the
# Rust MaxLogit stage on the same stored outputs. Each is forgotten and rebuilt REPS times (the
# rest of the pipeline cached); the table gives the median stage time per OOD set (what the run
# records: the worker's whole stage, metrics and files included, the same work on both sides but
# the score). The difference is the interpreter's start, numpy's import, the manifest and the
# arrays' mapping, and reading the scores back.
#
#   scripts/bench_python_detector.sh [CACHE] [REPS]   (default: cache 5; needs `make run` and `make python`)
set -euo pipefail
cache=${1:-cache}
reps=${2:-5}
bin=./target/release/oodpipe
export OODPIPE_PYTHON=${OODPIPE_PYTHON:-$PWD/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/maxlogit.py" <<'PY'
def score(state, x, params):
    return x.logits.max(axis=1)
PY
cp pipeline.toml "$work/config.toml"
cat >> "$work/config.toml" <<TOML

[python.maxlogit_py]
script = "$work/maxlogit.py"
label = "MaxLogit (Python)"
TOML
sets=$(sed -n 's/^\[ood\.\([a-z_0-9]*\)\]$/\1/p' pipeline.toml)
[ -n "$sets" ] || sets="gaussian tin_crop tin_resize"
run() { "$bin" -c "$work/config.toml" --cache "$cache" "$@"; }
seconds() { run show "$1" --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["seconds"])'; }
declare -A times
for i in $(seq 1 "$reps"); do
  for d in max_logit maxlogit_py; do
    run forget "score.$d" >/dev/null
    run run "score.$d" >/dev/null 2>&1
    for s in $sets; do times[$d.$s]+="$(seconds "score.$d.$s") "; done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "| OOD set | Rust MaxLogit stage (s) | Python MaxLogit stage (s) | difference (s) |"
echo "|---|---:|---:|---:|"
for s in $sets; do
  r=$(echo "${times[max_logit.$s]}" | median); p=$(echo "${times[maxlogit_py.$s]}" | median)
  awk -v s="$s" -v r="$r" -v p="$p" 'BEGIN { printf "| %s | %.3f | %.3f | %.3f |\n", s, r, p, p - r }'
done
echo "(medians of $reps; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores)"
