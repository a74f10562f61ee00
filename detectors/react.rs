//! ReAct (Sun, Guo and Li, NeurIPS 2021), as OpenOOD v1.5's `react` postprocessor: the energy
//! score, `logsumexp` of the logits, of the softmax network's head applied to the pooled
//! penultimate features clipped from above, `min(f, c)`, where c is the `percentile`-th percentile
//! (default 90, numpy's linear interpolation) of every entry of the features of CIFAR-10's
//! validation split (as OpenOOD's `setup`, which takes the ID validation loader).
//!
//! OpenOOD tunes the percentile on its OOD validation sets (`APS_mode`); here it is the config key
//! `detector.react.percentile` with OpenOOD's default, not tuned. Its stage `fit.react.cifar10`
//! computes c once for every OOD set.

use crate::detector::*;

/// `[detector.react]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Which percentile of the validation features is the clipping threshold, in (0, 100).
    pub percentile: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { percentile: 90.0 }
    }
}

impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.percent("percentile", self.percentile);
    }
}

pub const DETECTOR: Detector = Detector {
    name: "react",
    label: "ReAct",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "react-1",
    prepare: Some(ExtraStage { kind: "fit", version: "react-1", reads: &[], network: false }),
    features: true,
    params: Some(own::<Params>()),
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `threshold` f64 [1].
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let percentile = s.hyperparameters::<super::Params>()?.percentile;
            let c = stats::percentile(&s.features(CIFAR10, VAL)?, percentile)?;
            crate::tensors::write(&s.output_path(files::PREPARED), &[("threshold", &Tensor::from_slice(&[c]))])
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let c = crate::tensors::read_one(s.prepared(files::PREPARED)?, "threshold")?.double_value(&[0]);
            let (weight, bias) = s.head()?;
            let scored = s.score_each(|set| score(&s.features(set, s.split)?, &weight, &bias, c))?;
            Ok(scored.with("percentile", s.hyperparameters::<super::Params>()?.percentile).with("threshold", c))
        }
    }

    /// `logsumexp(W min(f, c) + b)` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, weight: &Tensor, bias: &Tensor, c: f64) -> Result<Vec<f64>> {
        let clipped = stats::f64s(features).clamp_max(c);
        stats::to_vec(&stats::logsumexp(&stats::linear(&clipped, weight, bias)))
    }
}
