//! VIB (the paper's section 3.2): the score is log exp(-KL(posterior || prior)), see
//! `stages/src/methods/kl.rs`.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "vib",
    label: "VIB",
    model: ModelKind::of(&models::vib::MODEL),
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
            s.score_each(|set| Ok(crate::methods::kl::vib(&s.output(set, s.split, ids::tensors::KL)?)))
        }
    }
}
