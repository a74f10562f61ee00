//! The bootstrap against independent computations: every replicate equals `ood_metrics` (itself
//! checked against scikit-learn) on lists resampled by hand with the same seeded indices; the
//! spread of AUROC's replicates matches Hanley and McNeil's closed-form standard error; a
//! proportion's replicates match the binomial's.

use oodpipe_metrics::bootstrap::{bootstrap, bootstrap_mean, resample_indices};
use oodpipe_metrics::interval::{mean_std, percentile_interval};
use oodpipe_metrics::ood_metrics;
use std::path::Path;

fn read_scores(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Gaussian scores from a Box-Muller transform of a xorshift stream (independent of the crate's).
fn gaussian(n: usize, mean: f64, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| mean + (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()).collect()
}

#[test]
fn every_replicate_is_the_metrics_of_the_resampled_lists() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/metrics_sklearn");
    // Ties across the lists, within a list, signed zeros and very unequal sizes.
    for case in ["uniform_overlap_mixed_ties", "signed_zeros", "gauss_unequal_1_to_20", "discrete_0_to_5"] {
        let (a, b) = (read_scores(&data.join(case).join("in.txt")), read_scores(&data.join(case).join("out.txt")));
        let seed = 12345;
        let reps = bootstrap(&a, &b, 40, seed).unwrap();
        for (r, got) in reps.iter().enumerate() {
            let (ia, ib) = resample_indices(seed, r as u64, a.len(), b.len());
            let ra: Vec<f64> = ia.iter().map(|&i| a[i]).collect();
            let rb: Vec<f64> = ib.iter().map(|&i| b[i]).collect();
            let want = ood_metrics(&ra, &rb).unwrap();
            assert_eq!(*got, want, "{case}, replicate {r}");
        }
        // Same seed, same replicates; another seed, others.
        assert_eq!(bootstrap(&a, &b, 40, seed).unwrap(), reps);
        assert_ne!(bootstrap(&a, &b, 40, seed + 1).unwrap(), reps);
    }
}

#[test]
fn the_interval_holds_the_point_estimate_and_aurocs_spread_is_hanley_mcneils() {
    let (n_in, n_ood) = (2000, 1000);
    let a = gaussian(n_in, 1.0, 0x1234_5678_9ABC_DEF1);
    let b = gaussian(n_ood, 0.0, 0x0FED_CBA9_8765_4321);
    let point = ood_metrics(&a, &b).unwrap();
    let reps = bootstrap(&a, &b, 1000, 7).unwrap();
    type Field = fn(&oodpipe_metrics::OodMetrics) -> f64;
    let pick: [(&str, Field); 5] = [
        ("fpr_at_95_tpr", |m| m.fpr_at_95_tpr),
        ("detection_error", |m| m.detection_error),
        ("auroc", |m| m.auroc),
        ("aupr_in", |m| m.aupr_in),
        ("aupr_out", |m| m.aupr_out),
    ];
    for (name, f) in pick {
        let values: Vec<f64> = reps.iter().map(f).collect();
        let (lo, hi) = percentile_interval(&values, 0.95);
        assert!(lo <= f(&point) && f(&point) <= hi, "{name}: {} outside [{lo}, {hi}]", f(&point));
        assert!(hi - lo > 0.0 && hi - lo < 0.2, "{name}: [{lo}, {hi}]");
    }
    // Hanley & McNeil (1982): SE^2 = (A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)) / (n_pos n_neg),
    // Q1 = A / (2 - A), Q2 = 2A^2 / (1 + A), with the in-distribution samples as positives.
    let a_ = point.auroc;
    let (q1, q2) = (a_ / (2.0 - a_), 2.0 * a_ * a_ / (1.0 + a_));
    let (np, nn) = (n_in as f64, n_ood as f64);
    let se = ((a_ * (1.0 - a_) + (np - 1.0) * (q1 - a_ * a_) + (nn - 1.0) * (q2 - a_ * a_)) / (np * nn)).sqrt();
    let (_, sd, _) = mean_std(&reps.iter().map(|m| m.auroc).collect::<Vec<_>>());
    assert!((sd / se - 1.0).abs() < 0.15, "bootstrap SD {sd} vs Hanley-McNeil SE {se}");
}

#[test]
fn a_proportions_replicates_are_binomial() {
    let (correct, n) = (8240, 10_000);
    // Right and wrong interleaved, as a classifier's are over the test images.
    let right: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i * correct / n != (i + 1) * correct / n))).collect();
    assert_eq!(right.iter().sum::<f64>(), correct as f64);
    let reps = bootstrap_mean(&right, 2000, 3);
    let (mean, sd, _) = mean_std(&reps);
    let p = correct as f64 / n as f64;
    let binomial_sd = (p * (1.0 - p) / n as f64).sqrt();
    assert!((mean - p).abs() < 3.0 * binomial_sd / (2000f64).sqrt() + 1e-12, "{mean} vs {p}");
    assert!((sd / binomial_sd - 1.0).abs() < 0.08, "{sd} vs {binomial_sd}");
    // Item by item: replicate r is the mean over the indices the in-distribution draws pick.
    let (idx, _) = resample_indices(3, 5, n, 0);
    assert_eq!(reps[5], idx.iter().map(|&i| right[i]).sum::<f64>() / n as f64);
}
