//! BINC (the paper's section 3.1): BIN with an MMCE calibration term and a shared output space;
//! the score is log max_y sigmoid of its BIN head's logits.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "binc",
    label: "BINC",
    model: ModelKind::of(&models::binc::MODEL),
    table: ReportTable::Paper,
    version: "score-2",
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::methods::sigmoid::max_log_sigmoid;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            s.score_each(|set| Ok(max_log_sigmoid(&s.output(set, s.split, ids::tensors::BIN_LOGITS)?)))
        }
    }
}
