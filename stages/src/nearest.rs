//! The K-th nearest training feature of many queries, exactly, at matrix-multiply speed: what KNN
//! (`detectors/knn.rs`) scores with, 45,000 training features against 15,000 queries in the
//! default run.
//!
//! Why not the plain way (f64 distances of a block of queries, then libtorch's `kthvalue`): the
//! selection, not the arithmetic, took the time (`fit.knn.cifar10` 30 s of a 40 s KNN total). Here
//! each block of queries gets approximate values `e = |t|^2 - 2 q.t` from one f32 GEMM
//! (`[q, 1] . [-2t, |t|^2]`, libtorch's BLAS, all its threads); `|q|^2` is the same for every `t`
//! of a query and does not change which one is K-th, so it is added back only at the end. Per
//! query (rows split over the same number of threads) a sample of every 128th value gives a
//! threshold that keeps a few hundred candidates in one pass, a selection among them gives the
//! approximate K-th value `v`, and every `t` whose approximate value is within `2 * delta` of `v`
//! is recomputed in f64 (the formula of the f64 path, so the result is its value): the K-th
//! smallest of those is the exact answer.
//!
//! Why that is exact: each approximate value is within `delta` of its f64 value ([`slack`]: the
//! rounding of unit vectors to f32 and of a (D + 1)-term dot product in any summation order,
//! with more than a factor two to spare). Moving every value by at most `delta` moves the K-th
//! smallest by at most `delta`, so the f64 K-th value `V` is at most `v + delta`, and each of the K
//! nearest has an approximate value at most `V + delta <= v + 2 * delta`: all of them are among the
//! recomputed ones, and nothing among those is nearer than them. (libtorch's f32 matmul on the CPU
//! is full f32: `torch.set_float32_matmul_precision` is "highest" unless a program changes it.)
//!
//! Memory stays bounded: [`BLOCK`] queries at a time, `BLOCK x N` f32 values (92 MB for
//! N = 45,000, written in place by each GEMM), plus an f64 copy of the training features for the
//! recomputation.

use anyhow::{Result, bail};
use tch::{Device, Kind, Tensor};

/// Queries per GEMM block: 512 x 45,000 f32 values are 92 MB. Smaller blocks repeat MKL's packing
/// of the training matrix more often; on the 2-core AMD EPYC 512 was faster than 128, 256 and 1,024
/// (README "Benchmarks").
pub const BLOCK: i64 = 512;

/// A bound on |f32 value - f64 value| of `|t|^2 - 2 q.t` for unit vectors of dimension `d`, as
/// one f32 dot product of the D + 1 terms `[q, 1] . [-2t, |t|^2]` (whose absolute values sum to
/// at most 3): `(3(d + 1) + 6) u` (u = 2^-24, the f32 unit roundoff) from the error analysis of a
/// dot product in any summation order, taken more than twice over: `(4d + 32) * f32::EPSILON`
/// (EPSILON = 2u).
pub fn slack(d: usize) -> f64 {
    (4 * d + 32) as f64 * f64::from(f32::EPSILON)
}

/// For each row `q` of `queries` [M, D] (f64, like `train`), `|q|^2 + |t|^2 - 2 q.t` for the
/// `k`-th nearest row `t` of `train` [N, D] by that value, clamped at 0 (rounding can take an exact
/// 0 below it), in f64. `k` must be in `1..=N`.
pub fn kth_squared_distances(train: &Tensor, queries: &Tensor, k: usize) -> Result<Vec<f64>> {
    in_blocks(train, queries, k, BLOCK)
}

