//! BIN (the paper's section 3.1): one sigmoid per class trained with a weighted binary
//! cross-entropy; the score is log max_y sigmoid(logit_y) (see `stages/src/methods/sigmoid.rs`).

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "bin",
    label: "BIN",
    model: ModelKind::of(&models::bin::MODEL),
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
            s.score_each(|set| Ok(max_log_sigmoid(&s.output(set, s.split, ids::tensors::LOGITS)?)))
        }
    }
}
