//! Exact OOD-detection metrics: FPR at 95% TPR, detection error, AUROC, AUPR-In and AUPR-Out.
//!
//! The paper (section 4) reports four threshold-independent or fixed-TPR metrics, and `SPEC.md` makes
//! scikit-learn the oracle for each of them. This crate exists so that the pipeline computes them
//! exactly, in f64 and without a threshold grid, and agrees with scikit-learn to 1e-9 on any input:
//! a grid (as some reference implementations use) moves FPR at 95% TPR by whole percentage points
//! when scores are squashed together, as they are after temperature scaling.
//!
//! In-distribution samples are the positive class and a higher score means "more in-distribution".
//!
//! # One sort, one pass
//! Both score lists are sorted once. Walking down from the highest score, the samples fall into
//! *threshold groups*: all samples, of either list, that share one distinct score value. Every
//! metric is a sum over these groups, so one pass gives all of them:
//! - the ROC curve has one point per group (as `roc_curve(drop_intermediate=False)`), after (0, 0);
//! - AUROC is the trapezoid area under those points, which we accumulate exactly in integers;
//! - AUPR-In is scikit-learn's `average_precision_score`, the step sum `sum_k (R_k - R_{k-1}) P_k`
//!   over the groups from the top; AUPR-Out is the same sum with OOD as the positive class and
//!   the scores negated, i.e. over the groups from the bottom, which the same pass also provides;
//! - FPR at 95% TPR is read at the first group whose TPR reaches 0.95.
//!
//! # Ties
//! Samples with equal scores can't be ranked against each other, so a group is always taken
//! whole: a threshold either accepts all of it or none of it. On the ROC curve a group holding
//! both in-distribution and OOD samples is one diagonal step, and the trapezoid under it counts
//! each tied (in, OOD) pair as one half, which is what makes AUROC equal to the probability that a
//! random in-distribution sample outscores a random OOD one, ties counting one half. `0.0` and
//! `-0.0` compare equal and are one group, as with numpy's `np.diff`.
//!
//! # Floating point
//! TPR and FPR are computed as `count as f64 / total as f64`, exactly as scikit-learn's
//! `tps / tps[-1]`, so the `TPR >= 0.95` comparison picks the same point (19/20 and 95/100 both
//! round to the literal `0.95`). AUROC is summed in `u128` and divided once. The two AUPR sums run
//! over up to one term per sample; they use compensated (Neumaier) summation so that their
//! rounding error stays near one ulp however many samples there are.

use std::fmt;

pub mod bootstrap;
pub mod interval;
pub mod significance;

/// The recall (TPR) at which FPR and detection error are read, as in the paper.
const TARGET_TPR: f64 = 0.95;

/// The paper's metrics for one (in-distribution, OOD) pair of score lists, as fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OodMetrics {
    /// FPR at the largest threshold whose TPR is at least 95%.
    pub fpr_at_95_tpr: f64,
    /// `0.5 (1 - TPR) + 0.5 FPR` at that same threshold.
    pub detection_error: f64,
    /// Area under the ROC curve, ties counting one half.
    pub auroc: f64,
    /// Average precision with in-distribution as the positive class.
    pub aupr_in: f64,
    /// Average precision with OOD as the positive class and the scores negated.
    pub aupr_out: f64,
    /// The TPR actually reached at that threshold: at least 0.95, above it when ties jump past it.
    pub tpr_at_threshold: f64,
}

/// Which of the two score lists an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreList {
    InDistribution,
    Ood,
}

impl fmt::Display for ScoreList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScoreList::InDistribution => "in-distribution",
            ScoreList::Ood => "OOD",
        })
    }
}

/// Why the metrics of two score lists are undefined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricsError {
    /// A list has no scores: TPR or FPR would divide by zero.
    Empty { list: ScoreList },
    /// A score is NaN or infinite, so it has no place in the ranking.
    NonFinite { list: ScoreList, index: usize, value: f64 },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Empty { list } => write!(f, "the {list} score list is empty"),
            MetricsError::NonFinite { list, index, value } => {
                write!(f, "{list} score at index {index} is {value}, expected a finite number")
            }
        }
    }
}

impl std::error::Error for MetricsError {}

/// All five metrics (and the TPR they were read at) from one sort and one pass.
pub fn ood_metrics(in_scores: &[f64], ood_scores: &[f64]) -> Result<OodMetrics, MetricsError> {
    let groups = ThresholdGroups::new(in_scores, ood_scores)?;
    let counts = groups.iter().map(|(di, dj)| (di as u64, dj as u64));
    Ok(sweep(counts, in_scores.len() as u64, ood_scores.len() as u64))
}