/// [`kth_squared_distances`] with `block` queries per GEMM.
fn in_blocks(train: &Tensor, queries: &Tensor, k: usize, block: i64) -> Result<Vec<f64>> {
    let (n, d) = (train.size()[0], train.size()[1]);
    if k < 1 || k as i64 > n {
        bail!("k = {k}: expected 1 to the number of training rows, {n}");
    }
    if queries.size()[1] != d {
        bail!("queries have {} columns, the training rows {d}", queries.size()[1]);
    }
    let train64 = flat_f64(train)?;
    let (n, d) = (n as usize, d as usize);
    let train_sq: Vec<f64> = train64.chunks_exact(d.max(1)).map(|t| t.iter().map(|v| v * v).sum()).collect();
    // [-2t, |t|^2] as the columns of a [D + 1, N] matrix: one GEMM gives |t|^2 - 2 q.t.
    let columns = Tensor::cat(&[train.to_kind(Kind::Double) * -2.0, Tensor::from_slice(&train_sq).unsqueeze(1)], 1)
        .to_kind(Kind::Float)
        .transpose(0, 1)
        .contiguous();
    let queries64 = flat_f64(queries)?;
    let m = queries.size()[0];
    let augmented =
        Tensor::cat(&[queries.to_kind(Kind::Double), Tensor::ones([m, 1], (Kind::Double, Device::Cpu))], 1).to_kind(Kind::Float);
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    let delta = slack(d);
    let mut out = vec![0.0; m as usize];
    let values = Tensor::empty([block.min(m), n as i64], (Kind::Float, Device::Cpu));
    for start in (0..m).step_by(block as usize) {
        let len = block.min(m - start);
        let out_rows = values.narrow(0, 0, len);
        let _ = augmented.narrow(0, start, len).mm_out(&out_rows, &columns);
        // SAFETY: `out_rows` is the first `len` rows of `values`, a contiguous f32 CPU tensor of
        // block.min(m) x n elements that lives until the end of this function; nothing writes to it
        // while the slice is read (the next `mm_out` comes after the threads below end).
        let approx: &[f32] = unsafe { std::slice::from_raw_parts(out_rows.data_ptr() as *const f32, len as usize * n) };
        let (start, len) = (start as usize, len as usize);
        let rows = &queries64[start * d..(start + len) * d];
        let results = &mut out[start..start + len];
        let per_thread = len.div_ceil(threads);
        std::thread::scope(|scope| {
            for ((approx, queries), results) in
                approx.chunks(per_thread * n).zip(rows.chunks(per_thread * d.max(1))).zip(results.chunks_mut(per_thread))
            {
                let (train64, train_sq) = (&train64, &train_sq);
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    for ((approx, q), result) in approx.chunks_exact(n).zip(queries.chunks_exact(d.max(1))).zip(results) {
                        let exact = |i: usize| {
                            let t = &train64[i * d..(i + 1) * d];
                            train_sq[i] - 2.0 * t.iter().zip(q).map(|(a, b)| a * b).sum::<f64>()
                        };
                        let q_sq: f64 = q.iter().map(|v| v * v).sum();
                        *result = (q_sq + kth_smallest(approx, k, delta, exact, &mut scratch)).max(0.0);
                    }
                });
            }
        });
    }
    Ok(out)
}

/// Reused buffers of one thread.
#[derive(Default)]
pub struct Scratch {
    sample: Vec<f32>,
    kept: Vec<(f32, u32)>,
    values: Vec<f32>,
    exact: Vec<f64>,
}

/// Every `STRIDE`-th value is sampled for the threshold.
const STRIDE: usize = 128;
/// Values compared at once (a vector register's worth, twice) before any is kept.
const LANES: usize = 32;

/// The `k`-th smallest (1-based) of `exact(i)` over `i in 0..approx.len()`, given `approx[i]`
/// within `delta` of `exact(i)`: see the module's doc. Values are ordered by `total_cmp` (a NaN
/// after every number), so a NaN cannot make it loop or panic.
pub fn kth_smallest(approx: &[f32], k: usize, delta: f64, exact: impl Fn(usize) -> f64, s: &mut Scratch) -> f64 {
    let n = approx.len();
    assert!((1..=n).contains(&k) && n <= u32::MAX as usize, "k = {k} of {n} values");
    // A threshold from the sample, its j-th smallest: about 2k + 4 * STRIDE values at or below it
    // (a few hundred of 45,000 for K = 50).
    let tau = if n >= STRIDE * 4 * k {
        s.sample.clear();
        s.sample.extend(approx.iter().step_by(STRIDE));
        let j = (2 * k).div_ceil(STRIDE) + 4;
        *s.sample.select_nth_unstable_by(j - 1, f32::total_cmp).1
    } else {
        f32::INFINITY
    };
    s.kept.clear();
    for (c, chunk) in approx.chunks(LANES).enumerate() {
        // Counting first compiles to vector compares; few chunks hold a kept value.
        if chunk.iter().map(|&x| u32::from(x <= tau)).sum::<u32>() > 0 {
            let base = (c * LANES) as u32;
            s.kept.extend(chunk.iter().enumerate().filter(|&(_, &x)| x <= tau).map(|(i, &x)| (x, base + i as u32)));
        }
    }
    if s.kept.len() < k {
        // The sample was unlucky, or NaNs: every value.
        s.kept.clear();
        s.kept.extend(approx.iter().enumerate().map(|(i, &x)| (x, i as u32)));
    }
    s.values.clear();
    s.values.extend(s.kept.iter().map(|&(x, _)| x));
    let v = *s.values.select_nth_unstable_by(k - 1, f32::total_cmp).1;
    let limit = f64::from(v) + 2.0 * delta;
    s.exact.clear();
    if limit <= f64::from(tau) {
        // Every value within the limit was kept.
        s.exact.extend(s.kept.iter().filter(|&&(x, _)| f64::from(x) <= limit).map(|&(_, i)| exact(i as usize)));
    } else {
        s.exact.extend(approx.iter().enumerate().filter(|&(_, &x)| f64::from(x) <= limit).map(|(i, _)| exact(i)));
    }
    if s.exact.len() < k {
        // Only with NaNs among the values: every one, exactly.
        s.exact.clear();
        s.exact.extend((0..n).map(&exact));
    }
    *s.exact.select_nth_unstable_by(k - 1, f64::total_cmp).1
}

