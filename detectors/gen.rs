//! GEN, the generalized entropy score (Liu, Lochman and Zach, CVPR 2023), as OpenOOD v1.5's `gen`
//! postprocessor: with p the softmax of the softmax network's logits, minus the sum over the M
//! largest probabilities of `p^gamma (1 - p)^gamma`. gamma is `detector.gen.gamma` (default 0.1)
//! and M is `detector.gen.m` (default 100), used as `min(M, classes)` (OpenOOD's `[:, -M:]` slice
//! does the same), so 10 on CIFAR-10. OpenOOD tunes both on its OOD validation sets; here they are
//! fixed. It reads the stored logits only: no features, no stage of its own.

use crate::detector::*;

/// `[detector.gen]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The exponent of the generalized entropy, positive.
    pub gamma: f64,
    /// How many of the largest probabilities count (at most the number of classes is used).
    pub m: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { gamma: 0.1, m: 100 }
    }
}

impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.gamma > 0.0, "gamma", &self.gamma, "a positive number");
        problems.check(self.m >= 1, "m", &self.m, "at least 1");
    }
}

pub const DETECTOR: Detector = Detector {
    name: "gen",
    label: "GEN",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "gen-1",
    params: Some(own::<Params>()),
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use tch::Kind;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let p = s.hyperparameters::<super::Params>()?;
            let scored = s.score_each(|set| score(&s.logits(set, s.split)?, p.gamma, p.m))?;
            Ok(scored.with("gamma", p.gamma).with("m", p.m as f64))
        }
    }

    /// `-sum_{M largest p} p^gamma (1 - p)^gamma` of the softmax of each row of `logits` [N, K], f64.
    pub fn score(logits: &Tensor, gamma: f64, m: usize) -> Result<Vec<f64>> {
        let p = logits.to_device(tch::Device::Cpu).to_kind(Kind::Double).softmax(-1, Kind::Double);
        let m = (m as i64).min(p.size()[1]);
        let (largest, _) = p.topk(m, 1, true, false);
        let terms = largest.pow_tensor_scalar(gamma) * (largest.ones_like() - &largest).pow_tensor_scalar(gamma);
        Ok(Vec::<f64>::try_from(-terms.sum_dim_intlist([1i64].as_slice(), false, Kind::Double))?)
    }
}
