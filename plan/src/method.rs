//! The eight OOD scores of the paper's Table 1, and which trained model each one needs.

use crate::config::ModelKind;
use serde::{Deserialize, Serialize};

/// Serialised by the names of [`Method::name`] (in a stage's task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Baseline,
    BaselineT,
    Odin,
    Bin,
    Binc,
    Vib,
    VibyI,
    #[serde(rename = "viby_ii")]
    VibyII,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Self::Baseline,
        Self::BaselineT,
        Self::Odin,
        Self::Bin,
        Self::Binc,
        Self::Vib,
        Self::VibyI,
        Self::VibyII,
    ];

    /// The name used in stage ids (`score.baseline_t.gaussian`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::BaselineT => "baseline_t",
            Self::Odin => "odin",
            Self::Bin => "bin",
            Self::Binc => "binc",
            Self::Vib => "vib",
            Self::VibyI => "viby_i",
            Self::VibyII => "viby_ii",
        }
    }

    /// The paper's label (Table 1, `reports/results.csv`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Baseline => "Baseline",
            Self::BaselineT => "Baseline+T",
            Self::Odin => "ODIN",
            Self::Bin => "BIN",
            Self::Binc => "BINC",
            Self::Vib => "VIB",
            Self::VibyI => "VIBY-I",
            Self::VibyII => "VIBY-II",
        }
    }

    /// The trained model whose outputs the score is computed from.
    pub fn model(self) -> ModelKind {
        match self {
            Self::Baseline | Self::BaselineT | Self::Odin => ModelKind::Softmax,
            Self::Bin => ModelKind::Bin,
            Self::Binc => ModelKind::Binc,
            Self::Vib => ModelKind::Vib,
            Self::VibyI | Self::VibyII => ModelKind::Viby,
        }
    }

    /// Whether the method has hyper-parameters tuned on the validation splits.
    pub fn is_tuned(self) -> bool {
        matches!(self, Self::BaselineT | Self::Odin)
    }
}
