//! The paper's claims, checked on the run's own numbers: `claims.md` and `claims.csv`.
//!
//! Each comparison of a claim (`odin > baseline_t` on AUROC, on one OOD set) is the *paired*
//! difference of the two sides, A minus B in points (percent), because both sides score the same
//! test images with networks of the same seeds:
//! - one seed: the paired bootstrap over the test images. The report's bootstrap draws the same
//!   resample indices for every detector on one OOD set (and for every model's accuracy), so
//!   replicate r of the difference is A's replicate r minus B's; the interval is the percentile
//!   interval of those differences and the p-value the two-sided percentile p
//!   (`oodpipe_metrics::significance::Difference::paired_bootstrap`). It covers the test images,
//!   not training noise.
//! - several seeds: the paired t test of the per-seed differences (mean +- t(0.975, n-1) sd /
//!   sqrt(n)), which covers training noise; each seed's paired bootstrap interval is listed beside.
//!
//! `a > b` is tested two-sided against "no difference"; `a ~ b` (within `margin` points) by two
//! one-sided tests (TOST) for "inside the margin" and a one-sided test for "beyond it" on the
//! estimate's side, its p-value twice the smaller of the two (one test, two possible verdicts).
//!
//! **The rule.** All p-values of the file are adjusted together with Benjamini-Hochberg, and a
//! comparison is *resolved* when its adjusted p is at most 0.05: it *holds* when the difference is
//! in the claimed direction (inside the margin for `~`) and is *reversed* otherwise; an unresolved
//! one is *not resolved at this noise*. Why Benjamini-Hochberg, not Holm: the file makes about a
//! hundred comparisons, and a family-wise guarantee (Holm) would ask of the smallest p-value less
//! than 0.05 / 100, which three seeds (a t test with 2 degrees of freedom) cannot reach for any
//! effect, however large and consistent: every verdict would read "not resolved" whatever the
//! data. The false discovery rate is what a reader of a list of verdicts wants bounded: among the
//! comparisons called resolved, at most 5% are expected to be wrong. The comparisons share test
//! images and networks, so their tests are positively dependent, under which Benjamini-Hochberg
//! keeps its guarantee (Benjamini and Yekutieli 2001).

use crate::report::{Key, Measured};
use oodpipe_metrics::significance::{Difference, benjamini_hochberg};
use oodpipe_plan::claims::{Claim, Comparison, Relation};
use oodpipe_plan::ids::CIFAR10;
use oodpipe_plan::metric::Metric;
use std::fmt::Write as _;

/// The false discovery rate of the verdicts.
pub const FDR: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    Reversed,
    NotResolved,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Reversed => "reversed",
            Verdict::NotResolved => "not resolved at this noise",
        }
    }
}

/// Which test a comparison used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    PairedBootstrap,
    PairedT,
}

impl Test {
    pub fn name(self) -> &'static str {
        match self {
            Test::PairedBootstrap => "paired bootstrap",
            Test::PairedT => "paired t",
        }
    }
}

/// One seed: the comparison's difference on it and that difference's paired bootstrap interval (points).
pub type SeedDifference = (u64, f64, Option<(f64, f64)>);

/// A tested comparison on one set and metric.
#[derive(Debug, Clone)]
pub struct Tested {
    pub test: Test,
    pub seeds: Vec<u64>,
    /// A - B in points, with its 95% interval.
    pub difference: f64,
    pub interval: (f64, f64),
    pub p: f64,
    /// Set after the correction across the file.
    pub p_adjusted: f64,
    pub verdict: Verdict,
    /// With several seeds: each seed's difference and paired bootstrap interval (points).
    pub per_seed: Vec<SeedDifference>,
    /// `~` only: whether the equivalence side (not the "beyond the margin" side) is the smaller p.
    equivalence_side: bool,
}

/// One comparison of one claim on one set and metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub claim: usize,
    pub comparison: Comparison,
    /// The OOD set's label, or CIFAR-10 for accuracy.
    pub set: String,
    pub metric: Metric,
    /// The tables' labels of the two sides.
    pub labels: (String, String),
    /// None: a side was not run (the reason).
    pub outcome: Result<Tested, String>,
}

/// Every claim's rows.
pub struct Checked<'a> {
    pub claims: &'a [Claim],
    pub rows: Vec<Row>,
}

