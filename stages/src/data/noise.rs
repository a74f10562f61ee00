//! Noise OOD sets: what `kind = "gaussian"` and `kind = "uniform"` draw (`ood_kinds/gaussian.rs`,
//! `ood_kinds/uniform.rs`).
//!
//! The paper's "Gaussian noise" is not pytorch-ood's: every RGB value of every pixel is drawn
//! i.i.d. from N(0.5, 1) (sigma 1, in [0, 1] pixel units) and clipped to [0, 1], so about 31% of
//! the values sit at exactly 0 and 31% at exactly 1. `mean`, `std` and `clip` make other noise.
//!
//! Randomness: `ChaCha8Rng::seed_from_u64(seed)` on stream [`super::streams::GAUSSIAN_PIXELS`]
//! (uniform: [`super::streams::UNIFORM_PIXELS`]); Gaussian values sampled with
//! `rand_distr::Normal` (its algorithm is pinned by Cargo.lock) in f64, uniform ones as
//! `low + (high - low) * u` with u the top 53 bits of a 64-bit draw over 2^53; then stored as f32.
//! Images are drawn one after another, each as its R, G and B planes of 32 rows of 32. As the
//! draws are i.i.d., a permutation would not change the distribution of either split: the first
//! `count - val` images are the test split and the last `val` the validation split.

use crate::ood::OodSet;
use rand_chacha::rand_core::RngCore;
use rand_distr::{Distribution, Normal};

/// The paper's noise: mean and standard deviation in [0, 1] pixel units (paper section 5.2).
pub const MEAN: f64 = 0.5;
pub const STD: f64 = 1.0;

/// `count` images of N(mean, std) noise, clipped to [0, 1] if `clip`: `count * 3 * 32 * 32`
/// values in image order.
pub fn gaussian_with(mean: f64, std: f64, clip: bool, count: usize, seed: u64) -> Vec<f32> {
    let mut rng = super::rng(seed, super::streams::GAUSSIAN_PIXELS);
    let normal = Normal::new(mean, std).expect("a valid normal distribution (the config checks std > 0)");
    (0..count * 3 * 32 * 32)
        .map(|_| {
            let v = normal.sample(&mut rng);
            (if clip { v.clamp(0.0, 1.0) } else { v }) as f32
        })
        .collect()
}

/// `count` images of U(low, high) noise, in image order.
pub fn uniform(low: f64, high: f64, count: usize, seed: u64) -> Vec<f32> {
    let mut rng = super::rng(seed, super::streams::UNIFORM_PIXELS);
    (0..count * 3 * 32 * 32).map(|_| (low + (high - low) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)) as f32).collect()
}

/// The paper's clipped N(0.5, 1) noise.
pub fn gaussian(count: usize, seed: u64) -> Vec<f32> {
    gaussian_with(MEAN, STD, true, count, seed)
}

/// A noise set's two splits of `values` (`set.count` images): the first `count - val` images are
/// the test split, the last `val` the validation split.
pub fn split(values: &[f32], set: &OodSet) -> super::ood_set::Made {
    let n_test = set.count - set.val;
    let (test, val) = values.split_at(n_test * 3 * 32 * 32);
    vec![("test_images".to_string(), super::f32_images(test, n_test)), ("val_images".to_string(), super::f32_images(val, set.val))]
}
