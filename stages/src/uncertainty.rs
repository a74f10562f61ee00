//! Error bars: each metric's value per training seed with its interval over the test images, the
//! aggregate over seeds with its interval, and how a table cell shows them without misleading.
//!
//! - Per seed: the point estimate and the 95% percentile interval of `report.bootstrap`
//!   replicates that resample the in-distribution and the OOD test scores separately, with
//!   replacement (`oodpipe_metrics::bootstrap`). It measures how much the number depends on which
//!   test images were drawn, for that one trained network. Where a count metric (FPR at 95% TPR,
//!   detection error through its FPR, accuracy) rests on a small count (at most [`SMALL_COUNT`]
//!   images on either side: 0 of 1,000 OOD images accepted, 1 of 1,000, 998 of 1,000), the
//!   percentile interval is too narrow (at 0 or 100% it collapses to a point, at 1 of 1,000 it
//!   reads [0.00, 0.30]); there the interval is Clopper-Pearson's exact binomial interval of k of n
//!   ([0.003, 0.56] for 1 of 1,000).
//! - Aggregate (`seed = "all"`): with n >= 2 seeds, the mean, the sample standard deviation, the
//!   per-seed range, and a two-level bootstrap interval: replicate r draws n seeds with
//!   replacement and averages their r-th image replicates (the same resampled images for every
//!   seed, since every seed scores the same test images), so it holds training noise and
//!   test-image noise together. (Student's t interval of the seeds' values, mean +- t(0.975, n-1)
//!   std / sqrt(n), leaves the test-image noise out: with seeds that happen to agree it was
//!   narrower than one seed's bootstrap. It is the interval only when there are no replicates,
//!   `report.bootstrap = 0`.) With one seed, that seed's value and interval.
//! - Every interval lies within what its quantity can be ([`oodpipe_plan::metric::Metric::range`]:
//!   [0, 100] in percent; the detection error [2.5, 52.5]), cut there, never inside its own
//!   estimate; a cut bound is marked `†` in a cell.
//! - A cell ([`Estimate::cell`]) prints `value ± half-width` only where the interval is symmetric
//!   to the printed precision, else the bounds, `82.52 [81.79, 83.27]`; a half-width below 0.005
//!   is printed to its first significant digit (`99.98 ± 0.004`), never as `± 0.00`; with seeds the
//!   per-seed range follows, `(seeds 37.80–97.00)`.
//!
//! Pure numbers in, rows out; no tensors, so the rules are tested on their own.

use oodpipe_metrics::bootstrap::Stream;
use oodpipe_metrics::interval::{LEVEL, mean_std, percentile_interval, t_interval};
use oodpipe_metrics::significance::clopper_pearson;

/// A count at most this far from either end (0 or n) gets the exact binomial interval.
pub const SMALL_COUNT: u64 = 10;

/// Which interval a row's bounds are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// Percentile bootstrap over the test images (one trained network).
    Bootstrap,
    /// Clopper-Pearson's exact binomial interval of a small count (one trained network).
    ExactBinomial,
    /// The two-level bootstrap over seeds and test images (two or more seeds).
    SeedsAndImages,
    /// Student's t interval of the mean over training seeds (two or more seeds, no bootstrap).
    Seeds,
    /// No interval (the bootstrap is off and there is one seed).
    None,
}

impl IntervalKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::ExactBinomial => "clopper_pearson",
            Self::SeedsAndImages => "seeds_and_images",
            Self::Seeds => "seeds",
            Self::None => "",
        }
    }
}

/// A value that is a count: `offset + scale * k / n` (FPR at 95% TPR: k of n OOD images
/// accepted; accuracy: k of n test images right; the detection error, 0.5 (1 - TPR) + 0.5 FPR:
/// its FPR's count, scale 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exact {
    pub k: u64,
    pub n: u64,
    pub scale: f64,
    pub offset: f64,
}

impl Exact {
    /// The count of a proportion `value` of `n`.
    pub fn proportion(value: f64, n: u64) -> Exact {
        Exact { k: (value * n as f64).round() as u64, n, scale: 1.0, offset: 0.0 }
    }

    fn small(&self) -> bool {
        self.n > 0 && self.k.min(self.n.saturating_sub(self.k)) <= SMALL_COUNT
    }

    fn interval(&self) -> (f64, f64) {
        let (lo, hi) = clopper_pearson(self.k.min(self.n), self.n);
        (self.offset + self.scale * lo, self.offset + self.scale * hi)
    }
}

/// The mark of an interval bound cut at the metric's range.
pub const CUT: &str = "†";

