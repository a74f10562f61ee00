//! ASH-B (Djurisic et al., ICLR 2023), as OpenOOD v1.5's `ash` postprocessor (`ash_b` on the
//! pooled features): per image, keep the `k = D - round(D p / 100)` largest of its D pooled
//! penultimate features, set each kept one to the image's feature sum divided by k and the others
//! to 0; the score is the energy, `logsumexp` of the softmax network's head applied to that.
//! p is `detector.ash.percentile`, default 90 (OpenOOD's default; OpenOOD tunes it on its OOD
//! validation sets, here it is fixed).
//!
//! Where the spec leaves it open: `round` is numpy's (halves to even), as OpenOOD's
//! `np.round`; entries tied at the k-th largest value are kept lowest index first (torch's `topk`
//! leaves the order of ties unspecified, and with the fill value shared, which entries are kept
//! decides which of the head's weights count); a `k` of 0 (D p / 100 rounding to D) is refused,
//! naming the key. No fit: no stage of its own.

use crate::detector::*;

/// `[detector.ash]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The percentage of each image's features set to 0, in (0, 100).
    pub percentile: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { percentile: 90.0 }
    }
}

impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.percent("percentile", self.percentile);
    }
}

pub const DETECTOR: Detector = Detector {
    name: "ash",
    label: "ASH",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "ash-1",
    features: true,
    params: Some(own::<Params>()),
    ..Detector::FROM_OUTPUTS
};

/// How many of `d` features ASH-B keeps at `percentile`: `d - round(d p / 100)`, numpy's rounding.
pub fn kept(d: i64, percentile: f64) -> i64 {
    d - (d as f64 * percentile / 100.0).round_ties_even() as i64
}

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;

    pub struct Code;
    impl Compute for Code {
        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let percentile = s.hyperparameters::<super::Params>()?.percentile;
            let (weight, bias) = s.head()?;
            let d = weight.size()[1];
            let k = super::kept(d, percentile);
            if k < 1 {
                bail!("detector.ash.percentile = {percentile} keeps none of the {d} features (k = {d} - round({d} x {percentile} / 100) = {k}): choose a smaller percentile");
            }
            let scored = s.score_each(|set| score(&s.features(set, s.split)?, &weight, &bias, k))?;
            Ok(scored.with("percentile", percentile).with("k", k as f64))
        }
    }

    /// ASH-B with `k` kept features, then `logsumexp(W x + b)`, of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, weight: &Tensor, bias: &Tensor, k: i64) -> Result<Vec<f64>> {
        let f = stats::f64s(features);
        // Largest first; among equal values the lower index first (a stable sort).
        let (_, order) = f.sort_stable(true, 1, true);
        let top = order.narrow(1, 0, k);
        let fill = f.sum_dim_intlist([1i64].as_slice(), true, tch::Kind::Double) / k as f64;
        let shaped = f.zeros_like().scatter(1, &top, &fill.expand([f.size()[0], k], false));
        stats::to_vec(&stats::logsumexp(&stats::linear(&shaped, weight, bias)))
    }
}
