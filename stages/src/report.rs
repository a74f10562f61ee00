//! The report: every score stage's metrics and every model's accuracy gathered into one
//! long-format Polars frame, set beside the paper's numbers, and rendered as the paper's tables.
//!
//! Outputs (published to `reports/` by the run):
//! - `results.csv`: `ood_set,method,metric,value,paper,delta` (percent), one row per value, the
//!   frame other tools (and `oodpipe diff`) read;
//! - `hyperparameters.csv`: the temperature and epsilon each tuned method chose per OOD set;
//! - `table1.md`, `table2.md`: the paper's Table 1 and Table 2, each cell "ours / paper (delta)";
//! - `README.md`: links and the chosen hyper-parameters; `summary.txt`: the headline rows.
//! - `figures/`: ROC curves per OOD set and score histograms per score stage ([`crate::figures`]).
//!
//! The paper's numbers are data (`configs/paper_results.csv`, a source of this stage), not code.

use crate::config::{ModelKind, OodSet};
use crate::method::Method;
use crate::methods::METRICS_FILE;
use crate::stage::StageContext;
use anyhow::{Context, Result, bail};
use polars::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// The metrics of Table 1, in its column order: (column name, header).
pub const METRICS: [(&str, &str); 5] = [
    ("fpr_at_95_tpr", "FPR at 95% TPR ↓"),
    ("detection_error", "Detection Error ↓"),
    ("auroc", "AUROC ↑"),
    ("aupr_in", "AUPR-In ↑"),
    ("aupr_out", "AUPR-Out ↑"),
];

pub const IN_DISTRIBUTION: &str = "CIFAR-10";
const KEYS: [&str; 3] = ["ood_set", "method", "metric"];

/// One row of the long-format frame.
struct Row {
    ood_set: String,
    method: String,
    metric: String,
    value: f64,
}

fn rows_to_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    df!(
        "ood_set" => rows.iter().map(|r| r.ood_set.as_str()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        "value" => rows.iter().map(|r| r.value).collect::<Vec<_>>(),
    )
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path)?).with_context(|| format!("reading {}", path.display()))
}

/// The paper's numbers: a CSV with the header `ood_set,method,metric,value`.
pub fn read_paper(path: &Path) -> Result<DataFrame> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, header)) if header.trim() == "ood_set,method,metric,value" => {}
        _ => bail!("{}: line 1: expected the header `ood_set,method,metric,value`", path.display()),
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [ood_set, method, metric, value] = fields[..] else {
            bail!("{}: line {}: expected 4 comma-separated fields, found {}", path.display(), i + 1, fields.len());
        };
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .with_context(|| format!("{}: line {}: `{value}` is not a number", path.display(), i + 1))?;
        rows.push(Row { ood_set: ood_set.into(), method: method.into(), metric: metric.into(), value });
    }
    Ok(rows_to_frame(&rows)?)
}

/// Our numbers, in percent, in the tables' order, and the chosen hyper-parameters.
fn collect(ctx: &StageContext) -> Result<(Vec<Row>, Vec<(String, String, String, f64)>)> {
    let mut rows = Vec::new();
    let mut hyper = Vec::new();
    for ood in OodSet::ALL {
        for method in Method::ALL {
            let id = format!("score.{}.{}", method.name(), ood.name());
            if !ctx.inputs.contains_key(&id) {
                continue;
            }
            let record = read_json(ctx.input(&id, METRICS_FILE)?)?;
            for (metric, _) in METRICS {
                let v = record["metrics"][metric].as_f64().with_context(|| format!("{id}: no metric {metric}"))?;
                rows.push(Row { ood_set: ood.label().into(), method: method.label().into(), metric: metric.into(), value: 100.0 * v });
            }
            if let Some(params) = record["hyperparameters"].as_object() {
                if method.is_tuned() {
                    for (name, v) in params {
                        hyper.push((ood.label().to_string(), method.label().to_string(), name.clone(), v.as_f64().unwrap_or(f64::NAN)));
                    }
                }
            }
        }
    }
    for model in ModelKind::ALL {
        let id = format!("outputs.{}.cifar10", model.name());
        if ctx.inputs.contains_key(&id) {
            let acc = read_json(ctx.input(&id, "accuracy.json")?)?;
            let v = acc["test_accuracy"].as_f64().with_context(|| format!("{id}: no test_accuracy"))?;
            rows.push(Row { ood_set: IN_DISTRIBUTION.into(), method: model.label().into(), metric: "accuracy".into(), value: 100.0 * v });
        }
    }
    Ok((rows, hyper))
}

