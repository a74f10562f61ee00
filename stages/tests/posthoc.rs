//! The post-hoc detectors of OpenOOD v1.5 (issue #23), each against an independent computation in
//! plain f64 Rust on small constructed features and heads: ReAct, ASH, DICE, KNN, ViM, GEN, SHE and
//! RMDS, with ties, a dead feature (zero everywhere) and K larger than a class; and the shared
//! statistics (numpy's percentile, scipy's pinvh cut-off).

use oodpipe_stages::detectors::{ash, dice, r#gen as gen_, knn, react, rmds, she, vim};
use oodpipe_stages::features::stats;
use tch::{Kind, Tensor};
mod oracle;
use oracle::{inverse, matrix, values};

fn rows(n: usize, d: usize, seed: u64, scale: f64) -> Vec<Vec<f64>> {
    values(n * d, seed).chunks(d).map(|r| r.iter().map(|v| v * scale).collect()).collect()
}

fn vector(v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "row {i}: {g} vs {w}");
    }
}

/// log sum exp, shifted by the maximum.
fn lse(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn head(w: &[Vec<f64>], b: &[f64], f: &[f64]) -> Vec<f64> {
    w.iter().zip(b).map(|(row, bias)| row.iter().zip(f).map(|(a, x)| a * x).sum::<f64>() + bias).collect()
}

/// numpy.percentile (linear) by hand.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let h = (v.len() - 1) as f64 * q / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Ten classes' head on D features with a dead feature at index `dead` (a zero column in the
/// features; its weights are not zero, so dropping or keeping it would show).
fn head_of(d: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    (rows(10, d, seed, 0.7), values(10, seed + 1).iter().map(|v| v * 0.3).collect())
}

/// Features that are non-negative (as after a ReLU), rounded to 0.25 so that ties occur, with
/// feature `dead` zero everywhere.
fn relu_features(n: usize, d: usize, seed: u64, dead: usize) -> Vec<Vec<f64>> {
    rows(n, d, seed, 2.0)
        .into_iter()
        .map(|r| r.iter().enumerate().map(|(j, v)| if j == dead { 0.0 } else { (v.max(0.0) * 4.0).round() / 4.0 }).collect())
        .collect()
}

#[test]
fn percentile_is_numpys_linear_interpolation() {
    // numpy.percentile([1, 2, 3, 4, 10], [90, 25, 0, 100]) = [7.6, 2.0, 1.0, 10.0]
    let t = vector(&[3.0, 10.0, 1.0, 4.0, 2.0]);
    for (q, want) in [(90.0, 7.6), (25.0, 2.0), (0.0, 1.0), (100.0, 10.0)] {
        assert!((stats::percentile(&t, q).unwrap() - want).abs() < 1e-12, "{q}");
    }
    // Every entry of a matrix counts, ties included: [0, 0, 0, 1, 1, 5] at 50 is 0.5.
    assert_eq!(stats::percentile(&matrix(&[vec![0.0, 1.0, 0.0], vec![5.0, 0.0, 1.0]]), 50.0).unwrap(), 0.5);
}

#[test]
fn react_is_the_energy_of_the_head_on_features_clipped_at_the_percentile() {
    let (d, dead) = (6, 2);
    let (w, b) = head_of(d, 1);
    let val = relu_features(40, d, 2, dead);
    let test = relu_features(25, d, 3, dead);
    let c = percentile(&val.iter().flatten().copied().collect::<Vec<_>>(), 90.0);
    assert!(test.iter().flatten().any(|&v| v == c), "the test must have entries tied with the threshold");
    let got = react::code::score(&matrix(&test), &matrix(&w), &vector(&b), stats::percentile(&matrix(&val), 90.0).unwrap()).unwrap();
    let want: Vec<f64> = test.iter().map(|f| lse(&head(&w, &b, &f.iter().map(|v| v.min(c)).collect::<Vec<_>>()))).collect();
    close(&got, &want, 1e-12);
    // Clipping changes something: some entries were above c.
    assert!(test.iter().flatten().any(|&v| v > c));
}

/// ASH-B by hand: the k largest (lowest index first among equal values) set to sum / k.
fn ash_by_hand(f: &[f64], k: usize) -> Vec<f64> {
    let sum: f64 = f.iter().sum();
    let mut chosen = vec![false; f.len()];
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for j in 0..f.len() {
            if !chosen[j] && best.is_none_or(|b| f[j] > f[b]) {
                best = Some(j);
            }
        }
        chosen[best.unwrap()] = true;
    }
    chosen.iter().map(|&c| if c { sum / k as f64 } else { 0.0 }).collect()
}

