//! The report: every score stage's metrics and every model's accuracy, per training seed and
//! aggregated over seeds with intervals ([`crate::uncertainty`]), gathered into one long-format
//! Polars frame, set beside the paper's numbers, and rendered as the paper's tables.
//!
//! Outputs (published to `reports/` by the run):
//! - `results.csv`: `ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta`
//!   (percent). For each value one aggregate row (`seed = all`) and one row per training seed;
//!   see [`RESULTS_COLUMNS`] and the README for the schema. The frame `oodpipe diff` reads;
//! - `hyperparameters.csv`: the temperature and epsilon each tuned method chose per OOD set and seed;
//! - `table1.md`, `table2.md`: the paper's Table 1 and Table 2, and `table3.md`, the detectors
//!   beyond the paper (every configured OOD set), each cell
//!   "ours ± half-width / paper (ours minus paper)"; `seeds.md` with two or more seeds: each
//!   value per seed;
//! - `README.md`: links, the intervals' meaning, AUPR's chance levels, the chosen
//!   hyper-parameters; `summary.txt`: the headline rows.
//! - `figures/`: ROC curves per OOD set and score histograms per score stage, of the first seed
//!   ([`crate::figures`]).
//!
//! The paper's numbers are data (`configs/paper_results.csv`, a source of this stage), not code.

use crate::config::ModelKind;
use oodpipe_plan::view;
use crate::detector::{ALL, Detector, ReportTable, files, ids};
use crate::stage::StageContext;
use crate::table::split_seed_suffix;
use crate::uncertainty::Estimate;
use anyhow::{Context, Result, bail};
use oodpipe_metrics::bootstrap::{bootstrap, bootstrap_proportion};
use polars::prelude::*;
use std::collections::BTreeMap;
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

/// The columns of `results.csv`, in order.
pub const RESULTS_COLUMNS: [&str; 12] =
    ["ood_set", "method", "metric", "seed", "value", "ci_low", "ci_high", "interval", "std", "n", "paper", "delta"];

/// The `seed` of the aggregate rows.
pub const ALL_SEEDS: &str = "all";

pub const IN_DISTRIBUTION: &str = "CIFAR-10";
const KEYS: [&str; 3] = ["ood_set", "method", "metric"];

/// One row of the long-format frame.
struct Row {
    ood_set: String,
    method: String,
    metric: String,
    /// A seed's number, or [`ALL_SEEDS`].
    seed: String,
    est: Estimate,
}

fn rows_to_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    df!(
        "ood_set" => rows.iter().map(|r| r.ood_set.as_str()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        "seed" => rows.iter().map(|r| r.seed.as_str()).collect::<Vec<_>>(),
        "value" => rows.iter().map(|r| r.est.value).collect::<Vec<_>>(),
        "ci_low" => rows.iter().map(|r| r.est.interval.map(|i| i.0)).collect::<Vec<_>>(),
        "ci_high" => rows.iter().map(|r| r.est.interval.map(|i| i.1)).collect::<Vec<_>>(),
        "interval" => rows.iter().map(|r| r.est.kind.name()).collect::<Vec<_>>(),
        "std" => rows.iter().map(|r| r.est.std).collect::<Vec<_>>(),
        "n" => rows.iter().map(|r| r.est.n as i64).collect::<Vec<_>>(),
    )
}

/// The paper's numbers as a frame `ood_set, method, metric, value`.
fn paper_frame(rows: &[(String, String, String, f64)]) -> PolarsResult<DataFrame> {
    df!(
        "ood_set" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
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
        rows.push((ood_set.to_string(), method.to_string(), metric.to_string(), value));
    }
    Ok(paper_frame(&rows)?)
}

/// The training seeds behind the inputs, first seed first: (seed, id suffix).
fn seeds(ctx: &StageContext, first: u64) -> Vec<(u64, String)> {
    let mut seeds: Vec<(u64, String)> = vec![(first, String::new())];
    let more: std::collections::BTreeSet<u64> = ctx.inputs.keys().filter_map(|k| split_seed_suffix(k).1).collect();
    seeds.extend(more.into_iter().map(|s| (s, format!("@seed{s}"))));
    seeds
}

/// The test-set sizes of an OOD set's comparison: (in-distribution, OOD).
type Sizes = (usize, usize);

