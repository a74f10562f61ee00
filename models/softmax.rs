//! The baseline: a linear head to 10 logits trained with (label-smoothed) cross-entropy; the
//! network every config trains (Baseline, Baseline+T, ODIN and the post-hoc detectors read it).

use crate::model::*;

pub const MODEL: Model = Model {
    name: "softmax",
    label: "Baseline",
    version: "train-1",
    shape: None,
    weights: None,
    extras: &[],
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::model::prelude::*;

    pub struct Code;
    impl Compute for Code {
        fn head(&self, vs: nn::Path, feature_dim: i64, _: &Table) -> Result<Box<dyn Head>> {
            Ok(Box::new(LinearHead::new(vs, feature_dim)))
        }

        fn loss(&self, _: &Table) -> Result<Loss> {
            Ok(Box::new(|out, labels, smoothing| Ok(smoothed_cross_entropy(&out.logits, labels, smoothing))))
        }
    }
}