#[test]
fn ash_keeps_the_k_largest_at_the_mean_of_the_sum_lowest_index_first_among_ties() {
    // k = D - round(D p / 100) with numpy's rounding (halves to even).
    assert_eq!(ash::kept(64, 90.0), 6);
    assert_eq!(ash::kept(640, 90.0), 64);
    assert_eq!(ash::kept(10, 25.0), 8, "2.5 rounds to 2");
    assert_eq!(ash::kept(10, 35.0), 6, "3.5 rounds to 4");
    let (d, dead) = (10, 4);
    let (w, b) = head_of(d, 4);
    let mut test = relu_features(30, d, 5, dead);
    // Rows whose k-th and (k+1)-th largest are equal: only the index decides.
    test.push(vec![1.0, 0.5, 0.5, 0.5, 0.0, 0.5, 0.25, 0.0, 0.0, 0.0]);
    test.push(vec![0.0; d]);
    for p in [70.0, 25.0] {
        let k = ash::kept(d as i64, p) as usize;
        let got = ash::code::score(&matrix(&test), &matrix(&w), &vector(&b), k as i64).unwrap();
        let want: Vec<f64> = test.iter().map(|f| lse(&head(&w, &b, &ash_by_hand(f, k)))).collect();
        close(&got, &want, 1e-12);
    }
}

#[test]
fn dice_masks_the_weights_whose_contribution_is_not_above_the_percentile() {
    let (d, dead) = (8, 3);
    let (mut w, b) = head_of(d, 6);
    // Repeated weights, so that contributions tie (at the threshold, too).
    for row in w.iter_mut().take(10) {
        row[0] = 0.5;
        row[1] = 0.5;
    }
    let mut train = relu_features(50, d, 7, dead);
    for r in train.iter_mut() {
        r[1] = r[0];
    }
    let test = relu_features(20, d, 8, dead);
    let mean: Vec<f64> = (0..d).map(|j| train.iter().map(|r| r[j]).sum::<f64>() / train.len() as f64).collect();
    for p in [90.0, 50.0] {
        let contribution: Vec<Vec<f64>> = w.iter().map(|row| row.iter().zip(&mean).map(|(a, m)| a * m).collect()).collect();
        let threshold = percentile(&contribution.iter().flatten().copied().collect::<Vec<_>>(), p);
        let masked: Vec<Vec<f64>> = w
            .iter()
            .zip(&contribution)
            .map(|(row, c)| row.iter().zip(c).map(|(a, c)| if *c > threshold { *a } else { 0.0 }).collect())
            .collect();
        let (got_w, got_t) = dice::code::mask(&matrix(&train), &matrix(&w), p).unwrap();
        assert!((got_t - threshold).abs() < 1e-15);
        let kept = masked.iter().flatten().filter(|a| **a != 0.0).count();
        assert!(kept >= 1 && kept < 10 * d, "{kept}");
        let got = dice::code::score(&matrix(&test), &got_w, &vector(&b)).unwrap();
        let want: Vec<f64> = test.iter().map(|f| lse(&head(&masked, &b, f))).collect();
        close(&got, &want, 1e-12);
    }
    // The dead feature's mean is 0, so its contributions are 0: never above a positive threshold.
    let (got_w, t) = dice::code::mask(&matrix(&train), &matrix(&w), 90.0).unwrap();
    assert!(t > 0.0);
    assert!((0..10).all(|k| got_w.double_value(&[k, dead as i64]) == 0.0));
}

