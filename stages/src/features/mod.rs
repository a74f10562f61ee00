//! The shared features stages, `features.<model>.<set>`: a trained network's pooled penultimate
//! features (the backbone's output, the head's input) in eval mode without augmentation, for the
//! detectors that score features rather than logits (Mahalanobis, ReAct, ASH, DICE, KNN, ViM, SHE,
//! RMDS: `Detector::features`).
//!
//! Why a stage per data set, beside the outputs stages and not inside them: the 45,000 training
//! images are run once for all those detectors (no detector runs the network), an OOD set added to
//! the config costs one small features stage (its 1,500 images) and leaves CIFAR-10's alone, and
//! the outputs stages, which every model has, keep their code and keys. The stages exist only for
//! a model some selected detector reads features of (today the softmax network), so a new detector
//! on features changes nothing here: it declares `features: true` and reads
//! [`DetectorStage::features`].
//!
//! `features.safetensors`: `<split>_features` f32 [N, D] for CIFAR-10's `train`, `val` and `test`
//! splits (in the data stage's order, so `train_labels` of `data.cifar10` label the rows), or an OOD
//! set's `val` and `test`; on CIFAR-10 also the head's `head_weight` [classes, D] and `head_bias`
//! [classes] when the head is one linear layer (softmax, BIN), so that detectors that change the
//! features or the weights (ReAct, ASH, DICE, ViM) apply the head themselves.
//!
//! [`stats`] holds the statistics of features that several detectors fit (class means, covariances,
//! the pseudo-inverse, percentiles), in one place.

pub mod stats;

use crate::config::ModelKind;
use crate::detector::DetectorStage;
use crate::ids::{self, CIFAR10, files};
use crate::model::Loaded;
use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result};
use oodpipe_plan::view;
use tch::{Kind, Tensor};

/// The splits whose features are kept: CIFAR-10's three, an OOD set's two.
pub fn splits(set: &str) -> &'static [&'static str] {
    use oodpipe_plan::ids::splits::{TEST, TRAIN, VAL};
    if set == CIFAR10 { &[TRAIN, VAL, TEST] } else { &[VAL, TEST] }
}

/// The stage: `features.safetensors` (see the module's doc).
pub fn run(ctx: &StageContext, model: ModelKind, set: &str) -> Result<()> {
    let net = Loaded::load(ctx, model, || ctx.view())?;
    let batch = ctx.view::<view::EvalBatch>()?.eval.batch_size;
    let data_path = ctx.input(&ids::data(set), &files::data(set))?;
    let mut data = tensors::read(data_path)?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    let splits = splits(set);
    for (i, split) in splits.iter().enumerate() {
        (ctx.progress)(i as u64, splits.len() as u64, &format!("features of the {split} split"));
        let images = data.remove(&format!("{split}_images")).with_context(|| format!("{} has no `{split}_images`", data_path.display()))?;
        named.push((format!("{split}_features"), net.eval_features(&images, batch)?.to_kind(Kind::Float)));
    }
    if set == CIFAR10
        && let Some((weight, bias)) = net.head_linear()?
    {
        named.push(("head_weight".into(), weight));
        named.push(("head_bias".into(), bias));
    }
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tensors::write(&ctx.output(files::FEATURES), &refs)
}

/// What a detector that declares `features` reads of the shared stages.
impl DetectorStage<'_> {
    fn features_file(&self, set: &str) -> Result<&std::path::Path> {
        self.ctx
            .input(&ids::features(self.detector.model, set), files::FEATURES)
            .with_context(|| format!("detector {} reads features: its description needs `features: true`", self.detector.name))
    }

    /// The pooled penultimate features [N, D] (f32) of its model on a split of `set` (`cifar10`'s
    /// `train`, `val`, `test`; an OOD set's `val`, `test`).
    pub fn features(&self, set: &str, split: &str) -> Result<Tensor> {
        tensors::read_one(self.features_file(set)?, &format!("{split}_features"))
    }

    /// The head's weight [classes, D] and bias [classes] (f32), for a head of one linear layer.
    pub fn head(&self) -> Result<(Tensor, Tensor)> {
        let path = self.features_file(CIFAR10)?;
        let weight = tensors::read_one(path, "head_weight")
            .with_context(|| format!("the {} head is not one linear layer", self.detector.model.name()))?;
        Ok((weight, tensors::read_one(path, "head_bias")?))
    }

    /// The labels [N] (i64) of a CIFAR-10 split, in the order of its features.
    pub fn labels(&self, split: &str) -> Result<Tensor> {
        Ok(self.data(CIFAR10, &format!("{split}_labels"))?.to_kind(Kind::Int64))
    }
}
