//! Comparing two results frames and two configs: what `oodpipe diff` prints.
//!
//! The frames are joined with Polars on (ood_set, method, metric) in a full outer join, so a row
//! that exists on one side only shows as a change too (old or new missing). A value counts as
//! changed when it differs by more than 1e-9 (the CSV round-trips f64 exactly, so this only absorbs
//! nothing-changes noise, never a real difference at the reported two decimals).
//!
//! # Significant, within noise, or not measured
//! Each changed value gets the test that fits what differs between the two sides
//! ([`crate::change_test`]: the paired bootstrap for the same trained networks, Welch's t for
//! several seeds a side, the prediction t for one seed against several, none for one seed against
//! one of different networks). The p-values of every value that got a test form one family,
//! corrected by Benjamini-Hochberg ([`benjamini_hochberg`]); a change is *significant* when its
//! adjusted p is at most [`FALSE_DISCOVERY_RATE`] (0.05), *within noise* otherwise, and *not
//! measured* when it got no test. Why Benjamini-Hochberg: a diff of two runs tests a hundred or
//! more values at once, most of which move with the noise; controlling the false discovery rate
//! keeps the list of "significant" changes to about 5% false alarms, while Holm's family-wise
//! control would, at that many tests, hide real changes of the size that matters. The report's
//! claims use the same correction and level.

use crate::change_test::{Pairing, Test, choose};
use crate::results_frame::{Results, RowKey};
use oodpipe_metrics::significance::benjamini_hochberg;
use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The false discovery rate at which a change is called significant (Benjamini-Hochberg).
pub const FALSE_DISCOVERY_RATE: f64 = 0.05;

/// What a change is, after its test and the correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Verdict {
    /// Adjusted p at most [`FALSE_DISCOVERY_RATE`].
    #[serde(rename = "significant")]
    Significant,
    /// No test applies (see [`Test::describe`]).
    #[serde(rename = "not measured")]
    NotMeasured,
    /// A value of the new side only.
    #[serde(rename = "added")]
    Added,
    /// A value of the old side only.
    #[serde(rename = "removed")]
    Removed,
    /// Tested, adjusted p above [`FALSE_DISCOVERY_RATE`].
    #[serde(rename = "within noise")]
    WithinNoise,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Significant => "significant",
            Verdict::NotMeasured => "not measured",
            Verdict::Added => "added",
            Verdict::Removed => "removed",
            Verdict::WithinNoise => "within noise",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedValue {
    pub ood_set: String,
    pub method: String,
    pub metric: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    pub delta: Option<f64>,
    /// Each side's 95% interval, when it has one.
    pub old_interval: Option<(f64, f64)>,
    pub new_interval: Option<(f64, f64)>,
    /// The per-seed rows each side has of this value (0 for an older file).
    pub seeds: (usize, usize),
    /// The test (`paired_bootstrap`, `paired_t`, `welch`, `prediction_t`, or `none`).
    pub test: Test,
    /// The test, or why there is none, in words.
    pub test_description: String,
    /// The test's 95% interval of new - old.
    pub delta_interval: Option<(f64, f64)>,
    /// The test's two-sided p-value of "no change", and after the correction across the diff.
    pub p: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub verdict: Verdict,
    /// `verdict == significant`.
    pub significant: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultsDiff {
    /// Significant changes first, then not measured, added, removed, within noise; each group in
    /// the frames' order.
    pub changed: Vec<ChangedValue>,
    pub correction: Correction,
    pub config_changes: Vec<ConfigChange>,
    /// Platform facts (processor, instruction set, threads, libtorch, device, GPU) that differ.
    pub platform_changes: Vec<ConfigChange>,
    /// Each side's command-line overrides and sweep (`--set train.epochs=3`), old then new, as the
    /// run recorded them; empty for a plain run (or a side that recorded none).
    #[serde(default)]
    pub overrides: (Vec<String>, Vec<String>),
}

/// The multiple-comparison correction across the diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correction {
    /// `benjamini_hochberg`.
    pub method: &'static str,
    /// A change is significant when its adjusted p is at most this.
    pub false_discovery_rate: f64,
    /// How many changes got a test (the family).
    pub tests: usize,
}

