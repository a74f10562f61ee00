//! Times `ood_metrics` on 1,000,000 in-distribution and 1,000,000 OOD scores (best of 5), and the
//! bootstrap (`report.bootstrap` = 1,000 resamples) at the report's size, 10,000 CIFAR-10 and
//! 1,000 OOD test scores, against the naive bootstrap that resamples and calls `ood_metrics`
//! (one sort per replicate).
//!
//! A plain `Instant` loop rather than a benchmark framework: the figure we want is one wall-clock
//! number to set beside scikit-learn's (`scripts/bench_metrics.py`), not a statistical study.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oodpipe_metrics::bootstrap::{bootstrap, resample_indices};
use oodpipe_metrics::ood_metrics;

const N: usize = 1_000_000;
const RUNS: usize = 5;

/// xorshift64 uniforms in [0, 1); a quarter of them rounded to 3 decimals so that ties occur.
fn scores(seed: u64, offset: f64) -> Vec<f64> {
    scores_n(seed, offset, N)
}

fn scores_n(seed: u64, offset: f64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = offset + (state >> 11) as f64 / (1u64 << 53) as f64;
            if i % 4 == 0 { (x * 1000.0).round() / 1000.0 } else { x }
        })
        .collect()
}

fn main() {
    let in_scores = scores(0x9E37_79B9_7F4A_7C15, 0.3);
    let ood_scores = scores(0xD1B5_4A32_D192_ED03, 0.0);
    let mut best = Duration::MAX;
    let mut metrics = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        metrics = Some(black_box(ood_metrics(black_box(&in_scores), black_box(&ood_scores)).unwrap()));
        best = best.min(start.elapsed());
    }
    println!("ood_metrics on {N} + {N} scores: best of {RUNS} = {:.1} ms", best.as_secs_f64() * 1e3);
    println!("{:?}", metrics.unwrap());

    // The bootstrap at the report's size: one (method, OOD set, seed) cell.
    let (a, b) = (scores_n(1, 0.3, 10_000), scores_n(2, 0.0, 1_000));
    let resamples = 1000;
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        black_box(bootstrap(black_box(&a), black_box(&b), resamples, 0).unwrap());
        best = best.min(start.elapsed());
    }
    let naive_start = Instant::now();
    for r in 0..resamples as u64 {
        let (ia, ib) = resample_indices(0, r, a.len(), b.len());
        let ra: Vec<f64> = ia.iter().map(|&i| a[i]).collect();
        let rb: Vec<f64> = ib.iter().map(|&i| b[i]).collect();
        black_box(ood_metrics(&ra, &rb).unwrap());
    }
    let naive = naive_start.elapsed();
    println!(
        "bootstrap, {resamples} resamples of 10000 + 1000 scores: best of {RUNS} = {:.1} ms (naive resample-and-sort: {:.1} ms, {:.1}x)",
        best.as_secs_f64() * 1e3,
        naive.as_secs_f64() * 1e3,
        naive.as_secs_f64() / best.as_secs_f64()
    );
}
