#!/usr/bin/env bash
# The Slurm path's own cost per stage: submission to start (`sbatch` until the job leaves PENDING,
# as the runner sees it polling every 250 ms), on the one-node cluster of scripts/slurm_local.sh.
# Runs the smoke config's stages with -j 1 (one job in flight, so no job waits for another) into a
# temporary store and prints each job's delay and their median. Needs a build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/slurm_local.sh
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
start=$(date +%s.%N)
./target/release/oodpipe run -c configs/smoke.toml --cache "$cache" --executor slurm -j 1 "${@:-data}" >/dev/null 2>&1
end=$(date +%s.%N)
python3 - "$cache" "$start" "$end" <<'PY'
import glob, re, statistics, sys
cache, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
delays = sorted(float(re.search(r"started ([0-9.]+)", open(f).read()).group(1)) for f in glob.glob(f"{cache}/logs/*.slurm"))
print(f"{len(delays)} jobs, one at a time: submit-to-start median {statistics.median(delays):.2f} s, "
      f"min {delays[0]:.2f} s, max {delays[-1]:.2f} s; whole run {end - start:.1f} s")
PY