#[test]
fn knn_is_minus_the_squared_distance_to_the_kth_nearest_normalised_training_feature() {
    let (d, dead) = (5, 2);
    // Three tight classes of 3, 4 and 5 images; K = 6 is larger than every class, so the K-th
    // neighbour of an image near one class is in another.
    let centres = [vec![3.0, 0.1, 0.0, 0.2, 0.1], vec![0.1, 3.0, 0.0, 0.1, 0.2], vec![0.2, 0.1, 0.0, 3.0, 0.1]];
    let noise = rows(12, d, 9, 0.2);
    let sizes = [3, 4, 5];
    let mut train = Vec::new();
    for (c, &n) in sizes.iter().enumerate() {
        for _ in 0..n {
            let i = train.len();
            train.push((0..d).map(|j| if j == dead { 0.0 } else { centres[c][j] + noise[i][j] }).collect::<Vec<f64>>());
        }
    }
    // A duplicate of a training image (a tie at distance 0), a zero vector, and random queries.
    let mut test = rows(15, d, 10, 2.0);
    test.iter_mut().for_each(|r| r[dead] = 0.0);
    test.push(train[4].clone());
    test.push(vec![0.0; d]);
    let unit = |f: &Vec<f64>| -> Vec<f64> {
        let n = f.iter().map(|v| v * v).sum::<f64>().sqrt();
        f.iter().map(|v| if n > 0.0 { v / n } else { 0.0 }).collect()
    };
    let train_unit: Vec<Vec<f64>> = train.iter().map(unit).collect();
    let normalised = knn::code::normalise(&matrix(&train));
    for k in [1, 6, 12] {
        let got = knn::code::scores(&normalised, &matrix(&test), k).unwrap();
        let want: Vec<f64> = test
            .iter()
            .map(|q| {
                let q = unit(q);
                let mut d2: Vec<f64> = train_unit.iter().map(|t| t.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum()).collect();
                d2.sort_by(|a, b| a.partial_cmp(b).unwrap());
                -d2[k - 1]
            })
            .collect();
        close(&got, &want, 1e-12);
        // The zero vector is at squared distance 1 from every unit vector.
        assert!((got[got.len() - 1] + 1.0).abs() < 1e-12);
    }
    let err = knn::code::scores(&normalised, &matrix(&test), 13).unwrap_err().to_string();
    assert!(err.contains("detector.knn.k = 13") && err.contains("12"), "{err}");
}

#[test]
fn vim_subtracts_alpha_times_the_residual_norm_in_a_constructed_eigenbasis() {
    // Two classes on D = 5 features; W = [I_2 | 0] so pinv(W) = W^T and u = -W^T b = (-b1, -b2, 0, 0, 0).
    let d = 5;
    let w = vec![vec![1.0, 0.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0, 0.0]];
    let b = vec![0.4, -0.3];
    let u = [-0.4, 0.3, 0.0, 0.0, 0.0];
    // Z: 8 rows with orthogonal +-1 columns (a Hadamard matrix's) scaled to variances 4, 3, 2, 1
    // and a dead fifth feature (variance 0), then rotated by R (a rotation of features 0 and 2,
    // and of 1 and 3): the covariance about u is R diag(4, 3, 2, 1, 0) R^T, eigenvectors R e_j.
    let hadamard = [
        [1.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0, -1.0],
        [1.0, 1.0, -1.0, -1.0],
        [1.0, -1.0, -1.0, 1.0],
        [-1.0, 1.0, 1.0, -1.0],
        [-1.0, -1.0, 1.0, 1.0],
        [-1.0, 1.0, -1.0, 1.0],
        [-1.0, -1.0, -1.0, -1.0],
    ];
    let sd = [2.0, 3f64.sqrt(), 2f64.sqrt(), 1.0];
    let (c1, s1, c2, s2) = (0.6, 0.8, 0.28, 0.96);
    // Columns of R: the eigenvectors, by decreasing eigenvalue.
    let r =
        [[c1, 0.0, -s1, 0.0, 0.0], [0.0, c2, 0.0, -s2, 0.0], [s1, 0.0, c1, 0.0, 0.0], [0.0, s2, 0.0, c2, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]];
    let train: Vec<Vec<f64>> = hadamard
        .iter()
        .map(|h| {
            let z = [h[0] * sd[0], h[1] * sd[1], h[2] * sd[2], h[3] * sd[3], 0.0];
            (0..d).map(|i| u[i] + (0..d).map(|j| r[i][j] * z[j]).sum::<f64>()).collect()
        })
        .collect();
    let mut test = rows(12, d, 11, 3.0);
    test.push(u.to_vec());
    for dim in [None, Some(2), Some(3)] {
        let principal = dim.unwrap_or(d / 2);
        // Residual norm: the components of f - u along the eigenvectors after the first `principal`.
        let residual =
            |f: &[f64]| -> f64 { (principal..d).map(|j| (0..d).map(|i| (f[i] - u[i]) * r[i][j]).sum::<f64>().powi(2)).sum::<f64>().sqrt() };
        let max_logit = |f: &[f64]| head(&w, &b, f).into_iter().fold(f64::NEG_INFINITY, f64::max);
        let alpha = train.iter().map(|f| max_logit(f)).sum::<f64>() / train.iter().map(|f| residual(f)).sum::<f64>();
        let fitted = vim::code::fit(&matrix(&train), &matrix(&w), &vector(&b), dim).unwrap();
        assert!((fitted.alpha - alpha).abs() < 1e-10 * alpha.abs(), "{} vs {alpha}", fitted.alpha);
        let got = vim::code::score(&matrix(&test), &matrix(&w), &vector(&b), &fitted).unwrap();
        let want: Vec<f64> = test.iter().map(|f| lse(&head(&w, &b, f)) - alpha * residual(f)).collect();
        close(&got, &want, 1e-10);
    }
    let err = vim::code::fit(&matrix(&train), &matrix(&w), &vector(&b), Some(5)).unwrap_err().to_string();
    assert!(err.contains("detector.vim.dim = 5") && err.contains("(4)"), "{err}");
}