fn find<'v>(values: &'v [(Key, Vec<(u64, Measured)>)], set: &str, side: &str, metric: Metric) -> Option<&'v (Key, Vec<(u64, Measured)>)> {
    values.iter().find(|(k, _)| k.set == set && k.side == side && k.metric == metric)
}

/// The paired test of A minus B (per-seed measurements, fractions), in points.
fn test(a: &[(u64, Measured)], b: &[(u64, Measured)], relation: Relation, margin: f64) -> Result<Tested, String> {
    let pairs: Vec<(u64, &Measured, &Measured)> =
        a.iter().filter_map(|(s, ma)| b.iter().find(|(t, _)| t == s).map(|(_, mb)| (*s, ma, mb))).collect();
    let bootstrap = |ma: &Measured, mb: &Measured| {
        (!ma.replicates.is_empty() && ma.replicates.len() == mb.replicates.len()).then(|| {
            let reps = ma.replicates.iter().zip(&mb.replicates).map(|(x, y)| 100.0 * (x - y)).collect();
            Difference::paired_bootstrap(100.0 * (ma.value - mb.value), reps)
        })
    };
    let (test, difference, per_seed) = match pairs.as_slice() {
        [] => return Err("no seed has both sides".into()),
        [(_, ma, mb)] => match bootstrap(ma, mb) {
            Some(d) => (Test::PairedBootstrap, d, Vec::new()),
            None => return Err("one seed and no bootstrap (report.bootstrap = 0): no noise measured".into()),
        },
        many => {
            let d: Vec<f64> = many.iter().map(|(_, ma, mb)| 100.0 * (ma.value - mb.value)).collect();
            let per_seed = many.iter().zip(&d).map(|((s, ma, mb), &x)| (*s, x, bootstrap(ma, mb).map(|b| b.interval()))).collect();
            (Test::PairedT, Difference::paired_t(&d), per_seed)
        }
    };
    let (p, equivalence_side) = match relation {
        Relation::Better => (difference.p_two_sided(), false),
        Relation::Equivalent => {
            let inside = difference.p_equivalent(margin);
            let beyond = if difference.estimate >= 0.0 { difference.p_above(margin) } else { difference.p_below(-margin) };
            ((2.0 * inside.min(beyond)).min(1.0), inside <= beyond)
        }
    };
    Ok(Tested {
        test,
        seeds: pairs.iter().map(|p| p.0).collect(),
        difference: difference.estimate,
        interval: difference.interval(),
        p,
        p_adjusted: p,
        verdict: Verdict::NotResolved,
        per_seed,
        equivalence_side,
    })
}

/// Tests every comparison of `claims` on `values` (the report's measurements), for the OOD sets
/// `sets` (name, label) of the run, and draws the verdicts by the module doc's rule.
pub fn check<'a>(claims: &'a [Claim], values: &[(Key, Vec<(u64, Measured)>)], sets: &[(String, String)]) -> Checked<'a> {
    let mut rows = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        let on: Vec<(String, String)> = if claim.metrics.contains(&Metric::Accuracy) {
            vec![(CIFAR10.to_string(), crate::report::IN_DISTRIBUTION.to_string())]
        } else {
            match &claim.sets {
                None => sets.to_vec(),
                Some(names) => {
                    names.iter().map(|n| sets.iter().find(|(s, _)| s == n).cloned().unwrap_or_else(|| (n.clone(), n.clone()))).collect()
                }
            }
        };
        for comparison in &claim.comparisons {
            for (set, set_label) in &on {
                for &metric in &claim.metrics {
                    let (a, b) = (find(values, set, &comparison.a, metric), find(values, set, &comparison.b, metric));
                    let label =
                        |side: Option<&(Key, _)>, name: &str| side.map(|(k, _)| k.method.clone()).unwrap_or_else(|| name.to_string());
                    let outcome = match (a, b) {
                        (Some((_, a)), Some((_, b))) => test(a, b, comparison.relation, claim.margin.unwrap_or(0.0)),
                        _ if !sets.iter().any(|(s, _)| s == set) && set != CIFAR10 => Err(format!("the run has no OOD set `{set}`")),
                        (None, _) => Err(format!("`{}` was not run", comparison.a)),
                        (_, None) => Err(format!("`{}` was not run", comparison.b)),
                    };
                    rows.push(Row {
                        claim: i,
                        comparison: comparison.clone(),
                        set: set_label.clone(),
                        metric,
                        labels: (label(a, &comparison.a), label(b, &comparison.b)),
                        outcome,
                    });
                }
            }
        }
    }
    // One correction across the file, then the verdicts.
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].outcome.is_ok()).collect();
    let ps: Vec<f64> = tested.iter().map(|&i| rows[i].outcome.as_ref().map(|t| t.p).unwrap_or(1.0)).collect();
    for (&i, adjusted) in tested.iter().zip(benjamini_hochberg(&ps)) {
        let metric = rows[i].metric;
        let relation = rows[i].comparison.relation;
        if let Ok(t) = &mut rows[i].outcome {
            t.p_adjusted = adjusted;
            t.verdict = if adjusted > FDR {
                Verdict::NotResolved
            } else {
                let claimed = match relation {
                    Relation::Better => (t.difference > 0.0) == metric.higher_is_better(),
                    Relation::Equivalent => t.equivalence_side,
                };
                if claimed { Verdict::Holds } else { Verdict::Reversed }
            };
        }
    }
    Checked { claims, rows }
}

