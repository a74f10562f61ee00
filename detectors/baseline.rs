//! Baseline (Hendrycks & Gimpel, 2017): the maximum softmax probability.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "baseline",
    label: "Baseline",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Paper,
    version: "score-2",
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::methods::temperature::max_softmax;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            s.score_each(|set| Ok(max_softmax(&s.logits(set, s.split)?, 1.0))).map(|scored| scored.with("temperature", 1.0))
        }
    }
}
