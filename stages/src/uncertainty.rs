//! Error bars: each metric's value per training seed with its bootstrap interval over the test
//! images, and the aggregate over seeds with its interval.
//!
//! - Per seed: the point estimate and the 95% percentile interval of `report.bootstrap`
//!   replicates that resample the in-distribution and the OOD test scores separately, with
//!   replacement (`oodpipe_metrics::bootstrap`). It measures how much the number depends on which
//!   test images were drawn, for that one trained network.
//! - Aggregate (`seed = "all"`): with n >= 2 seeds, the mean, the sample standard deviation and
//!   Student's t 95% interval of the mean (mean +- t(0.975, n-1) std / sqrt(n)): how much the
//!   number depends on training. With one seed, that seed's value and bootstrap interval.
//!
//! Pure numbers in, rows out; no tensors, so the rules are tested on their own.

use oodpipe_metrics::interval::{mean_std, percentile_interval, t_interval};

/// The interval level of every interval here.
pub const LEVEL: f64 = 0.95;

/// Which interval a row's bounds are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// Percentile bootstrap over the test images (one trained network).
    Bootstrap,
    /// Student's t interval of the mean over training seeds.
    Seeds,
    /// No interval (the bootstrap is off and there is one seed).
    None,
}

impl IntervalKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Seeds => "seeds",
            Self::None => "",
        }
    }
}

/// One number with its interval: a seed's, or the aggregate over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    pub kind: IntervalKind,
    /// Across seeds (aggregates of two or more seeds only).
    pub std: Option<f64>,
    /// Seeds behind the number.
    pub n: usize,
}

impl Estimate {
    /// One seed's value with the percentile interval of its bootstrap replicates (none when empty).
    pub fn of_seed(value: f64, replicates: &[f64]) -> Estimate {
        let interval = (!replicates.is_empty()).then(|| percentile_interval(replicates, LEVEL));
        let kind = if interval.is_some() { IntervalKind::Bootstrap } else { IntervalKind::None };
        Estimate { value, interval, kind, std: None, n: 1 }
    }

    /// The aggregate of the seeds' estimates (in seed order): see the module doc.
    pub fn aggregate(seeds: &[Estimate]) -> Estimate {
        assert!(!seeds.is_empty(), "an aggregate of no seeds");
        if seeds.len() == 1 {
            return seeds[0].clone();
        }
        let values: Vec<f64> = seeds.iter().map(|e| e.value).collect();
        let (mean, std, n) = mean_std(&values);
        Estimate { value: mean, interval: Some(t_interval(&values)), kind: IntervalKind::Seeds, std: Some(std), n }
    }

    /// Half the interval's width (the `±` of the tables).
    pub fn half_width(&self) -> Option<f64> {
        self.interval.map(|(lo, hi)| (hi - lo) / 2.0)
    }

    /// Scaled (fractions to percent).
    pub fn scaled(&self, k: f64) -> Estimate {
        Estimate {
            value: self.value * k,
            interval: self.interval.map(|(lo, hi)| (lo * k, hi * k)),
            std: self.std.map(|s| s * k),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_is_its_own_aggregate_and_several_give_a_t_interval() {
        let one = Estimate::of_seed(0.8, &[0.78, 0.79, 0.8, 0.81, 0.82]);
        assert_eq!(one.kind, IntervalKind::Bootstrap);
        assert_eq!(Estimate::aggregate(std::slice::from_ref(&one)), one);
        let seeds = [Estimate::of_seed(1.0, &[]), Estimate::of_seed(2.0, &[]), Estimate::of_seed(3.0, &[])];
        let agg = Estimate::aggregate(&seeds);
        assert_eq!((agg.value, agg.std, agg.n, agg.kind), (2.0, Some(1.0), 3, IntervalKind::Seeds));
        let half = agg.half_width().unwrap();
        assert!((half - 4.303 / 3f64.sqrt()).abs() < 1e-12, "{half}");
        let pct = agg.scaled(100.0);
        assert_eq!((pct.value, pct.std), (200.0, Some(100.0)));
    }
}
