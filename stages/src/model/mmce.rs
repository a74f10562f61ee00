//! MMCE, the trainable calibration measure of Kumar et al. (2018) that BINC adds to its loss
//! (paper eq. 4; SPEC.md "MMCE").
//!
//! This is the "weighted" estimator of the official code: for a batch of confidences r_i with
//! correctness c_i (m correct, n incorrect) and the Laplacian kernel k(r, r') = exp(-|r - r'| / 0.4),
//!
//! ```text
//! mmd  =   sum_{i,j correct}   (1 - r_i)(1 - r_j) k(r_i, r_j) / (m^2 + 1e-5)
//!        + sum_{i,j incorrect} r_i r_j k(r_i, r_j)             / (n^2 + 1e-5)
//!        - 2 sum_{i correct, j incorrect} (1 - r_i) r_j k(r_i, r_j) / (m n + 1e-5)
//! MMCE = sqrt(mmd + 1e-10)     (0 when the batch has no correct or no incorrect example)
//! ```
//!
//! It is differentiable with respect to the confidences (the correctness is a constant), and is
//! computed with tensor operations in O(N^2) per classifier, for many classifiers at once.
//!
//! One guard the official code lacks: `mmd` is clamped at 0 before the square root. The estimator
//! is a squared RKHS distance in exact arithmetic, but the 1e-5 terms and rounding can make it a
//! hair negative when the two groups' confidences coincide, where the official code returns NaN.
//! Whenever mmd >= 0 (always, in the tests) the value and gradient are the formula's exactly.

use tch::{Kind, Tensor};

/// The Laplacian kernel's bandwidth: k(r, r') = exp(-|r - r'| / KERNEL_WIDTH) (the official
/// code's 2 * 0.2).
pub const KERNEL_WIDTH: f64 = 0.4;

/// MMCE of each column of `confidence` [N, K] (K independent classifiers on the same N
/// examples) with correctness `correct` [N, K] (bool or 0/1): a [K] tensor of `confidence`'s kind.
pub fn mmce_columns(confidence: &Tensor, correct: &Tensor) -> Tensor {
    let kind = confidence.kind();
    let r = confidence.transpose(0, 1); // [K, N]
    let c = correct.to_kind(kind).transpose(0, 1).detach(); // [K, N], 1 = correct
    let ic = c.neg() + 1.0;
    let m = c.sum_dim_intlist(-1, false, kind); // [K]
    let n = ic.sum_dim_intlist(-1, false, kind);
    // k[k, i, j] = exp(-|r_i - r_j| / width)
    let kernel = (r.unsqueeze(2) - r.unsqueeze(1)).abs().neg().divide_scalar(KERNEL_WIDTH).exp();
    let a = (r.neg() + 1.0) * &c; // weights of the correct examples
    let b = &r * &ic; // weights of the incorrect examples
    // a^T K b for each classifier: [K, 1, N] x [K, N, N] x [K, N, 1]
    let quad = |u: &Tensor, v: &Tensor| u.unsqueeze(1).bmm(&kernel).bmm(&v.unsqueeze(2)).view([-1]);
    let mmd = quad(&a, &a) / (&m * &m + 1e-5) + quad(&b, &b) / (&n * &n + 1e-5) - quad(&a, &b) * 2.0 / (&m * &n + 1e-5);
    let value = (mmd.clamp_min(0.0) + 1e-10).sqrt();
    let both = m.gt(0.0).logical_and(&n.gt(0.0)).to_kind(kind);
    value * both
}

/// MMCE of one classifier: `confidence` [N], `correct` [N]; a scalar.
pub fn mmce(confidence: &Tensor, correct: &Tensor) -> Tensor {
    mmce_columns(&confidence.unsqueeze(1), &correct.unsqueeze(1)).squeeze_dim(0)
}

/// The sum over the C binary classifiers of a sigmoid head of their MMCE (BINC's calibration
/// term): for classifier y, s = sigmoid(logit_y), confidence r = max(s, 1 - s) = sigmoid(|logit_y|)
/// and correctness c = [(s > 0.5) == (label == y)]. `logits` [N, C], `labels` i64 [N].
pub fn binary_mmce_sum(logits: &Tensor, labels: &Tensor) -> Tensor {
    let classes = logits.size()[1];
    let positive = labels.onehot(classes).to_kind(Kind::Bool);
    let predicted = logits.gt(0.0);
    let correct = predicted.eq_tensor(&positive);
    let confidence = logits.abs().sigmoid();
    mmce_columns(&confidence, &correct).sum(logits.kind())
}