#[test]
fn gen_sums_the_generalized_entropy_of_the_m_largest_probabilities() {
    let mut logits = rows(20, 10, 12, 4.0);
    logits.push(vec![1.0; 10]);
    logits.push(vec![2.0, 2.0, 2.0, 0.0, 0.0, -1.0, -1.0, 5.0, 5.0, 0.0]);
    for (gamma, m) in [(0.1, 100), (0.1, 3), (2.0, 1)] {
        let got = gen_::code::score(&matrix(&logits).to_kind(Kind::Float), gamma, m).unwrap();
        let want: Vec<f64> = logits
            .iter()
            .map(|row| {
                let row: Vec<f64> = row.iter().map(|&v| v as f32 as f64).collect();
                let z = lse(&row);
                let mut p: Vec<f64> = row.iter().map(|v| (v - z).exp()).collect();
                p.sort_by(|a, b| b.partial_cmp(a).unwrap());
                -p.iter().take(m.min(10)).map(|q| q.powf(gamma) * (1.0 - q).powf(gamma)).sum::<f64>()
            })
            .collect();
        close(&got, &want, 1e-12);
    }
    // Uniform probabilities: M = 10 gives -10 (0.1 * 0.9)^0.1.
    let uniform = gen_::code::score(&Tensor::zeros([1, 10], (Kind::Float, tch::Device::Cpu)), 0.1, 100).unwrap()[0];
    assert!((uniform + 10.0 * 0.09f64.powf(0.1)).abs() < 1e-12);
}

#[test]
fn she_scores_the_inner_product_with_the_predicted_class_pattern() {
    let (d, dead) = (6, 5);
    // Weights in eighths and features in quarters: every logit is exact, so ties are exact too.
    let eighths = |v: &f64| (v * 8.0).round() / 8.0;
    let (w, b) = head_of(d, 13);
    let mut w: Vec<Vec<f64>> = w[..3].iter().map(|r| r.iter().map(eighths).collect()).collect();
    let mut b: Vec<f64> = b[..3].iter().map(eighths).collect();
    // Classes 0 and 1 share their weights: every image ties between them and argmax takes the
    // first, so class 1 is never predicted and its pattern falls back to the mean of its images.
    w[1] = w[0].clone();
    b[1] = b[0];
    let train = relu_features(60, d, 14, dead);
    let labels: Vec<i64> = (0..60).map(|i| (i % 3) as i64).collect();
    let argmax = |v: &[f64]| (0..v.len()).fold(0, |best, j| if v[j] > v[best] { j } else { best }) as i64;
    let test = relu_features(20, d, 15, dead);
    let mut patterns = Vec::new();
    for c in 0..3 {
        let correct: Vec<&Vec<f64>> =
            train.iter().zip(&labels).filter(|(f, y)| **y == c && argmax(&head(&w, &b, f)) == c).map(|(f, _)| f).collect();
        let pool: Vec<&Vec<f64>> =
            if correct.is_empty() { train.iter().zip(&labels).filter(|(_, y)| **y == c).map(|(f, _)| f).collect() } else { correct };
        patterns.push((0..d).map(|j| pool.iter().map(|f| f[j]).sum::<f64>() / pool.len() as f64).collect::<Vec<f64>>());
    }
    let (got_patterns, fallbacks) = she::code::fit(&matrix(&train), &Tensor::from_slice(&labels), &matrix(&w), &vector(&b)).unwrap();
    assert_eq!(fallbacks, 1);
    assert_eq!(patterns.len(), 3);
    for (c, row) in patterns.iter().enumerate() {
        assert_eq!(row.len(), d);
        for (j, want) in row.iter().enumerate() {
            assert!((got_patterns.double_value(&[c as i64, j as i64]) - want).abs() < 1e-12);
        }
    }
    let got = she::code::score(&matrix(&test), &matrix(&w), &vector(&b), &got_patterns).unwrap();
    let want: Vec<f64> =
        test.iter().map(|f| f.iter().zip(&patterns[argmax(&head(&w, &b, f)) as usize]).map(|(a, p)| a * p).sum()).collect();
    close(&got, &want, 1e-12);
}

