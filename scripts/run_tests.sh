#!/usr/bin/env bash
# `make test`: every unit, integration and doc test of the workspace, the lint check (clippy on
# every target with warnings denied, run inside the test build: see below), the format check
# (`cargo fmt --all --check`), then one closing line with the test totals ("tests: N passed, N
# failed, N skipped"), so that the summary does not end on an empty doc-test run.
#
# Skips are counted, not hidden: a test that cannot check what it is for (no Slurm, no tmpfs, no
# Tiny ImageNet mirror) writes a line to $OODPIPE_SKIP_LOG, and under CI (CI=1, as .ci/run sets
# it) it fails instead; so do a missing clippy or rustfmt. A test binary that dies (a signal) adds
# a failure: every binary started must end with its own `test result:` line.
set -uo pipefail
log=$(mktemp)
export OODPIPE_SKIP_LOG
OODPIPE_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$OODPIPE_SKIP_LOG"' EXIT
ci="${CI:-}"
# A tool that is missing: a warning here, a failure under CI.
missing() {
    if [ -n "$ci" ]; then
        echo "error: $1 (CI=1: a check that cannot run fails)" >&2
        status=1
    else
        echo "warning: $1" >&2
        echo "make test: $1" >>"$OODPIPE_SKIP_LOG"
    fi
}
status=0
# House rule: no clippy warning in any target (`cargo clippy --workspace --all-targets -- -D
# warnings`). `cargo clippy` is `cargo check` with clippy-driver as the compiler of the workspace's
# own crates (RUSTC_WORKSPACE_WRAPPER); here the test build is given that wrapper, so each of our
# crates is linted as it is compiled for the tests, and the dependencies are not compiled a second
# time in check mode (a separate `cargo clippy` cost 2.5 min here, almost all of it checking
# polars, libtorch's bindings and the S3 client again). The lints are the same; a warning fails the
# suite at the end, after the tests ran. `make lint` runs `cargo clippy` itself.
lint=0
driver="$(rustc --print sysroot 2>/dev/null)/bin/clippy-driver"
if [ -x "$driver" ]; then
    export RUSTC_WORKSPACE_WRAPPER="$driver"
    lint=1
else
    missing "clippy is not installed (rustup component add clippy): the lint check did not run"
fi
# The tests run up to two oodpipe runs at once on two cores: libgomp's worker threads would spin
# between parallel regions (OMP_WAIT_POLICY=ACTIVE's behaviour for a while after each region) and
# take the other run's core. PASSIVE makes them sleep; the numbers are the same either way (the
# wait policy changes no arithmetic). Two smoke runs at once: 46.8 s spinning, 29.3 s passive.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"${CARGO:-cargo}" test --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ "$lint" = 1 ]; then
    # The targets the test build does not compile (benchmarks, examples), linted the same way.
    "${CARGO:-cargo}" build --workspace --benches --examples --quiet 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
# The doc tests: the config views' examples in plan/src/view.rs, one of which must not compile (a
# stage reading a field it does not declare). With --workspace, so the features (and builds) match.
"${CARGO:-cargo}" test --workspace --doc 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
# House rule: the code is formatted as rustfmt.toml says (`cargo fmt --all` fixes it).
if "${CARGO:-cargo}" fmt --version >/dev/null 2>&1; then
    if ! "${CARGO:-cargo}" fmt --all --check >"$log.fmt" 2>&1; then
        echo "cargo fmt --all --check: these files are not formatted (run cargo fmt --all):" >&2
        grep '^Diff in' "$log.fmt" | sed 's/:[0-9]*:$//' | sort -u >&2
        status=1
    fi
    rm -f "$log.fmt"
else
    missing "rustfmt is not installed (rustup component add rustfmt): the format check did not run"
fi
if [ "$lint" = 1 ] && grep -qE '^warning: `[^`]+` \([^)]*\) generated [0-9]+ warnings?' "$log"; then
    echo "clippy (warnings denied) found these, in the build above:" >&2
    grep -E '^warning: `[^`]+` \([^)]*\) generated [0-9]+ warnings?' "$log" >&2
    status=1
fi
# Every test binary that started (`Running ...`, `Doc-tests ...`) and gave no `test result:` line
# died: one failure each.
started=$(grep -cE '^ +(Running|Doc-tests) ' "$log")
ended=$(grep -c '^test result:' "$log")
crashed=$((started > ended ? started - ended : 0))
[ "$crashed" -eq 0 ] || { echo "error: $crashed test binaries ended without a result (killed by a signal?)" >&2; status=1; }
skipped=$(wc -l <"$OODPIPE_SKIP_LOG")
[ "$skipped" -eq 0 ] || { echo "skipped:" >&2; sed 's/^/  /' "$OODPIPE_SKIP_LOG" >&2; }
awk -v crashed="$crashed" -v skipped="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f + crashed, skipped }' "$log"
exit "$status"
