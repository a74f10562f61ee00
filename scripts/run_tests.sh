#!/usr/bin/env bash
# `make test`: every unit, integration and doc test of the workspace, the format check
# (`cargo fmt --all --check`), the lint check (`cargo clippy --workspace --all-targets -- -D
# warnings`: a check build of its own, about 3 min here), then one closing line with the test totals ("tests: N passed, N
# failed"), so that the summary does not end on an empty doc-test run.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${CARGO:-cargo}" test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
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
    echo "warning: rustfmt is not installed (rustup component add rustfmt): the format check did not run" >&2
fi
# House rule: no clippy warning in any target (tests and examples too).
if "${CARGO:-cargo}" clippy --version >/dev/null 2>&1; then
    if ! "${CARGO:-cargo}" clippy --workspace --all-targets --quiet -- -D warnings >"$log.clippy" 2>&1; then
        echo "cargo clippy --workspace --all-targets -- -D warnings found these:" >&2
        cat "$log.clippy" >&2
        status=1
    fi
    rm -f "$log.clippy"
else
    echo "warning: clippy is not installed (rustup component add clippy): the lint check did not run" >&2
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