impl Correction {
    /// The correction of `changed`.
    pub fn of(changed: &[ChangedValue]) -> Correction {
        Correction {
            method: "benjamini_hochberg",
            false_discovery_rate: FALSE_DISCOVERY_RATE,
            tests: changed.iter().filter(|c| c.p.is_some()).count(),
        }
    }
}

/// How a diff pairs one changed value: given its row and each side's per-seed values, what the
/// two sides share ([`Pairing`]).
pub type PairingOf<'a> = dyn FnMut(&RowKey, &[(String, f64)], &[(String, f64)]) -> Pairing + 'a;

/// The values that differ between `old` and `new`, each with its test and verdict (see the module
/// doc), significant ones first. `pairing` says, for a value with per-seed rows on both sides,
/// whether the two sides share their trained networks (and gives the paired bootstrap when it
/// can); it is not asked about other values.
pub fn changed_values(old: &Results, new: &Results, pairing: &mut PairingOf) -> PolarsResult<Vec<ChangedValue>> {
    use crate::results_schema::{CI_HIGH, CI_LOW, KEYS as keys, METHOD, METRIC, OOD_SET, VALUE};
    let side = |df: &DataFrame, prefix: &str| -> PolarsResult<DataFrame> {
        let mut df = df.clone();
        for bound in [CI_LOW, CI_HIGH] {
            if df.column(bound).is_err() {
                df.with_column(Column::full_null(bound.into(), df.height(), &DataType::Float64))?;
            }
        }
        df.rename(VALUE, prefix.into())?;
        df.rename(CI_LOW, format!("{prefix}_low").into())?;
        df.rename(CI_HIGH, format!("{prefix}_high").into())?;
        Ok(df)
    };
    let (old_df, new_df) = (side(&old.frame, "old")?, side(&new.frame, "new")?);
    let mut args = JoinArgs::new(JoinType::Full);
    args.coalesce = JoinCoalesce::CoalesceColumns;
    args.maintain_order = MaintainOrderJoin::LeftRight;
    let joined = old_df.join(&new_df, keys, keys, args, None)?;
    let s = |name: &str| joined.column(name).and_then(|c| c.str().cloned());
    let f = |name: &str| joined.column(name).and_then(|c| c.cast(&DataType::Float64)).and_then(|c| c.f64().cloned());
    let (o, m, k) = (s(OOD_SET)?, s(METHOD)?, s(METRIC)?);
    let (a, b) = (f("old")?, f("new")?);
    let (a_lo, a_hi, b_lo, b_hi) = (f("old_low")?, f("old_high")?, f("new_low")?, f("new_high")?);
    let mut out = Vec::new();
    for i in 0..joined.height() {
        let (old_value, new_value) = (a.get(i), b.get(i));
        let differs = match (old_value, new_value) {
            (Some(x), Some(y)) => (x - y).abs() > 1e-9,
            (None, None) => false,
            _ => true,
        };
        if !differs {
            continue;
        }
        let key: RowKey =
            (o.get(i).unwrap_or_default().to_string(), m.get(i).unwrap_or_default().to_string(), k.get(i).unwrap_or_default().to_string());
        let no_rows = Vec::new();
        let old_seeds = old.per_seed.get(&key).unwrap_or(&no_rows);
        let new_seeds = new.per_seed.get(&key).unwrap_or(&no_rows);
        let tested = match (old_value, new_value) {
            (None, _) => crate::change_test::Tested { test: Test::OneSideOnly { new: true }, difference: None },
            (_, None) => crate::change_test::Tested { test: Test::OneSideOnly { new: false }, difference: None },
            _ if old_seeds.is_empty() || new_seeds.is_empty() => choose(old_seeds, new_seeds, Pairing::Unknown),
            _ => choose(old_seeds, new_seeds, pairing(&key, old_seeds, new_seeds)),
        };
        let verdict = match tested.test {
            Test::OneSideOnly { new: true } => Verdict::Added,
            Test::OneSideOnly { new: false } => Verdict::Removed,
            _ if tested.difference.is_some() => Verdict::WithinNoise, // until corrected below
            _ => Verdict::NotMeasured,
        };
        let (ood_set, method, metric) = key;
        out.push(ChangedValue {
            ood_set,
            method,
            metric,
            old: old_value,
            new: new_value,
            delta: old_value.zip(new_value).map(|(x, y)| y - x),
            old_interval: a_lo.get(i).zip(a_hi.get(i)),
            new_interval: b_lo.get(i).zip(b_hi.get(i)),
            seeds: (old_seeds.len(), new_seeds.len()),
            test: tested.test,
            test_description: tested.test.describe(),
            delta_interval: tested.difference.as_ref().map(|d| d.interval()),
            p: tested.difference.as_ref().map(|d| d.p_two_sided()),
            p_adjusted: None,
            verdict,
            significant: false,
        });
    }
    correct(&mut out);
    out.sort_by_key(|c| c.verdict);
    Ok(out)
}

