//! The BIN and BINC scores (paper section 3): the largest per-class sigmoid probability,
//! max_y s(p_y), of a BIN head's logits.
//!
//! Since the sigmoid is increasing, max_y s(p_y) = s(max_y p_y), and the score is kept as its log,
//! log s(max_y p_y) = -softplus(-max_y p_y), in f64: s itself rounds to 1 for every logit above
//! ~17 in f32 (~37 in f64) and would tie the confident examples, while its log stays distinct and
//! ranks the same way (the metrics depend only on the order).

use tch::{Kind, Tensor};

/// log s(x) = -log(1 + e^-x), without overflow or cancellation.
pub fn log_sigmoid(x: f64) -> f64 {
    -((-x).max(0.0) + (-x.abs()).exp().ln_1p())
}

/// log max_y sigmoid(logits_y) for each row of `logits` [N, K], in f64.
pub fn max_log_sigmoid(logits: &Tensor) -> Vec<f64> {
    let best = logits.to_device(tch::Device::Cpu).to_kind(Kind::Double).amax(-1, false);
    let best = Vec::<f64>::try_from(&best).expect("a 1-d f64 tensor converts to Vec<f64>");
    best.into_iter().map(log_sigmoid).collect()
}