/// Everything the report gathers from its inputs.
struct Collected {
    /// Per (ood_set, method, metric) in the tables' order: each seed's estimate, in seed order.
    values: Vec<((String, String, String), Vec<(u64, Estimate)>)>,
    /// (ood_set, method, seed, parameter, value).
    hyper: Vec<(String, String, u64, String, f64)>,
    /// Test-set sizes per OOD set label.
    sizes: BTreeMap<String, Sizes>,
    seeds: Vec<u64>,
    /// The values and replicates behind the mean over the sets ([`crate::report_summary`]).
    summary: crate::report_summary::Values,
}

/// Our numbers, in percent, in the tables' order, each seed's with its bootstrap interval.
fn collect(ctx: &StageContext, config: &view::Report, sets: &[(String, String)]) -> Result<Collected> {
    let (resamples, boot_seed) = (config.report.bootstrap, config.report.bootstrap_seed);
    let seeds = seeds(ctx, config.train.seed);
    let mut values: Vec<((String, String, String), Vec<(u64, Estimate)>)> = Vec::new();
    let mut hyper = Vec::new();
    let mut sizes = BTreeMap::new();
    let mut summary = crate::report_summary::Values::default();
    for (name, label) in sets {
        for detector in ALL.iter().copied() {
            let mut per_metric: Vec<Vec<(u64, Estimate)>> = vec![Vec::new(); METRICS.len()];
            for (seed, suffix) in &seeds {
                let id = format!("{}{suffix}", ids::score(detector.name, name));
                if !ctx.inputs.contains_key(&id) {
                    continue;
                }
                let record = read_json(ctx.input(&id, files::METRICS)?)?;
                let in_scores = crate::figures::read_scores(ctx, &id, "in_scores")?;
                let out_scores = crate::figures::read_scores(ctx, &id, "out_scores")?;
                sizes.insert(label.clone(), (in_scores.len(), out_scores.len()));
                let replicates = bootstrap(&in_scores, &out_scores, resamples, boot_seed)
                    .with_context(|| format!("bootstrap of {id}"))?;
                for (k, (metric, _)) in METRICS.iter().enumerate() {
                    let v = record["metrics"][metric].as_f64().with_context(|| format!("{id}: no metric {metric}"))?;
                    let reps: Vec<f64> = replicates.iter().map(|m| metric_of(m, metric)).collect();
                    per_metric[k].push((*seed, Estimate::of_seed(v, &reps).scaled(100.0)));
                    let pct = crate::report_summary::SeedValue { seed: *seed, value: v * 100.0, replicates: reps.iter().map(|r| r * 100.0).collect() };
                    summary.add(label, detector.label, metric, pct);
                }
                if let Some(params) = record["hyperparameters"].as_object()
                    && detector.tuning.is_some()
                {
                    for (param, v) in params {
                        hyper.push((label.clone(), detector.label.into(), *seed, param.clone(), v.as_f64().unwrap_or(f64::NAN)));
                    }
                }
            }
            for (k, (metric, _)) in METRICS.iter().enumerate() {
                if !per_metric[k].is_empty() {
                    let key = (label.clone(), detector.label.to_string(), metric.to_string());
                    values.push((key, std::mem::take(&mut per_metric[k])));
                }
            }
        }
    }
    for model in ModelKind::ALL {
        let mut per_seed = Vec::new();
        for (seed, suffix) in &seeds {
            let id = format!("{}{suffix}", ids::outputs(model, ids::CIFAR10));
            if !ctx.inputs.contains_key(&id) {
                continue;
            }
            let acc = read_json(ctx.input(&id, files::ACCURACY)?)?;
            let v = acc["test_accuracy"].as_f64().with_context(|| format!("{id}: no test_accuracy"))?;
            let n = crate::tensors::read_one(ctx.input(&id, files::OUTPUTS)?, "test_logits")?.size()[0] as usize;
            let correct = (v * n as f64).round() as usize;
            let reps = bootstrap_proportion(correct, n, resamples, boot_seed);
            per_seed.push((*seed, Estimate::of_seed(v, &reps).scaled(100.0)));
        }
        if !per_seed.is_empty() {
            values.push(((IN_DISTRIBUTION.into(), model.label().into(), "accuracy".into()), per_seed));
        }
    }
    Ok(Collected { values, hyper, sizes, seeds: seeds.into_iter().map(|s| s.0).collect(), summary })
}

