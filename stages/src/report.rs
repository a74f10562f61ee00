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
//! - `claims.md`, `claims.csv`: the paper's claims (`report.claims`), each comparison a paired
//!   test with a verdict ([`crate::claims`]);
//! - `README.md`: links, the intervals' meaning, AUPR's chance levels, the chosen
//!   hyper-parameters; `summary.txt`: the headline rows.
//! - `figures/`: ROC curves per OOD set and score histograms per score stage, of the first seed
//!   ([`crate::figures`]).
//!
//! The paper's numbers are data (`configs/paper_results.csv`, a source of this stage), not code.

use crate::config::ModelKind;
use crate::detector::{Detector, ReportTable, files, ids};
use crate::stage::StageContext;
use crate::table::{seed_tag, split_seed_suffix};
use crate::uncertainty::{CUT, Estimate, Exact};
use anyhow::{Context, Result, bail};
use oodpipe_metrics::bootstrap::{bootstrap, bootstrap_mean};
use oodpipe_plan::metric::{Metric, OodMetric};
use oodpipe_plan::python::PythonDetector;
use oodpipe_plan::view;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The columns of `results.csv`, in order (one definition, which `diff` reads with too).
pub use oodpipe_engine::results_schema::COLUMNS as RESULTS_COLUMNS;
use oodpipe_engine::results_schema::{CI_HIGH, CI_LOW, DELTA, INTERVAL, KEYS, METHOD, METRIC, N, OOD_SET, PAPER, SEED, STD, VALUE};

/// The `seed` of the aggregate rows.
pub use oodpipe_engine::results_schema::ALL_SEEDS;

pub const IN_DISTRIBUTION: &str = "CIFAR-10";

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
        OOD_SET => rows.iter().map(|r| r.ood_set.as_str()).collect::<Vec<_>>(),
        METHOD => rows.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        METRIC => rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        SEED => rows.iter().map(|r| r.seed.as_str()).collect::<Vec<_>>(),
        VALUE => rows.iter().map(|r| r.est.value).collect::<Vec<_>>(),
        CI_LOW => rows.iter().map(|r| r.est.interval.map(|i| i.0)).collect::<Vec<_>>(),
        CI_HIGH => rows.iter().map(|r| r.est.interval.map(|i| i.1)).collect::<Vec<_>>(),
        INTERVAL => rows.iter().map(|r| r.est.kind.name()).collect::<Vec<_>>(),
        STD => rows.iter().map(|r| r.est.std).collect::<Vec<_>>(),
        N => rows.iter().map(|r| r.est.n as i64).collect::<Vec<_>>(),
    )
}

/// The paper's numbers as a frame `ood_set, method, metric, value`.
fn paper_frame(rows: &[(String, String, String, f64)]) -> PolarsResult<DataFrame> {
    df!(
        OOD_SET => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        METHOD => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        METRIC => rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        VALUE => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
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
    seeds.extend(more.into_iter().map(|s| (s, seed_tag(s))));
    seeds
}

/// The test-set sizes of an OOD set's comparison: (in-distribution, OOD).
pub type Sizes = (usize, usize);

/// What a value is of: an OOD set (or CIFAR-10 for accuracy), a detector (or a model for
/// accuracy), a metric; by name (as the config and the claims name them) and by label (as the
/// tables and `results.csv` show them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The set's name (`gaussian`), or `cifar10` for accuracy.
    pub set: String,
    pub set_label: String,
    /// The detector's name (`odin`), or the model's (`bin`) for accuracy.
    pub side: String,
    /// The detector's or model's label (`ODIN`, `BIN`).
    pub method: String,
    pub metric: Metric,
}

/// One seed's measurement of one value, a fraction: on the full test sets, and on each bootstrap
/// resample of them. The resamples are the same images for every detector on one OOD set and for
/// every model's accuracy (one seeded stream), so two sides' replicates pair up.
#[derive(Debug, Clone)]
pub struct Measured {
    pub value: f64,
    pub replicates: Vec<f64>,
    /// A value that is a count (FPR, detection error through its FPR, accuracy): its exact
    /// binomial interval where the count is small; None otherwise.
    pub exact: Option<Exact>,
    /// What the value can be (the metric's range, fractions).
    pub bounds: (f64, f64),
}

impl Measured {
    /// One seed's estimate, in percent.
    pub fn estimate(&self) -> Estimate {
        Estimate::of_seed(self.value, &self.replicates, self.exact, self.bounds).scaled(100.0)
    }

