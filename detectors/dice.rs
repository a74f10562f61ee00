//! DICE (Sun and Li, ECCV 2022), as OpenOOD v1.5's `dice` postprocessor: the contribution of
//! each weight of the softmax network's head is `mean training feature * W` ([classes, D], the
//! feature mean over CIFAR-10's training split); weights whose contribution is not above the
//! `p`-th percentile of all contributions (numpy's linear interpolation; ties at the threshold
//! are masked too, OpenOOD's `contrib > thresh`) are set to 0. The score is the energy,
//! `logsumexp` of the masked head applied to the pooled features, the bias kept. p is
//! `detector.dice.p`, default 90 (OpenOOD's, not tuned).
//!
//! Its stage `fit.dice.cifar10` computes the mask once for every OOD set.

use crate::detector::*;

/// `[detector.dice]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The percentile of the contributions below which weights are dropped, in (0, 100).
    pub p: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { p: 90.0 }
    }
}

impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.percent("p", self.p);
    }
}

pub const DETECTOR: Detector = Detector {
    name: "dice",
    label: "DICE",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "dice-1",
    prepare: Some(ExtraStage { kind: "fit", version: "dice-1", reads: &[], network: false }),
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
        /// `prepared.safetensors`: `masked_weight` f64 [classes, D] (the head's weight, masked)
        /// and `threshold` f64 [1].
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let p = s.hyperparameters::<super::Params>()?.p;
            let (weight, _) = s.head()?;
            let (masked, threshold) = mask(&s.features(CIFAR10, "train")?, &weight, p)?;
            crate::tensors::write(&s.output_path(files::PREPARED), &[("masked_weight", &masked), ("threshold", &Tensor::from_slice(&[threshold]))])
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let masked = crate::tensors::read_one(s.prepared(files::PREPARED)?, "masked_weight")?;
            let (_, bias) = s.head()?;
            let scored = s.score_each(|set| score(&s.features(set, s.split)?, &masked, &bias))?;
            Ok(scored.with("p", s.hyperparameters::<super::Params>()?.p))
        }
    }

    /// The head's weight [classes, D] with every entry whose contribution `mean(train) * W` is not
    /// above the `p`-th percentile of all contributions set to 0 (f64), and that percentile.
    pub fn mask(train: &Tensor, weight: &Tensor, p: f64) -> Result<(Tensor, f64)> {
        let w = stats::f64s(weight);
        let mean = stats::f64s(train).mean_dim([0i64].as_slice(), true, tch::Kind::Double);
        let contribution = &mean * &w;
        let threshold = stats::percentile(&contribution, p)?;
        Ok((w * contribution.gt(threshold).to_kind(tch::Kind::Double), threshold))
    }

    /// `logsumexp(W_masked f + b)` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, masked_weight: &Tensor, bias: &Tensor) -> Result<Vec<f64>> {
        stats::to_vec(&stats::logsumexp(&stats::linear(features, masked_weight, bias)))
    }
}
