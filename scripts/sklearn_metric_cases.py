#!/usr/bin/env python3
"""Generate OOD-metric oracle cases with scikit-learn for the metrics crate's tests.

Writes tests/data/metrics_sklearn/<case>/{in.txt,out.txt,expected.json} in the same form as
../shared/fixtures/metrics: one score a line (shortest round-trip repr, so the Rust side reads back
the exact same doubles), and scikit-learn's answers under the keys fpr_at_95_tpr, detection_error,
auroc, aupr_in, aupr_out, tpr_at_threshold. In-distribution is the positive class; a higher score
means more in-distribution.

The cases aim at what an exact implementation can get wrong: ties (rounding, discrete scores,
signed zeros, all-equal), unequal and tiny class sizes, TPR landing exactly on 0.95, scores
squashed together or sitting on a large offset, subnormals. The seed is fixed, so rerunning the
script reproduces the committed files byte for byte (given the same numpy and scikit-learn).

Usage: python3 scripts/sklearn_metric_cases.py [OUT_DIR]   (run from the repository root)
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

SEED = 20240604


def oracle(in_scores, ood_scores):
    """The five metrics (and the TPR they are read at), exactly as SPEC.md defines them."""
    s = np.concatenate([in_scores, ood_scores])
    y_in = np.concatenate([np.ones(len(in_scores)), np.zeros(len(ood_scores))])
    fpr, tpr, _ = roc_curve(y_in, s, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))  # the first point, i.e. the largest threshold, reaching 95%
    return {
        "aupr_in": float(average_precision_score(y_in, s)),
        "aupr_out": float(average_precision_score(1 - y_in, -s)),
        "auroc": float(roc_auc_score(y_in, s)),
        "detection_error": float(0.5 * (1 - tpr[k]) + 0.5 * fpr[k]),
        "fpr_at_95_tpr": float(fpr[k]),
        "tpr_at_threshold": float(tpr[k]),
    }


def cases(rng):
    """(name, in-distribution scores, OOD scores) for every case."""
    normal = rng.normal
    yield "single_each", np.array([0.7]), np.array([0.3])
    yield "single_each_tied", np.array([0.5]), np.array([0.5])
    yield "one_in_many_ood", np.array([0.6]), normal(0.0, 1.0, 200)
    yield "many_in_one_ood", normal(1.0, 1.0, 200), np.array([0.9])
    yield "gauss_small", normal(1.0, 1.0, 37), normal(0.0, 1.0, 23)
    yield "gauss_1000", normal(1.5, 1.0, 1000), normal(0.0, 1.2, 1000)
    yield "gauss_unequal_20_to_1", normal(1.0, 1.0, 4000), normal(0.0, 1.0, 200)
    yield "gauss_unequal_1_to_20", normal(1.0, 1.0, 200), normal(0.0, 1.0, 4000)
    yield "gauss_large", normal(0.8, 1.0, 15000), normal(0.0, 1.0, 12000)
    yield "round_1_decimal", np.round(normal(0.5, 0.3, 3000), 1), np.round(normal(0.0, 0.3, 2000), 1)
    yield "round_2_decimals", np.round(normal(0.5, 0.5, 3000), 2), np.round(normal(0.0, 0.5, 3000), 2)
    yield "round_0_decimals", np.round(normal(2.0, 2.0, 1500), 0), np.round(normal(0.0, 2.0, 2500), 0)
    yield "discrete_0_to_5", rng.integers(1, 6, 1000).astype(float), rng.integers(0, 5, 700).astype(float)
    yield "binary_scores", (rng.random(500) < 0.8).astype(float), (rng.random(400) < 0.3).astype(float)
    yield "all_equal_unequal_sizes", np.full(333, -1.25), np.full(77, -1.25)
    yield "signed_zeros", rng.choice([0.0, -0.0, 1.0], 400), rng.choice([0.0, -0.0, -1.0], 300)
    yield "perfectly_separated_ties", np.round(rng.uniform(0.6, 1.0, 800), 2), np.round(rng.uniform(0.0, 0.4, 600), 2)
    yield "inverted", normal(-1.0, 1.0, 900), normal(1.0, 1.0, 500)
    # n_in = 20, 60 and 100: TPR hits 19/20 = 57/60 = 95/100 = 0.95 exactly on a distinct score.
    yield "tpr_exactly_095_n20", rng.permutation(np.arange(20.0)), np.arange(-5.0, 15.0, 0.5)
    yield "tpr_exactly_095_n60", normal(1.0, 1.0, 60), normal(0.0, 1.0, 80)
    yield "tpr_exactly_095_n100", normal(1.0, 1.0, 100), normal(0.0, 1.0, 100)
    # A tie straddling the 95% point: TPR jumps from below 0.95 to well above it.
    yield "tie_across_095", np.concatenate([np.full(90, 2.0), np.full(10, 1.0)]), np.concatenate(
        [np.full(30, 1.0), normal(0.0, 1.0, 70)]
    )
    yield "large_offset_1e8", 1e8 + normal(0.001, 0.001, 2000), 1e8 + normal(0.0, 0.001, 2000)
    yield "large_offset_rounded", np.round(1e6 + normal(0.5, 0.5, 2000), 1), np.round(1e6 + normal(0.0, 0.5, 2000), 1)
    yield "negative_large", -1e12 + normal(3.0, 2.0, 1500), -1e12 + normal(0.0, 2.0, 1500)
    yield "softmax_squashed_T1000", 0.1 + 1e-6 * normal(1.0, 1.0, 3000), 0.1 + 1e-6 * normal(0.3, 1.0, 3000)
    yield "subnormals", 5e-324 * rng.integers(0, 40, 500), 5e-324 * rng.integers(0, 30, 500)
    yield "tiny_magnitudes", 1e-300 * normal(1.0, 1.0, 500), 1e-300 * normal(0.0, 1.0, 500)
    yield "bimodal_ood", normal(2.0, 0.5, 2500), np.concatenate([normal(-1.0, 0.5, 1200), normal(2.2, 0.3, 300)])
    yield "uniform_overlap_mixed_ties", np.concatenate(
        [rng.uniform(0.0, 1.0, 1500), np.round(rng.uniform(0.0, 1.0, 1500), 2)]
    ), np.concatenate([rng.uniform(-0.3, 0.9, 1000), np.round(rng.uniform(-0.3, 0.9, 1000), 2)])
    yield "near_perfect_one_outlier", np.concatenate([normal(5.0, 0.1, 999), [-10.0]]), normal(0.0, 0.1, 1000)


def main():
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/data/metrics_sklearn")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    rng = np.random.default_rng(SEED)
    total = 0
    for name, in_scores, ood_scores in cases(rng):
        case = out_dir / name
        case.mkdir(parents=True)
        for file, scores in (("in.txt", in_scores), ("out.txt", ood_scores)):
            lines = "".join(f"{float(x)!r}\n" for x in scores)
            (case / file).write_text(lines)
            total += len(lines)
        # The oracle reads the scores back from the text, so it sees exactly what the tests see.
        back = [np.loadtxt(case / f, ndmin=1) for f in ("in.txt", "out.txt")]
        assert all(np.array_equal(a, b) for a, b in zip(back, (in_scores, ood_scores)))
        expected = oracle(*back)
        (case / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(list(out_dir.iterdir()))} cases ({total / 1e6:.2f} MB of scores) to {out_dir}"
          f" with scikit-learn {sklearn.__version__}")


if __name__ == "__main__":
    main()
