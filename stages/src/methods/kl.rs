//! The VIB and VIBY scores (paper eqs. 5-7), from the KL divergences the outputs stage kept:
//!
//! - VIB: r = exp(-KL(posterior || prior));
//! - VIBY-I: r = exp(-sum_y p(y|x) KL_y), p the softmax of the decoder's logits at latent = mu;
//! - VIBY-II: r = exp(-min_y KL_y).
//!
//! exp(-KL) underflows to 0 for large KL (and rounds to 1 for tiny KL) and would tie examples
//! (SPEC.md), so each score is kept as its log, the exponent, in f64: the order, hence every
//! metric, is that of r.

use tch::{Kind, Tensor};

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_device(tch::Device::Cpu).to_kind(Kind::Double).contiguous()).expect("a 1-d f64 tensor converts to Vec<f64>")
}

/// VIB: log r = -KL for each entry of `kl` [N].
pub fn vib(kl: &Tensor) -> Vec<f64> {
    to_vec(&kl.to_kind(Kind::Double).neg())
}

/// VIBY-I: log r = -sum_y softmax(logits)_y KL_y, for `logits` and `kl` [N, C].
pub fn viby_expected(logits: &Tensor, kl: &Tensor) -> Vec<f64> {
    let p = logits.to_kind(Kind::Double).softmax(-1, Kind::Double);
    let expected = (p * kl.to_kind(Kind::Double)).sum_dim_intlist(-1, false, Kind::Double);
    to_vec(&expected.neg())
}

/// VIBY-II: log r = -min_y KL_y, for `kl` [N, C].
pub fn viby_min(kl: &Tensor) -> Vec<f64> {
    to_vec(&kl.to_kind(Kind::Double).amin(-1, false).neg())
}