/// One Benjamini-Hochberg correction across every tested change, and the verdicts it gives.
fn correct(changed: &mut [ChangedValue]) {
    let tested: Vec<usize> = (0..changed.len()).filter(|&i| changed[i].p.is_some()).collect();
    let p: Vec<f64> = tested.iter().map(|&i| changed[i].p.expect("tested")).collect();
    for (&i, adjusted) in tested.iter().zip(benjamini_hochberg(&p)) {
        let c = &mut changed[i];
        c.p_adjusted = Some(adjusted);
        c.significant = adjusted <= FALSE_DISCOVERY_RATE;
        c.verdict = if c.significant { Verdict::Significant } else { Verdict::WithinNoise };
    }
}

/// The fields whose values differ between two flattened configs.
pub fn config_changes(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<ConfigChange> {
    let fields: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    fields
        .into_iter()
        .filter(|f| old.get(*f) != new.get(*f))
        .map(|f| ConfigChange {
            field: f.clone(),
            old: old.get(f).cloned().unwrap_or(Value::Null),
            new: new.get(f).cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// A changed value's cells as the Markdown (and the HTML page of `oodpipe diff --html`) show them.
pub struct ChangeTexts {
    pub old: String,
    pub new: String,
    pub delta: String,
    pub p: String,
    pub p_adjusted: String,
    pub verdict: &'static str,
}

impl ChangedValue {
    pub fn texts(&self) -> ChangeTexts {
        ChangeTexts {
            old: cell(self.old, self.old_interval),
            new: cell(self.new, self.new_interval),
            delta: match (self.delta, self.delta_interval) {
                (None, _) => "–".to_string(),
                (Some(d), None) => format!("{d:+.2}"),
                (Some(d), Some((lo, hi))) => format!("{d:+.2} [{lo:+.2}, {hi:+.2}]"),
            },
            p: p_text(self.p),
            p_adjusted: p_text(self.p_adjusted),
            verdict: self.verdict.words(),
        }
    }
}

/// The summary line of [`ResultsDiff::to_markdown`], for the HTML page too.
impl ResultsDiff {
    pub fn summary(&self, a: &str, b: &str) -> String {
        format!(
            "{} values changed ({}), {} config fields changed between {a} and {b}.",
            self.changed.len(),
            self.counts(),
            self.config_changes.len()
        )
    }
}

fn cell(v: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (v, ci) {
        (None, _) => "–".to_string(),
        (Some(v), None) => format!("{v:.2}"),
        (Some(v), Some((lo, hi))) => format!("{v:.2} [{lo:.2}, {hi:.2}]"),
    }
}

/// Platform facts of two sides that differ (a fact missing on one side counts only when the
/// other side has it and the side is not simply older: both must have recorded a platform).
pub fn platform_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    if old.is_empty() || new.is_empty() {
        return Vec::new();
    }
    let as_map = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    config_changes(&as_map(old), &as_map(new))
}

impl ResultsDiff {
    /// A diff of these changes, with the correction across them (the family is `changed`'s tests).
    pub fn of(
        changed: Vec<ChangedValue>,
        config_changes: Vec<ConfigChange>,
        platform_changes: Vec<ConfigChange>,
        overrides: (Vec<String>, Vec<String>),
    ) -> ResultsDiff {
        ResultsDiff { correction: Correction::of(&changed), changed, config_changes, platform_changes, overrides }
    }

    /// The Markdown a person reads: the changed values, the config changes, a one-line summary.
    pub fn to_markdown(&self, a: &str, b: &str) -> String {
        let mut md = String::new();
        if !self.platform_changes.is_empty() {
            md.push_str(&format!(
                "The two sides ran on different platforms, so training differs beyond the config: compare them \
                 within the intervals, not bit for bit.\n\n| Platform | {a} | {b} |\n|---|---|---|\n"
            ));
            for c in &self.platform_changes {
                let show = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "–".into());
                md.push_str(&format!("| {} | {} | {} |\n", c.field, show(&c.old), show(&c.new)));
            }
            md.push('\n');
        }
        if !self.overrides.0.is_empty() || !self.overrides.1.is_empty() {
            let side = |o: &[String]| if o.is_empty() { "no overrides".to_string() } else { o.join(" ") };
            md.push_str(&format!(
                "Command-line overrides (part of the config fields below): {a}: `{}`; {b}: `{}`.\n\n",
                side(&self.overrides.0),
                side(&self.overrides.1)
            ));
        }
        if self.changed.is_empty() && self.config_changes.is_empty() {
            md.push_str(&format!("No differences between {a} and {b}.\n"));
            return md;
        }
        if !self.changed.is_empty() {
            if self.correction.tests > 0 {
                md.push_str(&format!(
                    "Each change is tested as its Test column says; p is two-sided, the adjusted p is \
                     Benjamini-Hochberg's across the {} tested changes of this diff, and a change is significant at an \
                     adjusted p of at most {}.\n\n",
                    self.correction.tests, self.correction.false_discovery_rate
                ));
            }
            md.push_str(
                "| OOD set | Method | Metric | Old [95% interval] | New [95% interval] | Δ [95% interval] | Test | p | adjusted p | Verdict |\n\
                 |---|---|---|---:|---:|---:|---|---:|---:|---|\n",
            );
            for c in &self.changed {
                let t = c.texts();
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    c.ood_set, c.method, c.metric, t.old, t.new, t.delta, c.test_description, t.p, t.p_adjusted, t.verdict,
                ));
            }
            md.push('\n');
        }
        if !self.config_changes.is_empty() {
            md.push_str("| Config field | Old | New |\n|---|---|---|\n");
            for c in &self.config_changes {
                md.push_str(&format!("| `{}` | {} | {} |\n", c.field, c.old, c.new));
            }
            md.push('\n');
        }
        md.push_str(&self.summary(a, b));
        md.push('\n');
        md
    }

    /// "3 significant, 41 within noise, 2 not measured; Benjamini-Hochberg across 44 tests: 20
    /// paired bootstrap, 24 Welch's t": the verdicts, then the tests used.
    fn counts(&self) -> String {
        let count = |v: Verdict| self.changed.iter().filter(|c| c.verdict == v).count();
        let mut parts = vec![
            format!("{} significant", count(Verdict::Significant)),
            format!("{} within noise", count(Verdict::WithinNoise)),
            format!("{} not measured", count(Verdict::NotMeasured)),
        ];
        for v in [Verdict::Added, Verdict::Removed] {
            if count(v) > 0 {
                parts.push(format!("{} {}", count(v), v.words()));
            }
        }
        let mut text = parts.join(", ");
        if self.correction.tests > 0 {
            let mut by_test: Vec<(&str, usize)> = Vec::new();
            for name in self.changed.iter().filter_map(|c| c.test.name()) {
                match by_test.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, k)) => *k += 1,
                    None => by_test.push((name, 1)),
                }
            }
            let tests: Vec<String> = by_test.iter().map(|(n, k)| format!("{k} {n}")).collect();
            text.push_str(&format!("; Benjamini-Hochberg across {} tests: {}", self.correction.tests, tests.join(", ")));
        }
        text
    }
}

