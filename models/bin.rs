//! BIN: a linear head to 10 logits, one sigmoid per class, trained with the weighted binary
//! cross-entropy (with label smoothing's sigmoid counterpart, `losses::weighted_bce`).

use crate::model::*;

pub const MODEL: Model = Model {
    name: "bin",
    label: "BIN",
    // BIN's binary cross-entropy gained label smoothing's counterpart.
    version: "train-2",
    shape: None,
    weights: Some(own::<Weights>()),
    extras: &[],
};

/// `methods.bin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Weight of the negative examples' term of the weighted binary cross-entropy.
    pub zeta: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { zeta: 0.05 }
    }
}

impl Hyperparameters for Weights {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.zeta > 0.0, "zeta", &self.zeta, "a positive number");
    }
}

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::model::prelude::*;

    pub struct Code;
    impl Compute for Code {
        fn head(&self, vs: nn::Path, feature_dim: i64, _: &Table) -> Result<Box<dyn Head>> {
            Ok(Box::new(LinearHead::new(vs, feature_dim)))
        }

        fn loss(&self, table: &Table) -> Result<Loss> {
            let super::Weights { zeta } = table.read()?;
            Ok(Box::new(move |out, labels, smoothing| Ok(losses::weighted_bce(&out.logits, labels, zeta, smoothing))))
        }
    }
}
