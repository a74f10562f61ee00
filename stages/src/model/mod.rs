//! The trained networks of the paper: a Wide-ResNet backbone plus the head of a registered model
//! (`models/<name>.rs`), with the input normalisation every image gets and the weights' file format.
//!
//! Training, the outputs stages and ODIN all go through [`Network`], so that an image is
//! normalised, laid out in memory and passed through the layers the same way everywhere.
//!
//! A model's file uses this module (`use crate::model::*`) for its description's types, like the
//! plan's, and [`prelude`] in its code.

pub mod head;
pub mod losses;
pub mod memory_format;
pub mod mmce;
pub mod script;
pub mod wrn;

use anyhow::{Context, Result};
use oodpipe_plan::view;
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

pub use head::{Compute, Head, HeadOutput, Loss, Table};
pub use oodpipe_plan::model::{Deserialize, Hyperparameters, Latent, Model, ModelKind, Problems, Serialize, own};

/// What a model's code (`mod code` of `models/<name>.rs`) uses: `use crate::model::prelude::*`.
pub mod prelude {
    pub use super::head::{
        CLASSES, Compute, Head, HeadOutput, LinearHead, Loss, Table, Variational, linear, smoothed_cross_entropy, variational_loss,
    };
    pub use super::losses;
    pub use anyhow::Result;
    pub use oodpipe_plan::ids::tensors::{BIN_LOGITS, KL, SAMPLED_LOGITS};
    pub use tch::{Kind, Tensor, nn};
}
pub use memory_format::{is_channels_last, to_channels_last};
pub use script::ScriptNetwork;
pub use wrn::WideResNet;

/// Per-channel mean of CIFAR-10 pixels in [0, 1] (the WRN and ODIN code; SPEC.md "Data").
pub const MEAN: [f64; 3] = [125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
/// Per-channel standard deviation of CIFAR-10 pixels in [0, 1].
pub const STD: [f64; 3] = [63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];

/// `STD` as a [1, 3, 1, 1] f32 tensor on `device`, ready to broadcast over [N, 3, H, W].
pub fn std_tensor(device: Device) -> Tensor {
    Tensor::from_slice(&STD).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device)
}

/// `MEAN` as a [1, 3, 1, 1] f32 tensor on `device`.
pub fn mean_tensor(device: Device) -> Tensor {
    Tensor::from_slice(&MEAN).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device)
}

/// (x - mean) / std per channel, for images [N, 3, H, W] in [0, 1]: what enters every network.
pub fn normalise(images01: &Tensor) -> Tensor {
    let device = images01.device();
    (images01.to_kind(Kind::Float) - mean_tensor(device)) / std_tensor(device)
}

/// Images as f32 in [0, 1]: raw u8 CIFAR bytes are divided by 255, floats are taken as they are.
pub fn to_unit_range(images: &Tensor) -> Tensor {
    match images.kind() {
        Kind::Uint8 => images.to_kind(Kind::Float) / 255.0,
        _ => images.to_kind(Kind::Float),
    }
}

/// A Wide-ResNet with the head of one model, and the variables it owns.
#[derive(Debug)]
pub struct Network {
    pub vs: nn::VarStore,
    pub kind: ModelKind,
    pub backbone: WideResNet,
    pub head: Box<dyn Head>,
    /// Conv weights and inputs are stored channels-last (config key `train.channels_last`).
    pub channels_last: bool,
}

