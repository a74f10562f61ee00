//! Stage `data.gaussian`: the "Gaussian noise" out-of-distribution set of the paper's Table 1
//! (SPEC.md "Out-of-distribution sets").
//!
//! It exists because the paper's noise is not pytorch-ood's: every RGB value of every pixel is
//! drawn i.i.d. from N(0.5, 1) (sigma 1, in [0, 1] pixel units) and clipped to [0, 1], so about
//! 31% of the values sit at exactly 0 and 31% at exactly 1. Making the set once, from
//! `data.ood_seed`, gives every model the same images.
//!
//! Randomness: `ChaCha8Rng::seed_from_u64(data.ood_seed)` on stream
//! [`super::streams::GAUSSIAN_PIXELS`], sampled with `rand_distr::Normal` (its algorithm is pinned by
//! Cargo.lock), in f64, clipped, then stored as f32. Images are drawn one after another, each as
//! its R, G and B planes of 32 rows of 32. As the draws are i.i.d., a permutation would not change
//! the distribution of either split: the first `data.ood_count - data.ood_val` images are the test
//! split and the last `data.ood_val` the validation split.
//!
//! Output `gaussian.safetensors`: `test_images` and `val_images`, f32 `[N, 3, 32, 32]` in [0, 1]
//! (paper: 1,000 and 500).

use crate::stage::StageContext;
use crate::tensors;
use anyhow::Result;
use rand_distr::{Distribution, Normal};

/// The noise's mean and standard deviation, in [0, 1] pixel units (paper section 5.2).
pub const MEAN: f64 = 0.5;
pub const STD: f64 = 1.0;

/// `count` images of clipped N(0.5, 1) noise, `count * 3 * 32 * 32` values in image order.
pub fn noise(count: usize, seed: u64) -> Vec<f32> {
    let mut rng = super::rng(seed, super::streams::GAUSSIAN_PIXELS);
    let normal = Normal::new(MEAN, STD).expect("a valid normal distribution");
    (0..count * 3 * 32 * 32).map(|_| normal.sample(&mut rng).clamp(0.0, 1.0) as f32).collect()
}

/// The stage: draw `data.ood_count` images, split, write `gaussian.safetensors`.
pub fn run(ctx: &StageContext) -> Result<()> {
    let cfg = &ctx.config.data;
    super::check_ood_sizes(cfg.ood_count, cfg.ood_val)?;
    (ctx.progress)(0, 1, "drawing noise");
    let values = noise(cfg.ood_count, cfg.ood_seed);
    let n_test = cfg.ood_count - cfg.ood_val;
    let (test, val) = values.split_at(n_test * 3 * 32 * 32);
    let test_images = super::f32_images(test, n_test);
    let val_images = super::f32_images(val, cfg.ood_val);
    tensors::write(
        &ctx.output("gaussian.safetensors"),
        &[("test_images", &test_images), ("val_images", &val_images)],
    )?;
    (ctx.progress)(1, 1, "written");
    Ok(())
}
