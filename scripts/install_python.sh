#!/usr/bin/env bash
# The Python side of oodpipe's Python detectors (`[python.<name>]`): a venv in the checkout,
# `.venv/`, with numpy from PyPI (pinned, so that a fresh clone gets the same environment and the
# same keys). `make run` and `make test` call it and point $OODPIPE_PYTHON at `.venv/bin/python`.
# Skipped when `.venv/.complete` exists; written last, so an interrupted install is redone.
set -euo pipefail
dir=${1:-.venv}
numpy=${NUMPY_VERSION:-2.4.6}
if [ -f "$dir/.complete" ]; then
  exit 0
fi
echo "python: making $dir with numpy $numpy"
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check "numpy==$numpy"
touch "$dir/.complete"