impl Network {
    /// A freshly initialised network for `kind`, shaped by `config.model` (and the shape fields
    /// of the kind's `methods.<kind>` table); seed libtorch (`tch::manual_seed`) first for a
    /// reproducible init.
    pub fn new(kind: ModelKind, config: &view::Network, device: Device) -> Result<Network> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let backbone = WideResNet::new(&root / "backbone", config.model.depth, config.model.widen)?;
        let head = code(kind)?.head(&root / "head", backbone.feature_dim, &table(kind, config))?;
        let channels_last = config.train.channels_last;
        if channels_last {
            memory_format::vars_to_channels_last(&vs);
        }
        Ok(Network { vs, kind, backbone, head, channels_last })
    }

    /// A network for `kind` with the weights saved by [`Network::save`] at `path`.
    pub fn load(path: &Path, kind: ModelKind, config: &view::Network, device: Device) -> Result<Network> {
        let mut net = Network::new(kind, config, device)?;
        net.vs.load(path).with_context(|| {
            format!("loading the {} network's weights from {} (does model.depth/widen match the training?)", kind.name(), path.display())
        })?;
        Ok(net)
    }

    /// Writes every variable (weights and BN running statistics) to a safetensors file, in the
    /// standard contiguous layout whatever the memory format used in training.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let refs: Vec<(&str, &Tensor)> = vars.iter().map(|(n, t)| (n.as_str(), t)).collect();
        crate::tensors::write(path, &refs)
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// The head's outputs for images [N, 3, H, W] in [0, 1] (normalised here).
    pub fn forward(&self, images01: &Tensor, train: bool) -> HeadOutput {
        self.forward_normalised(&normalise(images01), train)
    }

    /// The head's outputs for already-normalised images (ODIN perturbs in this space).
    pub fn forward_normalised(&self, x: &Tensor, train: bool) -> HeadOutput {
        let x = if self.channels_last { to_channels_last(x) } else { x.shallow_clone() };
        let features = self.backbone.forward_t(&x, train);
        self.head.forward_t(&features, train)
    }

    /// The prediction logits [N, 10] for images in [0, 1].
    pub fn logits(&self, images01: &Tensor, train: bool) -> Tensor {
        self.forward(images01, train).logits
    }

    /// The head's outputs for a whole image set ([N,3,H,W], u8 CIFAR bytes or f32 in [0,1], any
    /// device) in eval mode without gradients, `batch` images at a time, concatenated on the CPU.
    pub fn eval_outputs(&self, images: &Tensor, batch: usize) -> HeadOutput {
        let _no_grad = tch::no_grad_guard();
        let device = self.vs.device();
        let n = images.size()[0];
        let mut logits = Vec::new();
        let mut extras: Vec<(&'static str, Vec<Tensor>)> = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let len = (batch as i64).min(n - start);
            let x = to_unit_range(&images.narrow(0, start, len).to_device(device));
            let out = self.forward(&x, false);
            logits.push(out.logits.to_device(Device::Cpu));
            for (i, (name, t)) in out.extras.into_iter().enumerate() {
                if extras.len() <= i {
                    extras.push((name, Vec::new()));
                }
                extras[i].1.push(t.to_device(Device::Cpu));
            }
        }
        let logits =
            if logits.is_empty() { Tensor::zeros([0, head::CLASSES], (Kind::Float, Device::Cpu)) } else { Tensor::cat(&logits, 0) };
        HeadOutput { logits, extras: extras.into_iter().map(|(n, parts)| (n, Tensor::cat(&parts, 0))).collect() }
    }

    /// The backbone's pooled features [N, D] (the head's input) of a whole image set, in eval
    /// mode without gradients, `batch` images at a time, on the CPU (as [`Self::eval_outputs`]).
    pub fn eval_features(&self, images: &Tensor, batch: usize) -> Tensor {
        let _no_grad = tch::no_grad_guard();
        let device = self.vs.device();
        let n = images.size()[0];
        let mut parts = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let len = (batch as i64).min(n - start);
            let x = normalise(&to_unit_range(&images.narrow(0, start, len).to_device(device)));
            let x = if self.channels_last { to_channels_last(&x) } else { x };
            parts.push(self.backbone.forward_t(&x, false).to_device(Device::Cpu));
        }
        Tensor::cat(&parts, 0)
    }

    /// The model's training loss, with the loss weights of its table in `config` (the training's
    /// view, which holds the whole table).
    pub fn loss(&self, config: &view::Network) -> Result<Loss> {
        code(self.kind)?.loss(&table(self.kind, config))
    }
}

/// The code of registered model `kind`.
pub fn code(kind: ModelKind) -> Result<&'static dyn Compute> {
    crate::models::code(kind.name()).with_context(|| format!("model {} has no code in models/ (is it in models/mod.rs?)", kind.name()))
}