/// The one pass: `groups` are the `(in, OOD)` counts of each distinct score from the highest
/// down (groups of zero samples are allowed and change nothing), `n_in` and `n_ood` their totals.
fn sweep(groups: impl Iterator<Item = (u64, u64)>, n_in: u64, n_ood: u64) -> OodMetrics {
    let (n_in_f, n_ood_f) = (n_in as f64, n_ood as f64);

    // Cumulative counts of the samples scoring at or above the current group.
    let (mut tp, mut fp) = (0u64, 0u64);
    // Twice the area under the ROC curve, in units of 1 / (n_in * n_ood): a group of `di` in and
    // `dj` OOD samples adds the trapezoid dj * (tp_before + tp_after) = dj * (2 tp_before + di).
    let mut auroc_twice: u128 = 0;
    let mut aupr_in = CompensatedSum::default();
    let mut aupr_out = CompensatedSum::default();
    let mut at_target: Option<(f64, f64)> = None; // (fpr, tpr)

    for (di, dj) in groups {
        auroc_twice += u128::from(dj) * u128::from(2 * tp + di);
        if dj > 0 {
            // With OOD positive and scores negated, the threshold at this group accepts this group
            // and everything below it.
            let ood_at_or_below = n_ood - fp;
            let all_at_or_below = (n_in - tp) + ood_at_or_below;
            aupr_out.add((dj as f64 / n_ood_f) * (ood_at_or_below as f64 / all_at_or_below as f64));
        }
        tp += di;
        fp += dj;
        if di > 0 {
            aupr_in.add((di as f64 / n_in_f) * (tp as f64 / (tp + fp) as f64));
        }
        if at_target.is_none() {
            let tpr = tp as f64 / n_in_f;
            if tpr >= TARGET_TPR {
                at_target = Some((fp as f64 / n_ood_f, tpr));
            }
        }
    }

    // The last group brings TPR to exactly 1, so the target is always reached.
    let (fpr, tpr) = at_target.expect("TPR reaches 1 at the lowest threshold");
    OodMetrics {
        fpr_at_95_tpr: fpr,
        detection_error: 0.5 * (1.0 - tpr) + 0.5 * fpr,
        auroc: auroc_twice as f64 / (2.0 * n_in_f * n_ood_f),
        aupr_in: aupr_in.total(),
        aupr_out: aupr_out.total(),
        tpr_at_threshold: tpr,
    }
}

/// The ROC curve as `(fpr, tpr)` points: `(0, 0)` and then one point per distinct score, from the
/// highest down, ending at `(1, 1)`. These are the points of scikit-learn's
/// `roc_curve(y_in, s, drop_intermediate=False)`.
pub fn roc_curve(in_scores: &[f64], ood_scores: &[f64]) -> Result<Vec<(f64, f64)>, MetricsError> {
    let groups = ThresholdGroups::new(in_scores, ood_scores)?;
    let (n_in, n_ood) = (in_scores.len() as f64, ood_scores.len() as f64);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = vec![(0.0, 0.0)];
    for (di, dj) in groups.iter() {
        tp += di;
        fp += dj;
        points.push((fp as f64 / n_ood, tp as f64 / n_in));
    }
    Ok(points)
}

/// The one pass over per-group counts, for the bootstrap (see [`bootstrap`]).
pub(crate) fn sweep_counts(groups: impl Iterator<Item = (u64, u64)>, n_in: u64, n_ood: u64) -> OodMetrics {
    sweep(groups, n_in, n_ood)
}

/// Both score lists, to be walked from the top in groups of
/// equal scores.
pub(crate) struct ThresholdGroups {
    in_sorted: Vec<f64>,
    ood_sorted: Vec<f64>,
}

impl ThresholdGroups {
    pub(crate) fn new(in_scores: &[f64], ood_scores: &[f64]) -> Result<Self, MetricsError> {
        Ok(ThresholdGroups {
            in_sorted: validated_sorted(in_scores, ScoreList::InDistribution)?,
            ood_sorted: validated_sorted(ood_scores, ScoreList::Ood)?,
        })
    }

    /// `(in-distribution count, OOD count)` of each distinct score, from the highest score down.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (mut i, mut j) = (self.in_sorted.len(), self.ood_sorted.len());
        std::iter::from_fn(move || {
            let threshold = match (i.checked_sub(1), j.checked_sub(1)) {
                (None, None) => return None,
                (Some(a), None) => self.in_sorted[a],
                (None, Some(b)) => self.ood_sorted[b],
                (Some(a), Some(b)) => self.in_sorted[a].max(self.ood_sorted[b]),
            };
            // `==` rather than bit equality, so that 0.0 and -0.0 (adjacent after sorting) are one group.
            let (i0, j0) = (i, j);
            while i > 0 && self.in_sorted[i - 1] == threshold {
                i -= 1;
            }
            while j > 0 && self.ood_sorted[j - 1] == threshold {
                j -= 1;
            }
            Some((i0 - i, j0 - j))
        })
    }
}

fn validated_sorted(scores: &[f64], list: ScoreList) -> Result<Vec<f64>, MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty { list });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricsError::NonFinite { list, index, value: scores[index] });
    }
    let mut sorted = scores.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Ok(sorted)
}

/// Neumaier's compensated sum: the running error of each addition is carried separately, so a sum
/// of millions of terms is as accurate as a handful.
#[derive(Default)]
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() { (self.sum - t) + x } else { (x - t) + self.sum };
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}
