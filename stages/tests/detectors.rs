//! The detectors beyond the paper (issue #13), each against an independent computation in plain
//! f64 Rust: Energy (a max-shifted logsumexp), MaxLogit (a max), Mahalanobis (class means, the
//! shared covariance and its inverse by Gauss-Jordan elimination, every distance by hand).

use oodpipe_stages::detectors::{energy, mahalanobis, max_logit};
use tch::{Device, Kind, Tensor};

/// A deterministic pseudo-random sequence in [-1, 1) (not libtorch's generator: tests run in parallel).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn matrix(rows: &[Vec<f64>]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

fn logits(n: usize, seed: u64) -> Vec<Vec<f64>> {
    values(n * 10, seed).chunks(10).map(|r| r.iter().map(|v| v * 8.0).collect()).collect()
}

#[test]
fn energy_is_t_logsumexp_of_logits_over_t() {
    let rows = logits(50, 1);
    let as_f32 = matrix(&rows).to_kind(Kind::Float);
    for t in [1.0, 2.5] {
        let got = energy::code::energy(&as_f32, t);
        for (row, g) in rows.iter().zip(&got) {
            // The stored logits are f32: the oracle uses the same values.
            let row: Vec<f64> = row.iter().map(|&v| v as f32 as f64).collect();
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max) / t;
            let want = t * (m + row.iter().map(|v| (v / t - m).exp()).sum::<f64>().ln());
            assert!((g - want).abs() < 1e-9 * want.abs().max(1.0), "T {t}: {g} vs {want}");
        }
    }
    // Closed form: ten equal logits c give c + ln 10; huge logits do not overflow.
    let equal = Tensor::full([1, 10], 3.0, (Kind::Float, Device::Cpu));
    assert!((energy::code::energy(&equal, 1.0)[0] - (3.0 + 10f64.ln())).abs() < 1e-12);
    let huge = Tensor::from_slice(&[1000.0f32, 0.0]).view([1, 2]);
    assert!((energy::code::energy(&huge, 1.0)[0] - 1000.0).abs() < 1e-9);
    assert_eq!(energy::DETECTOR.name, "energy");
}

#[test]
fn max_logit_is_the_largest_logit() {
    let rows = logits(40, 2);
    let got = max_logit::code::max_logit(&matrix(&rows).to_kind(Kind::Float));
    for (row, g) in rows.iter().zip(&got) {
        let want = row.iter().map(|&v| v as f32 as f64).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(*g, want);
    }
}

/// The inverse of a symmetric positive-definite matrix by Gauss-Jordan elimination with partial pivoting.
fn inverse(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .enumerate()
        .map(|(i, row)| row.iter().copied().chain((0..n).map(|j| if i == j { 1.0 } else { 0.0 })).collect())
        .collect();
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

/// -min_c (f - mu_c)^T P (f - mu_c), the class means and the shared covariance, by hand.
fn mahalanobis_by_hand(train: &[Vec<f64>], labels: &[i64], test: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let d = train[0].len();
    let classes = (*labels.iter().max().unwrap() + 1) as usize;
    let mut means = vec![vec![0.0; d]; classes];
    let mut counts = vec![0.0; classes];
    for (f, &y) in train.iter().zip(labels) {
        counts[y as usize] += 1.0;
        for k in 0..d {
            means[y as usize][k] += f[k];
        }
    }
    for c in 0..classes {
        means[c].iter_mut().for_each(|v| *v /= counts[c]);
    }
    let mut cov = vec![vec![0.0; d]; d];
    for (f, &y) in train.iter().zip(labels) {
        for i in 0..d {
            for j in 0..d {
                cov[i][j] += (f[i] - means[y as usize][i]) * (f[j] - means[y as usize][j]) / train.len() as f64;
            }
        }
    }
    let p = inverse(&cov);
    let scores = test
        .iter()
        .map(|f| {
            let dist = |mu: &Vec<f64>| {
                let x: Vec<f64> = (0..d).map(|k| f[k] - mu[k]).collect();
                (0..d).map(|i| (0..d).map(|j| x[i] * p[i][j] * x[j]).sum::<f64>()).sum::<f64>()
            };
            -means.iter().map(dist).fold(f64::INFINITY, f64::min)
        })
        .collect();
    (means, scores)
}

#[test]
fn mahalanobis_matches_class_means_shared_covariance_and_distances_by_hand() {
    let (n, d) = (90, 5);
    let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    // Class-dependent offsets, so the means differ; correlated dimensions, so the covariance is not diagonal.
    let raw = values(n * d, 7);
    let train: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let r = &raw[i * d..(i + 1) * d];
            (0..d).map(|k| r[k] + 0.5 * r[(k + 1) % d] + labels[i] as f64 * (k as f64 - 2.0)).collect()
        })
        .collect();
    let test: Vec<Vec<f64>> = values(20 * d, 8).chunks(d).map(|r| r.iter().map(|v| v * 3.0).collect()).collect();
    let (means, precision) = mahalanobis::code::fit(&matrix(&train).to_kind(Kind::Float), &Tensor::from_slice(&labels)).unwrap();
    let got = mahalanobis::code::score(&matrix(&test), &means, &precision);
    // The oracle gets the features as the implementation does, through f32.
    let f32_rows = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> { rows.iter().map(|r| r.iter().map(|&v| v as f32 as f64).collect()).collect() };
    let (want_means, want) = mahalanobis_by_hand(&f32_rows(&train), &labels, &test);
    for c in 0..3 {
        for k in 0..d {
            assert!((means.double_value(&[c as i64, k as i64]) - want_means[c][k]).abs() < 1e-12);
        }
    }
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-8 * w.abs().max(1.0), "{g} vs {w}");
        assert!(*g <= 0.0);
    }
    // A training image's own class mean is closer than the others' on average: the score ranks
    // in-distribution above far-away noise.
    let far = mahalanobis::code::score(&matrix(&vec![vec![50.0; d]]), &means, &precision)[0];
    assert!(far < got.iter().copied().fold(f64::INFINITY, f64::min));
}

#[test]
fn mahalanobis_copes_with_a_dead_feature() {
    // A feature that is zero everywhere (a dead ReLU) makes the covariance singular: the
    // pseudo-inverse gives the distances of the other features.
    let (n, d) = (60, 3);
    let labels: Vec<i64> = (0..n).map(|i| (i % 2) as i64).collect();
    let raw = values(n * d, 9);
    let train: Vec<Vec<f64>> =
        (0..n).map(|i| vec![raw[i * d] + labels[i] as f64, raw[i * d + 1] - 0.3 * raw[i * d], 0.0]).collect();
    let test: Vec<Vec<f64>> = values(10 * 2, 10).chunks(2).map(|r| vec![r[0], r[1], 0.0]).collect();
    let (means, precision) = mahalanobis::code::fit(&matrix(&train).to_kind(Kind::Float), &Tensor::from_slice(&labels)).unwrap();
    let got = mahalanobis::code::score(&matrix(&test), &means, &precision);
    let live = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> { rows.iter().map(|r| vec![r[0] as f32 as f64, r[1] as f32 as f64]).collect() };
    let (_, want) = mahalanobis_by_hand(&live(&train), &labels, &live(&test));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6 * w.abs().max(1.0), "{g} vs {w}");
    }
    let err = mahalanobis::code::fit(&matrix(&train), &Tensor::from_slice(&vec![2i64; n])).unwrap_err().to_string();
    assert!(err.contains("class 0 has no training image"), "{err}");
}
