//! Baseline (Hendrycks & Gimpel, 2017): the maximum softmax probability.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "baseline",
    label: "Baseline",
    model: ModelKind::Softmax,
    table: ReportTable::Paper,
    version: "score-1",
    reads: &[],
    network: false,
    tuning: None,
    prepare: None,
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::methods::temperature::max_softmax;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let of = |set: &str| Ok::<_, anyhow::Error>(max_softmax(&s.logits(set, TEST)?, 1.0));
            Ok(Scored::new(of(CIFAR10)?, of(s.ood())?).with("temperature", 1.0))
        }
    }
}
