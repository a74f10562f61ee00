//! Tests of differences: is a change, or a gap between two methods, larger than its noise?
//!
//! The report's claims (`claims.md`) and `oodpipe diff` both ask whether a difference is real,
//! each with the test that fits what varies between its two sides:
//! - the same trained networks on both sides: the **paired bootstrap** over the test images, each
//!   replicate resampling the same images for both sides ([`Difference::paired_bootstrap`]);
//! - the same seeds on both sides (two detectors or two models of one run): the **paired t** test
//!   of the per-seed differences ([`Difference::paired_t`]);
//! - independent runs with several seeds each: **Welch's t** test ([`Difference::welch`]);
//! - one seed against several: the **prediction t** test of one new observation against a sample
//!   ([`Difference::prediction_t`]).
//!
//! A [`Difference`] knows its estimate and its noise (bootstrap replicates, or a t distribution),
//! and from them its 95% interval, the two-sided p-value of "no difference" and the one-sided
//! p-values behind an equivalence test (TOST). Many tests at once are corrected with
//! [`benjamini_yekutieli`], [`benjamini_hochberg`] or [`holm`] before a verdict is drawn. Student's t and the beta
//! distribution come from `statrs`, a maintained statistics crate, not from a table.

use crate::interval::{LEVEL, mean_std, percentile_interval};
use statrs::distribution::{Beta, ContinuousCDF, StudentsT};

fn students_t(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("Student's t needs positive degrees of freedom")
}

/// The `p`-quantile of Student's t with `df` degrees of freedom (any df > 0, fractional too).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    students_t(df).inverse_cdf(p)
}

/// What is known of a difference's noise.
#[derive(Debug, Clone, PartialEq)]
pub enum Spread {
    /// Bootstrap replicates of the difference (each on the same resample for both sides).
    Replicates(Vec<f64>),
    /// A t distribution: standard error and degrees of freedom.
    T { se: f64, df: f64 },
}

/// A difference `a - b` and its noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub estimate: f64,
    pub spread: Spread,
}

impl Difference {
    /// The paired bootstrap: `point` is the difference on the full test sets, `replicates` the
    /// differences on the same resamples for both sides.
    pub fn paired_bootstrap(point: f64, replicates: Vec<f64>) -> Difference {
        assert!(!replicates.is_empty(), "a bootstrap of no replicates");
        Difference { estimate: point, spread: Spread::Replicates(replicates) }
    }

    /// Paired t: the per-seed differences `d` (at least two); mean(d), se = sd(d) / sqrt(n), n - 1 df.
    pub fn paired_t(d: &[f64]) -> Difference {
        let (mean, sd, n) = mean_std(d);
        assert!(n >= 2, "a paired t test needs at least two differences");
        Difference { estimate: mean, spread: Spread::T { se: sd / (n as f64).sqrt(), df: (n - 1) as f64 } }
    }

    /// Welch's unequal-variance t test of mean(a) - mean(b) (each at least two values), with
    /// the Welch-Satterthwaite degrees of freedom.
    pub fn welch(a: &[f64], b: &[f64]) -> Difference {
        let (ma, sa, na) = mean_std(a);
        let (mb, sb, nb) = mean_std(b);
        assert!(na >= 2 && nb >= 2, "Welch's test needs at least two values a side");
        let (va, vb) = (sa * sa / na as f64, sb * sb / nb as f64);
        let se = (va + vb).sqrt();
        let df = if se > 0.0 { (va + vb).powi(2) / (va * va / (na - 1) as f64 + vb * vb / (nb - 1) as f64) } else { (na + nb - 2) as f64 };
        Difference { estimate: ma - mb, spread: Spread::T { se, df } }
    }

    /// One new value `x` against a sample `b` (at least two) from the same distribution:
    /// `x - mean(b)` with se = sd(b) sqrt(1 + 1/n) and n - 1 degrees of freedom (the prediction
    /// interval's test).
    pub fn prediction_t(x: f64, b: &[f64]) -> Difference {
        let (mb, sb, nb) = mean_std(b);
        assert!(nb >= 2, "a prediction t test needs at least two values");
        Difference { estimate: x - mb, spread: Spread::T { se: sb * (1.0 + 1.0 / nb as f64).sqrt(), df: (nb - 1) as f64 } }
    }

    /// The 95% interval: the percentile interval of the replicates, or estimate +- t(0.975, df) se.
    pub fn interval(&self) -> (f64, f64) {
        match &self.spread {
            Spread::Replicates(r) => percentile_interval(r, LEVEL),
            Spread::T { se, df } => {
                let half = t_quantile((1.0 + LEVEL) / 2.0, *df) * se;
                (self.estimate - half, self.estimate + half)
            }
        }
    }

