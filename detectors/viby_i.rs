//! VIBY-I (the paper's section 3.2): the KL to each class's prior, weighted by the predicted
//! class probabilities (see `stages/src/methods/kl.rs`).

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "viby_i",
    label: "VIBY-I",
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
            let of = |set: &str| {
                Ok::<_, anyhow::Error>(crate::methods::kl::viby_expected(&s.logits(set, s.split)?, &s.output(set, s.split, ids::tensors::KL)?))
            };
            Ok(Scored::new(of(CIFAR10)?, of(s.ood())?))
        }
    }
}
