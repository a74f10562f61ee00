//! Bootstrap intervals of the five metrics over the test images.
//!
//! A replicate resamples the in-distribution scores and the OOD scores *separately*, each with
//! replacement and to its own size (so the ratio of the two sets stays what it is), and computes
//! every metric of the resampled lists. The interval of a metric is the percentile interval of its
//! replicates ([`crate::interval::percentile_interval`]).
//!
//! # Why it is cheap
//! A resample holds only values of the original lists, so the threshold groups of the original
//! (its one sort) serve every replicate: each sample's group is found once, a replicate is a count
//! per group (one pass over the drawn indices), and the metrics are the same one sweep as
//! [`crate::ood_metrics`] over those counts. No replicate sorts anything: O(n + groups) each, and
//! the result is bit-for-bit what `ood_metrics` gives on the explicitly resampled lists (the tests
//! check exactly that).
//!
//! # The draws
//! Replicate `r` draws from its own stream, [`Stream::new`]`(seed, r)`: first `n_in` indices into
//! the in-distribution list, then `n_ood` into the OOD list, each `floor(u * n / 2^64)` for a
//! 64-bit output u of SplitMix64. [`resample_indices`] gives those indices, so that anyone can redo
//! a replicate by hand.

use crate::{MetricsError, OodMetrics, ThresholdGroups, sweep_counts};

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, well-mixed 64-bit generator, here
/// started at a hashed (seed, replicate) so that replicates are independent and order-free.
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Stream {
    /// The stream of replicate `replicate` of a bootstrap seeded with `seed`.
    pub fn new(seed: u64, replicate: u64) -> Stream {
        Stream { state: mix(seed.wrapping_mul(GAMMA) ^ mix(replicate.wrapping_add(1))) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// An index in `0..n` (Lemire's multiply-shift; its bias is below n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The indices replicate `replicate` draws: (into the in-distribution list, into the OOD list).
pub fn resample_indices(seed: u64, replicate: u64, n_in: usize, n_ood: usize) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Stream::new(seed, replicate);
    let a = (0..n_in).map(|_| rng.below(n_in)).collect();
    let b = (0..n_ood).map(|_| rng.below(n_ood)).collect();
    (a, b)
}

/// Each sample's threshold group (0 = the highest score), found once for all replicates.
struct Grouped {
    in_group: Vec<u32>,
    ood_group: Vec<u32>,
    groups: usize,
}

impl Grouped {
    fn new(in_scores: &[f64], ood_scores: &[f64]) -> Result<Grouped, MetricsError> {
        let sorted = ThresholdGroups::new(in_scores, ood_scores)?;
        // Distinct values, highest first, with `==` equality (0.0 and -0.0 are one group).
        let mut distinct: Vec<f64> = sorted.in_sorted.iter().chain(&sorted.ood_sorted).copied().collect();
        distinct.sort_unstable_by(|a, b| b.total_cmp(a));
        distinct.dedup_by(|a, b| a == b);
        let group_of = |x: &f64| {
            distinct.partition_point(|d| d > x) as u32 // the first value not above x is x's group
        };
        Ok(Grouped {
            in_group: in_scores.iter().map(group_of).collect(),
            ood_group: ood_scores.iter().map(group_of).collect(),
            groups: distinct.len(),
        })
    }
}

/// The metrics of `resamples` bootstrap replicates (replicate r at index r).
pub fn bootstrap(in_scores: &[f64], ood_scores: &[f64], resamples: usize, seed: u64) -> Result<Vec<OodMetrics>, MetricsError> {
    let grouped = Grouped::new(in_scores, ood_scores)?;
    let (n_in, n_ood) = (in_scores.len(), ood_scores.len());
    let mut counts_in = vec![0u64; grouped.groups];
    let mut counts_ood = vec![0u64; grouped.groups];
    let mut replicates = Vec::with_capacity(resamples);
    for r in 0..resamples {
        counts_in.iter_mut().for_each(|c| *c = 0);
        counts_ood.iter_mut().for_each(|c| *c = 0);
        let mut rng = Stream::new(seed, r as u64);
        for _ in 0..n_in {
            counts_in[grouped.in_group[rng.below(n_in)] as usize] += 1;
        }
        for _ in 0..n_ood {
            counts_ood[grouped.ood_group[rng.below(n_ood)] as usize] += 1;
        }
        let groups = counts_in.iter().zip(&counts_ood).map(|(&a, &b)| (a, b));
        replicates.push(sweep_counts(groups, n_in as u64, n_ood as u64));
    }
    Ok(replicates)
}

/// Bootstrap replicates of a mean over items (a classifier's accuracy: `values[i]` is 1 where
/// test image i is classified right, else 0). Replicate r is the mean of the `n` values at the
/// indices its stream draws, the same indices as the in-distribution draws of [`bootstrap`] for a
/// list of that size: so two models' replicates on one test set resample the same images, and
/// their difference is the paired bootstrap of the difference of their accuracies.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let n = values.len();
    (0..resamples)
        .map(|r| {
            let mut rng = Stream::new(seed, r as u64);
            (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n.max(1) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_and_replicate_and_repeat() {
        let first = |s, r| Stream::new(s, r).next_u64();
        assert_eq!(first(0, 0), first(0, 0));
        assert_ne!(first(0, 0), first(0, 1));
        assert_ne!(first(0, 0), first(1, 0));
        let mut rng = Stream::new(7, 3);
        assert!((0..10_000).all(|_| rng.below(11) < 11));
    }

    #[test]
    fn signed_zeros_share_a_group() {
        let g = Grouped::new(&[0.0, 1.0], &[-0.0, -1.0]).unwrap();
        assert_eq!(g.groups, 3);
        assert_eq!(g.in_group, [1, 0]);
        assert_eq!(g.ood_group, [1, 2]);
    }
}
