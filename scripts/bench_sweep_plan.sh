#!/usr/bin/env bash
# The cost of planning a sweep: 100 points of methods.bin.zeta on the default config, planned,
# merged and keyed (`oodpipe dag`, then `oodpipe run --dry-run`, which also hashes the sources and
# looks every key up in the store), best of 5 runs each.
#   scripts/bench_sweep_plan.sh [BINARY] [CACHE]     (default: target/release/oodpipe, cache/)
set -euo pipefail
bin=${1:-target/release/oodpipe}
cache=${2:-cache}
values=$(python3 -c 'print(",".join(f"{0.001 * 1.07 ** i:.6g}" for i in range(100)))')
best() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
times = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
print(f"{min(times):.3f} s (best of 5; median {sorted(times)[2]:.3f} s)")
PY
}
echo "stages: $("$bin" dag --sweep "methods.bin.zeta=$values" | wc -l)"
echo "dag (plan and merge 100 points): $(best "$bin" dag --sweep "methods.bin.zeta=$values")"
echo "run --dry-run (plan, merge, key, look up): $(best "$bin" --cache "$cache" run --dry-run --sweep "methods.bin.zeta=$values")"
