//! The detectors' side of the stages: what a detector's code (in `detectors/`, `mod code`) is
//! given ([`DetectorStage`]) and gives back ([`Scored`], a tuning grid), and the three stage
//! functions that run it and write the files every detector shares: `tune.json`, `metrics.json`
//! and `scores.safetensors`. A detector computes scores; it does not write the record, compute the
//! metrics or name a file.
//!
//! A score stage scores both splits: the test splits (the report's numbers) and the validation
//! splits (what a sweep chooses by, `oodpipe run --sweep`), calling the detector's
//! [`Compute::score`] once per split with [`DetectorStage::split`] set; a detector reads the split
//! it is asked for, never a constant.
//!
//! Higher scores mean "more in-distribution" throughout.

pub use crate::config::ModelKind;
pub use crate::methods::tuner::GridPoint;
pub use anyhow::{Context, Result, bail};
pub use oodpipe_plan::detector::*;
pub use oodpipe_plan::ids::{self, CIFAR10, files};
pub use tch::Tensor;

use crate::methods::tuner::{self, Tuned};
use crate::model::{Loaded, to_unit_range};
use crate::stage::StageContext;
use crate::tensors;
use oodpipe_metrics::ood_metrics;
use oodpipe_plan::ood::OodSet;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The splits of a data set.
pub use oodpipe_plan::ids::splits::{TEST, VAL};

/// The score code of a detector. Each stage kind the detector declares calls one method.
pub trait Compute: Sync {
    /// The scores of CIFAR-10's and the OOD set's split [`DetectorStage::split`] (test, then val).
    fn score(&self, stage: &DetectorStage) -> Result<Scored>;

    /// The grid of its hyper-parameters on the validation splits (when it declares `tuning`).
    fn tune(&self, stage: &DetectorStage) -> Result<Vec<GridPoint>> {
        bail!("detector {} has no tuning code, but its stage {} asks for it", stage.detector.name, stage.ctx.id)
    }

    /// Its shared stage on CIFAR-10 (when it declares `prepare`): writes its files with
    /// [`DetectorStage::output_path`].
    fn prepare(&self, stage: &DetectorStage) -> Result<()> {
        bail!("detector {} has no prepare code, but its stage {} asks for it", stage.detector.name, stage.ctx.id)
    }
}

/// A detector's scores and the hyper-parameters they were computed with (for `metrics.json`).
pub struct Scored {
    pub in_scores: Vec<f64>,
    pub out_scores: Vec<f64>,
    pub hyperparameters: serde_json::Map<String, serde_json::Value>,
}

impl Scored {
    pub fn new(in_scores: Vec<f64>, out_scores: Vec<f64>) -> Scored {
        Scored { in_scores, out_scores, hyperparameters: Default::default() }
    }

    pub fn with(mut self, name: &str, value: f64) -> Scored {
        self.hyperparameters.insert(name.to_string(), json!(value));
        self
    }
}

/// What a detector's code sees: its stage's context, itself, and the OOD set (none for the
/// shared stage on CIFAR-10). Inputs are named through [`ids`] here, so detectors never spell one.
pub struct DetectorStage<'a> {
    pub ctx: &'a StageContext<'a>,
    pub detector: &'static Detector,
    pub set: Option<&'a OodSet>,
    /// The split a score stage is scoring ([`TEST`] or [`VAL`]); [`TEST`] in the other stages.
    pub split: &'static str,
}

impl DetectorStage<'_> {
    /// A config view the stage declares (`s.config::<EvalBatch>()`): its `reads`, or the network's.
    pub fn config<V: oodpipe_plan::view::View>(&self) -> Result<V> {
        self.ctx.view().with_context(|| format!("detector {} (detectors/{}.rs)", self.detector.name, self.detector.name))
    }

    /// The detector's own hyper-parameters, its config table `[detector.<name>]`
    /// (`s.hyperparameters::<super::Params>()`), from the stage's params.
    pub fn hyperparameters<P: Hyperparameters>(&self) -> Result<P> {
        oodpipe_plan::detector_params::from_params(self.ctx.params, self.detector.name)
            .with_context(|| format!("stage {}: detector {} (detectors/{}.rs)", self.ctx.id, self.detector.name, self.detector.name))
    }

    /// The OOD set's name (for inputs such as [`Self::logits`]).
    pub fn ood(&self) -> &str {
        self.set.map(|s| s.name.as_str()).unwrap_or(CIFAR10)
    }

    /// The scores of CIFAR-10's and the OOD set's split [`Self::split`], by one function of a set's name.
    pub fn score_each(&self, of: impl Fn(&str) -> Result<Vec<f64>>) -> Result<Scored> {
        Ok(Scored::new(of(CIFAR10)?, of(self.ood())?))
    }

    /// The tensor `<split>_<name>` of the detector's model's outputs on `set`.
    pub fn output(&self, set: &str, split: &str, name: &str) -> Result<Tensor> {
        let path = self.ctx.input(&ids::outputs(self.detector.model, set), files::OUTPUTS)?;
        tensors::read_one(path, &ids::tensors::of_split(split, name))
    }

    /// The prediction logits [N, 10] of the detector's model on a split of `set`.
    pub fn logits(&self, set: &str, split: &str) -> Result<Tensor> {
        self.output(set, split, ids::tensors::LOGITS)
    }

    /// A tensor of a data set's file (`train_labels`, `test_images`, ...), as stored.
    pub fn data(&self, set: &str, name: &str) -> Result<Tensor> {
        tensors::read_one(self.ctx.input(&ids::data(set), &files::data(set))?, name)
    }

    /// The images of a split of `set`, f32 in [0, 1].
    pub fn images(&self, set: &str, split: &str) -> Result<Tensor> {
        Ok(to_unit_range(&self.data(set, &format!("{split}_images"))?))
    }

    /// The trained model (when the detector declares `network`).
    pub fn network(&self) -> Result<Loaded> {
        Loaded::load(self.ctx, self.detector.model, || self.config())
    }

    /// What the detector's tune stage chose for this OOD set.
    pub fn tuned(&self) -> Result<GridPoint> {
        let path = self.ctx.input(&ids::tune(self.detector.name, self.ood()), files::TUNE)?;
        let tuned: Tuned = serde_json::from_slice(&std::fs::read(path)?).with_context(|| format!("reading {}", path.display()))?;
        Ok(tuned.chosen)
    }

    /// A file of the detector's shared stage on CIFAR-10.
    pub fn prepared(&self, file: &str) -> Result<&Path> {
        let kind = self.detector.prepare.map(|p| p.kind).context("the detector declares no prepare stage")?;
        self.ctx.input(&ids::prepare(kind, self.detector.name), file)
    }

    /// Where this stage writes `file`.
    pub fn output_path(&self, file: &str) -> PathBuf {
        self.ctx.output(file)
    }

    pub fn progress(&self) -> crate::stage::ProgressFn<'_> {
        self.ctx.progress
    }

    pub fn report_progress(&self, done: u64, total: u64, message: &str) {
        (self.ctx.progress)(done, total, message)
    }
}

