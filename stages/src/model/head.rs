//! The model-specific part of each trained network (SPEC.md "The five trained models"): what sits
//! on top of the Wide-ResNet feature, what it outputs and how it is trained.
//!
//! Every model is one variant of [`Head`]: its arm in [`Head::new`], [`Head::forward_t`] and
//! [`Head::loss`], and its extra outputs in `outputs.rs`. The losses themselves are plain
//! functions of tensors in `losses.rs` (and `mmce.rs`), checked against finite differences.
//! A head holds what inference computes with (its layers, shaped by `methods.<model>.z`); the
//! loss weights (`zeta`, `lambda`, `beta`) are given to [`Head::loss`] only, so that what reads a
//! trained network (outputs, features, ODIN) is not keyed by them.
//!
//! Extras by head (names as in `outputs.safetensors`, prefixed by the split there):
//! - BINC: `bin_logits` [N, 10], the BIN head's logits (its softmax head's are the `logits`).
//! - VIB: `kl` [N], KL(posterior || prior); VIBY: `kl` [N, 10], against each class's prior. In
//!   eval mode the KL is computed in f64 from the f32 mu and sigma (scores rank on -KL).
//! - VIB, VIBY in train mode only: `sampled_logits`, the decoder at latent = mu + sigma * eps with
//!   eps ~ N(0, 1) from libtorch's (seeded) generator, which the loss uses; `logits` stay the
//!   decoder at mu, the prediction, in both modes.

use super::losses::{at_labels, binc_loss, gaussian_kl, gaussian_kl_per_class, posterior, vib_loss, weighted_bce};
use crate::config::ModelKind;
use anyhow::{Context, Result};
use oodpipe_plan::ids::tensors::{BIN_LOGITS, KL, SAMPLED_LOGITS};
use oodpipe_plan::view::{LossWeights, Shapes};
use tch::nn;
use tch::{Kind, Tensor};

/// What a head computes for a batch.
#[derive(Debug)]
pub struct HeadOutput {
    /// [N, 10]: the logits whose argmax is the prediction (Table 2) and which Baseline,
    /// Baseline+T and ODIN score. For BINC the softmax head's, for VIB/VIBY the decoder's at mu.
    pub logits: Tensor,
    /// Named tensors a head adds (see the module doc: BINC's `bin_logits`, VIB's and VIBY's `kl`,
    /// and in train mode their `sampled_logits`); none for Softmax and BIN.
    pub extras: Vec<(&'static str, Tensor)>,
}

impl HeadOutput {
    /// The extra tensor `name`, if the head produced one.
    pub fn extra(&self, name: &str) -> Option<&Tensor> {
        self.extras.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }
}

/// The head of each of the five models.
#[derive(Debug)]
pub enum Head {
    /// Linear to 10 logits, cross-entropy (with optional label smoothing).
    Softmax { fc: nn::Linear },
    /// Linear to 10 logits, one sigmoid per class, weighted binary cross-entropy (with the
    /// sigmoid counterpart of label smoothing, see `losses::weighted_bce`).
    Bin { fc: nn::Linear },
    /// Linear to z, then a softmax head and a BIN head, each linear z -> 10; loss = smoothed
    /// cross-entropy + weighted BCE + lambda * sum of the binary classifiers' MMCE.
    Binc { shared: nn::Linear, softmax: nn::Linear, bin: nn::Linear },
    /// Linear to 2z = (mu, rho), sigma = softplus(rho - 5), linear decoder z -> 10, one trainable
    /// diagonal Gaussian prior (mean [z], log-std [z]); loss = smoothed cross-entropy at a sampled
    /// latent + beta * KL.
    Vib { encoder: nn::Linear, decoder: nn::Linear, prior: Prior },
    /// As Vib with one prior per class (mean and log-std [10, z]); the loss's KL is against the
    /// true class's prior.
    Viby { encoder: nn::Linear, decoder: nn::Linear, prior: Prior },
}

/// A trainable diagonal Gaussian N(mean, diag exp(log_std)^2), or one per class ([C, z] each),
/// initialised to N(0, I).
#[derive(Debug)]
pub struct Prior {
    pub mean: Tensor,
    pub log_std: Tensor,
}

impl Prior {
    fn new(vs: nn::Path, shape: &[i64]) -> Prior {
        Prior { mean: vs.zeros("mean", shape), log_std: vs.zeros("log_std", shape) }
    }
}

/// A linear layer with PyTorch's default weight init (uniform +-1/sqrt(fan_in)) and, as in the
/// WRN code, a zero bias.
pub fn linear(vs: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    nn::linear(
        vs,
        c_in,
        c_out,
        nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -bound, up: bound }, bs_init: Some(nn::Init::Const(0.0)), bias: true },
    )
}

/// Number of CIFAR-10 classes.
pub const CLASSES: i64 = 10;

