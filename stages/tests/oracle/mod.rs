//! Plain-f64 helpers shared by the detector tests (`detectors.rs`, `posthoc.rs`): deterministic
//! inputs and an independent matrix inverse, written once so both files check against the same
//! oracle code.

#![allow(dead_code)] // each test file uses its own subset

use tch::Tensor;

/// A deterministic pseudo-random sequence in [-1, 1) (not libtorch's generator: tests run in parallel).
pub fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Rows as an n x d f64 tensor.
pub fn matrix(rows: &[Vec<f64>]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

/// The inverse of a symmetric positive-definite matrix by Gauss-Jordan elimination with partial pivoting.
pub fn inverse(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut m: Vec<Vec<f64>> =
        a.iter().enumerate().map(|(i, row)| row.iter().copied().chain((0..n).map(|j| if i == j { 1.0 } else { 0.0 })).collect()).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| m[x][col].abs().total_cmp(&m[y][col].abs())).unwrap();
        m.swap(col, pivot);
        let p = m[col][col];
        m[col].iter_mut().for_each(|v| *v /= p);
        for r in 0..n {
            if r != col {
                let f = m[r][col];
                let pivot_row = m[col].clone();
                m[r].iter_mut().zip(&pivot_row).for_each(|(v, pv)| *v -= f * pv);
            }
        }
    }
    m.into_iter().map(|row| row[n..].to_vec()).collect()
}
