//! The paper's claims, checked on the run's own numbers: `claims.md` and `claims.csv`.
//!
//! A claim is a passage of the paper in parts, one per thing it says (`configs/claims.toml`); a
//! part is tested by comparisons (`odin > baseline_t` on AUROC, on one OOD set), or says why it
//! is not. Each comparison is the *paired* difference of its two sides, A minus B in points
//! (percent): both sides score the same test images, and every model of a seed starts from the
//! same initial weights and sees the same batches (one `train.seed`), so differences between
//! models move together across seeds.
//! - one seed: the paired bootstrap over the test images. The report's bootstrap draws the same
//!   resample indices for every detector on one OOD set (and for every model's accuracy), so
//!   replicate r of the difference is A's replicate r minus B's; the interval is the percentile
//!   interval of those differences and the p-value the two-sided percentile p
//!   (`oodpipe_metrics::significance::Difference::paired_bootstrap`), which cannot go below
//!   2 / (B + 1): a p at that floor is printed as `≤ 0.0020 (B = 1000)`, and a verdict the floor
//!   decides (such a p not resolved after the correction) says so. It covers the test images, not
//!   training noise.
//! - several seeds: the paired t test of the per-seed differences (mean +- t(0.975, n-1) sd /
//!   sqrt(n)), which covers training noise but not the noise of the one test set every seed
//!   shares; beside it the two-level bootstrap (replicate r draws the seeds with replacement and
//!   averages their differences on resample r of the images), which covers both. The verdict
//!   takes the larger of the two p-values: both must resolve it. Each seed's paired bootstrap
//!   interval is listed too.
//!
//! `a > b` is tested two-sided against "no difference"; `a ~ b` (within `margin` points) by two
//! one-sided tests (TOST) for "inside the margin" and a one-sided test for "beyond it" on the
//! estimate's side, its p-value twice the smaller of the two (one test, two possible verdicts).
//! Beside a `~` comparison: the smallest margin the data could confirm (TOST at 0.05 before the
//! correction), so that "not resolved" says what would resolve it.
//!
//! **The rule.** All p-values of the file are adjusted together with Benjamini-Yekutieli, which
//! bounds the false discovery rate under any dependence between the tests (comparisons sharing a
//! method on opposite sides are not positively dependent, which Benjamini-Hochberg would need);
//! a comparison that appears in two claims is one test. A comparison is *resolved* when its
//! adjusted p is at most 0.05: it *holds* when the difference is in the claimed direction (inside
//! the margin for `~`) and is *reversed* otherwise; an unresolved one is *not resolved at this
//! noise*. Every interval lies within what a difference of the metric can be (±100 points; the
//! detection error ±50). A claim *holds* only when every part is tested and every comparison of
//! it holds.

use crate::report::{Key, Measured};
use oodpipe_metrics::significance::{Difference, benjamini_yekutieli};
use oodpipe_plan::claims::{Claim, Comparison, Part, Relation};
use oodpipe_plan::ids::CIFAR10;
use oodpipe_plan::metric::Metric;
use std::fmt::Write as _;

/// The false discovery rate of the verdicts.
pub const FDR: f64 = 0.05;

/// The level of the equivalence bound printed beside a `~` comparison.
pub const EQUIVALENCE_LEVEL: f64 = 0.05;

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
            Test::PairedT => "paired t and two-level bootstrap",
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
    /// A - B in points, with its 95% interval (within what a difference of the metric can be).
    pub difference: f64,
    pub interval: (f64, f64),
    /// The p-value the verdict uses (several seeds: the larger of the paired t's and the
    /// two-level bootstrap's).
    pub p: f64,
    /// Set after the correction across the file.
    pub p_adjusted: f64,
    pub verdict: Verdict,
    /// The bootstrap's resamples when `p` is at its floor, 2 / (B + 1).
    pub at_floor: Option<usize>,
    /// Several seeds: the two-level bootstrap's interval and p.
    pub two_level: Option<((f64, f64), f64)>,
    /// With several seeds: each seed's difference and paired bootstrap interval (points).
    pub per_seed: Vec<SeedDifference>,
    /// `~` only: the smallest margin equivalence could be shown within (points), if any.
    pub confirmable_margin: Option<f64>,
    /// `~` only: whether the equivalence side (not the "beyond the margin" side) is the smaller p.
    equivalence_side: bool,
    /// The row (index) whose test this one repeats: the same comparison in an earlier claim.
    pub same_as: Option<usize>,
}

