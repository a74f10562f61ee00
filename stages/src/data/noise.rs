//! Noise OOD sets: `kind = "gaussian"` and `kind = "uniform"`.
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

use crate::ood::Generator;
use rand_chacha::rand_core::RngCore;
use rand_distr::{Distribution, Normal};

/// The paper's noise: mean and standard deviation in [0, 1] pixel units (paper section 5.2).
pub const MEAN: f64 = 0.5;
pub const STD: f64 = 1.0;

/// `count` images of noise, `count * 3 * 32 * 32` values in image order. Panics on a generator
/// that is not noise.
pub fn draw(generator: &Generator, count: usize, seed: u64) -> Vec<f32> {
    let values = count * 3 * 32 * 32;
    match *generator {
        Generator::Gaussian { mean, std, clip } => {
            let mut rng = super::rng(seed, super::streams::GAUSSIAN_PIXELS);
            let normal = Normal::new(mean, std).expect("a valid normal distribution (the config checks std > 0)");
            (0..values)
                .map(|_| {
                    let v = normal.sample(&mut rng);
                    (if clip { v.clamp(0.0, 1.0) } else { v }) as f32
                })
                .collect()
        }
        Generator::Uniform { low, high } => {
            let mut rng = super::rng(seed, super::streams::UNIFORM_PIXELS);
            (0..values).map(|_| (low + (high - low) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)) as f32).collect()
        }
        Generator::ImageFolder { .. } => panic!("an image folder is not noise"),
    }
}

/// The paper's clipped N(0.5, 1) noise.
pub fn gaussian(count: usize, seed: u64) -> Vec<f32> {
    draw(&Generator::Gaussian { mean: MEAN, std: STD, clip: true }, count, seed)
}