/// Every registered detector, then the config's Python ones (`python`, described as detectors:
/// Table 3, no tuning), in the report's order.
pub fn with_python(python: &[(String, oodpipe_plan::python::PythonDetector)]) -> Vec<&'static Detector> {
    ALL.iter().copied().chain(python.iter().map(|(name, d)| d.describe(name))).collect()
}

/// The registered detector called `name`, with its code.
fn lookup(name: &str) -> Result<(&'static Detector, &'static dyn Compute)> {
    let detector = find(name).with_context(|| format!("no registered detector is called `{name}` (detectors/mod.rs)"))?;
    let code = crate::detectors::code(name).with_context(|| format!("detector `{name}` has no code"))?;
    Ok((detector, code))
}

/// FPR at 95% TPR of in- vs out-of-distribution scores: what tuning minimises.
pub fn fpr(in_scores: &[f64], out_scores: &[f64]) -> Result<f64> {
    Ok(ood_metrics(in_scores, out_scores)?.fpr_at_95_tpr)
}

/// The `<kind>.<detector>.cifar10` stage.
pub fn prepare(ctx: &StageContext, detector: &str) -> Result<()> {
    let (detector, code) = lookup(detector)?;
    code.prepare(&DetectorStage { ctx, detector, set: None, split: TEST })
}

/// The `tune.<detector>.<set>` stage: writes `tune.json` (the grid and the choice).
pub fn tune(ctx: &StageContext, detector: &str, set: &OodSet) -> Result<()> {
    let (detector, code) = lookup(detector)?;
    let grid = code.tune(&DetectorStage { ctx, detector, set: Some(set), split: VAL })?;
    if grid.is_empty() {
        bail!("{}: the tuning grid is empty", ctx.id);
    }
    let tuned = Tuned { method: detector.label.into(), ood_set: set.label.clone(), chosen: tuner::choose(&grid), grid };
    std::fs::write(ctx.output(files::TUNE), serde_json::to_vec_pretty(&tuned)?)?;
    Ok(())
}

/// The `score.<detector>.<set>` stage: the scores of CIFAR-10's and the OOD set's test splits
/// (`scores.safetensors`: `in_scores`, `out_scores`) and validation splits (`val_in_scores`,
/// `val_out_scores`), and their five metrics each (`metrics.json`: `metrics`, `val_metrics`).
pub fn score(ctx: &StageContext, detector: &str, set: &OodSet) -> Result<()> {
    let (detector, code) = lookup(detector)?;
    let test = code.score(&DetectorStage { ctx, detector, set: Some(set), split: TEST })?;
    let val = code.score(&DetectorStage { ctx, detector, set: Some(set), split: VAL })?;
    write_scored(ctx, detector.label, set, &test, &val)
}

/// What every score stage writes (a registered detector's and a Python one's, `crate::python`):
/// `scores.safetensors` with the test splits' scores (`in_scores`, `out_scores`) and the
/// validation splits' (`val_in_scores`, `val_out_scores`), and `metrics.json` with their five
/// metrics each (`metrics`, `val_metrics`), the detector's label and the set's, and the
/// hyper-parameters the test scores were computed with.
pub fn write_scored(ctx: &StageContext, label: &str, set: &OodSet, test: &Scored, val: &Scored) -> Result<()> {
    let metrics = ood_metrics(&test.in_scores, &test.out_scores).with_context(|| format!("metrics of {}", ctx.id))?;
    let val_metrics = ood_metrics(&val.in_scores, &val.out_scores).with_context(|| format!("validation metrics of {}", ctx.id))?;
    let name = |split, name| ids::tensors::scores_of(split, name);
    let (in_name, out_name) = (ids::tensors::IN_SCORES, ids::tensors::OUT_SCORES);
    tensors::write(
        &ctx.output(files::SCORES),
        &[
            (&name(TEST, in_name), &Tensor::from_slice(&test.in_scores)),
            (&name(TEST, out_name), &Tensor::from_slice(&test.out_scores)),
            (&name(VAL, in_name), &Tensor::from_slice(&val.in_scores)),
            (&name(VAL, out_name), &Tensor::from_slice(&val.out_scores)),
        ],
    )?;
    let record = json!({
        "method": label,
        "ood_set": set.label,
        "hyperparameters": test.hyperparameters,
        "metrics": metrics,
        "val_metrics": val_metrics,
    });
    std::fs::write(ctx.output(files::METRICS), serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}
