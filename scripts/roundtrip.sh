#!/usr/bin/env bash
# The round trip of a network oodpipe trained (README "Your own network"): the config's softmax
# network exported to TorchScript (`oodpipe export`), imported back as `[networks.softmax_rt]`, and
# the two compared: every logit of every outputs stage, and every value of the two reports
# (written with `report.dir` = OUT, so the config's own report folder is left alone; the config's
# other models are left out with `models = ["softmax"]`, which selects stages and keys none). Then the
# outputs stage on CIFAR-10 (60,000 images) of each, rebuilt RUNS times (`forget` + `run`), for
# the imported network's speed against the native forward's. Needs a release build, `make torch`,
# and the config's pipeline built in CACHE (`make run` for the default).
#
#   scripts/roundtrip.sh [CONFIG] [OUT]       (defaults: pipeline.toml reports/roundtrip)
#   RUNS=3 CACHE=cache scripts/roundtrip.sh
set -euo pipefail
config=${1:-pipeline.toml}
out=${2:-reports/roundtrip}
cache=${CACHE:-cache}
runs=${RUNS:-3}
bin=./target/release/oodpipe
python=${OODPIPE_TORCH_PYTHON:-.venv-torch/bin/python}
nets=.bench/roundtrip
name=softmax_rt
export OODPIPE_TORCH_PYTHON=$python
common=(-c "$config" --cache "$cache" --set "report.dir=\"$out\"" --set 'models=["softmax"]')
"$bin" run "${common[@]}" >/dev/null
"$bin" export train.softmax "${common[@]}" --out "$nets"
with=("${common[@]}" --set "networks.$name.torchscript=\"$nets/network.pt\"" --set "networks.$name.label=\"the softmax network, exported and imported\"")
"$bin" run "${with[@]}" >/dev/null
timings=$(mktemp)
for stage in outputs.softmax.cifar10 "outputs.softmax.cifar10@$name"; do
  for i in $(seq "$runs"); do
    "$bin" forget "$stage" "${with[@]}" >/dev/null
    "$bin" run "$stage" "${with[@]}" >/dev/null
    "$bin" show "$stage" --json "${with[@]}" | tail -1 | "$python" -c "import json,sys; print('$stage', json.load(sys.stdin)['seconds'])" >>"$timings"
  done
done
show() { "$bin" show "$1" --json "${with[@]}" | tail -1; }
pairs=$(mktemp)
for set in cifar10 gaussian tin_crop tin_resize; do
  echo "$set $(show "outputs.softmax.$set" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["outputs"]["outputs.safetensors"])') $(show "outputs.softmax.$set@$name" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["outputs"]["outputs.safetensors"])')" >>"$pairs"
done
"$python" scripts/compare_roundtrip.py --pairs "$pairs" --timings "$timings" --native "$out/results.csv" \
  --imported "$out/networks/$name/results.csv" --config "$config" --out "$out/roundtrip.md"
rm -f "$timings" "$pairs"
cat "$out/roundtrip.md"