fn metric_of(m: &oodpipe_metrics::OodMetrics, name: &str) -> f64 {
    match name {
        "fpr_at_95_tpr" => m.fpr_at_95_tpr,
        "detection_error" => m.detection_error,
        "auroc" => m.auroc,
        "aupr_in" => m.aupr_in,
        "aupr_out" => m.aupr_out,
        other => unreachable!("no metric {other}"),
    }
}

/// The rows of results.csv: per value the aggregate, then each seed.
fn rows(collected: &Collected) -> Vec<Row> {
    let mut rows = Vec::new();
    for ((ood_set, method, metric), per_seed) in &collected.values {
        let row = |seed: String, est: Estimate| Row { ood_set: ood_set.clone(), method: method.clone(), metric: metric.clone(), seed, est };
        let seeds: Vec<Estimate> = per_seed.iter().map(|(_, e)| e.clone()).collect();
        rows.push(row(ALL_SEEDS.into(), Estimate::aggregate(&seeds)));
        for (seed, est) in per_seed {
            rows.push(row(seed.to_string(), est.clone()));
        }
    }
    rows
}

/// Ours joined with the paper's: the columns of [`RESULTS_COLUMNS`].
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

/// Looks up the aggregate (value, half-width, paper) of a row of the compared frame.
struct Lookup {
    cells: std::collections::HashMap<(String, String, String), (f64, Option<f64>, Option<f64>)>,
}

impl Lookup {
    fn new(compared: &DataFrame) -> PolarsResult<Lookup> {
        let s = |name: &str| compared.column(name).and_then(|c| c.str().cloned());
        let (o, m, k, seed) = (s("ood_set")?, s("method")?, s("metric")?, s("seed")?);
        let v = compared.column("value")?.f64()?.clone();
        let (lo, hi) = (compared.column("ci_low")?.f64()?.clone(), compared.column("ci_high")?.f64()?.clone());
        let p = compared.column("paper")?.f64()?.clone();
        let mut cells = std::collections::HashMap::new();
        for i in 0..compared.height() {
            if seed.get(i) != Some(ALL_SEEDS) {
                continue;
            }
            let key = (o.get(i).unwrap_or("").to_string(), m.get(i).unwrap_or("").to_string(), k.get(i).unwrap_or("").to_string());
            let half = lo.get(i).zip(hi.get(i)).map(|(a, b)| (b - a) / 2.0);
            cells.insert(key, (v.get(i).unwrap_or(f64::NAN), half, p.get(i)));
        }
        Ok(Lookup { cells })
    }

    /// "ours ± half / paper (delta)", or without the parts that are missing (only ours where the
    /// paper has no number).
    fn cell(&self, ood: &str, method: &str, metric: &str) -> Option<String> {
        let (ours, half, paper) = self.cells.get(&(ood.to_string(), method.to_string(), metric.to_string()))?;
        let ours_text = match half {
            Some(h) => format!("{ours:.2} ± {h:.2}"),
            None => format!("{ours:.2}"),
        };
        Some(match paper {
            Some(p) => format!("{ours_text} / {p:.2} ({:+.2})", ours - p),
            None => ours_text,
        })
    }
}

/// What the `±` of the tables is, in one sentence.
fn interval_note(seeds: usize, resamples: usize) -> String {
    if seeds >= 2 {
        format!(
            "ours is the mean over {seeds} training seeds ± the half-width of its 95% Student's t interval \
             (t(0.975, {}) × std / √{seeds}); `seeds.md` and `results.csv` give each seed's value",
            seeds - 1
        )
    } else if resamples > 0 {
        format!(
            "ours is one training seed's value ± the half-width of its 95% percentile bootstrap interval over the \
             test images ({resamples} resamples of the CIFAR-10 and the OOD test scores, each with replacement); it \
             does not cover training noise: run several seeds (`train.seeds`) for that"
        )
    } else {
        "ours is one training seed's value, without an interval (`report.bootstrap = 0`)".into()
    }
}

