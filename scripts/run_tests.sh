#!/usr/bin/env bash
# `make test`: every unit and integration test of the workspace and the plan crate's doc tests, then one closing line with the
# totals ("tests: N passed, N failed"), so that the summary does not end on an empty doc-test run.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${CARGO:-cargo}" test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The plan crate's doc tests: the config views' examples, one of which must not compile (a stage
# reading a field it does not declare). The other crates' examples link libtorch and are not run.
"${CARGO:-cargo}" test -p oodpipe-plan --doc 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
