//! Comparing two results frames and two configs: what `oodpipe diff` prints.
//!
//! The frames are joined with Polars on (ood_set, method, metric) in a full outer join, so a row
//! that exists on one side only shows as a change too (old or new missing). A value counts as
//! changed when it differs by more than 1e-9 (the CSV round-trips f64 exactly, so this only absorbs
//! nothing-changes noise, never a real difference at the reported two decimals).
//!
//! # Significant or within noise
//! Each side's value may carry a 95% interval (across seeds, or a bootstrap over the test images
//! for one seed). A change is *significant* when the two intervals do not overlap; when only one
//! side has an interval, when the other side's value lies outside it; with no interval on either
//! side (results.csv files older than intervals), and for a row on one side only, it counts as
//! significant, since nothing shows it to be noise. Non-overlap of two 95% intervals is a
//! conservative test (for two equal, symmetric intervals it rejects at about p < 0.006): the diff
//! is meant to flag what a reader should look at, not every move within the noise.

use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// Outside the noise (see the module doc).
    pub significant: bool,
}

/// Whether a change is beyond the noise: the module doc's rule.
pub fn is_significant(old: Option<f64>, new: Option<f64>, old_ci: Option<(f64, f64)>, new_ci: Option<(f64, f64)>) -> bool {
    let outside = |v: f64, (lo, hi): (f64, f64)| v < lo || v > hi;
    match (old, new, old_ci, new_ci) {
        (Some(_), Some(_), Some((a_lo, a_hi)), Some((b_lo, b_hi))) => a_hi < b_lo || b_hi < a_lo,
        (Some(_), Some(b), Some(ci), None) => outside(b, ci),
        (Some(a), Some(_), None, Some(ci)) => outside(a, ci),
        _ => true,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultsDiff {
    /// Significant changes first, each group in the frames' order.
    pub changed: Vec<ChangedValue>,
    pub config_changes: Vec<ConfigChange>,
    /// Platform facts (processor, instruction set, threads, libtorch, device, GPU) that differ.
    pub platform_changes: Vec<ConfigChange>,
}

/// The values that differ between `old` and `new` (frames with `ood_set, method, metric, value`
/// and optionally `ci_low, ci_high`), significant ones first.
pub fn changed_values(old: &DataFrame, new: &DataFrame) -> PolarsResult<Vec<ChangedValue>> {
    let keys = crate::results_frame::KEYS;
    let side = |df: &DataFrame, prefix: &str| -> PolarsResult<DataFrame> {
        let mut df = df.clone();
        for bound in ["ci_low", "ci_high"] {
            if df.column(bound).is_err() {
                df.with_column(Column::full_null(bound.into(), df.height(), &DataType::Float64))?;
            }
        }
        df.rename("value", prefix.into())?;
        df.rename("ci_low", format!("{prefix}_low").into())?;
        df.rename("ci_high", format!("{prefix}_high").into())?;
        Ok(df)
    };
    let (old, new) = (side(old, "old")?, side(new, "new")?);
    let mut args = JoinArgs::new(JoinType::Full);
    args.coalesce = JoinCoalesce::CoalesceColumns;
    args.maintain_order = MaintainOrderJoin::LeftRight;
    let joined = old.join(&new, keys, keys, args, None)?;
    let s = |name: &str| joined.column(name).and_then(|c| c.str().cloned());
    let f = |name: &str| joined.column(name).and_then(|c| c.cast(&DataType::Float64)).and_then(|c| c.f64().cloned());
    let (o, m, k) = (s("ood_set")?, s("method")?, s("metric")?);
    let (a, b) = (f("old")?, f("new")?);
    let (a_lo, a_hi, b_lo, b_hi) = (f("old_low")?, f("old_high")?, f("new_low")?, f("new_high")?);
    let mut out = Vec::new();
    for i in 0..joined.height() {
        let (old, new) = (a.get(i), b.get(i));
        let differs = match (old, new) {
            (Some(x), Some(y)) => (x - y).abs() > 1e-9,
            (None, None) => false,
            _ => true,
        };
        if differs {
            let (old_interval, new_interval) = (a_lo.get(i).zip(a_hi.get(i)), b_lo.get(i).zip(b_hi.get(i)));
            out.push(ChangedValue {
                ood_set: o.get(i).unwrap_or_default().to_string(),
                method: m.get(i).unwrap_or_default().to_string(),
                metric: k.get(i).unwrap_or_default().to_string(),
                old,
                new,
                delta: old.zip(new).map(|(x, y)| y - x),
                old_interval,
                new_interval,
                significant: is_significant(old, new, old_interval, new_interval),
            });
        }
    }
    out.sort_by_key(|c| !c.significant);
    Ok(out)
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

fn cell(v: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (v, ci) {
        (None, _) => "–".to_string(),
        (Some(v), None) => format!("{v:.2}"),
        (Some(v), Some((lo, hi))) => format!("{v:.2} [{lo:.2}, {hi:.2}]"),
    }
}

/// Platform facts of two sides that differ (a fact missing on one side counts only when the
/// other side has it and the side is not simply older: both must have recorded a platform).
pub fn platform_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<ConfigChange> {
    if old.is_empty() || new.is_empty() {
        return Vec::new();
    }
    let as_map = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    config_changes(&as_map(old), &as_map(new))
}

impl ResultsDiff {
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
        if self.changed.is_empty() && self.config_changes.is_empty() {
            md.push_str(&format!("No differences between {a} and {b}.\n"));
            return md;
        }
        let significant = self.changed.iter().filter(|c| c.significant).count();
        if !self.changed.is_empty() {
            md.push_str(
                "| OOD set | Method | Metric | Old [95% interval] | New [95% interval] | Δ | |\n|---|---|---|---:|---:|---:|---|\n",
            );
            for c in &self.changed {
                let delta = c.delta.map_or("–".to_string(), |d| format!("{d:+.2}"));
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {delta} | {} |\n",
                    c.ood_set,
                    c.method,
                    c.metric,
                    cell(c.old, c.old_interval),
                    cell(c.new, c.new_interval),
                    if c.significant { "significant" } else { "within noise" },
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
        md.push_str(&format!(
            "{} values changed ({significant} significant, {} within noise), {} config fields changed between {a} and {b}.\n",
            self.changed.len(),
            self.changed.len() - significant,
            self.config_changes.len()
        ));
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(rows: &[(&str, &str, &str, f64)]) -> DataFrame {
        df!(
            "ood_set" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "method" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "metric" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn platform_differences_are_named_before_the_values() {
        let a: BTreeMap<String, String> = [("cpu_model".to_string(), "Intel Xeon".to_string()), ("threads".to_string(), "2".to_string())].into();
        let b: BTreeMap<String, String> = [("cpu_model".to_string(), "AMD EPYC".to_string()), ("threads".to_string(), "2".to_string())].into();
        let changes = platform_changes(&a, &b);
        assert_eq!(changes.len(), 1);
        assert!(platform_changes(&a, &BTreeMap::new()).is_empty(), "an older side without a platform is not a difference");
        let f = frame(&[("G", "ODIN", "auroc", 90.0)]);
        let d = ResultsDiff { changed: changed_values(&f, &f).unwrap(), config_changes: vec![], platform_changes: changes };
        let md = d.to_markdown("A", "B");
        assert!(md.starts_with("The two sides ran on different platforms"), "{md}");
        assert!(md.contains("| cpu_model | Intel Xeon | AMD EPYC |") && md.ends_with("No differences between A and B.\n"), "{md}");
    }

    #[test]
    fn the_significance_rule() {
        // Overlapping intervals: noise; disjoint: significant; touching counts as overlapping.
        assert!(!is_significant(Some(80.0), Some(82.0), Some((78.0, 82.0)), Some((80.5, 83.5))));
        assert!(is_significant(Some(80.0), Some(85.0), Some((78.0, 82.0)), Some((83.0, 87.0))));
        assert!(!is_significant(Some(80.0), Some(84.0), Some((78.0, 82.0)), Some((82.0, 86.0))));
        // One interval: the other value inside it or not.
        assert!(!is_significant(Some(80.0), Some(81.0), None, Some((79.5, 82.0))));
        assert!(is_significant(Some(80.0), Some(83.0), Some((79.0, 81.0)), None));
        // No interval, or a row on one side only: significant.
        assert!(is_significant(Some(80.0), Some(80.1), None, None));
        assert!(is_significant(None, Some(80.0), None, Some((79.0, 81.0))));
    }

    #[test]
    fn lists_changed_added_and_removed_rows_only() {
        let old = frame(&[("G", "ODIN", "auroc", 90.0), ("G", "Baseline", "auroc", 80.0), ("T", "ODIN", "auroc", 70.0)]);
        let new = frame(&[("G", "ODIN", "auroc", 92.5), ("G", "Baseline", "auroc", 80.0), ("N", "ODIN", "auroc", 60.0)]);
        let changed = changed_values(&old, &new).unwrap();
        let summary: Vec<_> = changed.iter().map(|c| (c.ood_set.as_str(), c.old, c.new, c.delta)).collect();
        assert_eq!(
            summary,
            [("G", Some(90.0), Some(92.5), Some(2.5)), ("T", Some(70.0), None, None), ("N", None, Some(60.0), None)]
        );
    }

    #[test]
    fn identical_frames_and_configs_say_so() {
        let f = frame(&[("G", "ODIN", "auroc", 90.0)]);
        let d = ResultsDiff { changed: changed_values(&f, &f).unwrap(), config_changes: vec![], platform_changes: vec![] };
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