/// One comparison of one part of a claim on one set and metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub claim: usize,
    pub part: usize,
    pub comparison: Comparison,
    pub margin: Option<f64>,
    /// The OOD set's label, or CIFAR-10 for accuracy.
    pub set: String,
    pub metric: Metric,
    /// The tables' labels of the two sides.
    pub labels: (String, String),
    /// Err: a side was not run (the reason).
    pub outcome: Result<Tested, String>,
}

/// Every claim's rows.
pub struct Checked<'a> {
    pub claims: &'a [Claim],
    pub rows: Vec<Row>,
    /// The bootstrap's resamples (0: none).
    pub resamples: usize,
}

fn find<'v>(values: &'v [(Key, Vec<(u64, Measured)>)], set: &str, side: &str, metric: Metric) -> Option<&'v (Key, Vec<(u64, Measured)>)> {
    values.iter().find(|(k, _)| k.set == set && k.side == side && k.metric == metric)
}

/// What a difference of `metric` can be, in points.
fn difference_bounds(metric: Metric) -> (f64, f64) {
    let (lo, hi) = metric.range();
    let width = 100.0 * (hi - lo);
    (-width, width)
}

fn clipped((lo, hi): (f64, f64), estimate: f64, metric: Metric) -> (f64, f64) {
    crate::uncertainty::clip((lo, hi), estimate, difference_bounds(metric)).0
}

/// The paired test of A minus B (per-seed measurements, fractions), in points.
fn test(
    a: &[(u64, Measured)],
    b: &[(u64, Measured)],
    relation: Relation,
    margin: f64,
    metric: Metric,
    seed: u64,
) -> Result<Tested, String> {
    let pairs: Vec<(u64, &Measured, &Measured)> =
        a.iter().filter_map(|(s, ma)| b.iter().find(|(t, _)| t == s).map(|(_, mb)| (*s, ma, mb))).collect();
    // Replicate r of the difference on one seed: A's replicate r minus B's (the same images).
    let replicates = |ma: &Measured, mb: &Measured| -> Option<Vec<f64>> {
        (!ma.replicates.is_empty() && ma.replicates.len() == mb.replicates.len())
            .then(|| ma.replicates.iter().zip(&mb.replicates).map(|(x, y)| 100.0 * (x - y)).collect())
    };
    let p_of = |d: &Difference| match relation {
        Relation::Better => (d.p_two_sided(), false),
        Relation::Equivalent => {
            let inside = d.p_equivalent(margin);
            let beyond = if d.estimate >= 0.0 { d.p_above(margin) } else { d.p_below(-margin) };
            ((2.0 * inside.min(beyond)).min(1.0), inside <= beyond)
        }
    };
    let (test, difference, per_seed, two_level) = match pairs.as_slice() {
        [] => return Err("no seed has both sides".into()),
        [(_, ma, mb)] => match replicates(ma, mb) {
            Some(reps) => (Test::PairedBootstrap, Difference::paired_bootstrap(100.0 * (ma.value - mb.value), reps), Vec::new(), None),
            None => return Err("one seed and no bootstrap (report.bootstrap = 0): no noise measured".into()),
        },
        many => {
            let d: Vec<f64> = many.iter().map(|(_, ma, mb)| 100.0 * (ma.value - mb.value)).collect();
            let reps: Vec<Option<Vec<f64>>> = many.iter().map(|(_, ma, mb)| replicates(ma, mb)).collect();
            let per_seed = many
                .iter()
                .zip(&d)
                .zip(&reps)
                .map(|(((s, _, _), &x), r)| (*s, x, r.clone().map(|r| Difference::paired_bootstrap(x, r).interval())))
                .collect();
            let refs: Option<Vec<&[f64]>> = reps.iter().map(|r| r.as_deref()).collect();
            let two_level = refs
                .and_then(|refs| crate::uncertainty::two_level_bootstrap(&refs, seed))
                .map(|r| Difference::paired_bootstrap(d.iter().sum::<f64>() / d.len() as f64, r));
            (Test::PairedT, Difference::paired_t(&d), per_seed, two_level)
        }
    };
    let (mut p, equivalence_side) = p_of(&difference);
    let two_level = two_level.map(|t| {
        let (tp, _) = p_of(&t);
        p = p.max(tp);
        (clipped(t.interval(), t.estimate, metric), tp)
    });
    let at_floor = match &difference.spread {
        oodpipe_metrics::significance::Spread::Replicates(r) if p <= 2.0 / (r.len() + 1) as f64 + 1e-15 => Some(r.len()),
        _ => None,
    };
    Ok(Tested {
        test,
        seeds: pairs.iter().map(|p| p.0).collect(),
        difference: difference.estimate,
        interval: clipped(difference.interval(), difference.estimate, metric),
        p,
        p_adjusted: p,
        verdict: Verdict::NotResolved,
        at_floor,
        two_level,
        per_seed,
        confirmable_margin: (relation == Relation::Equivalent).then(|| difference.equivalence_bound(EQUIVALENCE_LEVEL)).flatten(),
        equivalence_side,
        same_as: None,
    })
}