/// A p-value at four decimals, or in scientific notation below 1e-4.
fn p_text(p: Option<f64>) -> String {
    match p {
        None => "–".into(),
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change_test::NoBootstrap;
    use serde_json::json;

    /// Aggregates only, as an older results.csv reads.
    fn frame(rows: &[(&str, &str, &str, f64)]) -> Results {
        let frame = df!(
            "ood_set" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "method" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "metric" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap();
        Results { frame, per_seed: BTreeMap::new() }
    }

    #[test]
    fn platform_differences_are_named_before_the_values() {
        let a: BTreeMap<String, String> =
            [("cpu_model".to_string(), "Intel Xeon".to_string()), ("threads".to_string(), "2".to_string())].into();
        let b: BTreeMap<String, String> =
            [("cpu_model".to_string(), "AMD EPYC".to_string()), ("threads".to_string(), "2".to_string())].into();
        let changes = platform_changes(&a, &b);
        assert_eq!(changes.len(), 1);
        assert!(platform_changes(&a, &BTreeMap::new()).is_empty(), "an older side without a platform is not a difference");
        let f = seeded(&[("ODIN", &[90.0])]);
        let changed = changed_values(&f, &f, &mut |_, _, _| Pairing::Unknown).unwrap();
        let d = ResultsDiff::of(changed, vec![], changes, Default::default());
        let md = d.to_markdown("A", "B");
        assert!(md.starts_with("The two sides ran on different platforms"), "{md}");
        assert!(md.contains("| cpu_model | Intel Xeon | AMD EPYC |") && md.ends_with("No differences between A and B.\n"), "{md}");
    }

    /// A results.csv of per-seed values: per value the aggregate (their mean) and each seed's row.
    fn seeded(values: &[(&str, &[f64])]) -> Results {
        let mut text = String::from("ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta\n");
        for (method, seeds) in values {
            let mean = seeds.iter().sum::<f64>() / seeds.len() as f64;
            text.push_str(&format!("G,{method},auroc,all,{mean},,,,,{},,\n", seeds.len()));
            for (i, v) in seeds.iter().enumerate() {
                text.push_str(&format!("G,{method},auroc,{i},{v},,,,,1,,\n"));
            }
        }
        crate::results_frame::parse(&text, "test").unwrap()
    }

    fn close(got: Option<f64>, want: f64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what}: no value"));
        assert!((got - want).abs() < 1e-9, "{what}: {got} against {want}");
    }

    #[test]
    fn each_change_gets_its_test_and_one_correction_across_the_diff() {
        let old = seeded(&[
            ("W1", &[80.1, 81.3, 79.8]),
            ("W2", &[70.0, 72.0, 71.0]),
            ("P", &[60.0]),
            ("S", &[50.0, 52.0, 54.0]),
            ("N", &[40.0]),
            ("R", &[30.0]),
        ]);
        let new = seeded(&[
            ("W1", &[84.0, 85.2, 83.9]),
            ("W2", &[71.5, 70.5, 72.5]),
            ("P", &[62.0, 63.5, 61.0]),
            ("S", &[51.0, 53.5, 54.6]),
            ("N", &[41.0]),
            ("A", &[20.0]),
        ]);
        // S has the same networks on both sides (no scores at hand); the others different ones.
        let mut pairing = |key: &RowKey, _: &[(String, f64)], _: &[(String, f64)]| {
            if key.1 == "S" { Pairing::SameNetworks(Err(NoBootstrap::ScoresNotInStore)) } else { Pairing::DifferentNetworks }
        };
        let changed = changed_values(&old, &new, &mut pairing).unwrap();
        let order: Vec<(&str, &str, Verdict)> = changed.iter().map(|c| (c.method.as_str(), c.test.code(), c.verdict)).collect();
        assert_eq!(
            order,
            [
                ("W1", "welch", Verdict::Significant),
                ("N", "none", Verdict::NotMeasured),
                ("A", "none", Verdict::Added),
                ("R", "none", Verdict::Removed),
                ("W2", "welch", Verdict::WithinNoise),
                ("P", "prediction_t", Verdict::WithinNoise),
                ("S", "paired_t", Verdict::WithinNoise),
            ]
        );
        let by = |m: &str| changed.iter().find(|c| c.method == m).unwrap();
        // scipy 1.17.1: stats.ttest_ind(new, old, equal_var=False).pvalue and its
        // confidence_interval(); the prediction t by hand, 2 * stats.t.sf(|t|, 2) with
        // t = (60 - mean(new)) / (sd(new) sqrt(1 + 1/3)); stats.ttest_rel(new, old).pvalue; and
        // stats.false_discovery_control([..], method='bh') of those four.
        close(by("W1").p, 0.003155738936093814, "W1 p");
        close(by("W2").p, 0.5733922538253555, "W2 p");
        close(by("P").p, 0.2744107561582686, "P p");
        close(by("S").p, 0.058007455532715635, "S p");
        close(by("W1").p_adjusted, 0.012622955744375256, "W1 adjusted");
        close(by("W2").p_adjusted, 0.5733922538253555, "W2 adjusted");
        close(by("P").p_adjusted, 0.36588100821102476, "P adjusted");
        close(by("S").p_adjusted, 0.11601491106543127, "S adjusted");
        let (lo, hi) = by("W1").delta_interval.unwrap();
        close(Some(lo), 2.2393483862693055, "W1 interval low");
        close(Some(hi), 5.693984947064031, "W1 interval high");
        assert_eq!(by("N").test_description, "none: training noise not measured: run several seeds (train.seeds)");
        assert_eq!((by("N").p, by("A").p, by("R").p), (None, None, None));
        assert!(by("W1").significant && !by("S").significant && !by("N").significant);
        assert_eq!(Correction::of(&changed).tests, 4);

        let d = ResultsDiff::of(changed, vec![], vec![], Default::default());
        let md = d.to_markdown("A", "B");
        assert!(md.contains("| G | W1 | auroc | 80.40 | 84.37 | +3.97 [+2.24, +5.69] | Welch's t, 3 seeds against 3 seeds | 0.0032 | 0.0126 | significant |"), "{md}");
        assert!(md.contains("| G | N | auroc | 40.00 | 41.00 | +1.00 | none: training noise not measured: run several seeds (train.seeds) | – | – | not measured |"), "{md}");
        assert!(
            md.ends_with(
                "7 values changed (1 significant, 3 within noise, 1 not measured, 1 added, 1 removed; Benjamini-Hochberg \
                 across 4 tests: 2 Welch's t, 1 prediction t, 1 paired t), 0 config fields changed between A and B.\n"
            ),
            "{md}"
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["changed"][0]["test"], "welch");
        assert_eq!(json["changed"][0]["verdict"], "significant");
        assert_eq!(json["correction"]["method"], "benjamini_hochberg");
    }

    #[test]
    fn an_older_file_without_per_seed_rows_is_read_and_not_tested() {
        let old = crate::results_frame::parse("ood_set,method,metric,value,paper,delta\nG,M,auroc,80,,\n", "old").unwrap();
        let new = seeded(&[("M", &[81.0, 83.0])]);
        let changed = changed_values(&old, &new, &mut |_, _, _| panic!("not asked without per-seed rows")).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].test, changed[0].verdict, changed[0].seeds), (Test::NoPerSeedRows, Verdict::NotMeasured, (0, 2)));
        assert_eq!(changed[0].test_description, "none: no per-seed rows (an older results.csv)");
    }

    #[test]
    fn lists_changed_added_and_removed_rows_only() {
        let old = frame(&[("G", "ODIN", "auroc", 90.0), ("G", "Baseline", "auroc", 80.0), ("T", "ODIN", "auroc", 70.0)]);
        let new = frame(&[("G", "ODIN", "auroc", 92.5), ("G", "Baseline", "auroc", 80.0), ("N", "ODIN", "auroc", 60.0)]);
        let changed = changed_values(&old, &new, &mut |_, _, _| Pairing::Unknown).unwrap();
        let summary: Vec<_> = changed.iter().map(|c| (c.ood_set.as_str(), c.old, c.new, c.delta, c.verdict)).collect();
        assert_eq!(
            summary,
            [
                ("G", Some(90.0), Some(92.5), Some(2.5), Verdict::NotMeasured),
                ("N", None, Some(60.0), None, Verdict::Added),
                ("T", Some(70.0), None, None, Verdict::Removed),
            ]
        );
    }

    #[test]
    fn identical_frames_and_configs_say_so() {
        let f = frame(&[("G", "ODIN", "auroc", 90.0)]);
        let changed = changed_values(&f, &f, &mut |_, _, _| Pairing::Unknown).unwrap();
        let d = ResultsDiff::of(changed, vec![], vec![], Default::default());
        assert_eq!(d.to_markdown("HEAD~1", "HEAD"), "No differences between HEAD~1 and HEAD.\n");
    }

    #[test]
    fn config_changes_name_each_field() {
        let old: BTreeMap<String, Value> = [("tune.t".to_string(), json!([1, 2])), ("seed".to_string(), json!(0))].into();
        let new: BTreeMap<String, Value> = [("tune.t".to_string(), json!([1])), ("seed".to_string(), json!(0))].into();
        let c = config_changes(&old, &new);
        assert_eq!(c, [ConfigChange { field: "tune.t".into(), old: json!([1, 2]), new: json!([1]) }]);
    }
}