fn points(x: f64) -> String {
    format!("{x:+.2}")
}

/// A p-value in a few significant digits.
fn p_text(p: f64) -> String {
    if p < 1e-4 { format!("{p:.1e}") } else { format!("{p:.4}") }
}

impl Checked<'_> {
    /// A claim's verdict from its rows: holds (every tested comparison holds), reversed (every one
    /// reversed), not resolved (none resolved), or mixed with the counts.
    fn summary(&self, claim: usize) -> String {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.claim == claim).collect();
        let count = |v: Verdict| rows.iter().filter(|r| r.outcome.as_ref().is_ok_and(|t| t.verdict == v)).count();
        let tested = rows.iter().filter(|r| r.outcome.is_ok()).count();
        let (holds, reversed, open) = (count(Verdict::Holds), count(Verdict::Reversed), count(Verdict::NotResolved));
        let verdict = if tested == 0 {
            "not tested (not run)".to_string()
        } else if holds == tested {
            "**holds**".to_string()
        } else if reversed == tested {
            "**reversed**".to_string()
        } else if open == tested {
            "**not resolved at this noise**".to_string()
        } else {
            "**mixed**".to_string()
        };
        format!("{verdict}: {holds} of {tested} comparisons hold, {reversed} reversed, {open} not resolved")
    }

    /// `claims.md`.
    pub fn markdown(&self, seeds: usize) -> String {
        let tested = self.rows.iter().filter(|r| r.outcome.is_ok()).count();
        let mut md = String::from("# The paper's claims, checked\n\n");
        writeln!(
            md,
            "Each claim of the paper's Section 6 (`configs/claims.toml`) and the comparisons that test it. A \
             difference is A minus B in points; for FPR at 95% TPR and detection error lower is better, so a claim \
             that A is better expects a negative difference there. {}\n\n\
             **Verdicts.** The {tested} p-values of this file are adjusted together (Benjamini-Hochberg); a \
             comparison whose adjusted p is at most {FDR} *holds* when its difference is in the claimed direction \
             (inside the margin, for `~`) and is *reversed* otherwise; above {FDR} it is *not resolved at this \
             noise*. At most {:.0}% of the resolved verdicts are expected to be wrong. `claims.csv` has every \
             number; the README of the repository (\"Claims\") says why this rule.\n",
            if seeds >= 2 {
                format!(
                    "With {seeds} training seeds, each comparison is the paired t test of the per-seed differences \
                     (its 95% interval: mean ± t(0.975, {}) × sd / √{seeds}), which covers training noise; each \
                     seed's paired bootstrap interval over the test images is listed beside it.",
                    seeds - 1
                )
            } else {
                "With one training seed, each comparison is the paired bootstrap over the test images (both sides \
                 resampled on the same images, 95% percentile interval, two-sided percentile p); it covers the test \
                 images but not training noise: a verdict here is about these trained networks, not the methods. Run \
                 several seeds (`train.seeds`) for that."
                    .to_string()
            },
            100.0 * FDR
        )
        .unwrap();
        md.push_str("| # | Claim | Verdict |\n|---:|---|---|\n");
        for (i, claim) in self.claims.iter().enumerate() {
            writeln!(md, "| {} | {} | {} |", i + 1, claim.paper, self.summary(i)).unwrap();
        }
        md.push('\n');
        for (i, claim) in self.claims.iter().enumerate() {
            writeln!(md, "## {}. \"{}\"\n\n{}.\n", i + 1, claim.paper, self.summary(i)).unwrap();
            if let Some(m) = claim.margin {
                writeln!(md, "`~` means within ±{m} points.\n").unwrap();
            }
            md.push_str("| Comparison | Set | Metric | A − B [95% interval] | Test | p | adjusted p | Verdict |");
            let with_seeds = self.rows.iter().any(|r| r.claim == i && r.outcome.as_ref().is_ok_and(|t| !t.per_seed.is_empty()));
            if with_seeds {
                md.push_str(" Per seed: A − B [paired bootstrap] |");
            }
            md.push_str("\n|---|---|---|---:|---|---:|---:|---|");
            if with_seeds {
                md.push_str("---|");
            }
            md.push('\n');
            for r in self.rows.iter().filter(|r| r.claim == i) {
                let op = if r.comparison.relation == Relation::Better { ">" } else { "~" };
                write!(md, "| {} {op} {} | {} | {} |", r.labels.0, r.labels.1, r.set, r.metric.name()).unwrap();
                match &r.outcome {
                    Ok(t) => {
                        write!(
                            md,
                            " {} [{}, {}] | {} | {} | {} | {} |",
                            points(t.difference),
                            points(t.interval.0),
                            points(t.interval.1),
                            t.test.name(),
                            p_text(t.p),
                            p_text(t.p_adjusted),
                            t.verdict.text()
                        )
                        .unwrap();
                        if with_seeds {
                            let cells: Vec<String> = t
                                .per_seed
                                .iter()
                                .map(|(s, d, ci)| match ci {
                                    Some((lo, hi)) => format!("{s}: {} [{}, {}]", points(*d), points(*lo), points(*hi)),
                                    None => format!("{s}: {}", points(*d)),
                                })
                                .collect();
                            write!(md, " {} |", cells.join("; ")).unwrap();
                        }
                    }
                    Err(why) => {
                        write!(md, " – | – | – | – | not tested: {why} |").unwrap();
                        if with_seeds {
                            md.push_str(" |");
                        }
                    }
                }
                md.push('\n');
            }
            md.push('\n');
        }
        md
    }

    /// `claims.csv`: one line per comparison, set and metric, with everything a verdict is drawn from.
    pub fn csv(&self) -> String {
        let mut out = String::from("claim,comparison,a,b,set,metric,test,seeds,difference,ci_low,ci_high,p,p_adjusted,verdict\n");
        let quote = |s: &str| if s.contains([',', '"']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
        for r in &self.rows {
            write!(
                out,
                "{},{},{},{},{},{},",
                r.claim + 1,
                quote(&r.comparison.to_string()),
                quote(&r.labels.0),
                quote(&r.labels.1),
                quote(&r.set),
                r.metric.name()
            )
            .unwrap();
            match &r.outcome {
                Ok(t) => {
                    let seeds: Vec<String> = t.seeds.iter().map(u64::to_string).collect();
                    writeln!(
                        out,
                        "{},{},{},{},{},{},{},{}",
                        t.test.name(),
                        seeds.join(" "),
                        t.difference,
                        t.interval.0,
                        t.interval.1,
                        t.p,
                        t.p_adjusted,
                        t.verdict.text()
                    )
                    .unwrap();
                }
                Err(why) => writeln!(out, ",,,,,,,{}", quote(&format!("not tested: {why}"))).unwrap(),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodpipe_plan::claims::Claim;

    fn key(set: &str, side: &str, metric: Metric) -> Key {
        Key { set: set.into(), set_label: set.to_uppercase(), side: side.into(), method: side.to_uppercase(), metric }
    }

    fn measured(value: f64, replicates: Vec<f64>) -> Measured {
        Measured { value, replicates, count: None }
    }

    fn claim(compare: &str, metric: Metric, margin: Option<f64>) -> Claim {
        let relation = if compare.contains('~') { Relation::Equivalent } else { Relation::Better };
        let parts: Vec<&str> = compare.split_whitespace().collect();
        Claim {
            paper: compare.into(),
            comparisons: vec![Comparison { a: parts[0].into(), b: parts[2].into(), relation }],
            metrics: vec![metric],
            sets: None,
            margin,
        }
    }

    #[test]
    fn one_seed_uses_the_paired_bootstrap_and_lower_fpr_is_better() {
        // FPR: A lower than B on every replicate: A is better, the claim `a > b` holds.
        let a: Vec<f64> = (0..99).map(|r| 0.20 + r as f64 * 1e-4).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.05).collect();
        let values = vec![
            (key("g", "a", Metric::FprAt95Tpr), vec![(0, measured(0.2, a.clone()))]),
            (key("g", "b", Metric::FprAt95Tpr), vec![(0, measured(0.25, b.clone()))]),
        ];
        let claims = [claim("a > b", Metric::FprAt95Tpr, None), claim("b > a", Metric::FprAt95Tpr, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())]);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!(t.test, Test::PairedBootstrap);
        assert!((t.difference - (-5.0)).abs() < 1e-12, "{}", t.difference);
        // Every replicate difference is -5 points: the smallest two-sided p, 2 / (99 + 1).
        assert!((t.p - 0.02).abs() < 1e-12, "{}", t.p);
        assert_eq!(t.verdict, Verdict::Holds);
        assert_eq!(checked.rows[1].outcome.as_ref().unwrap().verdict, Verdict::Reversed);
    }

    #[test]
    fn several_seeds_use_the_paired_t_and_the_file_is_corrected_with_benjamini_hochberg() {
        // Accuracies of three seeds: A - B = 1.5, 2.5, 0.7 points (scipy: ttest_1samp p = 0.09498).
        let a = vec![(0, measured(0.815, vec![])), (1, measured(0.825, vec![])), (2, measured(0.807, vec![]))];
        let b = vec![(0, measured(0.80, vec![])), (1, measured(0.80, vec![])), (2, measured(0.80, vec![]))];
        let values = vec![(key(CIFAR10, "a", Metric::Accuracy), a), (key(CIFAR10, "b", Metric::Accuracy), b)];
        let claims = [claim("a > b", Metric::Accuracy, None), claim("a ~ b", Metric::Accuracy, Some(5.0))];
        let checked = check(&claims, &values, &[]);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!((t.test, t.seeds.clone()), (Test::PairedT, vec![0, 1, 2]));
        let by_hand = {
            let d = [1.5f64, 2.5, 0.7];
            let mean = d.iter().sum::<f64>() / 3.0;
            let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
            (mean, mean / (sd / 3f64.sqrt()))
        };
        assert!((t.difference - by_hand.0).abs() < 1e-9);
        // scipy.stats.ttest_1samp([1.5, 2.5, 0.7], 0).pvalue
        assert!((t.p - 0.09498165055670318).abs() < 1e-9, "t = {}, p = {}", by_hand.1, t.p);
        assert_eq!(t.verdict, Verdict::NotResolved);
        // Within 5 points: TOST, p = 2 min(inside, beyond); resolved as equivalent.
        let e = checked.rows[1].outcome.as_ref().unwrap();
        assert_eq!(e.verdict, Verdict::Holds, "{e:?}");
        // Benjamini-Hochberg across the two tested comparisons.
        let adjusted = benjamini_hochberg(&[t.p, e.p]);
        assert_eq!((t.p_adjusted, e.p_adjusted), (adjusted[0], adjusted[1]));
        assert!(checked.markdown(3).contains("paired t"));
        assert!(checked.csv().lines().nth(1).unwrap().starts_with("1,a > b,A,B,CIFAR-10,accuracy,paired t,0 1 2,"));
    }

    #[test]
    fn a_side_that_did_not_run_is_listed_not_tested() {
        let values = vec![(key("g", "a", Metric::Auroc), vec![(0, measured(0.9, vec![0.9; 10]))])];
        let claims = [claim("a > b", Metric::Auroc, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())]);
        assert_eq!(checked.rows[0].outcome.as_ref().unwrap_err(), "`b` was not run");
        assert!(checked.markdown(1).contains("not tested (not run)"));
    }
}
