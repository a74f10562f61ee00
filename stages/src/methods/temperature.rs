//! The Baseline and Baseline+T scores (Hendrycks & Gimpel; the paper's eq. 1): the softmax
//! probability of the predicted class after dividing the logits by a temperature T (T = 1 for
//! the Baseline). ODIN uses the same score on perturbed inputs.
//!
//! Computed in f64 through log-softmax: at T = 1 confident in-distribution scores sit within
//! 1e-7 of 1, where f32 would tie them, and the metrics depend only on the order.

use tch::{Kind, Tensor};

/// max_y softmax(logits / T)_y for each row of `logits` [N, K], in f64.
pub fn max_softmax(logits: &Tensor, temperature: f64) -> Vec<f64> {
    assert!(temperature > 0.0, "temperature must be positive, got {temperature}");
    let scaled = logits.to_device(tch::Device::Cpu).to_kind(Kind::Double) / temperature;
    let best = scaled.log_softmax(-1, Kind::Double).amax(-1, false).exp();
    Vec::<f64>::try_from(&best).expect("a 1-d f64 tensor converts to Vec<f64>")
}