/// The OOD sets (name, label) a part is checked on.
fn sets_of(part: &Part, sets: &[(String, String)]) -> Vec<(String, String)> {
    if part.metrics.contains(&Metric::Accuracy) {
        return vec![(CIFAR10.to_string(), crate::report::IN_DISTRIBUTION.to_string())];
    }
    match &part.sets {
        None => sets.to_vec(),
        Some(names) => names.iter().map(|n| sets.iter().find(|(s, _)| s == n).cloned().unwrap_or_else(|| (n.clone(), n.clone()))).collect(),
    }
}

/// Tests every comparison of `claims` on `values` (the report's measurements), for the OOD sets
/// `sets` (name, label) of the run, and draws the verdicts by the module doc's rule. `resamples`
/// is the report's bootstrap size, `seed` seeds the two-level bootstrap's draws of seeds.
pub fn check<'a>(
    claims: &'a [Claim],
    values: &[(Key, Vec<(u64, Measured)>)],
    sets: &[(String, String)],
    resamples: usize,
    seed: u64,
) -> Checked<'a> {
    let mut rows: Vec<Row> = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        for (j, part) in claim.parts.iter().enumerate() {
            for comparison in &part.comparisons {
                for (set, set_label) in sets_of(part, sets) {
                    for &metric in &part.metrics {
                        let (a, b) = (find(values, &set, &comparison.a, metric), find(values, &set, &comparison.b, metric));
                        let label =
                            |side: Option<&(Key, _)>, name: &str| side.map(|(k, _)| k.method.clone()).unwrap_or_else(|| name.to_string());
                        // The same comparison in an earlier claim: one test, counted once.
                        let earlier = rows.iter().position(|r| {
                            r.comparison == *comparison && r.margin == part.margin && r.set == set_label && r.metric == metric
                        });
                        let outcome = match (earlier, a, b) {
                            (Some(e), _, _) => rows[e].outcome.clone().map(|t| Tested { same_as: Some(e), ..t }),
                            (None, Some((_, a)), Some((_, b))) => test(a, b, comparison.relation, part.margin.unwrap_or(0.0), metric, seed),
                            _ if !sets.iter().any(|(s, _)| *s == set) && set != CIFAR10 => Err(format!("the run has no OOD set `{set}`")),
                            (None, None, _) => Err(format!("`{}` was not run", comparison.a)),
                            (None, _, None) => Err(format!("`{}` was not run", comparison.b)),
                        };
                        rows.push(Row {
                            claim: i,
                            part: j,
                            comparison: comparison.clone(),
                            margin: part.margin,
                            set: set_label.clone(),
                            metric,
                            labels: (label(a, &comparison.a), label(b, &comparison.b)),
                            outcome,
                        });
                    }
                }
            }
        }
    }
    // One correction across the file's distinct tests, then the verdicts.
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].outcome.as_ref().is_ok_and(|t| t.same_as.is_none())).collect();
    let ps: Vec<f64> = tested.iter().map(|&i| rows[i].outcome.as_ref().map(|t| t.p).unwrap_or(1.0)).collect();
    for (&i, adjusted) in tested.iter().zip(benjamini_yekutieli(&ps)) {
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
    for i in 0..rows.len() {
        if let Ok(Tested { same_as: Some(e), .. }) = &rows[i].outcome {
            let e = *e;
            if let (Ok(first), Ok(t)) = (rows[e].outcome.clone(), &mut rows[i].outcome) {
                (t.p_adjusted, t.verdict) = (first.p_adjusted, first.verdict);
            }
        }
    }
    Checked { claims, rows, resamples }
}

fn points(x: f64) -> String {
    if x == 0.0 { "0.00".into() } else { format!("{x:+.2}") }
}

/// A p-value in a few significant digits; at the bootstrap's floor, `≤ floor (B = n)`.
pub(crate) fn p_text(p: f64, at_floor: Option<usize>) -> String {
    match at_floor {
        Some(b) => format!("≤ {:.4} (B = {b})", 2.0 / (b + 1) as f64),
        None if p < 1e-4 => format!("{p:.1e}"),
        None => format!("{p:.4}"),
    }
}

