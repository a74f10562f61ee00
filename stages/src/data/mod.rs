//! The data stages: CIFAR-10's splits and the configured OOD sets (SPEC.md "Data").
//!
//! Every random choice here (the CIFAR-10 train/validation split, the Gaussian draws, the Tiny
//! ImageNet sample, crops and splits) comes from a ChaCha8 generator seeded with
//! `ChaCha8Rng::seed_from_u64(seed)` and put on a fixed stream ([`streams`]), and every integer
//! draw goes through [`uniform_below`] rather than `rand`'s `gen_range` / `shuffle`: ChaCha8's
//! output and `seed_from_u64` are value-stable, while `gen_range`'s algorithm is allowed to change
//! between `rand` versions and samples `usize` differently on 32- and 64-bit platforms. So a split
//! depends only on its seed.

pub mod cifar10;
pub mod image_folder;
pub mod noise;
pub mod ood_set;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// The ChaCha8 stream of each random choice, so that no two choices share random numbers even
/// when they share a seed (the OOD sets share `data.ood_seed` by default).
pub mod streams {
    /// The CIFAR-10 train/validation permutation (seed `data.split_seed`).
    pub const CIFAR10_SPLIT: u64 = 0;
    /// A Gaussian set's pixel values (the set's seed).
    pub const GAUSSIAN_PIXELS: u64 = 1;
    /// A uniform set's pixel values.
    pub const UNIFORM_PIXELS: u64 = 2;
    /// Which images of a folder are used: shared by crop and resize, so that the paper's two
    /// Tiny ImageNet sets see the same 1,500 images.
    pub const FOLDER_SAMPLE: u64 = 3;
    /// An image folder's test/validation split, shared by crop and resize.
    pub const FOLDER_SPLIT: u64 = 4;
    /// A cropped folder's patch positions.
    pub const FOLDER_CROP: u64 = 5;
}

/// The generator of one random choice: `seed` on stream `stream`.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform integer in `0..n` (n >= 1), by rejection on 64-bit draws (Lemire's multiply-shift
/// method): exact, and a function of the generator's output alone.
pub fn uniform_below(rng: &mut impl RngCore, n: u64) -> u64 {
    assert!(n > 0, "uniform_below(0)");
    // Reject the low products that would over-represent some results.
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// The first `k` entries of a uniformly random permutation of `0..n` (a partial Fisher-Yates
/// shuffle: entry i is swapped with a uniform entry of i..n). `k = n` gives a whole permutation.
pub fn permutation_prefix(n: usize, k: usize, rng: &mut impl RngCore) -> Vec<usize> {
    assert!(k <= n, "permutation_prefix: k = {k} > n = {n}");
    let mut items: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + uniform_below(rng, (n - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(k);
    items
}

/// A uniformly random permutation of `0..n`.
pub fn permutation(n: usize, rng: &mut impl RngCore) -> Vec<usize> {
    permutation_prefix(n, n, rng)
}

/// Splits `0..n` by a seeded permutation: the first `n - second` permuted positions and the last
/// `second`, each sorted ascending (so items keep their file order within a split).
pub fn sorted_split(n: usize, second: usize, rng: &mut impl RngCore) -> (Vec<usize>, Vec<usize>) {
    let perm = permutation(n, rng);
    let (a, b) = perm.split_at(n - second);
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// Packs `n` images of 3 x 32 x 32 f32 values into a tensor `[n, 3, 32, 32]`.
pub(crate) fn f32_images(values: &[f32], n: usize) -> tch::Tensor {
    assert_eq!(values.len(), n * 3 * 32 * 32);
    tch::Tensor::from_slice(values).view([n as i64, 3, 32, 32])
}

/// An error in the user's data files, marked as bad input: the command exits with 2 (not 1, a
/// failed computation) and says which file is wrong.
pub(crate) fn bad_input(e: anyhow::Error) -> anyhow::Error {
    oodpipe_engine::bad_input::BadInput(format!("{e:#}")).into()
}
