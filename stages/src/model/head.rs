//! The model-specific part of each trained network (SPEC.md "The five trained models"): what sits
//! on top of the Wide-ResNet feature, what it outputs and how it is trained.
//!
//! A model's file (`models/<name>.rs`, `mod code`) implements [`Compute`]: its [`Head`] (the
//! layers, shaped by its table's shape fields) and its [`Loss`] (with its table's loss weights).
//! The two built-in head shapes several models share are here: [`LinearHead`] (softmax, BIN) and
//! [`Variational`] (VIB, VIBY); the losses themselves are plain functions of tensors in
//! `losses.rs` (and `mmce.rs`), checked against finite differences. A head holds what inference
//! computes with; the loss weights are given to [`Compute::loss`] only, so that what reads a
//! trained network (outputs, features, ODIN) is not keyed by them.
//!
//! Extras by head (names as in `outputs.safetensors`, prefixed by the split there; each model's
//! description lists its own, `Model::extras`):
//! - BINC: `bin_logits` [N, 10], the BIN head's logits (its softmax head's are the `logits`).
//! - VIB: `kl` [N], KL(posterior || prior); VIBY: `kl` [N, 10], against each class's prior. In
//!   eval mode the KL is computed in f64 from the f32 mu and sigma (scores rank on -KL).
//! - VIB, VIBY in train mode only: `sampled_logits`, the decoder at latent = mu + sigma * eps with
//!   eps ~ N(0, 1) from libtorch's (seeded) generator, which the loss uses; `logits` stay the
//!   decoder at mu, the prediction, in both modes.

use super::losses::{at_labels, gaussian_kl, gaussian_kl_per_class, posterior, vib_loss};
use anyhow::Result;
use oodpipe_plan::ids::tensors::{KL, SAMPLED_LOGITS};
use oodpipe_plan::model::{Hyperparameters, ModelKind};
use serde_json::Value;
use std::collections::BTreeMap;
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

    /// The extra tensor `name`, or an error naming it.
    pub fn needs(&self, name: &str) -> Result<&Tensor> {
        self.extra(name).ok_or_else(|| anyhow::anyhow!("the head's output has no `{name}`"))
    }
}

/// A model's layers on top of the backbone.
pub trait Head: std::fmt::Debug {
    /// The head's outputs for pooled features [N, feature_dim].
    fn forward_t(&self, features: &Tensor, train: bool) -> HeadOutput;

    /// Its one linear layer from the features to the logits, if that is all it is (the
    /// detectors on features read its weight and bias, `features.<model>.cifar10`).
    fn linear(&self) -> Option<&nn::Linear> {
        None
    }
}

/// A model's training loss: the mean loss of a batch's head outputs with true labels (i64 [N])
/// and label smoothing.
pub type Loss = Box<dyn Fn(&HeadOutput, &Tensor, f64) -> Result<Tensor>>;

/// What a model's file gives the worker (`models/<name>.rs`, `mod code`).
pub trait Compute: Sync {
    /// Declares its head under `vs` on a feature of size `feature_dim`, shaped by its table.
    fn head(&self, vs: nn::Path, feature_dim: i64, table: &Table) -> Result<Box<dyn Head>>;

    /// Its training loss, with the loss weights of its table.
    fn loss(&self, table: &Table) -> Result<Loss>;
}

/// A model's `methods.<name>` table as a stage was given it: its shape's fields wherever the
/// network runs, its weights' too in its training.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    pub model: ModelKind,
    pub fields: Option<&'a BTreeMap<String, Value>>,
}

impl Table<'_> {
    /// Its part `P` (the file's shape or weights struct). Fails naming the fields the stage was
    /// not given.
    pub fn read<P: Hyperparameters>(&self) -> Result<P> {
        oodpipe_plan::model::read(self.fields, self.model.name())
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

/// Linear to 10 logits (softmax's and BIN's head; variables `fc.weight`, `fc.bias`).
#[derive(Debug)]
pub struct LinearHead {
    pub fc: nn::Linear,
}

impl LinearHead {
    pub fn new(vs: nn::Path, feature_dim: i64) -> LinearHead {
        LinearHead { fc: linear(&vs / "fc", feature_dim, CLASSES) }
    }
}

impl Head for LinearHead {
    fn forward_t(&self, features: &Tensor, _train: bool) -> HeadOutput {
        HeadOutput { logits: features.apply(&self.fc), extras: Vec::new() }
    }

    fn linear(&self) -> Option<&nn::Linear> {
        Some(&self.fc)
    }
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

/// VIB's and VIBY's head: linear to 2z = (mu, rho), sigma = softplus(rho - 5), a linear decoder
/// z -> 10, and a trainable diagonal Gaussian prior: one (mean and log-std [z], VIB) or one per
/// class ([10, z], VIBY, whose `kl` is then [N, 10]).
#[derive(Debug)]
pub struct Variational {
    pub encoder: nn::Linear,
    pub decoder: nn::Linear,
    pub prior: Prior,
    pub per_class: bool,
}

impl Variational {
    pub fn new(vs: nn::Path, feature_dim: i64, z: i64, per_class: bool) -> Variational {
        let prior_shape = if per_class { vec![CLASSES, z] } else { vec![z] };
        Variational {
            encoder: linear(&vs / "encoder", feature_dim, 2 * z),
            decoder: linear(&vs / "decoder", z, CLASSES),
            prior: Prior::new(&vs / "prior", &prior_shape),
            per_class,
        }
    }

    fn kl(&self, mu: &Tensor, sigma: &Tensor, mean: &Tensor, log_std: &Tensor) -> Tensor {
        if self.per_class { gaussian_kl_per_class(mu, sigma, mean, log_std) } else { gaussian_kl(mu, sigma, mean, log_std) }
    }
}

/// VIB's and VIBY's loss: smoothed cross-entropy at the sampled latent + `beta` x the KL
/// (VIBY's, `per_class`, against the true class's prior).
pub fn variational_loss(beta: f64, per_class: bool) -> Loss {
    Box::new(move |out, labels, smoothing| {
        let kl = out.needs(KL)?;
        let kl = if per_class { at_labels(kl, labels) } else { kl.shallow_clone() };
        Ok(vib_loss(out.needs(SAMPLED_LOGITS)?, labels, &kl, beta, smoothing))
    })
}

impl Head for Variational {
    fn forward_t(&self, features: &Tensor, train: bool) -> HeadOutput {
        let (mu, sigma) = posterior(&features.apply(&self.encoder));
        let logits = mu.apply(&self.decoder);
        if train {
            let latent = &mu + &sigma * sigma.randn_like();
            let kl = self.kl(&mu, &sigma, &self.prior.mean, &self.prior.log_std);
            HeadOutput { logits, extras: vec![(KL, kl), (SAMPLED_LOGITS, latent.apply(&self.decoder))] }
        } else {
            let d = |t: &Tensor| t.to_kind(Kind::Double);
            let kl = self.kl(&d(&mu), &d(&sigma), &d(&self.prior.mean), &d(&self.prior.log_std));
            HeadOutput { logits, extras: vec![(KL, kl)] }
        }
    }
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