/// A difference with its interval; an exact zero on every resample (two sides that scored every
/// image alike) in words.
pub(crate) fn difference_text(t: &Tested) -> String {
    if t.difference == 0.0 && t.interval == (0.0, 0.0) {
        "0 (the same on every resample)".into()
    } else {
        format!("{} [{}, {}]", points(t.difference), points(t.interval.0), points(t.interval.1))
    }
}

/// The verdict of a set of rows: holds, reversed, not resolved, mixed; with the counts.
fn rows_verdict(rows: &[&Row]) -> (Option<&'static str>, String) {
    let count = |v: Verdict| rows.iter().filter(|r| r.outcome.as_ref().is_ok_and(|t| t.verdict == v)).count();
    let tested = rows.iter().filter(|r| r.outcome.is_ok()).count();
    let (holds, reversed, open) = (count(Verdict::Holds), count(Verdict::Reversed), count(Verdict::NotResolved));
    let verdict = if tested == 0 {
        None
    } else if holds == tested {
        Some("holds")
    } else if reversed == tested {
        Some("reversed")
    } else if open == tested {
        Some("not resolved at this noise")
    } else {
        Some("mixed")
    };
    (verdict, format!("{holds} of {tested} comparisons hold, {reversed} reversed, {open} not resolved"))
}

