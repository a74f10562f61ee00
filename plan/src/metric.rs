//! The metrics of the report, defined once: their names in `results.csv` and claims, their
//! headers in the tables, which way is better, and whether a value is a count over images (so
//! that an exact binomial interval applies where the bootstrap collapses, at 0 or 100%).
//! [`OodMetric`] is the five a score stage computes: the one type that reads their values from
//! [`OodMetrics`], so that no caller can ask a detector's metrics for a model's accuracy.

use oodpipe_metrics::OodMetrics;
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

/// A metric of a score stage (every [`Metric`] but accuracy, which is a model's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OodMetric {
    FprAt95Tpr,
    DetectionError,
    Auroc,
    AuprIn,
    AuprOut,
}

impl OodMetric {
    /// In the column order of the paper's Table 1.
    pub const ALL: [OodMetric; 5] =
        [OodMetric::FprAt95Tpr, OodMetric::DetectionError, OodMetric::Auroc, OodMetric::AuprIn, OodMetric::AuprOut];

    /// As a metric of the report (its name, header, direction).
    pub fn metric(self) -> Metric {
        match self {
            OodMetric::FprAt95Tpr => Metric::FprAt95Tpr,
            OodMetric::DetectionError => Metric::DetectionError,
            OodMetric::Auroc => Metric::Auroc,
            OodMetric::AuprIn => Metric::AuprIn,
            OodMetric::AuprOut => Metric::AuprOut,
        }
    }

    /// Its value in `m`.
    pub fn of(self, m: &OodMetrics) -> f64 {
        match self {
            OodMetric::FprAt95Tpr => m.fpr_at_95_tpr,
            OodMetric::DetectionError => m.detection_error,
            OodMetric::Auroc => m.auroc,
            OodMetric::AuprIn => m.aupr_in,
            OodMetric::AuprOut => m.aupr_out,
        }
    }

    /// The OOD metric called `name` in `results.csv`.
    pub fn from_name(name: &str) -> Option<OodMetric> {
        OodMetric::ALL.into_iter().find(|m| m.metric().name() == name)
    }
}

impl Metric {
    /// The OOD metrics, in the column order of the paper's Table 1.
    pub const OOD: [Metric; 5] = [Metric::FprAt95Tpr, Metric::DetectionError, Metric::Auroc, Metric::AuprIn, Metric::AuprOut];

    /// The score stage's metric this is; `None` for accuracy.
    pub fn ood(self) -> Option<OodMetric> {
        OodMetric::ALL.into_iter().find(|m| m.metric() == self)
    }

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

    /// What the metric can be, as a fraction: [0, 1], but the detection error at 95% TPR,
    /// 0.5 (1 - TPR) + 0.5 FPR with TPR at 0.95, which lies in [0.025, 0.525] (below 0.025 only
    /// when ties put the TPR above 0.95; an interval is never cut inside its own estimate).
    pub fn range(self) -> (f64, f64) {
        match self {
            Metric::DetectionError => (0.025, 0.525),
            _ => (0.0, 1.0),
        }
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
        assert_eq!(Metric::OOD, OodMetric::ALL.map(OodMetric::metric));
        assert_eq!(Metric::Accuracy.ood(), None);
        let m = OodMetrics { fpr_at_95_tpr: 1.0, detection_error: 2.0, auroc: 3.0, aupr_in: 4.0, aupr_out: 5.0, tpr_at_threshold: 6.0 };
        // Each reads its own field: the values 1..5 in Table 1's order.
        let values: Vec<f64> = Metric::OOD.iter().map(|x| x.ood().unwrap().of(&m)).collect();
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
