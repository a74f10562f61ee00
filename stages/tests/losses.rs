//! The training losses' values against their formulas written out in plain f64 (no tensor code),
//! on random batches: label-smoothed cross-entropy (what trains every softmax head; PyTorch's
//! `cross_entropy(..., label_smoothing=a)`, whose target is (1 - a) onehot + a / C), VIB's
//! posterior and its closed-form Gaussian KL, VIB's loss and VIBY's (the KL against the true
//! class's prior). The gradient checks in methods.rs test the same functions' derivatives
//! against their own values; these test the values.

use oodpipe_stages::model::head::smoothed_cross_entropy;
use oodpipe_stages::model::losses::{at_labels, gaussian_kl, gaussian_kl_per_class, posterior, vib_loss};
use tch::{Kind, Tensor};

/// A reproducible stream of numbers in (-1, 1) (xorshift), independent of libtorch's generator.
fn numbers(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn tensor(v: &[f64], rows: usize) -> Tensor {
    Tensor::from_slice(v).view([rows as i64, (v.len() / rows) as i64])
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    row.iter().map(|x| x - lse).collect()
}

/// Mean over rows of -(1 - a) log p_y - (a / C) sum_c log p_c.
fn smoothed_ce_by_hand(logits: &[Vec<f64>], labels: &[usize], a: f64) -> f64 {
    let c = logits[0].len() as f64;
    let per_row: Vec<f64> = logits
        .iter()
        .zip(labels)
        .map(|(row, &y)| {
            let lp = log_softmax(row);
            -(1.0 - a) * lp[y] - a / c * lp.iter().sum::<f64>()
        })
        .collect();
    per_row.iter().sum::<f64>() / per_row.len() as f64
}

/// KL(N(mu, s^2) || N(m, t^2)) of diagonal Gaussians, summed over dimensions.
fn kl_by_hand(mu: &[f64], s: &[f64], m: &[f64], t: &[f64]) -> f64 {
    (0..mu.len()).map(|d| (t[d] / s[d]).ln() + (s[d] * s[d] + (mu[d] - m[d]).powi(2)) / (2.0 * t[d] * t[d]) - 0.5).sum()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{what}: {got} against {want}");
}

#[test]
fn smoothed_cross_entropy_is_its_formula() {
    let (n, c) = (7, 10);
    for seed in 1..4 {
        let logits: Vec<Vec<f64>> = numbers(n * c, seed).chunks(c).map(|r| r.iter().map(|v| v * 6.0).collect()).collect();
        let labels: Vec<usize> = numbers(n, seed + 10).iter().map(|v| ((v + 1.0) * 5.0) as usize % c).collect();
        let t = tensor(&logits.concat(), n);
        let y = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
        for a in [0.0, 0.1, 0.5] {
            close(
                scalar(&smoothed_cross_entropy(&t, &y, a)),
                smoothed_ce_by_hand(&logits, &labels, a),
                &format!("seed {seed}, smoothing {a}"),
            );
        }
    }
}

#[test]
fn the_posterior_and_its_gaussian_kl_are_their_formulas() {
    let (n, z) = (5, 4);
    let encoded = numbers(n * 2 * z, 21).iter().map(|v| v * 8.0).collect::<Vec<_>>();
    let (mu, sigma) = posterior(&tensor(&encoded, n));
    let (mu, sigma) = (Vec::<f64>::try_from(mu.flatten(0, -1)).unwrap(), Vec::<f64>::try_from(sigma.flatten(0, -1)).unwrap());
    for i in 0..n {
        for d in 0..z {
            let row = &encoded[i * 2 * z..(i + 1) * 2 * z];
            close(mu[i * z + d], row[d], "mu");
            close(sigma[i * z + d], (1.0 + (row[z + d] - 5.0).exp()).ln(), "sigma = softplus(rho - 5)");
        }
    }
    // Against one prior [z], and against per-class priors [C, z].
    let (prior_mu, prior_log_std) = (numbers(z, 22), numbers(z, 23).iter().map(|v| v * 0.7).collect::<Vec<_>>());
    let kl = gaussian_kl(&tensor(&mu, n), &tensor(&sigma, n), &Tensor::from_slice(&prior_mu), &Tensor::from_slice(&prior_log_std));
    let kl = Vec::<f64>::try_from(&kl).unwrap();
    let t: Vec<f64> = prior_log_std.iter().map(|v| v.exp()).collect();
    for i in 0..n {
        close(kl[i], kl_by_hand(&mu[i * z..(i + 1) * z], &sigma[i * z..(i + 1) * z], &prior_mu, &t), "KL to the prior");
    }
    let c = 3;
    let (class_mu, class_log_std) = (numbers(c * z, 24), numbers(c * z, 25).iter().map(|v| v * 0.5).collect::<Vec<_>>());
    let per_class = gaussian_kl_per_class(&tensor(&mu, n), &tensor(&sigma, n), &tensor(&class_mu, c), &tensor(&class_log_std, c));
    assert_eq!(per_class.size(), [n as i64, c as i64]);
    let per_class = Vec::<f64>::try_from(per_class.flatten(0, -1)).unwrap();
    for i in 0..n {
        for k in 0..c {
            let tk: Vec<f64> = class_log_std[k * z..(k + 1) * z].iter().map(|v| v.exp()).collect();
            let want = kl_by_hand(&mu[i * z..(i + 1) * z], &sigma[i * z..(i + 1) * z], &class_mu[k * z..(k + 1) * z], &tk);
            close(per_class[i * c + k], want, &format!("KL of image {i} to class {k}'s prior"));
        }
    }
}

#[test]
fn vib_and_viby_losses_are_smoothed_cross_entropy_plus_beta_times_the_mean_kl() {
    let (n, c) = (6, 10);
    let logits: Vec<Vec<f64>> = numbers(n * c, 31).chunks(c).map(|r| r.iter().map(|v| v * 4.0).collect()).collect();
    let labels: Vec<usize> = vec![0, 3, 9, 3, 5, 1];
    let y = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let t = tensor(&logits.concat(), n);
    // VIB: one KL per image.
    let kl: Vec<f64> = numbers(n, 32).iter().map(|v| 3.0 + 2.0 * v).collect();
    for (beta, a) in [(0.005, 0.0), (0.01, 0.1)] {
        let want = smoothed_ce_by_hand(&logits, &labels, a) + beta * kl.iter().sum::<f64>() / n as f64;
        close(scalar(&vib_loss(&t, &y, &Tensor::from_slice(&kl), beta, a)), want, &format!("VIB, beta {beta}"));
    }
    // VIBY: the KL against each image's true class's prior, picked from [N, C].
    let per_class: Vec<f64> = numbers(n * c, 33).iter().map(|v| 4.0 + 3.0 * v).collect();
    let picked = at_labels(&tensor(&per_class, n), &y);
    let picked = Vec::<f64>::try_from(&picked).unwrap();
    for i in 0..n {
        close(picked[i], per_class[i * c + labels[i]], "the true class's KL");
    }
    let beta = 0.01;
    let want = smoothed_ce_by_hand(&logits, &labels, 0.1) + beta * (0..n).map(|i| per_class[i * c + labels[i]]).sum::<f64>() / n as f64;
    let got = vib_loss(&t, &y, &at_labels(&tensor(&per_class, n), &y), beta, 0.1);
    assert_eq!(got.kind(), Kind::Double);
    close(scalar(&got), want, "VIBY");
}