    /// The estimate over the seeds' measurements (percent): [`Estimate::aggregate`], the seeds
    /// resampled with the stream `seed` seeds.
    pub fn aggregate(per_seed: &[(u64, Measured)], seed: u64) -> Estimate {
        let seeds: Vec<Estimate> = per_seed.iter().map(|(_, m)| Estimate::of_seed(m.value, &m.replicates, m.exact, m.bounds)).collect();
        let replicates: Vec<&[f64]> = per_seed.iter().map(|(_, m)| m.replicates.as_slice()).collect();
        let bounds = per_seed.first().map_or((0.0, 1.0), |(_, m)| m.bounds);
        Estimate::aggregate(&seeds, &replicates, bounds, seed).scaled(100.0)
    }
}

/// Everything the report gathers from its inputs.
pub struct Collected {
    /// Per value, in the tables' order: each seed's measurement on the test splits, in seed order.
    pub values: Vec<(Key, Vec<(u64, Measured)>)>,
    /// The same on the validation splits (the OOD metrics only): what tuning and sweeps choose by.
    pub val_values: Vec<(Key, Vec<(u64, Measured)>)>,
    /// (ood_set, method, seed, parameter, value).
    pub hyper: Vec<(String, String, u64, String, f64)>,
    /// Test-set sizes per OOD set label.
    pub sizes: BTreeMap<String, Sizes>,
    pub seeds: Vec<u64>,
}

/// One split's five metrics of a score stage's record (`metrics` or `val_metrics`) with the
/// bootstrap replicates of its scores (`in_scores`, `out_scores`; `val_` before them for `val`).
fn measure_split(
    ctx: &StageContext,
    id: &str,
    record: &serde_json::Value,
    split: &str,
    resamples: usize,
    boot_seed: u64,
) -> Result<Option<(Vec<Measured>, Sizes)>> {
    let field = if split == crate::detector::TEST { "metrics" } else { "val_metrics" };
    if record.get(field).is_none() {
        return Ok(None);
    }
    let in_scores = crate::figures::read_scores(ctx, id, &ids::tensors::scores_of(split, ids::tensors::IN_SCORES))?;
    let out_scores = crate::figures::read_scores(ctx, id, &ids::tensors::scores_of(split, ids::tensors::OUT_SCORES))?;
    let replicates = bootstrap(&in_scores, &out_scores, resamples, boot_seed).with_context(|| format!("bootstrap of {id} ({split})"))?;
    let number = |name: &str| record[field][name].as_f64().with_context(|| format!("{id}: no {field}.{name}"));
    // FPR at 95% TPR is a count of the OOD images; the detection error, 0.5 (1 - TPR) + 0.5 FPR,
    // rests on the same count.
    let fpr = Exact::proportion(number(Metric::FprAt95Tpr.name())?, out_scores.len() as u64);
    let detection_error =
        Exact { scale: 0.5, offset: number(Metric::DetectionError.name())? - 0.5 * number(Metric::FprAt95Tpr.name())?, ..fpr };
    let measured = OodMetric::ALL
        .into_iter()
        .map(|ood| {
            let metric = ood.metric();
            let value = number(metric.name())?;
            let reps: Vec<f64> = replicates.iter().map(|m| ood.of(m)).collect();
            let exact = match metric {
                Metric::FprAt95Tpr => Some(fpr),
                Metric::DetectionError => Some(detection_error),
                _ => None,
            };
            Ok(Measured { value, replicates: reps, exact, bounds: metric.range() })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((measured, (in_scores.len(), out_scores.len()))))
}

/// Our numbers, in the tables' order, each seed's with its bootstrap replicates. `seeds` are the
/// training seeds with their id suffixes; `resolve` maps a stage id of the plain pipeline
/// (`score.odin.gaussian@seed2`) to the input that holds it (a sweep point's variant).
pub fn collect(
    ctx: &StageContext,
    config: &view::Report,
    sets: &[(String, String)],
    seeds: &[(u64, String)],
    resolve: &dyn Fn(&str) -> String,
    detectors: &[&'static Detector],
) -> Result<Collected> {
    collect_with(ctx, config, sets, seeds, resolve, &Gather { resamples: config.report.bootstrap, sides: None, detectors })
}

/// What [`collect_with`] gathers: how many resamples, and of which sides (detector and model
/// names; None: every one).
pub struct Gather<'a> {
    pub resamples: usize,
    pub sides: Option<&'a std::collections::BTreeSet<String>>,
    /// The detectors whose score stages to look for (the registry's and the config's Python
    /// ones: [`crate::detector::with_python`]).
    pub detectors: &'a [&'static Detector],
}

