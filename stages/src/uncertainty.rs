//! Error bars: each metric's value per training seed with its interval over the test images, the
//! aggregate over seeds with its interval, and how a table cell shows them without misleading.
//!
//! - Per seed: the point estimate and the 95% percentile interval of `report.bootstrap`
//!   replicates that resample the in-distribution and the OOD test scores separately, with
//!   replacement (`oodpipe_metrics::bootstrap`). It measures how much the number depends on which
//!   test images were drawn, for that one trained network. Where a count metric (FPR, accuracy)
//!   is at 0 or 100%, every resample gives the same count and the percentile interval collapses
//!   to a point; there the interval is Clopper-Pearson's exact binomial interval of k of n.
//! - Aggregate (`seed = "all"`): with n >= 2 seeds, the mean, the sample standard deviation, the
//!   per-seed range and Student's t 95% interval of the mean (mean +- t(0.975, n-1) std /
//!   sqrt(n), t exact from `statrs`): how much the number depends on training. With one seed,
//!   that seed's value and interval.
//! - A cell ([`Estimate::cell`]) prints `value ± half-width` only where the interval is symmetric
//!   to the printed precision, else the bounds, `82.52 [81.79, 83.27]`; a t interval reaching
//!   beyond the metric's range [0, 100] is cut there and the cut bound marked `†`; with seeds the
//!   per-seed range follows, `(seeds 37.80–97.00)`.
//!
//! Pure numbers in, rows out; no tensors, so the rules are tested on their own.

use oodpipe_metrics::interval::{LEVEL, mean_std, percentile_interval, t_interval};
use oodpipe_metrics::significance::clopper_pearson;

/// Which interval a row's bounds are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// Percentile bootstrap over the test images (one trained network).
    Bootstrap,
    /// Clopper-Pearson's exact binomial interval of a count at 0 or 100% (one trained network).
    ExactBinomial,
    /// Student's t interval of the mean over training seeds.
    Seeds,
    /// No interval (the bootstrap is off and there is one seed).
    None,
}

impl IntervalKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::ExactBinomial => "clopper_pearson",
            Self::Seeds => "seeds",
            Self::None => "",
        }
    }
}

/// The mark of an interval bound cut at the metric's range.
pub const CUT: &str = "†";

/// One number with its interval: a seed's, or the aggregate over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    pub kind: IntervalKind,
    /// Across seeds (aggregates of two or more seeds only).
    pub std: Option<f64>,
    /// The smallest and largest seed's value (aggregates of two or more seeds only).
    pub range: Option<(f64, f64)>,
    /// Seeds behind the number.
    pub n: usize,
}

impl Estimate {
    /// One seed's value (a fraction) with the percentile interval of its bootstrap replicates (none
    /// when there are none). `count` is the number of images of a count metric (FPR: the OOD test
    /// images; accuracy: the test images): at 0 or 1 it gets Clopper-Pearson's interval instead.
    pub fn of_seed(value: f64, replicates: &[f64], count: Option<u64>) -> Estimate {
        let single = |interval, kind| Estimate { value, interval, kind, std: None, range: None, n: 1 };
        if let Some(n) = count.filter(|&n| n > 0 && !replicates.is_empty() && (value == 0.0 || value == 1.0)) {
            let k = if value == 0.0 { 0 } else { n };
            return single(Some(clopper_pearson(k, n)), IntervalKind::ExactBinomial);
        }
        match replicates.is_empty() {
            true => single(None, IntervalKind::None),
            false => single(Some(percentile_interval(replicates, LEVEL)), IntervalKind::Bootstrap),
        }
    }

    /// The aggregate of the seeds' estimates (in seed order): see the module doc.
    pub fn aggregate(seeds: &[Estimate]) -> Estimate {
        assert!(!seeds.is_empty(), "an aggregate of no seeds");
        if seeds.len() == 1 {
            return seeds[0].clone();
        }
        let values: Vec<f64> = seeds.iter().map(|e| e.value).collect();
        let (mean, std, n) = mean_std(&values);
        let range = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        Estimate { value: mean, interval: Some(t_interval(&values)), kind: IntervalKind::Seeds, std: Some(std), range: Some(range), n }
    }

    /// Scaled (fractions to percent).
    pub fn scaled(&self, k: f64) -> Estimate {
        Estimate {
            value: self.value * k,
            interval: self.interval.map(|(lo, hi)| (lo * k, hi * k)),
            std: self.std.map(|s| s * k),
            range: self.range.map(|(lo, hi)| (lo * k, hi * k)),
            ..self.clone()
        }
    }

