//! The training losses of the BIN, BINC, VIB and VIBY heads (SPEC.md "The five trained models"),
//! as plain functions of tensors so that they can be checked against finite differences (in f64)
//! apart from any network. Every function works in the kind of its inputs.

use super::head::smoothed_cross_entropy;
use super::mmce::binary_mmce_sum;
use tch::{Kind, Tensor};

/// BIN's weighted binary cross-entropy, mean over the batch of
/// `sum_y w_y * (-t_y log s(p_y) - (1 - t_y) log(1 - s(p_y)))`, with s the sigmoid, the weight
/// `w_y = 1` for the true class's classifier and `zeta` for the others, and the targets
/// `t = (1 - smoothing) * onehot + smoothing / C`: label smoothing's counterpart for per-class
/// sigmoids, the same target distribution the smoothed softmax cross-entropy uses. With
/// `smoothing = 0` this is the paper's `-log s(p_label) - zeta * sum_{y != label} log(1 - s(p_y))`.
/// The logs are in the stable forms log s(p) = logsigmoid(p), log(1 - s(p)) = logsigmoid(-p).
/// `logits` [N, C], `labels` i64 [N].
pub fn weighted_bce(logits: &Tensor, labels: &Tensor, zeta: f64, smoothing: f64) -> Tensor {
    let kind = logits.kind();
    let classes = logits.size()[1];
    let positive = labels.onehot(classes).to_kind(kind);
    let weight = &positive * (1.0 - zeta) + zeta;
    let target = &positive * (1.0 - smoothing) + smoothing / classes as f64;
    let pos = -(logits.log_sigmoid() * &target);
    let neg = -(logits.neg().log_sigmoid() * (target.neg() + 1.0));
    ((pos + neg) * weight).sum_dim_intlist(-1, false, kind).mean(kind)
}

/// BINC's loss (paper eq. 4): cross-entropy of the softmax head + the weighted BCE of the BIN
/// head (both with label smoothing `smoothing`) + `lambda` * the sum over the BIN head's binary
/// classifiers of their MMCE.
pub fn binc_loss(softmax_logits: &Tensor, bin_logits: &Tensor, labels: &Tensor, zeta: f64, lambda: f64, smoothing: f64) -> Tensor {
    let mut loss = smoothed_cross_entropy(softmax_logits, labels, smoothing) + weighted_bce(bin_logits, labels, zeta, smoothing);
    if lambda != 0.0 {
        loss += binary_mmce_sum(bin_logits, labels) * lambda;
    }
    loss
}

/// Offset of the posterior's scale: sigma = softplus(rho - SIGMA_SHIFT) (Alemi et al.'s code).
pub const SIGMA_SHIFT: f64 = 5.0;

/// The posterior N(mu, sigma^2) of an encoder output [N, 2z] = (mu, rho): (mu, sigma) [N, z] each,
/// sigma = softplus(rho - 5).
pub fn posterior(encoded: &Tensor) -> (Tensor, Tensor) {
    let z = encoded.size()[1] / 2;
    let mu = encoded.narrow(1, 0, z);
    let sigma = (encoded.narrow(1, z, z) - SIGMA_SHIFT).softplus();
    (mu, sigma)
}

/// KL(N(mu, diag sigma^2) || N(prior_mu, diag exp(prior_log_std)^2)) in closed form, summed over
/// the last (latent) dimension:
/// `sum_d log t_d - log sigma_d + (sigma_d^2 + (mu_d - m_d)^2) / (2 t_d^2) - 1/2`, t = exp(log_std).
/// Shapes broadcast: mu, sigma [N, z] against a prior [z] give [N]; mu, sigma [N, 1, z] against
/// per-class priors [C, z] give [N, C].
pub fn gaussian_kl(mu: &Tensor, sigma: &Tensor, prior_mu: &Tensor, prior_log_std: &Tensor) -> Tensor {
    let kind = mu.kind();
    let var_ratio = (sigma / prior_log_std.exp()).square();
    let mean_term = ((mu - prior_mu) / prior_log_std.exp()).square();
    let per_dim = (prior_log_std - sigma.log()) + (var_ratio + mean_term) * 0.5 - 0.5;
    per_dim.sum_dim_intlist(-1, false, kind)
}

/// KL of each posterior against each of the per-class priors: mu, sigma [N, z], priors [C, z] -> [N, C].
pub fn gaussian_kl_per_class(mu: &Tensor, sigma: &Tensor, prior_mu: &Tensor, prior_log_std: &Tensor) -> Tensor {
    gaussian_kl(&mu.unsqueeze(1), &sigma.unsqueeze(1), prior_mu, prior_log_std)
}

/// VIB's (and VIBY's) loss: cross-entropy (label smoothing `smoothing`) of the decoder's logits
/// at the sampled latent + beta * the mean over the batch of the KL term `kl` [N] (for VIBY the
/// KL against the true class's prior).
pub fn vib_loss(sampled_logits: &Tensor, labels: &Tensor, kl: &Tensor, beta: f64, smoothing: f64) -> Tensor {
    smoothed_cross_entropy(sampled_logits, labels, smoothing) + kl.mean(kl.kind()) * beta
}

/// The entries of `per_class` [N, C] at the true classes `labels` [N]: [N].
pub fn at_labels(per_class: &Tensor, labels: &Tensor) -> Tensor {
    per_class.gather(1, &labels.to_kind(Kind::Int64).unsqueeze(1), false).squeeze_dim(1)
}
