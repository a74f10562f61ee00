//! BINC: a shared linear layer to z, then a softmax head and a BIN head (each linear z -> 10);
//! loss = smoothed cross-entropy + weighted BCE + lambda * the sum of the binary classifiers'
//! MMCE (paper eq. 4). Its prediction logits are the softmax head's; the BIN head's are the extra
//! output `bin_logits`.

use crate::model::*;

pub const MODEL: Model = Model {
    name: "binc",
    label: "BINC",
    // BINC's binary cross-entropy gained label smoothing's counterpart.
    version: "train-2",
    shape: Some(own::<Latent>()), // the size of the shared output space, `z`
    weights: Some(own::<Weights>()),
    extras: &[crate::ids::tensors::BIN_LOGITS],
};

/// `methods.binc.zeta`, `methods.binc.lambda`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Weight of the negative examples' term of the weighted binary cross-entropy.
    pub zeta: f64,
    /// Weight of the MMCE calibration term.
    pub lambda: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { zeta: 0.05, lambda: 0.5 }
    }
}

impl Hyperparameters for Weights {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.zeta > 0.0, "zeta", &self.zeta, "a positive number");
        problems.check(self.lambda >= 0.0, "lambda", &self.lambda, "a non-negative number");
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
            Ok(Box::new(Binc {
                shared: linear(&vs / "shared", feature_dim, z),
                softmax: linear(&vs / "softmax", z, CLASSES),
                bin: linear(&vs / "bin", z, CLASSES),
            }))
        }

        fn loss(&self, table: &Table) -> Result<Loss> {
            let super::Weights { zeta, lambda } = table.read()?;
            Ok(Box::new(move |out, labels, smoothing| {
                Ok(losses::binc_loss(&out.logits, out.needs(BIN_LOGITS)?, labels, zeta, lambda, smoothing))
            }))
        }
    }

    #[derive(Debug)]
    pub struct Binc {
        pub shared: nn::Linear,
        pub softmax: nn::Linear,
        pub bin: nn::Linear,
    }

    impl Head for Binc {
        fn forward_t(&self, features: &Tensor, _train: bool) -> HeadOutput {
            let h = features.apply(&self.shared);
            HeadOutput { logits: h.apply(&self.softmax), extras: vec![(BIN_LOGITS, h.apply(&self.bin))] }
        }
    }
}
