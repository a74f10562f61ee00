#!/usr/bin/env bash
# Installs libtorch 2.13.0 (CPU kernels; the CUDA runtime wheels only satisfy its loader) into
# .libtorch/ from PyPI, the recipe that works with tch 0.26. Skipped when already complete; a
# marker file is written last, so an interrupted install is redone rather than trusted.
set -euo pipefail
dir=${1:-.libtorch}
if [ -f "$dir/.complete" ]; then
  echo "libtorch: $dir is present"
  exit 0
fi
rm -rf "$dir"
echo "libtorch: installing torch 2.13.0 into $dir (about 1.2 GB)"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target "$dir" \
  torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
touch "$dir/.complete"