impl Head {
    /// Declares the head of `kind` on a feature of size `feature_dim`, sized by its
    /// `methods.<kind>.z` (the stage's view has its own model's only).
    pub fn new(vs: nn::Path, kind: ModelKind, feature_dim: i64, shapes: &Shapes) -> Result<Head> {
        let z = |t: &Option<oodpipe_plan::view::Latent>| table(t, kind, "z").map(|t| t.z);
        Ok(match kind {
            ModelKind::Softmax => Head::Softmax { fc: linear(&vs / "fc", feature_dim, CLASSES) },
            ModelKind::Bin => Head::Bin { fc: linear(&vs / "fc", feature_dim, CLASSES) },
            ModelKind::Binc => {
                let z = z(&shapes.binc)?;
                Head::Binc {
                    shared: linear(&vs / "shared", feature_dim, z),
                    softmax: linear(&vs / "softmax", z, CLASSES),
                    bin: linear(&vs / "bin", z, CLASSES),
                }
            }
            ModelKind::Vib => {
                let z = z(&shapes.vib)?;
                Head::Vib {
                    encoder: linear(&vs / "encoder", feature_dim, 2 * z),
                    decoder: linear(&vs / "decoder", z, CLASSES),
                    prior: Prior::new(&vs / "prior", &[z]),
                }
            }
            ModelKind::Viby => {
                let z = z(&shapes.viby)?;
                Head::Viby {
                    encoder: linear(&vs / "encoder", feature_dim, 2 * z),
                    decoder: linear(&vs / "decoder", z, CLASSES),
                    prior: Prior::new(&vs / "prior", &[CLASSES, z]),
                }
            }
        })
    }

    /// The head's outputs for pooled features [N, feature_dim].
    pub fn forward_t(&self, features: &Tensor, train: bool) -> HeadOutput {
        match self {
            Head::Softmax { fc } | Head::Bin { fc, .. } => HeadOutput { logits: features.apply(fc), extras: Vec::new() },
            Head::Binc { shared, softmax, bin, .. } => {
                let h = features.apply(shared);
                HeadOutput { logits: h.apply(softmax), extras: vec![(BIN_LOGITS, h.apply(bin))] }
            }
            Head::Vib { encoder, decoder, prior, .. } | Head::Viby { encoder, decoder, prior, .. } => {
                let per_class = matches!(self, Head::Viby { .. });
                let (mu, sigma) = posterior(&features.apply(encoder));
                let logits = mu.apply(decoder);
                let kl_of = |mu: &Tensor, sigma: &Tensor, mean: &Tensor, log_std: &Tensor| {
                    if per_class { gaussian_kl_per_class(mu, sigma, mean, log_std) } else { gaussian_kl(mu, sigma, mean, log_std) }
                };
                if train {
                    let latent = &mu + &sigma * sigma.randn_like();
                    let kl = kl_of(&mu, &sigma, &prior.mean, &prior.log_std);
                    HeadOutput { logits, extras: vec![(KL, kl), (SAMPLED_LOGITS, latent.apply(decoder))] }
                } else {
                    let d = |t: &Tensor| t.to_kind(Kind::Double);
                    let kl = kl_of(&d(&mu), &d(&sigma), &d(&prior.mean), &d(&prior.log_std));
                    HeadOutput { logits, extras: vec![(KL, kl)] }
                }
            }
        }
    }

    /// The mean training loss of a batch with true `labels` (i64 [N]), with the loss weights of
    /// the head's `methods.<model>` table.
    pub fn loss(&self, out: &HeadOutput, labels: &Tensor, label_smoothing: f64, weights: &LossWeights) -> Result<Tensor> {
        let extra = |name: &str| out.extra(name).with_context(|| format!("the head's output has no `{name}`"));
        Ok(match self {
            Head::Softmax { .. } => smoothed_cross_entropy(&out.logits, labels, label_smoothing),
            Head::Bin { .. } => weighted_bce(&out.logits, labels, table(&weights.bin, ModelKind::Bin, "zeta")?.zeta, label_smoothing),
            Head::Binc { .. } => {
                let w = table(&weights.binc, ModelKind::Binc, "zeta and lambda")?;
                binc_loss(&out.logits, extra(BIN_LOGITS)?, labels, w.zeta, w.lambda, label_smoothing)
            }
            Head::Vib { .. } => {
                let beta = table(&weights.vib, ModelKind::Vib, "beta")?.beta;
                vib_loss(extra(SAMPLED_LOGITS)?, labels, extra(KL)?, beta, label_smoothing)
            }
            Head::Viby { .. } => {
                let beta = table(&weights.viby, ModelKind::Viby, "beta")?.beta;
                let kl = at_labels(extra(KL)?, labels);
                vib_loss(extra(SAMPLED_LOGITS)?, labels, &kl, beta, label_smoothing)
            }
        })
    }
}

/// The `methods.<kind>` table of a view, or an error naming what of it the head needs.
fn table<'t, T>(t: &'t Option<T>, kind: ModelKind, what: &str) -> Result<&'t T> {
    let name = kind.name();
    t.as_ref().with_context(|| format!("the {name} network needs {what} of its config table methods.{name}, which was not given"))
}

/// Mean cross-entropy (in the logits' kind) against targets (1 - s) * onehot + s / classes (s = 0: the plain loss).
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    let kind = logits.kind();
    let log_p = logits.log_softmax(-1, kind);
    let nll = -log_p.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
    if smoothing == 0.0 {
        return nll.mean(kind);
    }
    let uniform = -log_p.mean_dim(-1, false, kind);
    (nll * (1.0 - smoothing) + uniform * smoothing).mean(kind)
}
