//! The detectors beyond the paper (issue #13), each against an independent computation in plain
//! f64 Rust: Energy (a max-shifted logsumexp), MaxLogit (a max), Mahalanobis (class means, the
//! shared covariance and its inverse by Gauss-Jordan elimination, every distance by hand; a
//! nearly dead feature gets no weight at scipy's pinvh cut-off).

use oodpipe_stages::detectors::{energy, mahalanobis, max_logit};
use tch::{Device, Kind, Tensor};
mod oracle;
use oracle::{inverse, matrix, values};

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
    assert_eq!(want_means.len(), 3);
    for (c, row) in want_means.iter().enumerate() {
        assert_eq!(row.len(), d);
        for (k, want) in row.iter().enumerate() {
            assert!((means.double_value(&[c as i64, k as i64]) - want).abs() < 1e-12);
        }
    }
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-8 * w.abs().max(1.0), "{g} vs {w}");
        assert!(*g <= 0.0);
    }
    // A training image's own class mean is closer than the others' on average: the score ranks
    // in-distribution above far-away noise.
    let far = mahalanobis::code::score(&matrix(&[vec![50.0; d]]), &means, &precision)[0];
    assert!(far < got.iter().copied().fold(f64::INFINITY, f64::min));
}

#[test]
fn mahalanobis_copes_with_a_dead_feature() {
    // A feature that is zero everywhere (a dead ReLU) makes the covariance singular: the
    // pseudo-inverse gives the distances of the other features.
    let (n, d) = (60, 3);
    let labels: Vec<i64> = (0..n).map(|i| (i % 2) as i64).collect();
    let raw = values(n * d, 9);
    let train: Vec<Vec<f64>> = (0..n).map(|i| vec![raw[i * d] + labels[i] as f64, raw[i * d + 1] - 0.3 * raw[i * d], 0.0]).collect();
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

/// The largest eigenvalue of a symmetric positive semi-definite matrix, by power iteration.
fn largest_eigenvalue(a: &[Vec<f64>]) -> f64 {
    let n = a.len();
    let mut v = vec![1.0; n];
    let mut lambda = 0.0;
    for _ in 0..2000 {
        let w: Vec<f64> = (0..n).map(|i| (0..n).map(|j| a[i][j] * v[j]).sum()).collect();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        lambda = norm / v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v = w.iter().map(|x| x / norm).collect();
    }
    lambda
}

#[test]
fn mahalanobis_gives_a_nearly_dead_feature_no_weight_at_scipys_pinvh_cutoff() {
    // 63 live features and one that varies 5e-15 times as much as the largest principal
    // direction, uncorrelated with the others: scipy's pinvh drops eigenvalues up to
    // D eps = 64 x 2.2e-16 = 1.4e-14 of the largest, so the feature gets no weight; a cut-off of
    // 1e-15 would keep it with a weight of 1 / (5e-15 lambda_max).
    let (n, live, d) = (400, 63, 64);
    let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    let raw = values(n * live, 11);
    let mut train: Vec<Vec<f64>> =
        (0..n).map(|i| (0..live).map(|k| raw[i * live + k] + if k < 3 { labels[i] as f64 } else { 0.0 }).collect()).collect();
    let class_centred = |rows: &[Vec<f64>], width: usize| -> Vec<Vec<f64>> {
        let mut means = vec![vec![0.0; width]; 3];
        let count = |c: usize| labels.iter().filter(|&&y| y as usize == c).count() as f64;
        for (r, &y) in rows.iter().zip(&labels) {
            for k in 0..width {
                means[y as usize][k] += r[k] / count(y as usize);
            }
        }
        rows.iter().zip(&labels).map(|(r, &y)| (0..width).map(|k| r[k] - means[y as usize][k]).collect()).collect()
    };
    let lc = class_centred(&train, live);
    // The near-dead feature: class-centred noise made orthogonal to the live class-centred columns.
    let h: Vec<Vec<f64>> = class_centred(&values(n, 12).into_iter().map(|v| vec![v]).collect::<Vec<_>>(), 1);
    let gram: Vec<Vec<f64>> = (0..live).map(|a| (0..live).map(|b| (0..n).map(|i| lc[i][a] * lc[i][b]).sum()).collect()).collect();
    let lth: Vec<f64> = (0..live).map(|a| (0..n).map(|i| lc[i][a] * h[i][0]).sum()).collect();
    let g_inv = inverse(&gram);
    let coef: Vec<f64> = (0..live).map(|a| (0..live).map(|b| g_inv[a][b] * lth[b]).sum()).collect();
    let h: Vec<f64> = (0..n).map(|i| h[i][0] - (0..live).map(|a| lc[i][a] * coef[a]).sum::<f64>()).collect();
    let cov: Vec<Vec<f64>> = (0..live).map(|a| (0..live).map(|b| gram[a][b] / n as f64).collect()).collect();
    let lambda_max = largest_eigenvalue(&cov);
    let scale = (5e-15 * lambda_max / (h.iter().map(|x| x * x).sum::<f64>() / n as f64)).sqrt();
    for (r, hi) in train.iter_mut().zip(&h) {
        r.push(scale * hi);
    }
    let (means, precision) = mahalanobis::code::fit(&matrix(&train), &Tensor::from_slice(&labels)).unwrap();
    // Bounded: the near-dead feature's weight is about zero, not 1 / (5e-15 lambda_max).
    let weight = precision.double_value(&[live as i64, live as i64]);
    assert!(weight.abs() < 1e-6, "{weight}");
    // The scores are the live features' distances, by hand; moving a test image along the
    // near-dead feature changes nothing.
    let p_live = inverse(&cov);
    let test: Vec<Vec<f64>> = values(10 * live, 13).chunks(live).map(|r| r.iter().map(|v| v * 2.0).chain([1e-3]).collect()).collect();
    let got = mahalanobis::code::score(&matrix(&test), &means, &precision);
    let moved: Vec<Vec<f64>> = test.iter().map(|r| r[..live].iter().copied().chain([5.0]).collect()).collect();
    let got_moved = mahalanobis::code::score(&matrix(&moved), &means, &precision);
    for ((f, g), gm) in test.iter().zip(&got).zip(&got_moved) {
        let want = -(0..3)
            .map(|c| {
                let mu: Vec<f64> = (0..live).map(|k| means.double_value(&[c, k as i64])).collect();
                let x: Vec<f64> = (0..live).map(|k| f[k] - mu[k]).collect();
                (0..live).map(|a| (0..live).map(|b| x[a] * p_live[a][b] * x[b]).sum::<f64>()).sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        assert!((g - want).abs() < 1e-8 * want.abs(), "{g} vs {want}");
        assert!((g - gm).abs() < 1e-6 * want.abs(), "{g} vs {gm}");
    }
    // The test can fail: at the old cut-off (1e-15 of the largest) the same covariance gives the
    // near-dead feature a weight of about 1 / (5e-15 lambda_max).
    let mut full = vec![vec![0.0; d]; d];
    for (a, row) in cov.iter().enumerate() {
        full[a][..live].copy_from_slice(row);
    }
    full[live][live] = scale * scale * h.iter().map(|x| x * x).sum::<f64>() / n as f64;
    let old_weight = matrix(&full).linalg_pinv(1e-15, true).double_value(&[live as i64, live as i64]);
    assert!(old_weight > 1e12 / lambda_max, "{old_weight}");
}
