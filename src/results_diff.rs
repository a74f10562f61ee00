//! Comparing two results frames and two configs: what `oodpipe diff` prints.
//!
//! The frames are joined with Polars on (ood_set, method, metric) in a full outer join, so a row
//! that exists on one side only shows as a change too (old or new missing). A value counts as
//! changed when it differs by more than 1e-9 (the CSV round-trips f64 exactly, so this only absorbs
//! nothing-changes noise, never a real difference at the reported two decimals).

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultsDiff {
    pub changed: Vec<ChangedValue>,
    pub config_changes: Vec<ConfigChange>,
}

/// The values that differ between `old` and `new` (frames with `ood_set, method, metric, value`).
pub fn changed_values(old: &DataFrame, new: &DataFrame) -> PolarsResult<Vec<ChangedValue>> {
    let keys = crate::results_frame::KEYS;
    let old = old.clone().rename("value", "old".into())?.clone();
    let new = new.clone().rename("value", "new".into())?.clone();
    let mut args = JoinArgs::new(JoinType::Full);
    args.coalesce = JoinCoalesce::CoalesceColumns;
    args.maintain_order = MaintainOrderJoin::LeftRight;
    let joined = old.join(&new, keys, keys, args, None)?;
    let s = |name: &str| joined.column(name).and_then(|c| c.str().cloned());
    let (o, m, k) = (s("ood_set")?, s("method")?, s("metric")?);
    let (a, b) = (joined.column("old")?.f64()?.clone(), joined.column("new")?.f64()?.clone());
    let mut out = Vec::new();
    for i in 0..joined.height() {
        let (old, new) = (a.get(i), b.get(i));
        let differs = match (old, new) {
            (Some(x), Some(y)) => (x - y).abs() > 1e-9,
            (None, None) => false,
            _ => true,
        };
        if differs {
            out.push(ChangedValue {
                ood_set: o.get(i).unwrap_or_default().to_string(),
                method: m.get(i).unwrap_or_default().to_string(),
                metric: k.get(i).unwrap_or_default().to_string(),
                old,
                new,
                delta: old.zip(new).map(|(x, y)| y - x),
            });
        }
    }
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

fn cell(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.2}"))
}

impl ResultsDiff {
    /// The Markdown a person reads: the changed values, the config changes, a one-line summary.
    pub fn to_markdown(&self, a: &str, b: &str) -> String {
        let mut md = String::new();
        if self.changed.is_empty() && self.config_changes.is_empty() {
            return format!("No differences between {a} and {b}.\n");
        }
        if !self.changed.is_empty() {
            md.push_str("| OOD set | Method | Metric | Old | New | Δ |\n|---|---|---|---:|---:|---:|\n");
            for c in &self.changed {
                let delta = c.delta.map_or("–".to_string(), |d| format!("{d:+.2}"));
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {delta} |\n",
                    c.ood_set,
                    c.method,
                    c.metric,
                    cell(c.old),
                    cell(c.new)
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
            "{} values changed, {} config fields changed between {a} and {b}.\n",
            self.changed.len(),
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
        let d = ResultsDiff { changed: changed_values(&f, &f).unwrap(), config_changes: vec![] };
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
