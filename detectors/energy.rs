//! Energy score (Liu et al., NeurIPS 2020): T * logsumexp(logits / T) with T = 1, the negative
//! free energy of the softmax model's logits. Higher means more in-distribution.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "energy",
    label: "Energy",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "energy-2",
    ..Detector::FROM_OUTPUTS
};

/// The temperature of the score.
pub const TEMPERATURE: f64 = 1.0;

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            s.score_each(|set| Ok(energy(&s.logits(set, s.split)?, super::TEMPERATURE))).map(|scored| scored.with("temperature", super::TEMPERATURE))
        }
    }

    /// T * logsumexp(logits / T) of each row of `logits` [N, K], in f64.
    pub fn energy(logits: &Tensor, temperature: f64) -> Vec<f64> {
        let scaled = logits.to_device(tch::Device::Cpu).to_kind(tch::Kind::Double) / temperature;
        let lse = scaled.logsumexp([-1i64].as_slice(), false) * temperature;
        Vec::<f64>::try_from(&lse).expect("a 1-d f64 tensor converts to Vec<f64>")
    }
}