/// AUPR's dependence on the test sets' ratio, and each AUPR's chance level.
fn aupr_note(sets: &[(String, String)], sizes: &BTreeMap<String, Sizes>) -> String {
    let mut md = String::from(
        "AUPR depends on the ratio of the two test sets, not only on how well the scores separate them: a \
         detector that ranks at random has AUPR-In = n_in / (n_in + n_out) and AUPR-Out = n_out / (n_in + n_out). \
         Read each AUPR against its chance level:\n\n| OOD set | CIFAR-10 : OOD test images | AUPR-In at chance | \
         AUPR-Out at chance |\n|---|---:|---:|---:|\n",
    );
    for (_, label) in sets {
        if let Some(&(a, b)) = sizes.get(label) {
            let total = (a + b) as f64;
            writeln!(md, "| {label} | {a} : {b} | {:.2} | {:.2} |", 100.0 * a as f64 / total, 100.0 * b as f64 / total).unwrap();
        }
    }
    md.push_str(
        "\nThe paper's sets are of the default sizes (10,000 CIFAR-10 test images, 1,000 test images per OOD set, \
         SPEC.md), so its AUPRs have the same chance levels; an AUPR-Out of 30% is three times chance, an AUPR-In \
         of 91% is chance.\n",
    );
    md
}

/// Table 1 (the paper's detectors) or Table 3 (beyond the paper): every OOD set in config order,
/// every detector of the table; the paper's numbers where it has them.
fn detector_table(title: &str, lookup: &Lookup, detectors: &[&Detector], sets: &[(String, String)], note: &str, sizes: &BTreeMap<String, Sizes>) -> String {
    let mut md = format!("# {title}\n\n");
    writeln!(md, "Each cell: ours / the paper's (ours minus the paper's), in percent (ours alone where the paper has no number); {note}.\n").unwrap();
    md.push_str("| Out-of-distribution dataset | Method |");
    for (_, header) in METRICS {
        write!(md, " {header} |").unwrap();
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---:|".repeat(METRICS.len()));
    md.push('\n');
    for (_, label) in sets {
        for detector in detectors {
            write!(md, "| {label} | {} |", detector.label).unwrap();
            for (metric, _) in METRICS {
                write!(md, " {} |", lookup.cell(label, detector.label, metric).unwrap_or_else(|| "–".into())).unwrap();
            }
            md.push('\n');
        }
    }
    md.push('\n');
    md.push_str(&aupr_note(sets, sizes));
    md
}

fn table2(lookup: &Lookup, models: &[ModelKind], note: &str) -> String {
    let mut md = String::from("# Table 2: classification accuracy on the CIFAR-10 test split\n\n");
    writeln!(md, "In percent; {note}.\n").unwrap();
    md.push_str("| Method | Accuracy: ours / paper (difference) |\n|---|---:|\n");
    for model in models {
        let cell = lookup.cell(IN_DISTRIBUTION, model.label(), "accuracy").unwrap_or_else(|| "–".into());
        writeln!(md, "| {} | {cell} |", model.label()).unwrap();
    }
    md
}

/// Each value per seed, with the mean and standard deviation: how much training moves it.
fn seeds_table(collected: &Collected) -> String {
    let seeds = &collected.seeds;
    let mut md = format!(
        "# Every value per training seed\n\nIn percent; seeds {}. The data splits are the same for every seed; \
         only training (weight initialisation, shuffling, augmentation) differs.\n\n| OOD set | Method | Metric |",
        seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
    );
    for s in seeds {
        write!(md, " seed {s} |").unwrap();
    }
    md.push_str(" mean | std | range |\n|---|---|---|");
    md.push_str(&"---:|".repeat(seeds.len() + 3));
    md.push('\n');
    for ((o, m, k), per_seed) in &collected.values {
        write!(md, "| {o} | {m} | {k} |").unwrap();
        for s in seeds {
            match per_seed.iter().find(|(x, _)| x == s) {
                Some((_, e)) => write!(md, " {:.2} |", e.value).unwrap(),
                None => md.push_str(" – |"),
            }
        }
        let agg = Estimate::aggregate(&per_seed.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>());
        let (lo, hi) = per_seed.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, e)| (a.min(e.value), b.max(e.value)));
        writeln!(md, " {:.2} | {:.2} | {:.2} |", agg.value, agg.std.unwrap_or(0.0), hi - lo).unwrap();
    }
    md
}