/// `kind`'s table as the view `config` was given it.
fn table(kind: ModelKind, config: &view::Network) -> Table<'_> {
    Table { model: kind, fields: config.table(kind) }
}

/// The network a stage reads from its input `train.<model>`: one trained here (its
/// `model.safetensors`) or one imported from a TorchScript file (`network.pt`, [`script`]), which
/// the outputs, features and ODIN code run the same way.
#[derive(Debug)]
pub enum Loaded {
    Trained(Box<Network>),
    Script(ScriptNetwork),
}

/// What the import stage writes beside `network.pt` (`network.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Imported {
    /// The prefix of its final linear layer's parameters.
    pub head: String,
    /// The width of its features.
    pub feature_dim: i64,
}

impl Loaded {
    /// The network of input `train.<model>` of the stage: imported when that input holds
    /// `network.pt`, else the training's weights with the WRN's shape from `view` (asked only then:
    /// an imported network's stages do not read the WRN's shape).
    pub fn load(ctx: &crate::stage::StageContext, model: ModelKind, view: impl FnOnce() -> Result<view::Network>) -> Result<Loaded> {
        use oodpipe_plan::ids::{self, files};
        let train = ids::train(model);
        if let Ok(file) = ctx.input(&train, files::NETWORK) {
            let about = ctx.input(&train, files::NETWORK_JSON)?;
            let imported: Imported =
                serde_json::from_slice(&std::fs::read(about)?).with_context(|| format!("reading {}", about.display()))?;
            return Ok(Loaded::Script(ScriptNetwork::load(file, &imported.head, ctx.tch_device())?));
        }
        let weights = ctx.input(&train, files::MODEL)?;
        Ok(Loaded::Trained(Box::new(Network::load(weights, model, &view()?, ctx.tch_device())?)))
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        match self {
            Loaded::Trained(net) => net.vs.device(),
            Loaded::Script(net) => net.device(),
        }
    }

    /// Its outputs on a whole image set, as [`Network::eval_outputs`] (an imported network has
    /// no extras).
    pub fn eval_outputs(&self, images: &Tensor, batch: usize) -> Result<HeadOutput> {
        match self {
            Loaded::Trained(net) => Ok(net.eval_outputs(images, batch)),
            Loaded::Script(net) => Ok(HeadOutput { logits: net.over_batches(images, batch, |x| net.logits(x))?, extras: Vec::new() }),
        }
    }

    /// Its pooled features on a whole image set, as [`Network::eval_features`].
    pub fn eval_features(&self, images: &Tensor, batch: usize) -> Result<Tensor> {
        match self {
            Loaded::Trained(net) => Ok(net.eval_features(images, batch)),
            Loaded::Script(net) => net.over_batches(images, batch, |x| net.features(x)),
        }
    }

    /// Its final linear layer (weight [classes, D], bias [classes], f32), when its head is one.
    pub fn head_linear(&self) -> Result<Option<(Tensor, Tensor)>> {
        match self {
            Loaded::Trained(net) => match net.head.linear() {
                Some(fc) => {
                    let bias = fc.bs.as_ref().context("the head's linear layer has no bias")?;
                    Ok(Some((fc.ws.detach().to_kind(Kind::Float), bias.detach().to_kind(Kind::Float))))
                }
                None => Ok(None),
            },
            Loaded::Script(net) => Ok(Some((net.head.0.shallow_clone(), net.head.1.shallow_clone()))),
        }
    }

    /// The prediction logits of normalised images in eval mode, with gradients when `x` has them
    /// (ODIN). An imported network's failure here, after its contract was checked at load, is a
    /// bug of the file: it panics with its error, which fails the stage.
    pub fn logits_normalised(&self, x: &Tensor) -> Tensor {
        match self {
            Loaded::Trained(net) => net.forward_normalised(x, false).logits,
            Loaded::Script(net) => net.logits_normalised(x).unwrap_or_else(|e| panic!("{e:#}")),
        }
    }
}
