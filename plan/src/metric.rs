//! The metrics of the report, defined once: their names in `results.csv` and claims, their
//! headers in the tables, which way is better, and whether a value is a count over images (so
//! that an exact binomial interval applies where the bootstrap collapses, at 0 or 100%).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[serde(rename = "fpr_at_95_tpr")]
    FprAt95Tpr,
    DetectionError,
    Auroc,
    AuprIn,
    AuprOut,
    /// A model's classification accuracy on CIFAR-10's test split (Table 2).
    Accuracy,
}

impl Metric {
    /// The OOD metrics, in the column order of the paper's Table 1.
    pub const OOD: [Metric; 5] = [Metric::FprAt95Tpr, Metric::DetectionError, Metric::Auroc, Metric::AuprIn, Metric::AuprOut];

    /// The name in `results.csv`, `metrics.json` and the claims file.
    pub fn name(self) -> &'static str {
        match self {
            Metric::FprAt95Tpr => "fpr_at_95_tpr",
            Metric::DetectionError => "detection_error",
            Metric::Auroc => "auroc",
            Metric::AuprIn => "aupr_in",
            Metric::AuprOut => "aupr_out",
            Metric::Accuracy => "accuracy",
        }
    }

    /// The column header of the tables, with the better direction.
    pub fn header(self) -> &'static str {
        match self {
            Metric::FprAt95Tpr => "FPR at 95% TPR ↓",
            Metric::DetectionError => "Detection Error ↓",
            Metric::Auroc => "AUROC ↑",
            Metric::AuprIn => "AUPR-In ↑",
            Metric::AuprOut => "AUPR-Out ↑",
            Metric::Accuracy => "Accuracy ↑",
        }
    }

    /// Whether a higher value is better (AUROC, AUPR, accuracy) or a lower one (FPR, detection error).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::FprAt95Tpr | Metric::DetectionError)
    }

    /// Whether the value is a fraction k / n of images (FPR: OOD test images accepted; accuracy:
    /// test images classified right), to which Clopper-Pearson's exact interval applies.
    pub fn is_count(self) -> bool {
        matches!(self, Metric::FprAt95Tpr | Metric::Accuracy)
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::OOD.into_iter().chain([Metric::Accuracy]).find(|m| m.name() == name)
    }

    /// Every metric's name, for error messages.
    pub fn names() -> Vec<&'static str> {
        Metric::OOD.into_iter().chain([Metric::Accuracy]).map(Metric::name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for name in Metric::names() {
            let m = Metric::from_name(name).unwrap();
            assert_eq!(m.name(), name);
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(name));
        }
        assert_eq!(Metric::from_name("fpr"), None);
    }
}