/// Ours joined with the paper's: columns ood_set, method, metric, value, paper, delta.
pub fn compare(ours: &DataFrame, paper: &DataFrame) -> PolarsResult<DataFrame> {
    let paper = paper.clone().rename("value", "paper".into())?.clone();
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let mut joined = ours.join(&paper, KEYS, KEYS, args, None)?;
    let delta = (joined.column("value")?.as_materialized_series() - joined.column("paper")?.as_materialized_series())?;
    joined.with_column(Column::from(delta.with_name("delta".into())))?;
    Ok(joined)
}

/// The frame as CSV: a header, then one line per row; floats at full precision, missing as empty.
pub fn to_csv(df: &DataFrame) -> PolarsResult<String> {
    let mut out = df.get_column_names().iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",");
    out.push('\n');
    for i in 0..df.height() {
        let cells: Vec<String> = df
            .columns()
            .iter()
            .map(|c| match c.get(i) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::Float64(v)) => format!("{v}"),
                Ok(AnyValue::String(s)) if s.contains([',', '"']) => format!("\"{}\"", s.replace('"', "\"\"")),
                Ok(AnyValue::String(s)) => s.to_string(),
                Ok(other) => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// Looks up (value, paper, delta) of a row of the compared frame.
struct Lookup {
    cells: std::collections::HashMap<(String, String, String), (f64, Option<f64>)>,
}

impl Lookup {
    fn new(compared: &DataFrame) -> PolarsResult<Lookup> {
        let s = |name: &str| compared.column(name).and_then(|c| c.str().cloned());
        let (o, m, k) = (s("ood_set")?, s("method")?, s("metric")?);
        let v = compared.column("value")?.f64()?.clone();
        let p = compared.column("paper")?.f64()?.clone();
        let mut cells = std::collections::HashMap::new();
        for i in 0..compared.height() {
            let key = (o.get(i).unwrap_or("").to_string(), m.get(i).unwrap_or("").to_string(), k.get(i).unwrap_or("").to_string());
            cells.insert(key, (v.get(i).unwrap_or(f64::NAN), p.get(i)));
        }
        Ok(Lookup { cells })
    }

    fn cell(&self, ood: &str, method: &str, metric: &str) -> Option<String> {
        let (ours, paper) = self.cells.get(&(ood.to_string(), method.to_string(), metric.to_string()))?;
        Some(match paper {
            Some(p) => format!("{ours:.2} / {p:.2} ({:+.2})", ours - p),
            None => format!("{ours:.2} / – "),
        })
    }
}

fn table1(lookup: &Lookup, methods: &[Method]) -> String {
    let mut md = String::from("# Table 1: out-of-distribution detection on CIFAR-10 (WRN)\n\n");
    md.push_str("Each cell: ours / the paper's (ours minus the paper's), in percent.\n\n");
    md.push_str("| Out-of-distribution dataset | Method |");
    for (_, header) in METRICS {
        write!(md, " {header} |").unwrap();
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---:|".repeat(METRICS.len()));
    md.push('\n');
    for ood in OodSet::ALL {
        for method in methods {
            write!(md, "| {} | {} |", ood.label(), method.label()).unwrap();
            for (metric, _) in METRICS {
                write!(md, " {} |", lookup.cell(ood.label(), method.label(), metric).unwrap_or_else(|| "–".into())).unwrap();
            }
            md.push('\n');
        }
    }
    md
}

fn table2(lookup: &Lookup, models: &[ModelKind]) -> String {
    let mut md = String::from("# Table 2: classification accuracy on the CIFAR-10 test split\n\n");
    md.push_str("| Method | Accuracy: ours / paper (difference) |\n|---|---:|\n");
    for model in models {
        let cell = lookup.cell(IN_DISTRIBUTION, model.label(), "accuracy").unwrap_or_else(|| "–".into());
        writeln!(md, "| {} | {cell} |", model.label()).unwrap();
    }
    md
}

pub fn run(ctx: &StageContext) -> Result<()> {
    let paper = read_paper(ctx.source("paper_results.csv")?)?;
    let (rows, hyper) = collect(ctx)?;
    let ours = rows_to_frame(&rows)?;
    let compared = compare(&ours, &paper)?;
    let lookup = Lookup::new(&compared)?;
    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| rows.iter().any(|r| r.method == m.label() && r.ood_set != IN_DISTRIBUTION)).collect();
    let models: Vec<ModelKind> = ModelKind::ALL.into_iter().filter(|m| rows.iter().any(|r| r.method == m.label() && r.ood_set == IN_DISTRIBUTION)).collect();

    std::fs::write(ctx.output("results.csv"), to_csv(&compared)?)?;
    let mut hyper_csv = String::from("ood_set,method,parameter,value\n");
    for (o, m, p, v) in &hyper {
        writeln!(hyper_csv, "{o},{m},{p},{v}").unwrap();
    }
    std::fs::write(ctx.output("hyperparameters.csv"), &hyper_csv)?;
    std::fs::write(ctx.output("table1.md"), table1(&lookup, &methods))?;
    std::fs::write(ctx.output("table2.md"), table2(&lookup, &models))?;

    let mut readme = String::from("# Results\n\n");
    readme.push_str(
        "Rebuilt by `oodpipe run`; every number comes from the stages of the config named in the run section \
         below, beside the paper's own numbers (`configs/paper_results.csv`).\n\n\
         - [Table 1: OOD detection](table1.md)\n- [Table 2: accuracy](table2.md)\n\
         - [results.csv](results.csv): the long-format frame (`ood_set,method,metric,value,paper,delta`, percent)\n\
         - [hyperparameters.csv](hyperparameters.csv): what tuning chose\n\
         - [run.json](run.json): config, commit, libtorch, device and each stage's time\n\n\
         ![The stage graph](dag.svg)\n\n(`oodpipe dag --format dot`, drawn by Graphviz: [dag.dot](dag.dot))\n\n",
    );
    if !hyper.is_empty() {
        readme.push_str("## Chosen hyper-parameters (on the validation splits)\n\n| OOD set | Method | Parameter | Value |\n|---|---|---|---:|\n");
        for (o, m, p, v) in &hyper {
            writeln!(readme, "| {o} | {m} | {p} | {v} |").unwrap();
        }
        readme.push('\n');
    }
    readme.push_str(&crate::figures::write_all(ctx)?.markdown());
    std::fs::write(ctx.output("README.md"), readme)?;

    let mut summary = String::from("Headline (ours / paper):\n");
    for model in &models {
        if let Some(c) = lookup.cell(IN_DISTRIBUTION, model.label(), "accuracy") {
            writeln!(summary, "  {:<8} CIFAR-10 test accuracy {c}", model.label()).unwrap();
        }
    }
    for ood in OodSet::ALL {
        for method in &methods {
            if let (Some(fpr), Some(auroc)) = (
                lookup.cell(ood.label(), method.label(), "fpr_at_95_tpr"),
                lookup.cell(ood.label(), method.label(), "auroc"),
            ) {
                writeln!(summary, "  {:<22} {:<10} FPR@95 {fpr:<24} AUROC {auroc}", ood.label(), method.label()).unwrap();
            }
        }
    }
    std::fs::write(ctx.output("summary.txt"), summary)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_joins_on_all_three_keys_and_keeps_our_order() {
        let ours = rows_to_frame(&[
            Row { ood_set: "B".into(), method: "m".into(), metric: "auroc".into(), value: 90.0 },
            Row { ood_set: "A".into(), method: "m".into(), metric: "auroc".into(), value: 80.0 },
            Row { ood_set: "A".into(), method: "z".into(), metric: "auroc".into(), value: 70.0 },
        ])
        .unwrap();
        let paper = rows_to_frame(&[
            Row { ood_set: "A".into(), method: "m".into(), metric: "auroc".into(), value: 85.5 },
            Row { ood_set: "B".into(), method: "m".into(), metric: "auroc".into(), value: 91.0 },
            Row { ood_set: "B".into(), method: "m".into(), metric: "fpr_at_95_tpr".into(), value: 1.0 },
        ])
        .unwrap();
        let c = compare(&ours, &paper).unwrap();
        assert_eq!(
            to_csv(&c).unwrap(),
            "ood_set,method,metric,value,paper,delta\nB,m,auroc,90,91,-1\nA,m,auroc,80,85.5,-5.5\nA,z,auroc,70,,\n"
        );
    }

    #[test]
    fn the_shipped_paper_numbers_cover_both_tables() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/paper_results.csv");
        let paper = read_paper(&path).unwrap();
        assert_eq!(paper.height(), 3 * 8 * 5 + 5);
        let lookup = Lookup::new(&compare(&paper, &paper).unwrap()).unwrap();
        assert_eq!(lookup.cell("Tiny ImageNet (crop)", "ODIN", "auroc").unwrap(), "95.85 / 95.85 (+0.00)");
        assert_eq!(lookup.cell("CIFAR-10", "BIN", "accuracy").unwrap(), "92.54 / 92.54 (+0.00)");
    }

    #[test]
    fn a_malformed_paper_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        std::fs::write(&p, "ood_set,method,metric,value\nA,m,auroc,abc\n").unwrap();
        let msg = read_paper(&p).unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("abc"), "{msg}");
    }
}
