#!/usr/bin/env python3
"""Benchmark `oodpipe metrics` against scikit-learn on 1,000,000 + 1,000,000 scores.

Generates seeded in-distribution and OOD scores (a quarter of them rounded to 3 decimals, so that
ties occur), writes them to temporary files, then times, best of --repeats:
- scikit-learn computing the same numbers in memory (roc_auc_score, average_precision_score for
  AUPR-In and AUPR-Out, roc_curve for FPR at 95% TPR and the detection error);
- `BINARY metrics --in-dist A --ood B --json`, end to end, reading the two files included.
It checks that every number agrees to 1e-9 and prints both times and their ratio. Exits 1 on a
mismatch or a failing binary.

Usage (from the repository root, after `cargo build --release`):
    python3 scripts/bench_metrics.py [--binary target/release/oodpipe] [--n 1000000] [--sklearn-only]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

TOLERANCE = 1e-9


def scores(rng, n, mean):
    s = rng.normal(mean, 1.0, n)
    s[::4] = np.round(s[::4], 3)
    return s


def sklearn_metrics(in_scores, ood_scores):
    s = np.concatenate([in_scores, ood_scores])
    y_in = np.concatenate([np.ones(len(in_scores)), np.zeros(len(ood_scores))])
    fpr, tpr, _ = roc_curve(y_in, s, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))
    return {
        "fpr_at_95_tpr": float(fpr[k]),
        "detection_error": float(0.5 * (1 - tpr[k]) + 0.5 * fpr[k]),
        "auroc": float(roc_auc_score(y_in, s)),
        "aupr_in": float(average_precision_score(y_in, s)),
        "aupr_out": float(average_precision_score(1 - y_in, -s)),
        "tpr_at_threshold": float(tpr[k]),
    }


def best_of(repeats, f):
    """(best wall-clock seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = f()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_cli(binary, in_path, ood_path):
    proc = subprocess.run(
        [binary, "metrics", "--in-dist", in_path, "--ood", ood_path, "--json"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"{binary} failed with status {proc.returncode}:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/oodpipe")
    parser.add_argument("--n", type=int, default=1_000_000, help="scores per class")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--sklearn-only", action="store_true", help="time scikit-learn only")
    args = parser.parse_args()
    if not args.sklearn_only and not Path(args.binary).is_file():
        sys.exit(f"{args.binary} not found: run `cargo build --release` or pass --binary")

    rng = np.random.default_rng(args.seed)
    in_scores, ood_scores = scores(rng, args.n, 1.0), scores(rng, args.n, 0.0)
    sk_seconds, expected = best_of(args.repeats, lambda: sklearn_metrics(in_scores, ood_scores))
    print(f"scikit-learn, {args.n:,} + {args.n:,} scores in memory: best of {args.repeats} = {sk_seconds:.3f} s")
    if args.sklearn_only:
        print(json.dumps(expected))
        return

    with tempfile.TemporaryDirectory() as tmp:
        in_path, ood_path = str(Path(tmp, "in.txt")), str(Path(tmp, "ood.txt"))
        # %.17g round-trips every double, so the binary sees exactly the scores scikit-learn saw.
        np.savetxt(in_path, in_scores, fmt="%.17g")
        np.savetxt(ood_path, ood_scores, fmt="%.17g")
        cli_seconds, actual = best_of(args.repeats, lambda: run_cli(args.binary, in_path, ood_path))
    print(f"{args.binary} metrics, reading the files included: best of {args.repeats} = {cli_seconds:.3f} s")
    print(f"speed-up: {sk_seconds / cli_seconds:.1f}x")

    mismatches = [
        f"{key}: scikit-learn {want!r}, oodpipe {actual.get(key)!r}"
        for key, want in expected.items()
        if not isinstance(actual.get(key), float) or abs(actual[key] - want) > TOLERANCE
    ]
    if mismatches:
        sys.exit("numbers disagree beyond 1e-9:\n" + "\n".join(mismatches))
    print(f"all six numbers agree to {TOLERANCE:g}")


if __name__ == "__main__":
    main()
