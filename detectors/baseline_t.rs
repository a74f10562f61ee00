//! Baseline+T: the maximum softmax probability at the temperature T of `tune.temperatures` that
//! gives the lowest FPR at 95% TPR on the validation splits (SPEC.md "Tuning").

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "baseline_t",
    label: "Baseline+T",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Paper,
    version: "score-2",
    reads: &[],
    network: false,
    tuning: Some(ExtraStage { kind: "tune", version: "tune-1", reads: &[reads::<Temperatures>()], network: false }),
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::methods::temperature::max_softmax;

    pub struct Code;
    impl Compute for Code {
        fn tune(&self, s: &DetectorStage) -> Result<Vec<GridPoint>> {
            let (cin, cout) = (s.logits(CIFAR10, VAL)?, s.logits(s.ood(), VAL)?);
            s.config::<Temperatures>()?
                .tune
                .temperatures
                .iter()
                .map(|&t| {
                    let f = fpr(&max_softmax(&cin, t), &max_softmax(&cout, t))?;
                    Ok(GridPoint { temperature: t, epsilon: None, fpr_at_95_tpr: f })
                })
                .collect()
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let t = s.tuned()?.temperature;
            s.score_each(|set| Ok(max_softmax(&s.logits(set, s.split)?, t))).map(|scored| scored.with("temperature", t))
        }
    }
}