/// The report of the OOD sets `sets` (name, label), in their order.
pub fn run(ctx: &StageContext, sets: &[(String, String)]) -> Result<()> {
    let paper = read_paper(ctx.source("paper_results.csv")?)?;
    let config: view::Report = ctx.view()?;
    let collected = collect(ctx, &config, sets)?;
    let rows = rows(&collected);
    let ours = rows_to_frame(&rows)?;
    let compared = compare(&ours, &paper)?;
    let lookup = Lookup::new(&compared)?;
    let present = |label: &str, in_dist: bool| {
        collected.values.iter().any(|((o, m, _), _)| m == label && (o == IN_DISTRIBUTION) == in_dist)
    };
    let detectors = |table: ReportTable| -> Vec<&Detector> {
        ALL.iter().copied().filter(|d| d.table == table && present(d.label, false)).collect()
    };
    let (paper_detectors, beyond) = (detectors(ReportTable::Paper), detectors(ReportTable::Beyond));
    let models: Vec<ModelKind> = ModelKind::ALL.into_iter().filter(|m| present(m.label(), true)).collect();
    let note = interval_note(collected.seeds.len(), config.report.bootstrap);

    std::fs::write(ctx.output(files::RESULTS), to_csv(&compared)?)?;
    let mut hyper_csv = String::from("ood_set,method,seed,parameter,value\n");
    for (o, m, seed, p, v) in &collected.hyper {
        writeln!(hyper_csv, "{o},{m},{seed},{p},{v}").unwrap();
    }
    std::fs::write(ctx.output("hyperparameters.csv"), &hyper_csv)?;
    let title = "Table 1: out-of-distribution detection on CIFAR-10 (WRN)";
    std::fs::write(ctx.output("table1.md"), detector_table(title, &lookup, &paper_detectors, sets, &note, &collected.sizes))?;
    if !beyond.is_empty() {
        let title = "Table 3: beyond the paper, more detectors on the same networks and sets";
        let methods: Vec<(&str, &str)> = paper_detectors.iter().map(|d| (d.label, "1")).chain(beyond.iter().map(|d| (d.label, "3"))).collect();
        let labels: Vec<&str> = sets.iter().map(|(_, l)| l.as_str()).collect();
        let summary = crate::report_summary::markdown(&collected.summary, &methods, &labels, &METRICS);
        std::fs::write(ctx.output("table3.md"), detector_table(title, &lookup, &beyond, sets, &note, &collected.sizes) + &summary)?;
    }
    std::fs::write(ctx.output("table2.md"), table2(&lookup, &models, &note))?;
    if collected.seeds.len() >= 2 {
        std::fs::write(ctx.output("seeds.md"), seeds_table(&collected))?;
    }

    let mut readme = String::from("# Results\n\n");
    readme.push_str(
        "Rebuilt by `oodpipe run`; every number comes from the stages of the config named in the run section \
         below, beside the paper's own numbers (`configs/paper_results.csv`).\n\n\
         - [Table 1: OOD detection](table1.md)\n- [Table 2: accuracy](table2.md)\n",
    );
    if !beyond.is_empty() {
        let names: Vec<&str> = beyond.iter().map(|d| d.label).collect();
        writeln!(readme, "- [Table 3: beyond the paper]({}) ({})", "table3.md", names.join(", ")).unwrap();
    }
    if collected.seeds.len() >= 2 {
        readme.push_str("- [Every value per seed](seeds.md)\n");
    }
    readme.push_str(
        "- [results.csv](results.csv): the long-format frame (`ood_set,method,metric,seed,value,ci_low,ci_high,\
         interval,std,n,paper,delta`, percent; `seed = all` rows aggregate the seeds)\n\
         - [hyperparameters.csv](hyperparameters.csv): what tuning chose\n\
         - [run.json](run.json): config, commit, libtorch, device, platform and each stage's time\n\n\
         ![The stage graph](dag.svg)\n\n(`oodpipe dag --format dot`, drawn by Graphviz: [dag.dot](dag.dot))\n\n",
    );
    writeln!(readme, "## Intervals\n\nIn the tables, {note}.\n").unwrap();
    writeln!(readme, "## AUPR and chance\n\n{}", aupr_note(sets, &collected.sizes)).unwrap();
    if !collected.hyper.is_empty() {
        readme.push_str("## Chosen hyper-parameters (on the validation splits)\n\n| OOD set | Method | Seed | Parameter | Value |\n|---|---|---:|---|---:|\n");
        for (o, m, seed, p, v) in &collected.hyper {
            writeln!(readme, "| {o} | {m} | {seed} | {p} | {v} |").unwrap();
        }
        readme.push('\n');
    }
    readme.push_str(&crate::figures::write_all(ctx, sets)?.markdown());
    std::fs::write(ctx.output("README.md"), readme)?;

    let mut summary = format!("Headline (ours / paper; {note}):\n");
    for model in &models {
        if let Some(c) = lookup.cell(IN_DISTRIBUTION, model.label(), "accuracy") {
            writeln!(summary, "  {:<8} CIFAR-10 test accuracy {c}", model.label()).unwrap();
        }
    }
    for (_, label) in sets {
        for detector in paper_detectors.iter().chain(&beyond) {
            if let (Some(fpr), Some(auroc)) =
                (lookup.cell(label, detector.label, "fpr_at_95_tpr"), lookup.cell(label, detector.label, "auroc"))
            {
                writeln!(summary, "  {label:<22} {:<11} FPR@95 {fpr:<32} AUROC {auroc}", detector.label).unwrap();
            }
        }
    }
    std::fs::write(ctx.output(files::SUMMARY), summary)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uncertainty::IntervalKind;

    fn est(value: f64, interval: Option<(f64, f64)>) -> Estimate {
        let kind = if interval.is_some() { IntervalKind::Bootstrap } else { IntervalKind::None };
        Estimate { value, interval, kind, std: None, n: 1 }
    }

    fn row(o: &str, m: &str, k: &str, seed: &str, e: Estimate) -> Row {
        Row { ood_set: o.into(), method: m.into(), metric: k.into(), seed: seed.into(), est: e }
    }

    #[test]
    fn comparison_joins_on_all_three_keys_and_keeps_our_order() {
        let ours = rows_to_frame(&[
            row("B", "m", "auroc", "all", est(90.0, Some((89.0, 91.5)))),
            row("A", "m", "auroc", "all", est(80.0, None)),
            row("A", "z", "auroc", "3", est(70.0, None)),
        ])
        .unwrap();
        let paper = paper_frame(&[
            ("A".into(), "m".into(), "auroc".into(), 85.5),
            ("B".into(), "m".into(), "auroc".into(), 91.0),
            ("B".into(), "m".into(), "fpr_at_95_tpr".into(), 1.0),
        ])
        .unwrap();
        let c = compare(&ours, &paper).unwrap();
        assert_eq!(c.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(), RESULTS_COLUMNS);
        assert_eq!(
            to_csv(&c).unwrap(),
            "ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta\n\
             B,m,auroc,all,90,89,91.5,bootstrap,,1,91,-1\n\
             A,m,auroc,all,80,,,,,1,85.5,-5.5\n\
             A,z,auroc,3,70,,,,,1,,\n"
        );
        let lookup = Lookup::new(&c).unwrap();
        assert_eq!(lookup.cell("B", "m", "auroc").unwrap(), "90.00 ± 1.25 / 91.00 (-1.00)");
        assert_eq!(lookup.cell("A", "m", "auroc").unwrap(), "80.00 / 85.50 (-5.50)");
        assert!(lookup.cell("A", "z", "auroc").is_none(), "per-seed rows are not the table's");
    }

    #[test]
    fn the_shipped_paper_numbers_cover_both_tables() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/paper_results.csv");
        let paper = read_paper(&path).unwrap();
        assert_eq!(paper.height(), 3 * 8 * 5 + 5);
    }

    #[test]
    fn a_malformed_paper_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        std::fs::write(&p, "ood_set,method,metric,value\nA,m,auroc,abc\n").unwrap();
        let msg = read_paper(&p).unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("abc"), "{msg}");
    }

    #[test]
    fn aggregate_rows_come_first_then_each_seed() {
        let c = Collected {
            values: vec![(
                ("G".into(), "M".into(), "auroc".into()),
                vec![(0, est(80.0, Some((79.0, 81.0)))), (1, est(82.0, Some((81.0, 83.0)))), (2, est(84.0, None))],
            )],
            hyper: vec![],
            sizes: BTreeMap::new(),
            seeds: vec![0, 1, 2],
            summary: Default::default(),
        };
        let r = rows(&c);
        let seeds: Vec<&str> = r.iter().map(|r| r.seed.as_str()).collect();
        assert_eq!(seeds, ["all", "0", "1", "2"]);
        assert_eq!((r[0].est.value, r[0].est.n, r[0].est.kind), (82.0, 3, IntervalKind::Seeds));
        assert!(seeds_table(&c).contains("| G | M | auroc | 80.00 | 82.00 | 84.00 | 82.00 | 2.00 | 4.00 |"));
    }
}
