//! The results frame: the long-format table (`ood_set, method, metric, value`, and the interval
//! bounds `ci_low, ci_high` where the file has them) that a report publishes as `results.csv`,
//! read back into Polars from a file, a git revision or the store.
//!
//! The engine treats it as data: rows keyed by three strings with a number and maybe an
//! interval, whatever they mean. Files with a `seed` column hold per value an aggregate row
//! (`seed = all`), which goes into the frame, and one row per training seed, kept beside it for
//! the tests of [`crate::change_test`]. Older files (no `seed`, no interval columns) read as
//! aggregates without intervals and without per-seed rows.

use crate::results_schema::{CI_HIGH, CI_LOW, METHOD, METRIC, OOD_SET, SEED, VALUE};
use polars::prelude::*;
use std::collections::BTreeMap;

pub use crate::results_schema::{ALL_SEEDS, KEYS};

/// A value's key: (ood_set, method, metric).
pub type RowKey = (String, String, String);

/// A results.csv read back.
#[derive(Debug, Clone)]
pub struct Results {
    /// The aggregate rows: `ood_set, method, metric` (strings), `value`, `ci_low`, `ci_high` (f64,
    /// the bounds null where absent).
    pub frame: DataFrame,
    /// Per value, each training seed's row in file order (the first seed first, as the report
    /// writes them): (seed, value). Empty for a file without a `seed` column.
    pub per_seed: BTreeMap<RowKey, Vec<(String, f64)>>,
}

/// Splits one CSV line, honouring double-quoted fields (`"a, b"`, `""` for a quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Parses `results.csv` text (from `origin`, named in errors): the aggregates into a frame (other
/// columns are ignored) and the per-seed rows beside it.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Results> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else { anyhow::bail!("{origin}: empty, expected a results.csv header") };
    let header = split_csv_line(header);
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let column = |name: &str| {
        find(name).ok_or_else(|| anyhow::anyhow!("{origin}: line 1: no column `{name}` (expected {OOD_SET},{METHOD},{METRIC},{VALUE})"))
    };
    let idx = [column(OOD_SET)?, column(METHOD)?, column(METRIC)?, column(VALUE)?];
    let (seed, low, high) = (find(SEED), find(CI_LOW), find(CI_HIGH));
    let (mut o, mut m, mut k, mut v, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut per_seed: BTreeMap<RowKey, Vec<(String, f64)>> = BTreeMap::new();
    for (i, line) in lines {
        let fields = split_csv_line(line);
        let get = |j: usize| fields.get(j).map(|s| s.trim().to_string()).unwrap_or_default();
        let number = |j: usize, what: &str| -> anyhow::Result<f64> {
            get(j)
                .parse()
                .ok()
                .filter(|x: &f64| !x.is_nan())
                .ok_or_else(|| anyhow::anyhow!("{origin}: line {}: {what} `{}` is not a number", i + 1, get(j)))
        };
        let bound = |j: Option<usize>, what: &str| -> anyhow::Result<Option<f64>> {
            match j {
                Some(j) if !get(j).is_empty() => number(j, what).map(Some),
                _ => Ok(None),
            }
        };
        if let Some(j) = seed
            && get(j) != ALL_SEEDS
        {
            let key = (get(idx[0]), get(idx[1]), get(idx[2]));
            per_seed.entry(key).or_default().push((get(j), number(idx[3], VALUE)?));
            continue;
        }
        v.push(number(idx[3], VALUE)?);
        lo.push(bound(low, CI_LOW)?);
        hi.push(bound(high, CI_HIGH)?);
        o.push(get(idx[0]));
        m.push(get(idx[1]));
        k.push(get(idx[2]));
    }
    let frame = df!(OOD_SET => o, METHOD => m, METRIC => k, VALUE => v, CI_LOW => lo, CI_HIGH => hi)?;
    Ok(Results { frame, per_seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_columns_and_quoted_fields() {
        let df = parse("ood_set,method,metric,value,paper\n\"A, b\",m,auroc,91.5,90\nC,\"x\"\"y\",fpr,0,\n", "t").unwrap().frame;
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("ood_set").unwrap().str().unwrap().get(0), Some("A, b"));
        assert_eq!(df.column("method").unwrap().str().unwrap().get(1), Some("x\"y"));
        assert_eq!(df.column("value").unwrap().f64().unwrap().get(0), Some(91.5));
    }

    #[test]
    fn reads_aggregate_rows_and_their_intervals_only() {
        let text = "ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta\n\
                    G,M,auroc,all,82,80.5,83.5,seeds,1,3,90,-8\nG,M,auroc,0,81,80,82,bootstrap,,1,90,-9\n\
                    G,M,fpr,all,10,,,,,1,,\n";
        let results = parse(text, "t").unwrap();
        let df = &results.frame;
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("value").unwrap().f64().unwrap().get(0), Some(82.0));
        assert_eq!(df.column("ci_low").unwrap().f64().unwrap().get(0), Some(80.5));
        assert_eq!(df.column("ci_high").unwrap().f64().unwrap().get(1), None);
        let key = ("G".to_string(), "M".to_string(), "auroc".to_string());
        assert_eq!(results.per_seed[&key], [("0".to_string(), 81.0)]);
        assert_eq!(results.per_seed.len(), 1, "the fpr value has no per-seed rows");
        // An older file: no seed, no interval columns.
        let old = parse("ood_set,method,metric,value,paper,delta\nG,M,auroc,80,90,-10\n", "old").unwrap();
        assert_eq!(old.frame.column("ci_low").unwrap().f64().unwrap().get(0), None);
        assert!(old.per_seed.is_empty());
    }

    #[test]
    fn bad_input_names_the_origin_and_line() {
        let err = parse("ood_set,method,metric,value\nA,m,auroc,high\n", "HEAD:reports/results.csv").unwrap_err().to_string();
        assert!(err.contains("HEAD:reports/results.csv: line 2") && err.contains("high"), "{err}");
        let err = parse("a,b\n", "f").unwrap_err().to_string();
        assert!(err.contains("no column `ood_set`"), "{err}");
    }
}