/// (f - mu)^T P (f - mu) by hand.
fn quadratic(f: &[f64], mu: &[f64], p: &[Vec<f64>]) -> f64 {
    let x: Vec<f64> = f.iter().zip(mu).map(|(a, b)| a - b).collect();
    (0..x.len()).map(|i| (0..x.len()).map(|j| x[i] * p[i][j] * x[j]).sum::<f64>()).sum()
}

#[test]
fn rmds_is_the_best_class_distance_relative_to_the_background_with_a_dead_feature() {
    let (n, d) = (90, 4);
    let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    let raw = rows(n, 3, 16, 1.0);
    // Three live correlated features with class offsets, and a dead one (index 2): the
    // covariances are singular, and the pseudo-inverse gives the live features' distances.
    let train: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let r = &raw[i];
            let y = labels[i] as f64;
            vec![r[0] + y, r[1] + 0.5 * r[0] - y, 0.0, r[2] * 0.7 + 0.3 * r[1] + 0.5 * y]
        })
        .collect();
    let test: Vec<Vec<f64>> = rows(15, d, 17, 3.0)
        .into_iter()
        .map(|mut r| {
            r[2] = 0.0;
            r
        })
        .collect();
    let live = |f: &Vec<f64>| vec![f[0], f[1], f[3]];
    let (tl, testl): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (train.iter().map(live).collect(), test.iter().map(live).collect());
    // By hand on the live features: class means, shared and whole covariances (1 / N), inverses.
    let mean_of = |rows: &[&Vec<f64>]| -> Vec<f64> { (0..3).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64).collect() };
    let means: Vec<Vec<f64>> =
        (0..3).map(|c| mean_of(&tl.iter().zip(&labels).filter(|(_, y)| **y == c).map(|(f, _)| f).collect::<Vec<_>>())).collect();
    let whole = mean_of(&tl.iter().collect::<Vec<_>>());
    let cov = |centre: &dyn Fn(usize) -> Vec<f64>| -> Vec<Vec<f64>> {
        let mut c = vec![vec![0.0; 3]; 3];
        for (i, f) in tl.iter().enumerate() {
            let mu = centre(i);
            for a in 0..3 {
                for b in 0..3 {
                    c[a][b] += (f[a] - mu[a]) * (f[b] - mu[b]) / n as f64;
                }
            }
        }
        c
    };
    let p = inverse(&cov(&|i| means[labels[i] as usize].clone()));
    let p0 = inverse(&cov(&|_| whole.clone()));
    let want: Vec<f64> = testl
        .iter()
        .map(|f| (0..3).map(|c| -quadratic(f, &means[c], &p) + quadratic(f, &whole, &p0)).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    let fitted = rmds::code::fit(&matrix(&train), &Tensor::from_slice(&labels)).unwrap();
    let got = rmds::code::score(&matrix(&test), &fitted).unwrap();
    close(&got, &want, 1e-8);
    let err = rmds::code::fit(&matrix(&train), &Tensor::from_slice(&vec![1i64; n])).unwrap_err().to_string();
    assert!(err.contains("class 0 has no training image"), "{err}");
}

#[test]
fn every_posthoc_detector_scores_the_softmax_network_in_table_3_with_its_defaults() {
    use oodpipe_stages::detector::{ModelKind, ReportTable};
    let config = oodpipe_stages::Config::default();
    for (d, defaults) in [
        (&react::DETECTOR, Some(serde_json::json!({"percentile": 90.0}))),
        (&ash::DETECTOR, Some(serde_json::json!({"percentile": 90.0}))),
        (&dice::DETECTOR, Some(serde_json::json!({"p": 90.0}))),
        (&knn::DETECTOR, Some(serde_json::json!({"k": 50}))),
        (&vim::DETECTOR, Some(serde_json::json!({"dim": null}))),
        (&gen_::DETECTOR, Some(serde_json::json!({"gamma": 0.1, "m": 100}))),
        (&she::DETECTOR, None),
        (&rmds::DETECTOR, None),
    ] {
        assert_eq!((d.model, d.table), (ModelKind::find("softmax").unwrap(), ReportTable::Beyond), "{}", d.name);
        assert_eq!(config.detector.get(d.name), defaults.as_ref(), "{}", d.name);
    }
    assert_eq!(
        [
            &react::DETECTOR,
            &ash::DETECTOR,
            &dice::DETECTOR,
            &knn::DETECTOR,
            &vim::DETECTOR,
            &gen_::DETECTOR,
            &she::DETECTOR,
            &rmds::DETECTOR
        ]
        .map(|d| d.label),
        ["ReAct", "ASH", "DICE", "KNN", "ViM", "GEN", "SHE", "RMDS"]
    );
}
