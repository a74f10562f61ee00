//! VIBY-II (the paper's section 3.2): the smallest KL to any class's prior (see
//! `stages/src/methods/kl.rs`).

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "viby_ii",
    label: "VIBY-II",
    model: ModelKind::of(&models::viby::MODEL),
    table: ReportTable::Paper,
    version: "score-2",
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            s.score_each(|set| Ok(crate::methods::kl::viby_min(&s.output(set, s.split, ids::tensors::KL)?)))
        }
    }
}
