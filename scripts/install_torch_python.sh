#!/usr/bin/env bash
# PyTorch for the Python side of `[networks.<name>]` (README "Your own network"): a venv in the
# checkout, `.venv-torch/`, with torch, safetensors and numpy from PyPI (pinned: the same
# libtorch as oodpipe's, so a TorchScript file saved here loads in the worker). `oodpipe export`
# runs its exporter with it and the network tests make their TorchScript files with it; `make
# torch` and `make test` call this and point $OODPIPE_TORCH_PYTHON at `.venv-torch/bin/python`.
# PyPI's Linux torch wheel brings the CUDA libraries it links (about 4.7 GB installed, about
# 2 minutes on this project's CI machines). Skipped when `.venv-torch/.complete` exists; written
# last, so an interrupted install is redone.
set -euo pipefail
dir=${1:-.venv-torch}
if [ -f "$dir/.complete" ]; then
  exit 0
fi
echo "torch: making $dir with torch 2.13.0, safetensors and numpy (about 4.7 GB)"
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0 safetensors==0.8.0 numpy==2.4.6
touch "$dir/.complete"
