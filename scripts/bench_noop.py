#!/usr/bin/env python3
"""oodpipe's no-op commands beside DVC's on a DAG of the same shape (`make bench-noop`).

Times, with everything built:
  oodpipe status  vs  dvc status      (nothing to do)
  oodpipe run     vs  dvc repro       (nothing to do)
  oodpipe --help                      (process start alone)
and prints a Markdown table with the ratios (medians of --repeat runs, after one warm-up each).

The DVC project is generated from `oodpipe dag --format dot` of the same config: one DVC stage per
oodpipe stage, the same edges, each stage copying its inputs into one output file; the data stage
depends on the six CIFAR-10 batch files (180 MB), as data.cifar10 does. DVC comes from PyPI into a
virtual environment (.bench/dvc-venv). The oodpipe store must hold the whole config already
(`make run` builds it); the script refuses to time a store with stale stages.

usage: scripts/bench_noop.py [--config pipeline.toml] [--cache cache] [--repeat 9]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DVC_VERSION = "3.67.0"


def timed(cmd, cwd, repeat):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dag_edges(oodpipe, config):
    dot = subprocess.run([oodpipe, "dag", "-c", config, "--format", "dot"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    nodes = re.findall(r'^\s*"([^"]+)";', dot, re.M)
    edges = re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, re.M)
    return nodes, edges


def dvc_project(work, nodes, edges, cifar_dir):
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    inputs = {n: [a for a, b in edges if b == n] for n in nodes}
    data = work / "cifar-10-batches-bin"
    data.mkdir()
    for f in sorted(Path(cifar_dir).glob("*.bin")):
        shutil.copy(f, data / f.name)
    lines = ["stages:"]
    for n in nodes:
        name = n.replace(".", "_").replace("@", "_")
        deps = [f"out/{d}" for d in inputs[n]]
        if n == "data.cifar10":
            deps = [f"cifar-10-batches-bin/{f.name}" for f in sorted(data.glob("*.bin"))]
        cat = " ".join(deps) if n != "data.cifar10" else "/dev/null"
        lines.append(f"  {name}:")
        lines.append(f"    cmd: mkdir -p out && cat {cat} > out/{n} && echo {n} >> out/{n}")
        if deps:
            lines.append("    deps:")
            lines.extend(f"      - {d}" for d in deps)
        lines.append("    params:")
        lines.append("      - train.epochs")
        lines.append("    outs:")
        lines.append(f"      - out/{n}")
    (work / "dvc.yaml").write_text("\n".join(lines) + "\n")
    (work / "params.yaml").write_text("train:\n  epochs: 10\n")
    return work


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="pipeline.toml")
    ap.add_argument("--cache", default=os.environ.get("OODPIPE_CACHE", "cache"))
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    oodpipe = str(ROOT / "target/release/oodpipe")
    if not Path(oodpipe).exists():
        sys.exit("build first: cargo build --release")
    cache = str(Path(args.cache).resolve())
    base = [oodpipe, "-c", args.config, "--cache", cache]
    status = subprocess.run(base + ["status"], cwd=ROOT, capture_output=True, text=True)
    summary = status.stdout.strip().splitlines()[-1] if status.stdout.strip() else status.stderr
    if status.returncode != 0 or " 0 stale" not in summary:
        sys.exit(f"the store {cache} does not hold the whole config ({summary.strip()}); `make run` builds it")
    nodes, edges = dag_edges(oodpipe, args.config)

    bench = ROOT / ".bench"
    venv = bench / "dvc-venv"
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"dvc=={DVC_VERSION}"], check=True)
    version = subprocess.run([str(dvc), "--version"], capture_output=True, text=True).stdout.strip()
    work = dvc_project(bench / "dvc-project", nodes, edges, ROOT / "data" / "cifar-10-batches-bin")
    subprocess.run([str(dvc), "init", "-q"], cwd=work, check=True)
    subprocess.run([str(dvc), "config", "core.analytics", "false"], cwd=work, check=True)
    subprocess.run([str(dvc), "repro", "-q"], cwd=work, check=True, stdout=subprocess.DEVNULL)

    r = args.repeat
    rows = [
        ("`status`, nothing to do", timed(base + ["status"], ROOT, r), "`dvc status`", timed([str(dvc), "status"], work, r)),
        ("`run`, nothing to do", timed(base + ["run"], ROOT, r), "`dvc repro`", timed([str(dvc), "repro"], work, r)),
        ("`--help` (process start alone)", timed([oodpipe, "--help"], ROOT, r), "`dvc --help`", timed([str(dvc), "--help"], work, r)),
    ]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{len(nodes)} stages ({args.config}), everything built; median of {r} runs; {cpu}, {os.cpu_count()} cores; DVC {version}\n")
    print("| command | oodpipe | DVC | ratio |")
    print("|---|---:|---:|---:|")
    for what, ours, dvc_cmd, theirs in rows:
        print(f"| {what} | {ours * 1000:.0f} ms | {dvc_cmd} {theirs * 1000:.0f} ms | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