    /// The cell of a table (percent, two decimals): see the module doc. `bounds` is the
    /// metric's range, (0, 100) in percent. The flag says whether a bound was cut.
    pub fn cell(&self, bounds: (f64, f64)) -> (String, bool) {
        let v = self.value;
        let mut text = match self.interval {
            None => format!("{v:.2}"),
            Some((lo, hi)) => {
                let (cut_lo, cut_hi) = (lo < bounds.0, hi > bounds.1);
                let (lo_shown, hi_shown) = (lo.max(bounds.0), hi.min(bounds.1));
                let symmetric = format!("{:.2}", v - lo_shown) == format!("{:.2}", hi_shown - v);
                if symmetric && !cut_lo && !cut_hi {
                    format!("{v:.2} ± {:.2}", (hi - lo) / 2.0)
                } else {
                    let mark = |cut: bool| if cut { CUT } else { "" };
                    format!("{v:.2} [{lo_shown:.2}{}, {hi_shown:.2}{}]", mark(cut_lo), mark(cut_hi))
                }
            }
        };
        if let Some((lo, hi)) = self.range {
            text.push_str(&format!(" (seeds {lo:.2}–{hi:.2})"));
        }
        let cut = self.interval.is_some_and(|(lo, hi)| lo < bounds.0 || hi > bounds.1);
        (text, cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERCENT: (f64, f64) = (0.0, 100.0);

    fn est(value: f64, interval: (f64, f64)) -> Estimate {
        Estimate { value, interval: Some(interval), kind: IntervalKind::Bootstrap, std: None, range: None, n: 1 }
    }

    #[test]
    fn one_seed_is_its_own_aggregate_and_several_give_a_t_interval() {
        let one = Estimate::of_seed(0.8, &[0.78, 0.79, 0.8, 0.81, 0.82], None);
        assert_eq!(one.kind, IntervalKind::Bootstrap);
        assert_eq!(Estimate::aggregate(std::slice::from_ref(&one)), one);
        let seeds = [Estimate::of_seed(1.0, &[], None), Estimate::of_seed(3.0, &[], None), Estimate::of_seed(2.0, &[], None)];
        let agg = Estimate::aggregate(&seeds);
        assert_eq!((agg.value, agg.std, agg.n, agg.kind, agg.range), (2.0, Some(1.0), 3, IntervalKind::Seeds, Some((1.0, 3.0))));
        let (lo, hi) = agg.interval.unwrap();
        // t(0.975, 2) = 4.302652729749462 (scipy.stats.t.ppf).
        assert!((hi - lo - 2.0 * 4.302652729749462 / 3f64.sqrt()).abs() < 1e-9, "{lo} {hi}");
        let pct = agg.scaled(100.0);
        assert_eq!((pct.value, pct.std, pct.range), (200.0, Some(100.0), Some((100.0, 300.0))));
    }

    #[test]
    fn a_count_at_0_or_100_percent_gets_the_exact_binomial_interval() {
        // Every replicate at 1: the percentile interval would be the point; 1000 of 1000 OOD
        // images accepted gives Clopper-Pearson's (0.025^(1/1000), 1).
        let e = Estimate::of_seed(1.0, &[1.0; 50], Some(1000));
        assert_eq!(e.kind, IntervalKind::ExactBinomial);
        let (lo, hi) = e.interval.unwrap();
        assert!((lo - 0.025f64.powf(1.0 / 1000.0)).abs() < 1e-12 && hi == 1.0, "{lo} {hi}");
        let zero = Estimate::of_seed(0.0, &[0.0; 50], Some(1000)).interval.unwrap();
        assert!(zero.0 == 0.0 && (zero.1 - (1.0 - 0.025f64.powf(1.0 / 1000.0))).abs() < 1e-12);
        // Not a count, or inside (0, 1): the bootstrap's.
        assert_eq!(Estimate::of_seed(1.0, &[1.0; 50], None).kind, IntervalKind::Bootstrap);
        assert_eq!(Estimate::of_seed(0.5, &[0.4, 0.6], Some(1000)).kind, IntervalKind::Bootstrap);
        // No bootstrap at all: no interval.
        assert_eq!(Estimate::of_seed(1.0, &[], Some(1000)).kind, IntervalKind::None);
    }

    #[test]
    fn cells_show_bounds_where_the_interval_is_not_symmetric() {
        assert_eq!(est(82.52, (81.79, 83.25)).cell(PERCENT).0, "82.52 ± 0.73");
        assert_eq!(est(82.52, (81.79, 83.27)).cell(PERCENT).0, "82.52 [81.79, 83.27]");
        // The audit's case: 100.00 with [99.70, 100.00] read as 100.00 ± 0.15.
        assert_eq!(est(100.0, (99.70, 100.0)).cell(PERCENT).0, "100.00 [99.70, 100.00]");
        assert_eq!(Estimate { interval: None, ..est(5.0, (0.0, 0.0)) }.cell(PERCENT).0, "5.00");
    }

    #[test]
    fn a_t_interval_beyond_the_range_is_cut_and_marked_with_the_seeds_range() {
        // The audit's case: Gaussian Baseline FPR95 74.70 ± 79.96 over seeds 37.8, 89.3, 97.0.
        let e = Estimate {
            value: 74.70,
            interval: Some((74.70 - 79.96, 74.70 + 79.96)),
            kind: IntervalKind::Seeds,
            std: Some(32.2),
            range: Some((37.8, 97.0)),
            n: 3,
        };
        let (text, cut) = e.cell(PERCENT);
        assert_eq!(text, "74.70 [0.00†, 100.00†] (seeds 37.80–97.00)");
        assert!(cut);
        let inside = Estimate { value: 82.0, interval: Some((80.0, 84.0)), range: Some((81.0, 83.5)), ..e };
        assert_eq!(inside.cell(PERCENT), ("82.00 ± 2.00 (seeds 81.00–83.50)".to_string(), false));
    }
}