/// `interval` cut to `range`, never inside `value`; which bounds were cut.
pub fn clip(interval: (f64, f64), value: f64, range: (f64, f64)) -> ((f64, f64), (bool, bool)) {
    let (lo_min, hi_max) = (range.0.min(value), range.1.max(value));
    ((interval.0.max(lo_min), interval.1.min(hi_max)), (interval.0 < lo_min, interval.1 > hi_max))
}

/// One number with its interval: a seed's, or the aggregate over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub value: f64,
    /// Within the metric's range (see [`clip`]).
    pub interval: Option<(f64, f64)>,
    pub kind: IntervalKind,
    /// Whether the interval's low and high bound were cut at the metric's range.
    pub cut: (bool, bool),
    /// Across seeds (aggregates of two or more seeds only).
    pub std: Option<f64>,
    /// The smallest and largest seed's value (aggregates of two or more seeds only).
    pub range: Option<(f64, f64)>,
    /// Seeds behind the number.
    pub n: usize,
}

impl Estimate {
    fn new(value: f64, interval: Option<(f64, f64)>, kind: IntervalKind, bounds: (f64, f64)) -> Estimate {
        let (interval, cut) = match interval {
            Some(i) => {
                let (i, cut) = clip(i, value, bounds);
                (Some(i), cut)
            }
            None => (None, (false, false)),
        };
        Estimate { value, interval, kind, cut, std: None, range: None, n: 1 }
    }

    /// One seed's value (a fraction) with the percentile interval of its bootstrap replicates (none
    /// when there are none), within `bounds` (the metric's range). A value that is a small count
    /// (`exact`) gets Clopper-Pearson's interval instead.
    pub fn of_seed(value: f64, replicates: &[f64], exact: Option<Exact>, bounds: (f64, f64)) -> Estimate {
        if let Some(e) = exact.filter(|e| e.small() && !replicates.is_empty()) {
            return Estimate::new(value, Some(e.interval()), IntervalKind::ExactBinomial, bounds);
        }
        match replicates.is_empty() {
            true => Estimate::new(value, None, IntervalKind::None, bounds),
            false => Estimate::new(value, Some(percentile_interval(replicates, LEVEL)), IntervalKind::Bootstrap, bounds),
        }
    }

