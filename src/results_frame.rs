//! The results frame: the long-format table (`ood_set, method, metric, value`) that a report
//! publishes as `results.csv`, read back into Polars from a file, a git revision or the store.
//!
//! The engine treats it as data: rows keyed by three strings with a number, whatever they mean.

use polars::prelude::*;

pub const KEYS: [&str; 3] = ["ood_set", "method", "metric"];

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

/// Parses `results.csv` text (from `origin`, named in errors) into a frame with the columns
/// `ood_set, method, metric` (strings) and `value` (f64); other columns are ignored.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<DataFrame> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else { anyhow::bail!("{origin}: empty, expected a results.csv header") };
    let header = split_csv_line(header);
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            anyhow::anyhow!("{origin}: line 1: no column `{name}` (expected ood_set,method,metric,value)")
        })
    };
    let idx = [column("ood_set")?, column("method")?, column("metric")?, column("value")?];
    let (mut o, mut m, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines {
        let fields = split_csv_line(line);
        let get = |j: usize| fields.get(j).map(|s| s.trim().to_string()).unwrap_or_default();
        let value: f64 = get(idx[3]).parse().map_err(|_| {
            anyhow::anyhow!("{origin}: line {}: value `{}` is not a number", i + 1, get(idx[3]))
        })?;
        o.push(get(idx[0]));
        m.push(get(idx[1]));
        k.push(get(idx[2]));
        v.push(value);
    }
    Ok(df!("ood_set" => o, "method" => m, "metric" => k, "value" => v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_columns_and_quoted_fields() {
        let df = parse("ood_set,method,metric,value,paper\n\"A, b\",m,auroc,91.5,90\nC,\"x\"\"y\",fpr,0,\n", "t").unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(df.column("ood_set").unwrap().str().unwrap().get(0), Some("A, b"));
        assert_eq!(df.column("method").unwrap().str().unwrap().get(1), Some("x\"y"));
        assert_eq!(df.column("value").unwrap().f64().unwrap().get(0), Some(91.5));
    }

    #[test]
    fn bad_input_names_the_origin_and_line() {
        let err = parse("ood_set,method,metric,value\nA,m,auroc,high\n", "HEAD:reports/results.csv").unwrap_err().to_string();
        assert!(err.contains("HEAD:reports/results.csv: line 2") && err.contains("high"), "{err}");
        let err = parse("a,b\n", "f").unwrap_err().to_string();
        assert!(err.contains("no column `ood_set`"), "{err}");
    }
}