impl Checked<'_> {
    pub(crate) fn part_rows(&self, claim: usize, part: usize) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.claim == claim && r.part == part).collect()
    }

    /// A part's verdict in words.
    pub(crate) fn part_summary(&self, claim: usize, part: usize) -> String {
        if let Some(why) = &self.claims[claim].parts[part].untested {
            return format!("not tested: {why}");
        }
        match rows_verdict(&self.part_rows(claim, part)) {
            (None, _) => "not tested (not run)".into(),
            (Some(v), counts) => format!("{v}: {counts}"),
        }
    }

    /// A claim's verdict: it *holds* only when every part is tested and holds.
    pub(crate) fn summary(&self, claim: usize) -> String {
        let parts = &self.claims[claim].parts;
        let verdicts: Vec<Option<&str>> =
            (0..parts.len()).map(|j| if parts[j].untested.is_some() { None } else { rows_verdict(&self.part_rows(claim, j)).0 }).collect();
        let all: Vec<&Row> = self.rows.iter().filter(|r| r.claim == claim).collect();
        let (whole, counts) = rows_verdict(&all);
        let untested = verdicts.iter().filter(|v| v.is_none()).count();
        let verdict = match whole {
            None => "not tested".to_string(),
            Some(v) if untested == 0 => format!("**{v}**"),
            Some("holds") => format!("**holds where tested**, {untested} of {} parts untested (so not \"holds\")", parts.len()),
            Some(v) => format!("**{v}** where tested, {untested} of {} parts untested", parts.len()),
        };
        format!("{verdict}: {counts}")
    }

    /// The distinct tests, and those of them whose p is at the bootstrap's floor (how many of
    /// those the floor decides: not resolved after the correction).
    fn floor_counts(&self) -> (usize, usize, usize) {
        let distinct: Vec<&Tested> = self.rows.iter().filter_map(|r| r.outcome.as_ref().ok()).filter(|t| t.same_as.is_none()).collect();
        let floor = distinct.iter().filter(|t| t.at_floor.is_some()).count();
        let decided = distinct.iter().filter(|t| t.at_floor.is_some() && t.verdict == Verdict::NotResolved).count();
        (distinct.len(), floor, decided)
    }

    /// `claims.md`.
    pub fn markdown(&self, seeds: usize) -> String {
        let mut md = String::from("# The paper's claims, checked\n\n");
        md.push_str(&self.rules(seeds));
        md.push_str(&self.sections(2));
        md
    }

    /// What the verdicts mean and how the tests were made, for this file.
    pub fn rules(&self, seeds: usize) -> String {
        let (distinct, floor, decided) = self.floor_counts();
        let mut md = String::new();
        writeln!(
            md,
            "Each claim of the paper's Section 6 (`configs/claims.toml`), in parts, one per thing it says, and the \
             comparisons that test each part. A difference is A minus B in points; for FPR at 95% TPR and detection \
             error lower is better, so a claim that A is better expects a negative difference there. Every difference \
             is paired: both sides score the same test images, and every model of a seed starts from the same \
             initial weights and sees the same batches (one `train.seed`), so differences between models move \
             together across seeds. {}\n\n\
             **Verdicts.** The {distinct} distinct tests of this file (a comparison in two claims is one test) are \
             adjusted together with Benjamini-Yekutieli, which holds under any dependence between them; a comparison \
             whose adjusted p is at most {FDR} *holds* when its difference is in the claimed direction (inside the \
             margin, for `~`) and is *reversed* otherwise; above {FDR} it is *not resolved at this noise*. At most \
             {:.0}% of the resolved verdicts are expected to be wrong. A claim *holds* only when every part of it is \
             tested and holds. Beside each `~` comparison, the smallest margin the data could confirm (TOST at {} \
             before the correction): what a margin would need to be for \"not resolved\" to resolve. Intervals lie \
             within what a difference can be (±100 points, the detection error ±50). `claims.csv` has every number; \
             the README of the repository (\"Claims\") says why this rule.\n",
            if seeds >= 2 {
                format!(
                    "With {seeds} training seeds, each comparison is the paired t test of the per-seed differences \
                     (95% interval: mean ± t(0.975, {}) × sd / √{seeds}: training noise), and beside it the two-level \
                     bootstrap (each replicate draws {seeds} seeds with replacement and averages their differences on \
                     the same resampled test images: training and test-image noise); the verdict takes the larger \
                     of the two p-values. Each seed's paired bootstrap interval over the test images is listed too.",
                    seeds - 1
                )
            } else {
                let floor_text = if self.resamples > 0 {
                    let floor_p = 2.0 / (self.resamples + 1) as f64;
                    format!(
                        " A bootstrap p-value cannot be below 2 / (B + 1) = {floor_p:.4} (B = {}): such a p prints as \
                         `≤ {floor_p:.4} (B = {})`; {floor} of the {distinct} tests are at that floor, and the floor \
                         decides {decided} verdict{} (a p at the floor not resolved after the correction{}).",
                        self.resamples,
                        self.resamples,
                        if decided == 1 { "" } else { "s" },
                        if decided > 0 { ": more resamples, `report.bootstrap`, could resolve it; marked" } else { "" }
                    )
                } else {
                    String::new()
                };
                format!(
                    "With one training seed, each comparison is the paired bootstrap over the test images (both sides \
                     resampled on the same images, 95% percentile interval, two-sided percentile p); it covers the test \
                     images but not training noise: a verdict here is about these trained networks, not the methods. \
                     Run several seeds (`train.seeds`) for that.{floor_text}"
                )
            },
            100.0 * FDR,
            EQUIVALENCE_LEVEL
        )
        .unwrap();
        md
    }

    /// The summary table and each claim's section, headed at Markdown level `level`.
    pub fn sections(&self, level: usize) -> String {
        let (h, h2) = ("#".repeat(level), "#".repeat(level + 1));
        let mut md = String::from("| # | Claim | Verdict |\n|---:|---|---|\n");
        for (i, claim) in self.claims.iter().enumerate() {
            writeln!(md, "| {} | {} | {} |", i + 1, claim.paper, self.summary(i)).unwrap();
        }
        md.push('\n');
        for (i, claim) in self.claims.iter().enumerate() {
            writeln!(md, "{h} {}. \"{}\"\n\n{}.\n", i + 1, claim.paper, self.summary(i)).unwrap();
            for (j, part) in claim.parts.iter().enumerate() {
                if claim.parts.len() > 1 {
                    writeln!(md, "{h2} {}.{} {}\n\n{}.\n", i + 1, j + 1, part.says, self.part_summary(i, j)).unwrap();
                }
                if part.untested.is_some() {
                    continue;
                }
                self.part_table(&mut md, i, j, part);
            }
        }
        md
    }

    fn part_table(&self, md: &mut String, i: usize, j: usize, part: &Part) {
        if let Some(m) = part.margin {
            writeln!(md, "`~` means within ±{m} points.\n").unwrap();
        }
        let rows = self.part_rows(i, j);
        let with_seeds = rows.iter().any(|r| r.outcome.as_ref().is_ok_and(|t| !t.per_seed.is_empty()));
        let equivalence = part.comparisons.iter().any(|c| c.relation == Relation::Equivalent);
        md.push_str("| Comparison | Set | Metric | A − B [95% interval] | Test | p | adjusted p | Verdict |");
        let mut rule = String::from("|---|---|---|---:|---|---:|---:|---|");
        if equivalence {
            md.push_str(" Confirmable margin |");
            rule.push_str("---:|");
        }
        if with_seeds {
            md.push_str(" Two-level bootstrap [95%], p | Per seed: A − B [paired bootstrap] |");
            rule.push_str("---|---|");
        }
        writeln!(md, "\n{rule}").unwrap();
        for r in rows {
            let op = if r.comparison.relation == Relation::Better { ">" } else { "~" };
            write!(md, "| {} {op} {} | {} | {} |", r.labels.0, r.labels.1, r.set, r.metric.name()).unwrap();
            match &r.outcome {
                Ok(t) => {
                    let mut verdict = t.verdict.text().to_string();
                    if t.at_floor.is_some() && t.verdict == Verdict::NotResolved {
                        verdict.push_str(" (at the bootstrap floor: more resamples could resolve it)");
                    }
                    if let Some(e) = t.same_as {
                        let first = &self.rows[e];
                        verdict.push_str(&format!(" (the test of claim {}, counted once)", first.claim + 1));
                    }
                    write!(
                        md,
                        " {} | {} | {} | {} | {verdict} |",
                        difference_text(t),
                        t.test.name(),
                        p_text(t.p, t.at_floor),
                        p_text(t.p_adjusted, None)
                    )
                    .unwrap();
                    if equivalence {
                        match t.confirmable_margin {
                            Some(m) => write!(md, " ±{:.2} |", m.max(0.0)).unwrap(),
                            None => md.push_str(" – |"),
                        }
                    }
                    if with_seeds {
                        match t.two_level {
                            Some(((lo, hi), p)) => write!(md, " [{}, {}], {} |", points(lo), points(hi), p_text(p, None)).unwrap(),
                            None => md.push_str(" – |"),
                        }
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
                    if equivalence {
                        md.push_str(" |");
                    }
                    if with_seeds {
                        md.push_str(" | |");
                    }
                }
            }
            md.push('\n');
        }
        md.push('\n');
    }

    /// `claims.csv`: one line per comparison, set and metric, with everything a verdict is drawn from.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "claim,part,comparison,a,b,set,metric,test,seeds,difference,ci_low,ci_high,p,p_at_floor,p_adjusted,verdict,\
             confirmable_margin,two_level_ci_low,two_level_ci_high,two_level_p,same_test_as_row\n",
        );
        let quote = |s: &str| if s.contains([',', '"']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.rows {
            write!(
                out,
                "{},{},{},{},{},{},{},",
                r.claim + 1,
                r.part + 1,
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
                        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                        t.test.name(),
                        seeds.join(" "),
                        t.difference,
                        t.interval.0,
                        t.interval.1,
                        t.p,
                        t.at_floor.is_some(),
                        t.p_adjusted,
                        t.verdict.text(),
                        opt(t.confirmable_margin),
                        opt(t.two_level.map(|t| t.0.0)),
                        opt(t.two_level.map(|t| t.0.1)),
                        opt(t.two_level.map(|t| t.1)),
                        t.same_as.map(|e| (e + 1).to_string()).unwrap_or_default(),
                    )
                    .unwrap();
                }
                Err(why) => writeln!(out, ",,,,,,,,{},,,,,", quote(&format!("not tested: {why}"))).unwrap(),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodpipe_metrics::significance::benjamini_yekutieli;

    fn key(set: &str, side: &str, metric: Metric) -> Key {
        Key { set: set.into(), set_label: set.to_uppercase(), side: side.into(), method: side.to_uppercase(), metric }
    }

    fn measured(value: f64, replicates: Vec<f64>) -> Measured {
        Measured { value, replicates, exact: None, bounds: (0.0, 1.0) }
    }

    fn part(compare: &str, metric: Metric, margin: Option<f64>) -> Part {
        let relation = if compare.contains('~') { Relation::Equivalent } else { Relation::Better };
        let p: Vec<&str> = compare.split_whitespace().collect();
        Part {
            says: compare.into(),
            comparisons: vec![Comparison { a: p[0].into(), b: p[2].into(), relation }],
            metrics: vec![metric],
            sets: None,
            margin,
            untested: None,
        }
    }

    fn claim(compare: &str, metric: Metric, margin: Option<f64>) -> Claim {
        Claim { paper: compare.into(), parts: vec![part(compare, metric, margin)] }
    }

    #[test]
    fn one_seed_uses_the_paired_bootstrap_and_lower_fpr_is_better_and_the_floor_prints_as_a_bound() {
        // FPR: A lower than B on every replicate: A is better, the claim `a > b` holds.
        let a: Vec<f64> = (0..99).map(|r| 0.20 + r as f64 * 1e-4).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.05).collect();
        let values = vec![
            (key("g", "a", Metric::FprAt95Tpr), vec![(0, measured(0.2, a.clone()))]),
            (key("g", "b", Metric::FprAt95Tpr), vec![(0, measured(0.25, b.clone()))]),
        ];
        let claims = [claim("a > b", Metric::FprAt95Tpr, None), claim("b > a", Metric::FprAt95Tpr, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 99, 0);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!(t.test, Test::PairedBootstrap);
        assert!((t.difference - (-5.0)).abs() < 1e-12, "{}", t.difference);
        // Every replicate difference is -5 points: the smallest two-sided p, 2 / (99 + 1), a floor.
        assert!((t.p - 0.02).abs() < 1e-12, "{}", t.p);
        assert_eq!(t.at_floor, Some(99));
        assert_eq!(t.verdict, Verdict::Holds);
        assert_eq!(checked.rows[1].outcome.as_ref().unwrap().verdict, Verdict::Reversed);
        let md = checked.markdown(1);
        assert!(md.contains("| ≤ 0.0200 (B = 99) |"), "{md}");
        assert!(md.contains("2 / (B + 1) = 0.0200 (B = 99)") && md.contains("the floor decides 0 verdicts"), "{md}");
        assert!(checked.csv().lines().nth(1).unwrap().contains(",0.02,true,"), "{}", checked.csv());
    }

    #[test]
    fn a_p_at_the_floor_that_the_correction_leaves_unresolved_says_the_floor_decided() {
        // One comparison at the floor of 19 resamples (0.1) among others: not resolved, and said why.
        let a: Vec<f64> = (0..19).map(|r| 0.9 + r as f64 * 1e-4).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 0.01).collect();
        let values =
            vec![(key("g", "a", Metric::Auroc), vec![(0, measured(0.9, a))]), (key("g", "b", Metric::Auroc), vec![(0, measured(0.89, b))])];
        let claims = [claim("a > b", Metric::Auroc, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 19, 0);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!((t.at_floor, t.verdict), (Some(19), Verdict::NotResolved));
        let md = checked.markdown(1);
        assert!(md.contains("not resolved at this noise (at the bootstrap floor: more resamples could resolve it)"), "{md}");
        assert!(md.contains("the floor decides 1 verdict "), "{md}");
    }

    #[test]
    fn several_seeds_use_the_paired_t_and_the_file_is_corrected_with_benjamini_yekutieli() {
        // Accuracies of three seeds: A - B = 1.5, 2.5, 0.7 points (scipy: ttest_1samp p = 0.09498).
        let a = vec![(0, measured(0.815, vec![])), (1, measured(0.825, vec![])), (2, measured(0.807, vec![]))];
        let b = vec![(0, measured(0.80, vec![])), (1, measured(0.80, vec![])), (2, measured(0.80, vec![]))];
        let values = vec![(key(CIFAR10, "a", Metric::Accuracy), a), (key(CIFAR10, "b", Metric::Accuracy), b)];
        let claims = [claim("a > b", Metric::Accuracy, None), claim("a ~ b", Metric::Accuracy, Some(8.0))];
        let checked = check(&claims, &values, &[], 0, 0);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!((t.test, t.seeds.clone()), (Test::PairedT, vec![0, 1, 2]));
        // scipy.stats.ttest_1samp([1.5, 2.5, 0.7], 0).pvalue
        assert!((t.p - 0.09498165055670318).abs() < 1e-9, "{}", t.p);
        assert_eq!(t.verdict, Verdict::NotResolved);
        // Within 8 points: TOST, p = 2 min(inside, beyond); resolved as equivalent. The smallest
        // margin it could confirm: |mean| + t(0.95, 2) se = 3.087 (statsmodels' ttost_paired).
        let e = checked.rows[1].outcome.as_ref().unwrap();
        assert_eq!(e.verdict, Verdict::Holds, "{e:?}");
        assert!((e.confirmable_margin.unwrap() - 3.087054428840652).abs() < 1e-9);
        // Benjamini-Yekutieli across the two tested comparisons (statsmodels' fdr_by).
        let adjusted = benjamini_yekutieli(&[t.p, e.p]);
        assert_eq!((t.p_adjusted, e.p_adjusted), (adjusted[0], adjusted[1]));
        assert!(checked.markdown(3).contains("paired t") && checked.markdown(3).contains("±3.09"));
        assert!(
            checked.csv().lines().nth(1).unwrap().starts_with("1,1,a > b,A,B,CIFAR-10,accuracy,paired t and two-level bootstrap,0 1 2,")
        );
    }

    #[test]
    fn with_seeds_the_two_level_bootstrap_holds_the_shared_test_images_noise() {
        // Three seeds that agree (A - B = 2.00, 2.01, 1.99 points: a tiny t interval) on a test set
        // whose images move the difference by +-3 points: the two-level bootstrap sees that, and
        // the verdict takes its p.
        let images: Vec<f64> = (0..999).map(|r| ((r * 37 % 101) as f64 / 100.0 - 0.5) * 0.06).collect();
        let side = |v: f64, shift: &[f64]| -> Measured { measured(v, shift.iter().map(|s| v + s).collect()) };
        let zeros = vec![0.0; 999];
        let a = vec![(0, side(0.82, &images)), (1, side(0.8201, &images)), (2, side(0.8199, &images))];
        let b = vec![(0, side(0.80, &zeros)), (1, side(0.80, &zeros)), (2, side(0.80, &zeros))];
        let values = vec![(key(CIFAR10, "a", Metric::Accuracy), a), (key(CIFAR10, "b", Metric::Accuracy), b)];
        let claims = [claim("a > b", Metric::Accuracy, None)];
        let checked = check(&claims, &values, &[], 999, 3);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        let ((lo, hi), p2) = t.two_level.unwrap();
        assert!(t.interval.1 - t.interval.0 < 0.1, "the t interval: {:?}", t.interval);
        assert!(hi - lo > 4.0 && lo < 0.0, "the two-level interval: [{lo}, {hi}]");
        assert!(t.p >= p2 && p2 > 0.05, "p {} against the two-level {p2}", t.p);
        assert_eq!(t.verdict, Verdict::NotResolved);
    }

    #[test]
    fn a_claim_with_an_untested_part_never_holds_and_a_repeated_comparison_is_one_test() {
        let reps = |v: f64| (0..99).map(|r| v + r as f64 * 1e-4).collect::<Vec<_>>();
        let values = vec![
            (key("g", "a", Metric::Auroc), vec![(0, measured(0.9, reps(0.9)))]),
            (key("g", "b", Metric::Auroc), vec![(0, measured(0.8, reps(0.8)))]),
        ];
        let slight = Part {
            says: "slightly".into(),
            comparisons: vec![],
            metrics: vec![],
            sets: None,
            margin: None,
            untested: Some("no size given".into()),
        };
        let claims = [
            Claim { paper: "A beats B, slightly.".into(), parts: vec![part("a > b", Metric::Auroc, None), slight] },
            claim("a > b", Metric::Auroc, None),
        ];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 99, 0);
        // The comparison holds, but the claim does not read "holds".
        assert_eq!(checked.rows[0].outcome.as_ref().unwrap().verdict, Verdict::Holds);
        let md = checked.markdown(1);
        assert!(md.contains("| 1 | A beats B, slightly. | **holds where tested**, 1 of 2 parts untested (so not \"holds\")"), "{md}");
        assert!(md.contains("not tested: no size given"), "{md}");
        assert!(md.contains("| 2 | a > b | **holds**: 1 of 1"), "{md}");
        // The second claim's comparison is the first's test, counted once in the correction.
        let second = checked.rows[1].outcome.as_ref().unwrap();
        assert_eq!(second.same_as, Some(0));
        assert!(md.contains("The 1 distinct tests"), "{md}");
        assert_eq!(second.p_adjusted, checked.rows[0].outcome.as_ref().unwrap().p, "one test: no correction");
    }

    #[test]
    fn a_difference_interval_stays_within_what_a_difference_can_be() {
        // Three seeds that disagree widely: the t interval of the differences passes +-100 points.
        let a = vec![(0, measured(0.99, vec![])), (1, measured(0.10, vec![])), (2, measured(0.98, vec![]))];
        let b = vec![(0, measured(0.01, vec![])), (1, measured(0.95, vec![])), (2, measured(0.02, vec![]))];
        let values = vec![(key("g", "a", Metric::Auroc), a.clone()), (key("g", "b", Metric::Auroc), b.clone())];
        let claims = [claim("a > b", Metric::Auroc, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 0, 0);
        let t = checked.rows[0].outcome.as_ref().unwrap();
        assert_eq!((t.interval.0, t.interval.1), (-100.0, 100.0), "{:?}", t.interval);
        // The detection error can differ by 50 points at most.
        let values = vec![(key("g", "a", Metric::DetectionError), a), (key("g", "b", Metric::DetectionError), b)];
        let claims = [claim("a > b", Metric::DetectionError, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 0, 0);
        assert_eq!(checked.rows[0].outcome.as_ref().unwrap().interval, (-50.0, 50.0));
    }

    #[test]
    fn a_side_that_did_not_run_is_listed_not_tested() {
        let values = vec![(key("g", "a", Metric::Auroc), vec![(0, measured(0.9, vec![0.9; 10]))])];
        let claims = [claim("a > b", Metric::Auroc, None)];
        let checked = check(&claims, &values, &[("g".into(), "G".into())], 10, 0);
        assert_eq!(checked.rows[0].outcome.as_ref().unwrap_err(), "`b` was not run");
        assert!(checked.markdown(1).contains("not tested"));
    }
}
