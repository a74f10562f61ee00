//! Statistics of features that several detectors fit, in f64: class means, covariances, the
//! pseudo-inverse of a symmetric matrix with scipy's `pinvh` cut-off, percentiles as numpy's, and
//! the head applied to features. One definition each, so that Mahalanobis and RMDS mean the same
//! thing by "the shared covariance", and ReAct and DICE by "the 90th percentile".

use anyhow::{Result, bail};
use tch::{Kind, Tensor};

/// `t` as f64 on the CPU.
pub fn f64s(t: &Tensor) -> Tensor {
    t.to_device(tch::Device::Cpu).to_kind(Kind::Double)
}

/// The class means [classes, D] of `features` [N, D] with `labels` [N] in `0..classes`, and the
/// features centred on their class's mean [N, D]. Every class must occur.
pub fn class_means(features: &Tensor, labels: &Tensor, classes: i64) -> Result<(Tensor, Tensor)> {
    let f = f64s(features);
    let labels = labels.to_kind(Kind::Int64);
    let mut means = Vec::new();
    let mut centred = f.zeros_like();
    for c in 0..classes {
        let rows = labels.eq(c).nonzero().squeeze_dim(1);
        if rows.size()[0] == 0 {
            bail!("class {c} has no training image: its mean is undefined");
        }
        let of_class = f.index_select(0, &rows);
        let mean = of_class.mean_dim([0i64].as_slice(), true, Kind::Double);
        centred = centred.index_copy(0, &rows, &(of_class - &mean));
        means.push(mean);
    }
    Ok((Tensor::cat(&means, 0), centred))
}

/// `X^T X / N` of `centred` [N, D]: the maximum-likelihood covariance of rows already centred
/// (scikit-learn's `EmpiricalCovariance` of them).
pub fn covariance(centred: &Tensor) -> Tensor {
    let x = f64s(centred);
    x.transpose(0, 1).matmul(&x) / x.size()[0] as f64
}

/// The pseudo-inverse of a symmetric matrix [D, D] as scipy's `pinvh` with its default cut-off:
/// eigenvalues whose magnitude is at most `D * eps * max |eigenvalue|` (eps of f64) count as zero,
/// so a direction the features (nearly) never vary along gets no weight instead of 1 / rounding
/// noise.
pub fn pinvh(a: &Tensor) -> Tensor {
    let a = f64s(a);
    let d = a.size()[0];
    // libtorch's pinv of a Hermitian matrix keeps the eigenvalues above rtol * the largest.
    a.linalg_pinv(d as f64 * f64::EPSILON, true)
}

/// `(f - mean)^T precision (f - mean)` of each row of `features` [N, D], f64 [N].
pub fn squared_mahalanobis(features: &Tensor, mean: &Tensor, precision: &Tensor) -> Tensor {
    let d = f64s(features) - f64s(mean).view([1, -1]);
    (d.matmul(&f64s(precision)) * &d).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
}

/// The `q`-th percentile (q in [0, 100]) of every entry of `t`, with numpy's default linear
/// interpolation between order statistics (`np.percentile(t.flatten(), q)`).
pub fn percentile(t: &Tensor, q: f64) -> Result<f64> {
    let mut values = Vec::<f64>::try_from(f64s(t).flatten(0, -1))?;
    if values.is_empty() {
        bail!("the percentile of no values");
    }
    values.sort_unstable_by(f64::total_cmp);
    Ok(oodpipe_metrics::interval::quantile(&values, q / 100.0))
}

/// The head `features @ weight^T + bias` in f64: logits [N, classes].
pub fn linear(features: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    f64s(features).matmul(&f64s(weight).transpose(0, 1)) + f64s(bias).view([1, -1])
}

/// `logsumexp` of each row of `logits` [N, K] (the energy score at temperature 1), f64 [N].
pub fn logsumexp(logits: &Tensor) -> Tensor {
    f64s(logits).logsumexp([-1i64].as_slice(), false)
}

/// A 1-d tensor as a vector of f64.
pub fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(f64s(t).flatten(0, -1))?)
}