/// The measurements of the sides the claims compare, with the claims' resamples
/// (`report.claims_bootstrap`): the same seeded draws as the report's, more of them.
pub fn collect_for_claims(
    ctx: &StageContext,
    config: &view::Report,
    sets: &[(String, String)],
    seeds: &[(u64, String)],
    resolve: &dyn Fn(&str) -> String,
    sides: &std::collections::BTreeSet<String>,
    detectors: &[&'static Detector],
) -> Result<Collected> {
    let resamples = match config.report.claims_bootstrap {
        0 => config.report.bootstrap,
        n => n,
    };
    collect_with(ctx, config, sets, seeds, resolve, &Gather { resamples, sides: Some(sides), detectors })
}

/// [`collect`], of what `gather` says.
pub fn collect_with(
    ctx: &StageContext,
    config: &view::Report,
    sets: &[(String, String)],
    seeds: &[(u64, String)],
    resolve: &dyn Fn(&str) -> String,
    gather: &Gather,
) -> Result<Collected> {
    let (resamples, boot_seed) = (gather.resamples, config.report.bootstrap_seed);
    let wanted = |side: &str| gather.sides.is_none_or(|s| s.contains(side));
    let mut values: Vec<(Key, Vec<(u64, Measured)>)> = Vec::new();
    let mut val_values: Vec<(Key, Vec<(u64, Measured)>)> = Vec::new();
    let mut hyper = Vec::new();
    let mut sizes = BTreeMap::new();
    for (name, label) in sets {
        for detector in gather.detectors.iter().copied().filter(|d| wanted(d.name)) {
            let mut test: Vec<Vec<(u64, Measured)>> = vec![Vec::new(); Metric::OOD.len()];
            let mut val: Vec<Vec<(u64, Measured)>> = vec![Vec::new(); Metric::OOD.len()];
            for (seed, suffix) in seeds {
                let id = resolve(&format!("{}{suffix}", ids::score(detector.name, name)));
                if !ctx.inputs.contains_key(&id) {
                    continue;
                }
                let record = read_json(ctx.input(&id, files::METRICS)?)?;
                for (split, into) in [(crate::detector::TEST, &mut test), (crate::detector::VAL, &mut val)] {
                    if let Some((measured, n)) = measure_split(ctx, &id, &record, split, resamples, boot_seed)? {
                        if split == crate::detector::TEST {
                            sizes.insert(label.clone(), n);
                        }
                        for (k, m) in measured.into_iter().enumerate() {
                            into[k].push((*seed, m));
                        }
                    }
                }
                if let Some(params) = record["hyperparameters"].as_object()
                    && detector.tuning.is_some()
                {
                    for (param, v) in params {
                        hyper.push((label.clone(), detector.label.into(), *seed, param.clone(), v.as_f64().unwrap_or(f64::NAN)));
                    }
                }
            }
            for (k, metric) in Metric::OOD.into_iter().enumerate() {
                let key =
                    Key { set: name.clone(), set_label: label.clone(), side: detector.name.into(), method: detector.label.into(), metric };
                if !test[k].is_empty() {
                    values.push((key.clone(), std::mem::take(&mut test[k])));
                }
                if !val[k].is_empty() {
                    val_values.push((key, std::mem::take(&mut val[k])));
                }
            }
        }
    }
    let labels = crate::tensors::read_one(ctx.input(&ids::cifar10_data(), &files::data(ids::CIFAR10))?, "test_labels")?;
    for &model in ModelKind::ALL.iter().filter(|m| wanted(m.name())) {
        let mut per_seed = Vec::new();
        for (seed, suffix) in seeds {
            let id = resolve(&format!("{}{suffix}", ids::outputs(model, ids::CIFAR10)));
            if !ctx.inputs.contains_key(&id) {
                continue;
            }
            let acc = read_json(ctx.input(&id, files::ACCURACY)?)?;
            let v = acc["test_accuracy"].as_f64().with_context(|| format!("{id}: no test_accuracy"))?;
            let logits = crate::tensors::read_one(ctx.input(&id, files::OUTPUTS)?, "test_logits")?;
            // Each test image: 1 where the model classifies it right.
            let right = logits.argmax(-1, false).eq_tensor(&labels.to_kind(tch::Kind::Int64)).to_kind(tch::Kind::Double);
            let right = Vec::<f64>::try_from(&right).with_context(|| format!("{id}: test_logits against the test labels"))?;
            let replicates = bootstrap_mean(&right, resamples, boot_seed);
            let exact = Some(Exact::proportion(v, right.len() as u64));
            per_seed.push((*seed, Measured { value: v, replicates, exact, bounds: Metric::Accuracy.range() }));
        }
        if !per_seed.is_empty() {
            let key = Key {
                set: ids::CIFAR10.into(),
                set_label: IN_DISTRIBUTION.into(),
                side: model.name().into(),
                method: model.label().into(),
                metric: Metric::Accuracy,
            };
            values.push((key, per_seed));
        }
    }
    Ok(Collected { values, val_values, hyper, sizes, seeds: seeds.iter().map(|s| s.0).collect() })
}

/// Each value's estimates in percent: per seed, and the aggregate (in the tables' order).
pub struct Estimated {
    pub values: Vec<(Key, PerSeed, Estimate)>,
}

/// A value's estimate for each seed.
pub type PerSeed = Vec<(u64, Estimate)>;

impl Estimated {
    /// `seed` seeds the seeds' resampling of the aggregates (the report's bootstrap seed).
    pub fn new(values: &[(Key, Vec<(u64, Measured)>)], seed: u64) -> Estimated {
        let values = values
            .iter()
            .map(|(key, per_seed)| {
                let seeds: Vec<(u64, Estimate)> = per_seed.iter().map(|(s, m)| (*s, m.estimate())).collect();
                (key.clone(), seeds, Measured::aggregate(per_seed, seed))
            })
            .collect();
        Estimated { values }
    }

    fn aggregate(&self, set_label: &str, method: &str, metric: Metric) -> Option<&Estimate> {
        self.per_seed(set_label, method, metric).map(|v| v.1)
    }

    /// A value's estimate per seed, and its aggregate.
    pub(crate) fn per_seed(&self, set_label: &str, method: &str, metric: Metric) -> Option<(&PerSeed, &Estimate)> {
        self.values.iter().find(|(k, _, _)| k.set_label == set_label && k.method == method && k.metric == metric).map(|v| (&v.1, &v.2))
    }
}

/// The rows of results.csv: per value the aggregate, then each seed.
fn rows(estimated: &Estimated) -> Vec<Row> {
    let mut rows = Vec::new();
    for (key, per_seed, aggregate) in &estimated.values {
        let row = |seed: String, est: Estimate| Row {
            ood_set: key.set_label.clone(),
            method: key.method.clone(),
            metric: key.metric.name().into(),
            seed,
            est,
        };
        rows.push(row(ALL_SEEDS.into(), aggregate.clone()));
        for (seed, est) in per_seed {
            rows.push(row(seed.to_string(), est.clone()));
        }
    }
    rows
}

/// Ours joined with the paper's: the columns of [`RESULTS_COLUMNS`].
pub fn compare(ours: &DataFrame, paper: &DataFrame) -> PolarsResult<DataFrame> {
    let paper = paper.clone().rename(VALUE, PAPER.into())?.clone();
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let mut joined = ours.join(&paper, KEYS, KEYS, args, None)?;
    let delta = (joined.column(VALUE)?.as_materialized_series() - joined.column(PAPER)?.as_materialized_series())?;
    joined.with_column(Column::from(delta.with_name(DELTA.into())))?;
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

/// The tables' cells: each value's aggregate estimate beside the paper's number.
pub(crate) struct Lookup<'a> {
    estimated: &'a Estimated,
    paper: std::collections::HashMap<(String, String, String), f64>,
    /// Whether a printed interval was cut at the metric's range (the tables then say so).
    cut: std::cell::Cell<bool>,
}

impl<'a> Lookup<'a> {
    fn new(estimated: &'a Estimated, compared: &DataFrame) -> PolarsResult<Lookup<'a>> {
        let s = |name: &str| compared.column(name).and_then(|c| c.str().cloned());
        let (o, m, k, seed) = (s(OOD_SET)?, s(METHOD)?, s(METRIC)?, s(SEED)?);
        let p = compared.column(PAPER)?.f64()?.clone();
        let mut paper = std::collections::HashMap::new();
        for i in 0..compared.height() {
            if let (Some(ALL_SEEDS), Some(v)) = (seed.get(i), p.get(i)) {
                let key = (o.get(i).unwrap_or("").to_string(), m.get(i).unwrap_or("").to_string(), k.get(i).unwrap_or("").to_string());
                paper.insert(key, v);
            }
        }
        Ok(Lookup { estimated, paper, cut: std::cell::Cell::new(false) })
    }

    /// A value's aggregate estimate and the paper's number (the HTML page's cell).
    pub(crate) fn parts(&self, ood: &str, method: &str, metric: Metric) -> Option<(&Estimate, Option<f64>)> {
        let est = self.estimated.aggregate(ood, method, metric)?;
        Some((est, self.paper.get(&(ood.to_string(), method.to_string(), metric.name().to_string())).copied()))
    }

    /// "ours / paper (delta)", ours with its interval as [`Estimate::cell`] prints it; only ours
    /// where the paper has no number.
    fn cell(&self, ood: &str, method: &str, metric: Metric) -> Option<String> {
        let est = self.estimated.aggregate(ood, method, metric)?;
        let (ours, cut) = est.cell();
        self.cut.set(self.cut.get() || cut);
        Some(match self.paper.get(&(ood.to_string(), method.to_string(), metric.name().to_string())) {
            Some(p) => format!("{ours} / {p:.2} ({:+.2})", est.value - p),
            None => ours,
        })
    }

    /// The footnote for cut intervals, when a cell printed so far had one.
    fn cut_note(&self) -> String {
        if self.cut.get() {
            format!(
                "\n{CUT} The interval reaches beyond what the metric can be ([0, 100]; the detection error [2.5, 52.5]); \
                 it is cut there, and the cut bound marked (so is it in `results.csv`).\n"
            )
        } else {
            String::new()
        }
    }
}

/// What the intervals of the tables are, in one sentence.
fn interval_note(seeds: usize, resamples: usize) -> String {
    let shown = "shown as ± half-width where the interval is symmetric to the printed precision, else as [low, high]";
    let small = crate::uncertainty::SMALL_COUNT;
    if seeds >= 2 && resamples > 0 {
        format!(
            "ours is the mean over {seeds} training seeds with its 95% two-level bootstrap interval ({resamples} \
             replicates, each drawing {seeds} seeds with replacement and averaging their replicates on the same \
             resampled test images: training noise and test-image noise together), {shown}, and the range of the \
             seeds' values; `seeds.md` and `results.csv` give each seed's value"
        )
    } else if seeds >= 2 {
        format!(
            "ours is the mean over {seeds} training seeds with its 95% Student's t interval (t(0.975, {}) × std / \
             √{seeds}, training noise only: `report.bootstrap = 0`), {shown}, and the range of the seeds' values; \
             `seeds.md` and `results.csv` give each seed's value",
            seeds - 1
        )
    } else if resamples > 0 {
        format!(
            "ours is one training seed's value with its 95% percentile bootstrap interval over the test images \
             ({resamples} resamples of the CIFAR-10 and the OOD test scores, each with replacement), {shown}; where an \
             FPR, a detection error or an accuracy rests on a count within {small} of either end (0 or 1 of 1,000 OOD \
             images accepted), Clopper-Pearson's exact binomial interval instead (the percentile interval is too narrow \
             there); it does not cover training noise: run several seeds (`train.seeds`) for that"
        )
    } else {
        "ours is one training seed's value, without an interval (`report.bootstrap = 0`)".into()
    }
}

/// AUPR's dependence on the test sets' ratio, each AUPR's chance level, and why the paper's AUPRs
/// cannot be compared with ours.
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
        "\nThe paper's AUPRs were not computed at this ratio, so the AUPR columns' differences to the paper are not \
         like for like. Its own AUROCs rule that ratio out: at 10,000 CIFAR-10 : 1,000 OOD test images an AUROC of \
         A allows an AUPR-Out of at most about A + (1 - A) × 0.08 (the best case puts a fraction A of the OOD images \
         above every CIFAR-10 image and the rest below all of them), so Tiny ImageNet (crop)'s Baseline with AUROC \
         70.06 could reach about 72.4, yet the paper prints 86.49; its AUPR-Out values sit near what balanced test \
         sets would give. Compare AUROC, FPR and detection error with the paper, and AUPR only between our own \
         methods.\n",
    );
    md
}