    /// The aggregate of the seeds' estimates (in seed order) and their bootstrap replicates (one
    /// list per seed, replicate r of every seed on the same resampled images; empty without a
    /// bootstrap), within `bounds`: see the module doc. `seed` seeds the seeds' resampling.
    pub fn aggregate(seeds: &[Estimate], replicates: &[&[f64]], bounds: (f64, f64), seed: u64) -> Estimate {
        assert!(!seeds.is_empty(), "an aggregate of no seeds");
        if seeds.len() == 1 {
            return seeds[0].clone();
        }
        let values: Vec<f64> = seeds.iter().map(|e| e.value).collect();
        let (mean, std, n) = mean_std(&values);
        let range = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let two_level = two_level_bootstrap(replicates, seed);
        let (interval, kind) = match &two_level {
            Some(reps) => (percentile_interval(reps, LEVEL), IntervalKind::SeedsAndImages),
            None => (t_interval(&values), IntervalKind::Seeds),
        };
        Estimate { std: Some(std), range: Some(range), n, ..Estimate::new(mean, Some(interval), kind, bounds) }
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

    /// The cell of a table (percent, two decimals): see the module doc. The flag says whether a
    /// bound was cut at the metric's range.
    pub fn cell(&self) -> (String, bool) {
        let v = self.value;
        let mut text = match self.interval {
            None => format!("{v:.2}"),
            Some((lo, hi)) => {
                let symmetric = format!("{:.2}", v - lo) == format!("{:.2}", hi - v);
                let half = (hi - lo) / 2.0;
                if symmetric && self.cut == (false, false) {
                    format!("{v:.2} ± {}", half_width(half))
                } else {
                    let mark = |cut: bool| if cut { CUT } else { "" };
                    format!("{v:.2} [{lo:.2}{}, {hi:.2}{}]", mark(self.cut.0), mark(self.cut.1))
                }
            }
        };
        if let Some((lo, hi)) = self.range {
            text.push_str(&format!(" (seeds {lo:.2}–{hi:.2})"));
        }
        (text, self.cut != (false, false))
    }
}

/// A half-width in two decimals, or, below 0.005, to its first significant digit (`0.004`); a
/// zero one (a degenerate interval) as `0`.
pub fn half_width(half: f64) -> String {
    if half == 0.0 {
        "0".into()
    } else if half >= 0.005 {
        format!("{half:.2}")
    } else {
        let digits = (-half.log10().floor()) as usize;
        format!("{half:.digits$}")
    }
}

/// The two-level bootstrap (seeds, then images) of the mean over seeds: replicate r draws as many
/// seeds as there are, with replacement (a seeded stream of its own), and averages their r-th
/// image replicates. None without replicates (or with seeds of unequal counts).
pub fn two_level_bootstrap(replicates: &[&[f64]], seed: u64) -> Option<Vec<f64>> {
    let b = replicates.first()?.len();
    if b == 0 || replicates.iter().any(|r| r.len() != b) {
        return None;
    }
    let n = replicates.len();
    // Another stream than the images' (which `seed` also seeds), so the draws do not coincide.
    let stream_seed = seed ^ 0x5EED_5EED_5EED_5EED;
    Some(
        (0..b)
            .map(|r| {
                let mut stream = Stream::new(stream_seed, r as u64);
                (0..n).map(|_| replicates[stream.below(n)][r]).sum::<f64>() / n as f64
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERCENT: (f64, f64) = (0.0, 1.0);

    fn est(value: f64, interval: (f64, f64)) -> Estimate {
        Estimate { value, interval: Some(interval), kind: IntervalKind::Bootstrap, cut: (false, false), std: None, range: None, n: 1 }
    }

    #[test]
    fn one_seed_is_its_own_aggregate_and_several_without_replicates_give_a_t_interval() {
        let one = Estimate::of_seed(0.8, &[0.78, 0.79, 0.8, 0.81, 0.82], None, PERCENT);
        assert_eq!(one.kind, IntervalKind::Bootstrap);
        assert_eq!(Estimate::aggregate(std::slice::from_ref(&one), &[&[0.78, 0.79, 0.8, 0.81, 0.82]], PERCENT, 0), one);
        let seeds = [0.5, 0.7, 0.6].map(|v| Estimate::of_seed(v, &[], None, PERCENT));
        let agg = Estimate::aggregate(&seeds, &[&[], &[], &[]], PERCENT, 0);
        assert!((agg.value - 0.6).abs() < 1e-15 && (agg.std.unwrap() - 0.1).abs() < 1e-15);
        assert_eq!((agg.n, agg.kind, agg.range), (3, IntervalKind::Seeds, Some((0.5, 0.7))));
        let (lo, hi) = agg.interval.unwrap();
        // t(0.975, 2) = 4.302652729749462 (scipy.stats.t.ppf).
        assert!((hi - lo - 2.0 * 0.1 * 4.302652729749462 / 3f64.sqrt()).abs() < 1e-9, "{lo} {hi}");
        let pct = agg.scaled(100.0);
        assert!((pct.value - 60.0).abs() < 1e-12 && pct.range == Some((50.0, 70.0)));
    }

    #[test]
    fn several_seeds_with_replicates_get_the_two_level_bootstrap_which_holds_image_noise() {
        // Three seeds that agree to 0.001 on one test set whose images move them by +-0.02 each
        // (the same resampled images for every seed): the t interval of the seeds' values alone
        // would be 0.003 wide; the two-level one holds the images' noise.
        let images: Vec<f64> = (0..400).map(|r| ((r * 37 % 101) as f64 / 100.0 - 0.5) * 0.04).collect();
        let reps: Vec<Vec<f64>> = [0.800, 0.801, 0.8005].iter().map(|v| images.iter().map(|d| v + d).collect()).collect();
        let seeds: Vec<Estimate> = reps.iter().map(|r| Estimate::of_seed(r[0] - images[0], r, None, PERCENT)).collect();
        let refs: Vec<&[f64]> = reps.iter().map(Vec::as_slice).collect();
        let agg = Estimate::aggregate(&seeds, &refs, PERCENT, 7);
        assert_eq!(agg.kind, IntervalKind::SeedsAndImages);
        let (lo, hi) = agg.interval.unwrap();
        let (tlo, thi) = t_interval(&[0.800, 0.801, 0.8005]);
        assert!(hi - lo > 0.03 && hi - lo > 5.0 * (thi - tlo), "[{lo}, {hi}] against t [{tlo}, {thi}]");
        // Replicate r by hand: the seeds drawn by stream r, their r-th replicates averaged.
        let two = two_level_bootstrap(&refs, 7).unwrap();
        for r in [0usize, 17, 399] {
            let mut stream = Stream::new(7 ^ 0x5EED_5EED_5EED_5EED, r as u64);
            let picks: Vec<usize> = (0..3).map(|_| stream.below(3)).collect();
            let want = picks.iter().map(|&i| reps[i][r]).sum::<f64>() / 3.0;
            assert!((two[r] - want).abs() < 1e-15);
        }
    }

    #[test]
    fn a_small_count_gets_the_exact_binomial_interval_not_only_at_the_ends() {
        // 1000 of 1000 OOD images accepted: Clopper-Pearson's (0.025^(1/1000), 1).
        let e = Estimate::of_seed(1.0, &[1.0; 50], Some(Exact::proportion(1.0, 1000)), PERCENT);
        assert_eq!(e.kind, IntervalKind::ExactBinomial);
        let (lo, hi) = e.interval.unwrap();
        assert!((lo - 0.025f64.powf(1.0 / 1000.0)).abs() < 1e-12 && hi == 1.0, "{lo} {hi}");
        // The audit's case: 1 of 1,000 (0.10%): the bootstrap said [0.00, 0.30]; exact (scipy
        // beta.ppf(0.025, 1, 1000), beta.ppf(0.975, 2, 999)): [0.0000253, 0.00556].
        let one = Estimate::of_seed(0.001, &[0.0, 0.001, 0.002, 0.003], Some(Exact::proportion(0.001, 1000)), PERCENT);
        assert_eq!(one.kind, IntervalKind::ExactBinomial);
        let (lo, hi) = one.interval.unwrap();
        assert!((lo - 2.5317e-5).abs() < 1e-8 && (hi - 0.0055589).abs() < 1e-6, "{lo} {hi}");
        // 998 of 1000 is small on the other side; 500 of 1000 is not.
        assert_eq!(Estimate::of_seed(0.998, &[0.99, 1.0], Some(Exact::proportion(0.998, 1000)), PERCENT).kind, IntervalKind::ExactBinomial);
        assert_eq!(Estimate::of_seed(0.5, &[0.4, 0.6], Some(Exact::proportion(0.5, 1000)), PERCENT).kind, IntervalKind::Bootstrap);
        // The detection error through its FPR's count: 0.5 (1 - 0.95) + 0.5 * 1/1000.
        let de = Exact { k: 1, n: 1000, scale: 0.5, offset: 0.025 };
        let e = Estimate::of_seed(0.0255, &[0.025, 0.0255], Some(de), (0.025, 0.525));
        let (lo, hi) = e.interval.unwrap();
        assert!((lo - (0.025 + 0.5 * 2.5317e-5)).abs() < 1e-8 && (hi - (0.025 + 0.5 * 0.0055589)).abs() < 1e-6);
        // No bootstrap at all: no interval.
        assert_eq!(Estimate::of_seed(1.0, &[], Some(Exact::proportion(1.0, 1000)), PERCENT).kind, IntervalKind::None);
    }

    #[test]
    fn every_interval_stays_within_what_its_quantity_can_be() {
        // A detection error's bootstrap interval reaching below 2.5% is cut there.
        let e = Estimate::of_seed(0.03, &[0.02, 0.024, 0.03, 0.035, 0.04], None, (0.025, 0.525));
        assert_eq!(e.interval.unwrap().0, 0.025);
        assert_eq!(e.cut, (true, false));
        // Never cut inside its own estimate: a detection error of 2.4% (TPR above 95%) is cut at 2.4%.
        let e = Estimate::of_seed(0.024, &[0.023, 0.024, 0.026], None, (0.025, 0.525));
        assert_eq!(e.interval.unwrap().0, 0.024);
        // Seeds that disagree widely: cut at [0, 1] and marked.
        let seeds = [0.378, 0.893, 0.97].map(|v| Estimate::of_seed(v, &[], None, PERCENT));
        let agg = Estimate::aggregate(&seeds, &[&[], &[], &[]], PERCENT, 0).scaled(100.0);
        assert_eq!(agg.interval.unwrap(), (0.0, 100.0));
        let (text, cut) = agg.cell();
        assert_eq!(text, "74.70 [0.00†, 100.00†] (seeds 37.80–97.00)");
        assert!(cut);
        assert_eq!(clip((-5.0, 120.0), 50.0, (0.0, 100.0)), ((0.0, 100.0), (true, true)));
        assert_eq!(clip((1.0, 2.0), 1.5, (0.0, 100.0)), ((1.0, 2.0), (false, false)));
    }

    #[test]
    fn cells_show_bounds_where_the_interval_is_not_symmetric_and_never_plus_minus_zero() {
        assert_eq!(est(82.52, (81.79, 83.25)).cell().0, "82.52 ± 0.73");
        assert_eq!(est(82.52, (81.79, 83.27)).cell().0, "82.52 [81.79, 83.27]");
        // The audit's case: 100.00 with [99.70, 100.00] read as 100.00 ± 0.15.
        assert_eq!(est(100.0, (99.70, 100.0)).cell().0, "100.00 [99.70, 100.00]");
        assert_eq!(Estimate { interval: None, ..est(5.0, (0.0, 0.0)) }.cell().0, "5.00");
        // The audit's "99.98 ± 0.00": a real, narrow interval shows its size.
        assert_eq!(est(99.98, (99.976, 99.984)).cell().0, "99.98 ± 0.004");
        assert_eq!(est(50.0, (50.0, 50.0)).cell().0, "50.00 ± 0");
        assert_eq!(half_width(0.0004), "0.0004");
    }
}
