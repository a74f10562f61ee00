#!/usr/bin/env bash
# `make test`: every unit, integration and doc test of the workspace, then one closing line with the
# totals ("tests: N passed, N failed"), so that the summary does not end on an empty doc-test run.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${CARGO:-cargo}" test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The doc tests: the config views' examples in plan/src/view.rs, one of which must not compile (a
# stage reading a field it does not declare). With --workspace, so the features (and builds) match.
"${CARGO:-cargo}" test --workspace --doc 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
