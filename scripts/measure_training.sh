#!/usr/bin/env bash
# Measures training speed (images/s) and CIFAR-10 test accuracy of the pipeline's own training
# loop on this machine, to choose the CPU-sized default config. Release build, 2 threads.
#   scripts/measure_training.sh timing   # WRN-10-1 / WRN-16-1, channels-last on/off, 200 batches each
#   scripts/measure_training.sh full [epochs]   # WRN-10-1, one-cycle 0.2, smoothing 0.1, channels-last
# Output goes to stdout; run it under nohup with a log file, it takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p oodpipe-stages --example measure_training
bin=target/release/examples/measure_training
case "${1:-timing}" in
  timing)
    for depth in 10 16; do
      for cl in false true; do
        "$bin" depth=$depth widen=1 batches=200 channels_last=$cl threads=2
      done
    done ;;
  full)
    "$bin" depth=10 widen=1 epochs="${2:-10}" batch=128 schedule=one_cycle lr=0.2 warmup=0.2 smoothing=0.1 \
      channels_last=true threads=2 ;;
  *) echo "usage: $0 timing | full [epochs]" >&2; exit 2 ;;
esac
