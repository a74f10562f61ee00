//! MaxLogit (Hendrycks et al., ICML 2022): the largest logit of the softmax model.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "max_logit",
    label: "MaxLogit",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "max-logit-2",
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            s.score_each(|set| Ok(max_logit(&s.logits(set, s.split)?)))
        }
    }

    /// max_k logits[n, k] of each row, in f64.
    pub fn max_logit(logits: &Tensor) -> Vec<f64> {
        let best = logits.to_device(tch::Device::Cpu).to_kind(tch::Kind::Double).amax(-1, false);
        Vec::<f64>::try_from(&best).expect("a 1-d f64 tensor converts to Vec<f64>")
    }
}
