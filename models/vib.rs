//! VIB: a variational information bottleneck with one trainable prior (`head::Variational`);
//! loss = smoothed cross-entropy at a sampled latent + beta * KL(posterior || prior). Its extra
//! output `kl` [N] is what the VIB detector scores.

use crate::model::*;

pub const MODEL: Model = Model {
    name: "vib",
    label: "VIB",
    version: "train-1",
    shape: Some(own::<Latent>()), // the latent dimension, `z`
    weights: Some(own::<Weights>()),
    extras: &[crate::ids::tensors::KL],
};

/// `methods.vib.beta`: the weight of KL(posterior || prior) in the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub beta: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { beta: 0.005 }
    }
}

impl Hyperparameters for Weights {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.beta >= 0.0, "beta", &self.beta, "a non-negative number");
    }
}

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::model::Latent;
    use crate::model::prelude::*;

    pub struct Code;
    impl Compute for Code {
        fn head(&self, vs: nn::Path, feature_dim: i64, table: &Table) -> Result<Box<dyn Head>> {
            let Latent { z } = table.read()?;
            Ok(Box::new(Variational::new(vs, feature_dim, z, false)))
        }

        fn loss(&self, table: &Table) -> Result<Loss> {
            let super::Weights { beta } = table.read()?;
            Ok(variational_loss(beta, false))
        }
    }
}
