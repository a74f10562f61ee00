//! The model-specific part of each trained network (SPEC.md "The five trained models"): what sits
//! on top of the Wide-ResNet feature, what it outputs and how it is trained.
//!
//! Every model is one variant of [`Head`]; adding BIN, BINC, VIB or VIBY means a variant here, its
//! arm in [`Head::new`], [`Head::forward_t`] and [`Head::loss`], and its extra outputs in
//! `outputs.rs`. Only the Softmax head exists so far.

use crate::config::{MethodsConfig, ModelKind};
use anyhow::{Result, bail};
use tch::nn;
use tch::{Kind, Tensor};

/// What a head computes for a batch.
#[derive(Debug)]
pub struct HeadOutput {
    /// [N, 10]: the logits whose argmax is the prediction (Table 2) and which Baseline,
    /// Baseline+T and ODIN score. For BINC the softmax head's, for VIB/VIBY the decoder's at mu.
    pub logits: Tensor,
    /// Named tensors a head adds (e.g. BINC's BIN-head logits, VIB's mu and sigma); none for Softmax.
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
}

/// A linear layer with PyTorch's default weight init (uniform +-1/sqrt(fan_in)) and, as in the
/// WRN code, a zero bias.
pub fn linear(vs: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    nn::linear(
        vs,
        c_in,
        c_out,
        nn::LinearConfig {
            ws_init: nn::Init::Uniform { lo: -bound, up: bound },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    )
}

/// Number of CIFAR-10 classes.
pub const CLASSES: i64 = 10;

impl Head {
    /// Declares the head of `kind` on a feature of size `feature_dim`.
    pub fn new(vs: nn::Path, kind: ModelKind, feature_dim: i64, _methods: &MethodsConfig) -> Result<Head> {
        match kind {
            ModelKind::Softmax => Ok(Head::Softmax { fc: linear(&vs / "fc", feature_dim, CLASSES) }),
            ModelKind::Bin | ModelKind::Binc | ModelKind::Vib | ModelKind::Viby => {
                bail!("the {} head is not yet implemented", kind.name())
            }
        }
    }

    /// The head's outputs for pooled features [N, feature_dim].
    pub fn forward_t(&self, features: &Tensor, _train: bool) -> HeadOutput {
        match self {
            Head::Softmax { fc } => HeadOutput { logits: features.apply(fc), extras: Vec::new() },
        }
    }

    /// The mean training loss of a batch with true `labels` (i64 [N]).
    pub fn loss(&self, out: &HeadOutput, labels: &Tensor, label_smoothing: f64) -> Result<Tensor> {
        match self {
            Head::Softmax { .. } => Ok(smoothed_cross_entropy(&out.logits, labels, label_smoothing)),
        }
    }
}

/// Mean cross-entropy against targets (1 - s) * onehot + s / classes (s = 0: the plain loss).
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    let log_p = logits.log_softmax(-1, Kind::Float);
    let nll = -log_p.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
    if smoothing == 0.0 {
        return nll.mean(Kind::Float);
    }
    let uniform = -log_p.mean_dim(-1, false, Kind::Float);
    (nll * (1.0 - smoothing) + uniform * smoothing).mean(Kind::Float)
}