/// A tensor's values as f64, row-major.
fn flat_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Double).contiguous().flatten(0, -1))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [0, 1) (a 64-bit LCG).
    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    #[test]
    fn kth_smallest_is_the_exact_kth_when_the_approximations_err_by_up_to_delta() {
        // Values on a grid of step 1e-3 (many exact ties), approximations off by up to delta,
        // adversarially: the far side of every value near the K-th.
        for (n, seed) in [(10, 1), (200, 2), (5_000, 3), (40_000, 4)] {
            let exact: Vec<f64> = uniform(n, seed).iter().map(|u| (u * 1000.0).floor() / 1000.0).collect();
            let delta = 2e-3;
            let noise = uniform(n, seed + 100);
            let approx: Vec<f32> = exact.iter().zip(&noise).map(|(e, u)| (e + (2.0 * u - 1.0) * delta * 0.99) as f32).collect();
            let mut sorted = exact.clone();
            sorted.sort_by(f64::total_cmp);
            let mut s = Scratch::default();
            for k in [1, 2, 7, 50, n / 2, n] {
                let k = k.clamp(1, n);
                assert_eq!(kth_smallest(&approx, k, delta, |i| exact[i], &mut s), sorted[k - 1], "n = {n}, k = {k}");
            }
        }
    }

    #[test]
    fn kth_squared_distances_is_brute_force_f64_at_several_blocks() {
        // 3,000 training rows (with duplicates: ties at the K-th), 300 queries (blocks of 128:
        // three, the last partial), ReLU-like features normalised to unit length, D = 64; K = 1
        // and 5 take the sampled threshold, K = 3,000 every value.
        let d = 64;
        let unit = |v: Vec<f64>| -> Vec<f64> {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.into_iter().map(|x| if norm > 0.0 { x / norm } else { 0.0 }).collect()
        };
        let rows = |n: usize, seed: u64| -> Vec<Vec<f64>> {
            let u = uniform(n * d, seed);
            u.chunks(d).map(|r| unit(r.iter().map(|x| (x - 0.4).max(0.0)).collect())).collect()
        };
        let mut train = rows(3_000, 7);
        for i in 0..300 {
            train[2_000 + i] = train[i].clone();
        }
        let queries = rows(300, 8);
        let tensor = |r: &[Vec<f64>]| Tensor::from_slice(&r.concat()).view([r.len() as i64, d as i64]);
        for k in [1, 5, 3_000] {
            let got = in_blocks(&tensor(&train), &tensor(&queries), k, 128).unwrap();
            for (q, g) in queries.iter().zip(&got) {
                let q_sq: f64 = q.iter().map(|x| x * x).sum();
                let mut all: Vec<f64> = train
                    .iter()
                    .map(|t| q_sq + t.iter().map(|x| x * x).sum::<f64>() - 2.0 * t.iter().zip(q).map(|(a, b)| a * b).sum::<f64>())
                    .collect();
                all.sort_by(f64::total_cmp);
                assert!((g - all[k - 1].max(0.0)).abs() < 1e-12, "k = {k}: {g} against {}", all[k - 1]);
            }
        }
    }
}