/// Table 1 (the paper's detectors) or Table 3 (beyond the paper): every OOD set in config order,
/// every detector of the table; the paper's numbers where it has them.
fn detector_table(
    title: &str,
    lookup: &Lookup,
    detectors: &[&Detector],
    sets: &[(String, String)],
    note: &str,
    sizes: &BTreeMap<String, Sizes>,
) -> String {
    let mut md = format!("# {title}\n\n");
    writeln!(
        md,
        "Each cell: ours / the paper's (ours minus the paper's), in percent (ours alone where the paper has no number); {note}.\n"
    )
    .unwrap();
    md.push_str("| Out-of-distribution dataset | Method |");
    for metric in Metric::OOD {
        write!(md, " {} |", metric.header()).unwrap();
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---:|".repeat(Metric::OOD.len()));
    md.push('\n');
    for (_, label) in sets {
        for detector in detectors {
            write!(md, "| {label} | {} |", detector.label).unwrap();
            for metric in Metric::OOD {
                write!(md, " {} |", lookup.cell(label, detector.label, metric).unwrap_or_else(|| "–".into())).unwrap();
            }
            md.push('\n');
        }
    }
    md.push_str(&lookup.cut_note());
    md.push('\n');
    md.push_str(&aupr_note(sets, sizes));
    md
}

fn table2(lookup: &Lookup, models: &[ModelKind], note: &str, whose: &str) -> String {
    let mut md = format!("# Table 2: classification accuracy on the CIFAR-10 test split{whose}\n\n");
    writeln!(md, "In percent; {note}.\n").unwrap();
    md.push_str("| Method | Accuracy: ours / paper (difference) |\n|---|---:|\n");
    for model in models {
        let cell = lookup.cell(IN_DISTRIBUTION, model.label(), Metric::Accuracy).unwrap_or_else(|| "–".into());
        writeln!(md, "| {} | {cell} |", model.label()).unwrap();
    }
    md.push_str(&lookup.cut_note());
    md
}

/// Each value per seed, with the mean and standard deviation: how much training moves it.
fn seeds_table(estimated: &Estimated, seeds: &[u64]) -> String {
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
    for (key, per_seed, agg) in &estimated.values {
        write!(md, "| {} | {} | {} |", key.set_label, key.method, key.metric.name()).unwrap();
        for s in seeds {
            match per_seed.iter().find(|(x, _)| x == s) {
                Some((_, e)) => write!(md, " {:.2} |", e.value).unwrap(),
                None => md.push_str(" – |"),
            }
        }
        let (lo, hi) = agg.range.unwrap_or((agg.value, agg.value));
        writeln!(md, " {:.2} | {:.2} | {:.2} |", agg.value, agg.std.unwrap_or(0.0), hi - lo).unwrap();
    }
    md
}

/// The report of the OOD sets `sets` (name, label), in their order, with the config's Python
/// detectors `python` (Table 3's last rows).
/// `network`: the network trained elsewhere whose pipeline this report is of (name, label), for
/// a `[networks.<name>]` table's report; its tables and pages say so.
pub fn run(
    ctx: &StageContext,
    sets: &[(String, String)],
    python: &[(String, PythonDetector)],
    network: Option<&(String, String)>,
) -> Result<()> {
    // What every title adds for a network's report.
    let whose = network.map(|(name, label)| format!(", network {label} ([networks.{name}])")).unwrap_or_default();
    let paper = read_paper(ctx.source("paper_results.csv")?)?;
    let all = crate::detector::with_python(python);
    let python_names: Vec<&str> = python.iter().map(|(n, _)| n.as_str()).collect();
    let claims = match ctx.sources.iter().find(|s| s.label == crate::table::CLAIMS_SOURCE) {
        Some(source) => Some(
            oodpipe_plan::claims::load_with(&source.path, &python_names).map_err(|e| oodpipe_engine::bad_input::BadInput(e.to_string()))?,
        ),
        None => None,
    };
    let config: view::Report = ctx.view()?;
    let collected = collect(ctx, &config, sets, &seeds(ctx, config.train.seed), &|id| id.to_string(), &all)?;
    let estimated = Estimated::new(&collected.values, config.report.bootstrap_seed);
    let ours = rows_to_frame(&rows(&estimated))?;
    let compared = compare(&ours, &paper)?;
    let lookup = Lookup::new(&estimated, &compared)?;
    let present =
        |label: &str, in_dist: bool| collected.values.iter().any(|(k, _)| k.method == label && (k.metric == Metric::Accuracy) == in_dist);
    let detectors =
        |table: ReportTable| -> Vec<&Detector> { all.iter().copied().filter(|d| d.table == table && present(d.label, false)).collect() };
    let (paper_detectors, beyond) = (detectors(ReportTable::Paper), detectors(ReportTable::Beyond));
    let models: Vec<ModelKind> = ModelKind::ALL.iter().copied().filter(|m| present(m.label(), true)).collect();
    let note = interval_note(collected.seeds.len(), config.report.bootstrap);

    let results_csv = to_csv(&compared)?;
    std::fs::write(ctx.output(files::RESULTS), &results_csv)?;
    // The validation splits' numbers, in results.csv's schema (no paper numbers: it has none).
    let validation = rows_to_frame(&rows(&Estimated::new(&collected.val_values, config.report.bootstrap_seed)))?;
    std::fs::write(ctx.output(files::VALIDATION), to_csv(&validation)?)?;
    let mut hyper_csv = String::from("ood_set,method,seed,parameter,value\n");
    for (o, m, seed, p, v) in &collected.hyper {
        writeln!(hyper_csv, "{o},{m},{seed},{p},{v}").unwrap();
    }
    std::fs::write(ctx.output(files::HYPERPARAMETERS), &hyper_csv)?;
    let title = if network.is_some() {
        format!("Table 1: out-of-distribution detection on CIFAR-10{whose}")
    } else {
        "Table 1: out-of-distribution detection on CIFAR-10 (WRN)".to_string()
    };
    std::fs::write(ctx.output(files::TABLE1), detector_table(&title, &lookup, &paper_detectors, sets, &note, &collected.sizes))?;
    if !beyond.is_empty() {
        let title = format!("Table 3: beyond the paper, more detectors on the same networks and sets{whose}");
        let methods: Vec<(&str, &str)> =
            paper_detectors.iter().map(|d| (d.label, "1")).chain(beyond.iter().map(|d| (d.label, "3"))).collect();
        let labels: Vec<&str> = sets.iter().map(|(_, l)| l.as_str()).collect();
        let metrics: Vec<(&str, &str)> = Metric::OOD.iter().map(|m| (m.name(), m.header())).collect();
        let values = crate::report_summary::Values::of(&collected.values);
        let summary = crate::report_summary::markdown(&values, &methods, &labels, &metrics, config.report.bootstrap_seed);
        lookup.cut.set(false);
        std::fs::write(ctx.output(files::TABLE3), detector_table(&title, &lookup, &beyond, sets, &note, &collected.sizes) + &summary)?;
    }
    lookup.cut.set(false);
    std::fs::write(ctx.output(files::TABLE2), table2(&lookup, &models, &note, &whose))?;
    if collected.seeds.len() >= 2 {
        std::fs::write(ctx.output(files::SEEDS_TABLE), seeds_table(&estimated, &collected.seeds))?;
    }
    // The claims' sides, measured again with the claims' resamples (see `report.claims_bootstrap`).
    let claimed = match &claims {
        Some(claims) => {
            let sides: std::collections::BTreeSet<String> =
                claims.iter().flat_map(|c| &c.parts).flat_map(|p| &p.comparisons).flat_map(|c| [c.a.clone(), c.b.clone()]).collect();
            Some(collect_for_claims(ctx, &config, sets, &seeds(ctx, config.train.seed), &|id| id.to_string(), &sides, &all)?)
        }
        None => None,
    };
    let claims_resamples = if config.report.claims_bootstrap > 0 { config.report.claims_bootstrap } else { config.report.bootstrap };
    let checked = claims
        .as_ref()
        .zip(claimed.as_ref())
        .map(|(claims, claimed)| crate::claims::check(claims, &claimed.values, sets, claims_resamples, config.report.bootstrap_seed));
    if let Some(checked) = &checked {
        std::fs::write(ctx.output(files::CLAIMS_MD), checked.markdown(collected.seeds.len()))?;
        std::fs::write(ctx.output(files::CLAIMS_CSV), checked.csv())?;
    }

    let mut readme = format!("# Results{whose}\n\n");
    if let Some((name, label)) = network {
        write!(
            readme,
            "Network {label} was trained elsewhere: its TorchScript file (`[networks.{name}]`) is scored by every \
             detector that needs only its logits, its features and its final linear layer, in the rows of the \
             softmax network (`Baseline` is its maximum softmax probability and its accuracy). The detectors of \
             the models oodpipe trains (BIN, BINC, VIB, VIBY) do not apply to it, nor the paper's claims. The \
             paper's column is the paper's WRN-28-10, not this network.\n\n"
        )
        .unwrap();
    }
    write!(
        readme,
        "Rebuilt by `oodpipe run`; every number comes from the stages of the config named in the run section \
         below, beside the paper's own numbers (`configs/paper_results.csv`).\n\n\
         - [Table 1: OOD detection]({})\n- [Table 2: accuracy]({})\n",
        files::TABLE1,
        files::TABLE2
    )
    .unwrap();
    if !beyond.is_empty() {
        let names: Vec<&str> = beyond.iter().map(|d| d.label).collect();
        writeln!(readme, "- [Table 3: beyond the paper]({}) ({})", files::TABLE3, names.join(", ")).unwrap();
    }
    if checked.is_some() {
        writeln!(readme, "- [The paper's claims, checked]({}) (and [{1}]({1}))", files::CLAIMS_MD, files::CLAIMS_CSV).unwrap();
    }
    if collected.seeds.len() >= 2 {
        writeln!(readme, "- [Every value per seed]({})", files::SEEDS_TABLE).unwrap();
    }
    write!(
        readme,
        "- [{results}]({results}): the long-format frame (`{columns}`, percent; `seed = {all}` rows aggregate the seeds)\n\
         - [{validation}]({validation}): every detector's metrics on the validation splits (what tuning and \
         sweeps choose by), the same columns but the paper's\n\
         - [{hyper}]({hyper}): what tuning chose\n\
         - [{run}]({run}): config, commit, libtorch, device, platform and each stage's time\n\n\
         ![The stage graph]({svg})\n\n(`oodpipe dag --format dot`, drawn by Graphviz: [{dot}]({dot}))\n\n",
        results = files::RESULTS,
        columns = oodpipe_engine::results_schema::COLUMNS.join(","),
        all = ALL_SEEDS,
        validation = files::VALIDATION,
        hyper = files::HYPERPARAMETERS,
        run = files::RUN_RECORD,
        svg = files::DAG_SVG,
        dot = files::DAG_DOT,
    )
    .unwrap();
    writeln!(readme, "## Intervals\n\nIn the tables, {note}.\n").unwrap();
    writeln!(readme, "## AUPR and chance\n\n{}", aupr_note(sets, &collected.sizes)).unwrap();
    if !collected.hyper.is_empty() {
        readme.push_str("## Chosen hyper-parameters (on the validation splits)\n\n| OOD set | Method | Seed | Parameter | Value |\n|---|---|---:|---|---:|\n");
        for (o, m, seed, p, v) in &collected.hyper {
            writeln!(readme, "| {o} | {m} | {seed} | {p} | {v} |").unwrap();
        }
        readme.push('\n');
    }
    readme.push_str(&crate::figures::write_all(ctx, sets, &all)?.markdown());
    readme
        .push_str(&format!("\nThe same report to look at, sortable and with every figure inline: [{0}]({0}).\n", crate::report_html::FILE));
    std::fs::write(ctx.output(files::REPORT_INDEX), readme)?;

    let summary_metrics: Vec<(&'static str, &'static str)> = Metric::OOD.iter().map(|m| (m.name(), m.header())).collect();
    let table_of: Vec<(&Detector, &'static str)> =
        paper_detectors.iter().map(|d| (*d, "1")).chain(beyond.iter().map(|d| (*d, "3"))).collect();
    let methods: Vec<(&str, &str)> = table_of.iter().map(|(d, t)| (d.label, *t)).collect();
    let labels: Vec<&str> = sets.iter().map(|(_, l)| l.as_str()).collect();
    let page = crate::report_html::ReportPage {
        title: &format!("Out-of-distribution detection on CIFAR-10: the report{whose}"),
        note: &note,
        sets,
        detectors: table_of.clone(),
        models: &models,
        lookup: &lookup,
        estimated: &estimated,
        seeds: &collected.seeds,
        summary: crate::report_summary::rows(
            &crate::report_summary::Values::of(&collected.values),
            &methods,
            &labels,
            &summary_metrics,
            config.report.bootstrap_seed,
        ),
        summary_metrics,
        results_csv: &results_csv,
        checked: checked.as_ref(),
    };
    crate::report_html::write(ctx, &page)?;

    let mut summary = format!("Headline (ours / paper; {note}):\n");
    for model in &models {
        if let Some(c) = lookup.cell(IN_DISTRIBUTION, model.label(), Metric::Accuracy) {
            writeln!(summary, "  {:<8} CIFAR-10 test accuracy {c}", model.label()).unwrap();
        }
    }
    for (_, label) in sets {
        for detector in paper_detectors.iter().chain(&beyond) {
            if let (Some(fpr), Some(auroc)) =
                (lookup.cell(label, detector.label, Metric::FprAt95Tpr), lookup.cell(label, detector.label, Metric::Auroc))
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
        Estimate { value, interval, kind, cut: (false, false), std: None, range: None, n: 1 }
    }

    fn key(set: &str, method: &str, metric: Metric) -> Key {
        Key { set: set.to_lowercase(), set_label: set.into(), side: method.to_lowercase(), method: method.into(), metric }
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
        // The cells: ours from the estimates, the paper's from the joined frame.
        let estimated = Estimated {
            values: vec![
                (key("B", "m", Metric::Auroc), vec![], est(90.0, Some((89.0, 91.5)))),
                (key("A", "m", Metric::Auroc), vec![], est(80.0, None)),
            ],
        };
        let lookup = Lookup::new(&estimated, &c).unwrap();
        assert_eq!(lookup.cell("B", "m", Metric::Auroc).unwrap(), "90.00 [89.00, 91.50] / 91.00 (-1.00)");
        assert_eq!(lookup.cell("A", "m", Metric::Auroc).unwrap(), "80.00 / 85.50 (-5.50)");
        assert!(lookup.cell("A", "z", Metric::Auroc).is_none(), "per-seed rows are not the table's");
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
        let m = |value: f64| Measured { value, replicates: vec![], exact: None, bounds: (0.0, 1.0) };
        let c = Collected {
            values: vec![(key("G", "M", Metric::Auroc), vec![(0, m(0.80)), (1, m(0.82)), (2, m(0.84))])],
            val_values: vec![],
            hyper: vec![],
            sizes: BTreeMap::new(),
            seeds: vec![0, 1, 2],
        };
        let estimated = Estimated::new(&c.values, 0);
        let r = rows(&estimated);
        let seeds: Vec<&str> = r.iter().map(|r| r.seed.as_str()).collect();
        assert_eq!(seeds, ["all", "0", "1", "2"]);
        assert!((r[0].est.value - 82.0).abs() < 1e-9);
        assert_eq!((r[0].est.n, r[0].est.kind), (3, IntervalKind::Seeds));
        assert!(seeds_table(&estimated, &c.seeds).contains("| G | M | auroc | 80.00 | 82.00 | 84.00 | 82.00 | 2.00 | 4.00 |"));
    }
}