    /// The one-sided p-value of "the difference is at most `c`" against "it is above `c`".
    /// Bootstrap: `(#{d* <= c} + 1) / (B + 1)`, never 0. t: `P(T >= (estimate - c) / se)`; with
    /// se = 0 (no noise seen at all), 0 when the estimate is above `c` and 1 otherwise.
    pub fn p_above(&self, c: f64) -> f64 {
        match &self.spread {
            Spread::Replicates(r) => ((r.iter().filter(|&&d| d <= c).count() + 1) as f64 / (r.len() + 1) as f64).min(1.0),
            Spread::T { se, df } if *se > 0.0 => students_t(*df).sf((self.estimate - c) / se),
            Spread::T { .. } => f64::from(u8::from(self.estimate <= c)),
        }
    }

    /// The one-sided p-value of "the difference is at least `c`" against "it is below `c`".
    pub fn p_below(&self, c: f64) -> f64 {
        match &self.spread {
            Spread::Replicates(r) => ((r.iter().filter(|&&d| d >= c).count() + 1) as f64 / (r.len() + 1) as f64).min(1.0),
            Spread::T { se, df } if *se > 0.0 => students_t(*df).cdf((self.estimate - c) / se),
            Spread::T { .. } => f64::from(u8::from(self.estimate >= c)),
        }
    }

    /// The two-sided p-value of "no difference": `min(1, 2 min(p_above(0), p_below(0)))` (for a
    /// t test, the usual `P(|T| >= |t|)`).
    pub fn p_two_sided(&self) -> f64 {
        (2.0 * self.p_above(0.0).min(self.p_below(0.0))).min(1.0)
    }

    /// The p-value of equivalence within `margin` (two one-sided tests, TOST): small when the
    /// difference is shown to lie inside (-margin, margin).
    pub fn p_equivalent(&self, margin: f64) -> f64 {
        self.p_above(-margin).max(self.p_below(margin))
    }

    /// The smallest margin equivalence could be shown within at level `alpha` (the TOST
    /// p-value at most `alpha`): what a `~` claim would need at this noise. t: `|estimate| +
    /// t(1 - alpha, df) se` (where the TOST p equals alpha). Bootstrap: every margin above the
    /// bound passes (the count of replicates beyond it on either side is small enough), none at
    /// or below it; None when no margin can pass (too few replicates for `alpha`).
    pub fn equivalence_bound(&self, alpha: f64) -> Option<f64> {
        match &self.spread {
            Spread::T { se, df } => Some(self.estimate.abs() + t_quantile(1.0 - alpha, *df) * se),
            Spread::Replicates(r) => {
                // p_above(-m) = (#{d <= -m} + 1) / (B + 1) <= alpha needs #{d <= -m} <= k.
                let k = (alpha * (r.len() + 1) as f64).floor() as i64 - 1;
                if k < 0 || k as usize >= r.len() {
                    return None;
                }
                let mut sorted = r.clone();
                sorted.sort_unstable_by(f64::total_cmp);
                let k = k as usize;
                Some((-sorted[k]).max(sorted[sorted.len() - 1 - k]))
            }
        }
    }
}

/// The exact (Clopper-Pearson) 95% interval of a proportion with `k` successes of `n`: the
/// 0.025 quantile of Beta(k, n - k + 1) and the 0.975 quantile of Beta(k + 1, n - k), with 0 and
/// 1 at the ends.
pub fn clopper_pearson(k: u64, n: u64) -> (f64, f64) {
    assert!(n > 0 && k <= n, "a proportion of {k} in {n}");
    let alpha = 1.0 - LEVEL;
    let (kf, nf) = (k as f64, n as f64);
    let lo = if k == 0 { 0.0 } else { Beta::new(kf, nf - kf + 1.0).expect("beta shape").inverse_cdf(alpha / 2.0) };
    let hi = if k == n { 1.0 } else { Beta::new(kf + 1.0, nf - kf).expect("beta shape").inverse_cdf(1.0 - alpha / 2.0) };
    (lo, hi)
}

/// Benjamini-Hochberg adjusted p-values (the step-up false discovery rate procedure), in the
/// input's order: `p_(i) m / i` made monotone from the largest down, capped at 1. The tests whose
/// adjusted p is at most q are the discoveries at false discovery rate q.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

/// Benjamini-Yekutieli adjusted p-values: Benjamini-Hochberg's times `c(m) = 1 + 1/2 + ... + 1/m`
/// (capped at 1), which keeps the false discovery rate under any dependence between the tests
/// (Benjamini and Yekutieli 2001, theorem 1.3), where Benjamini-Hochberg needs positive
/// regression dependence. statsmodels' `multipletests(method="fdr_by")`.
pub fn benjamini_yekutieli(p: &[f64]) -> Vec<f64> {
    let c: f64 = (1..=p.len()).map(|i| 1.0 / i as f64).sum();
    benjamini_hochberg(&p.iter().map(|&x| x * c).collect::<Vec<_>>())
}

/// Holm's step-down adjusted p-values (family-wise error), in the input's order:
/// `max_{j <= i} (m - j + 1) p_(j)`, capped at 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(p[i] * (m - rank) as f64);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}
