//! A sweep's report: every point's numbers side by side, and which point validation chooses.
//!
//! The paper chose zeta (BIN, BINC) and beta (VIB, VIBY) by FPR at 95% TPR on the OOD validation
//! sets (Section 5.3); a sweep rebuilds that choice. For each point (the config with its swept
//! values) the report gathers what a plain report of that point would (`crate::report::collect`:
//! every detector's five metrics on the test and the validation splits, every model's accuracy,
//! each with the report's intervals), so a point's rows are exactly a plain run's numbers.
//!
//! Outputs (published to the sweep's folder):
//! - `sweep.csv`: one row per point x OOD set x method x metric x split: the swept keys as columns
//!   named by their keys, then `ood_set, method, metric, split, value, ci_low, ci_high, interval,
//!   chosen`. `chosen` is true on the rows of the point with the lowest validation FPR at 95% TPR
//!   for that OOD set and method (ties to the first point in sweep order); model accuracies
//!   (`ood_set = CIFAR-10`, split `test`) are never chosen. With several seeds the values are the
//!   means over seeds (the choice too), the intervals the two-level bootstrap's (seeds and images).
//! - `sweep.md`: per method the swept values change, and per OOD set, every point's validation
//!   FPR at 95% TPR, the chosen point and its test metrics, and whether one point is chosen for
//!   every set; the models' accuracies per point.
//! - Section 5.3 checked, at the end of `sweep.md`: what the claims file says of each swept key
//!   (`[[hyperparameter]]`): the paper's value minimizes the validation FPR (tested as a claim,
//!   point against point on the same validation images), or the paper set it (no verdict).
//! - `figures/sweep_<key>.svg`: the validation FPR at 95% TPR against each swept key's values, one
//!   line per method and OOD set, with interval bars; a log axis when the values span a decade.

use crate::report::{self, Collected, Key, Sizes};
use crate::stage::StageContext;
use crate::table::SweepPoint;
use crate::uncertainty::Estimate;
use anyhow::{Result, anyhow};
use oodpipe_plan::claims::{Claim, Comparison, Hyperparameter, HyperparameterClaim, Part, Relation};
use oodpipe_plan::metric::Metric;
use oodpipe_plan::view;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const SWEEP_CSV: &str = "sweep.csv";
pub const SWEEP_MD: &str = "sweep.md";

/// The splits of the table, as `sweep.csv` names them.
use oodpipe_plan::ids::splits::{TEST, VAL};

/// One point's aggregate estimate of one value on one split.
struct Cell {
    point: usize,
    key: Key,
    split: &'static str,
    est: Estimate,
}

/// Every point's cells, in point order, then the report's order, validation split first.
fn cells(collected: &[Collected], seed: u64) -> Vec<Cell> {
    let mut out = Vec::new();
    for (point, c) in collected.iter().enumerate() {
        for (split, values) in [(VAL, &c.val_values), (TEST, &c.values)] {
            for (key, per_seed) in values {
                out.push(Cell { point, key: key.clone(), split, est: report::Measured::aggregate(per_seed, seed) });
            }
        }
    }
    out
}

/// Per (OOD set, method): the chosen point, by the lowest validation FPR at 95% TPR (the first
/// point in sweep order on a tie).
fn choose(cells: &[Cell]) -> BTreeMap<(String, String), usize> {
    let mut best: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for c in cells.iter().filter(|c| c.split == VAL && c.key.metric == Metric::FprAt95Tpr) {
        let k = (c.key.set_label.clone(), c.key.method.clone());
        match best.get(&k) {
            Some(&(_, v)) if v <= c.est.value => {}
            _ => {
                best.insert(k, (c.point, c.est.value));
            }
        }
    }
    best.into_iter().map(|(k, (p, _))| (k, p)).collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// `sweep.csv` (see the module doc).
fn csv(keys: &[String], points: &[SweepPoint], cells: &[Cell], chosen: &BTreeMap<(String, String), usize>) -> String {
    let mut out: String = keys.iter().map(|k| csv_field(k)).collect::<Vec<_>>().join(",");
    out.push_str(",ood_set,method,metric,split,value,ci_low,ci_high,interval,chosen\n");
    for c in cells {
        let is_chosen = chosen.get(&(c.key.set_label.clone(), c.key.method.clone())) == Some(&c.point);
        let (lo, hi) = c.est.interval.map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
        let values: Vec<String> = points[c.point].values.iter().map(|v| csv_field(v)).collect();
        writeln!(
            out,
            "{},{},{},{},{},{},{lo},{hi},{},{is_chosen}",
            values.join(","),
            csv_field(&c.key.set_label),
            csv_field(&c.key.method),
            c.key.metric.name(),
            c.split,
            c.est.value,
            c.est.kind.name()
        )
        .unwrap();
    }
    out
}

/// The methods (by label) whose numbers differ between points: the ones the sweep is about.
fn varying(cells: &[Cell]) -> Vec<String> {
    let mut first: BTreeMap<(String, String, Metric, &str), f64> = BTreeMap::new();
    let mut out: Vec<String> = Vec::new();
    for c in cells {
        let k = (c.key.set_label.clone(), c.key.method.clone(), c.key.metric, c.split);
        match first.get(&k) {
            None => {
                first.insert(k, c.est.value);
            }
            Some(v) if *v != c.est.value && !out.contains(&c.key.method) => out.push(c.key.method.clone()),
            _ => {}
        }
    }
    // In the report's order.
    let order: Vec<&String> = cells.iter().map(|c| &c.key.method).collect();
    out.sort_by_key(|m| order.iter().position(|o| *o == m));
    out
}

fn cell_text(est: &Estimate) -> String {
    est.cell().0
}

/// `sweep.md` (see the module doc).
fn markdown(
    keys: &[String],
    points: &[SweepPoint],
    sets: &[(String, String)],
    cells: &[Cell],
    chosen: &BTreeMap<(String, String), usize>,
    seeds: usize,
) -> String {
    let point_name = |p: usize| keys.iter().zip(&points[p].values).map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ");
    let mut md = String::from("# Sweep\n\n");
    let mut distinct = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let values: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for p in points {
                if !v.contains(&p.values[i].as_str()) {
                    v.push(&p.values[i]);
                }
            }
            v
        };
        writeln!(md, "- `{k}`: {}", values.join(", ")).unwrap();
        distinct.push(values.len());
    }
    // The points say how the keys were combined: every combination, or the i-th values together.
    let combined = match keys.len() {
        1 => "",
        _ if distinct.iter().product::<usize>() == points.len() => " (the cross product)",
        _ => " (the keys side by side: the i-th values of every key together)",
    };
    writeln!(
        md,
        "\n{} points{combined}. Every point's stages that do not depend on the swept keys are shared \
         with the other points and with a plain run of that point's config (`oodpipe run --set ...`), so each row \
         here is that run's number. **Chosen**: per OOD set and method, the point with the lowest FPR at 95% TPR on \
         the validation splits (CIFAR-10's 5,000 validation images against the OOD set's 500), ties to the first \
         point in sweep order: the rule by which the paper's Section 5.3 says its betas were chosen (its zetas it set, \
         untuned); what the paper claims of each key is checked at the end. {}\n",
        points.len(),
        if seeds >= 2 {
            format!(
                "Values are means over {seeds} training seeds with their 95% two-level bootstrap intervals (seeds and images; \
                 the choice is made on the means)."
            )
        } else {
            "Intervals: 95% percentile bootstrap over the test (or validation) images, for these trained networks; \
             they do not cover training noise."
                .into()
        }
    )
    .unwrap();
    let lookup = |p: usize, set: &str, method: &str, metric: Metric, split: &str| {
        cells
            .iter()
            .find(|c| c.point == p && c.key.set_label == set && c.key.method == method && c.key.metric == metric && c.split == split)
    };
    let methods = varying(cells);
    let shared: Vec<String> = {
        let mut all: Vec<String> = Vec::new();
        for c in cells.iter().filter(|c| c.key.metric != Metric::Accuracy) {
            if !all.contains(&c.key.method) && !methods.contains(&c.key.method) {
                all.push(c.key.method.clone());
            }
        }
        all
    };
    if !shared.is_empty() {
        writeln!(md, "Not changed by the swept keys (the same stages at every point): {}.\n", shared.join(", ")).unwrap();
    }
    for method in methods.iter().filter(|m| cells.iter().any(|c| &c.key.method == *m && c.key.metric != Metric::Accuracy)) {
        writeln!(md, "## {method}\n").unwrap();
        let mut picks = Vec::new();
        for (_, set) in sets {
            let Some(&pick) = chosen.get(&(set.clone(), method.clone())) else { continue };
            picks.push(pick);
            writeln!(md, "### {set}\n").unwrap();
            md.push_str("| Point | Validation FPR at 95% TPR ↓ | |\n|---|---:|---|\n");
            for p in 0..points.len() {
                if let Some(c) = lookup(p, set, method, Metric::FprAt95Tpr, VAL) {
                    writeln!(md, "| {} | {} | {} |", point_name(p), cell_text(&c.est), if p == pick { "**chosen**" } else { "" }).unwrap();
                }
            }
            write!(md, "\nThe chosen point's test metrics:").unwrap();
            for metric in Metric::OOD {
                if let Some(c) = lookup(pick, set, method, metric, TEST) {
                    write!(md, " {} {};", metric.header(), cell_text(&c.est)).unwrap();
                }
            }
            md.pop();
            md.push_str(".\n\n");
        }
        if !picks.is_empty() {
            let same = picks.iter().all(|p| *p == picks[0]);
            writeln!(
                md,
                "{}\n",
                if same {
                    format!("One point is chosen for every OOD set: {}.", point_name(picks[0]))
                } else {
                    "Different OOD sets choose different points.".to_string()
                }
            )
            .unwrap();
        }
    }
    let models: Vec<&Cell> = cells.iter().filter(|c| c.key.metric == Metric::Accuracy && methods.contains(&c.key.method)).collect();
    if !models.is_empty() {
        md.push_str("## Accuracy on CIFAR-10's test split\n\n| Point | Model | Accuracy ↑ |\n|---|---|---:|\n");
        for c in models {
            writeln!(md, "| {} | {} | {} |", point_name(c.point), c.key.method, cell_text(&c.est)).unwrap();
        }
        md.push('\n');
    }
    for k in keys {
        writeln!(md, "![Validation FPR at 95% TPR against {k}]({})\n", figure_path(k)).unwrap();
    }
    md
}

pub fn figure_path(key: &str) -> String {
    format!("{}/sweep_{}.svg", crate::figures::DIR, key.replace('.', "_"))
}

/// Where a key's values go on the x axis: their numbers (log10 when they span a decade, all
/// positive), else their positions.
fn axis(values: &[String]) -> (Vec<f64>, bool, bool) {
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
    match numbers {
        Some(n) if !n.is_empty() => {
            let (lo, hi) = n.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let log = lo > 0.0 && hi / lo >= 10.0;
            (if log { n.iter().map(|x| x.log10()).collect() } else { n }, log, true)
        }
        _ => ((0..values.len()).map(|i| i as f64).collect(), false, false),
    }
}

/// The figure of key `k` (its index among the swept keys): the validation FPR at 95% TPR of each
/// varying method and OOD set against the key's values.
fn figure(path: &Path, keys: &[String], k: usize, points: &[SweepPoint], cells: &[Cell], methods: &[String]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let mut values: Vec<String> = Vec::new();
    for p in points {
        if !values.contains(&p.values[k]) {
            values.push(p.values[k].clone());
        }
    }
    let (xs, log, numeric) = axis(&values);
    let x_of = |v: &str| xs[values.iter().position(|x| x == v).expect("a point's value is among the values")];
    // One line per method, set and the other keys' values.
    // label -> (x, value, (interval low, high)) per point.
    type Line = Vec<(f64, f64, (f64, f64))>;
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for c in cells.iter().filter(|c| c.split == VAL && c.key.metric == Metric::FprAt95Tpr && methods.contains(&c.key.method)) {
        let others: Vec<String> = (0..keys.len())
            .filter(|&i| i != k)
            .map(|i| format!("{}={}", keys[i].rsplit('.').next().unwrap_or(&keys[i]), points[c.point].values[i]))
            .collect();
        let mut label = format!("{}, {}", c.key.method, c.key.set_label);
        if !others.is_empty() {
            label.push_str(&format!(" ({})", others.join(", ")));
        }
        let (lo, hi) = c.est.interval.unwrap_or((c.est.value, c.est.value));
        if !order.contains(&label) {
            order.push(label.clone());
        }
        lines.entry(label).or_default().push((x_of(&points[c.point].values[k]), c.est.value, (lo.max(0.0), hi.min(100.0))));
    }
    let (x_lo, x_hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let pad = ((x_hi - x_lo) * 0.08).max(0.25);
    let root = SVGBackend::new(path, (820, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Validation FPR at 95% TPR against {}", keys[k]), ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo - pad)..(x_hi + pad), 0f64..100f64)
        .map_err(|e| err(&e))?;
    let label_of = |x: &f64| -> String {
        match values.iter().zip(&xs).find(|(_, p)| (*p - x).abs() < 1e-9) {
            Some((v, _)) => v.clone(),
            None if log && numeric => format!("{:.3}", 10f64.powf(*x)),
            None if numeric => format!("{x:.3}"),
            None => String::new(),
        }
    };
    chart
        .configure_mesh()
        .x_desc(format!("{}{}", keys[k], if log { " (log scale)" } else { "" }))
        .y_desc("validation FPR at 95% TPR (%)")
        .x_labels(if numeric && !log { 8 } else { values.len().max(2) })
        .x_label_formatter(&label_of)
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, label) in order.iter().enumerate() {
        let colour = crate::figures::PALETTE[i % crate::figures::PALETTE.len()];
        let mut line = lines[label].clone();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line.iter().map(|p| (p.0, p.1)), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3)));
        // Interval bars: the vertical line and its two caps.
        let cap = (x_hi - x_lo + 2.0 * pad) / 120.0;
        let bars = line
            .iter()
            .flat_map(|&(x, _, (lo, hi))| [vec![(x, lo), (x, hi)], vec![(x - cap, lo), (x + cap, lo)], vec![(x - cap, hi), (x + cap, hi)]]);
        chart.draw_series(bars.map(|b| PathElement::new(b, colour.stroke_width(1)))).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(10)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Section 5.3 of the paper on this sweep: for each swept key the claims file speaks of
/// (`[[hyperparameter]]`), either the paper's claim that its value (the key's default) minimizes
/// the validation FPR at 95% TPR on every OOD set, tested as a claim (the paper's point against
/// each point with another value of the key, paired on the same validation images, with the
/// claims' rules: `crate::claims`), or that the paper set it (no verdict). Empty when no swept key
/// is spoken of.
fn paper_hyperparameters(
    hypers: &[Hyperparameter],
    keys: &[String],
    points: &[SweepPoint],
    sets: &[(String, String)],
    collected: &[Collected],
    config: &view::Report,
) -> (String, Option<maud::Markup>) {
    let defaults = serde_json::to_value(oodpipe_plan::Config::default()).expect("the config serialises");
    let number = |v: &str| v.trim().parse::<f64>().ok();
    let mut md = String::new();
    let mut claims: Vec<Claim> = Vec::new();
    let mut values: Vec<(Key, Vec<(u64, report::Measured)>)> = Vec::new();
    for hyper in hypers {
        let Some(k) = keys.iter().position(|key| *key == hyper.key) else { continue };
        let paper_value = oodpipe_plan::config::lookup(&defaults, &hyper.key).and_then(|v| v.as_f64());
        let short = hyper.key.rsplit('.').next().unwrap_or(&hyper.key).to_string();
        let shown = paper_value.map_or("?".to_string(), |v| v.to_string());
        if hyper.claim == HyperparameterClaim::Set {
            writeln!(
                md,
                "- `{}`: the paper sets it to {shown}, it does not tune it (\"{}\"): the points above show what other values give, \
                 without a verdict.",
                hyper.key, hyper.paper
            )
            .unwrap();
            continue;
        }
        let at = |p: usize| number(&points[p].values[k]);
        let Some(paper) = (0..points.len()).find(|&p| at(p).is_some() && at(p) == paper_value) else {
            writeln!(md, "- `{}`: the sweep has no point at the paper's value {shown}: \"{}\" is not tested.", hyper.key, hyper.paper)
                .unwrap();
            continue;
        };
        let others: Vec<usize> = (0..points.len()).filter(|&p| at(p) != at(paper)).collect();
        let model = hyper.key.split('.').nth(1).unwrap_or_default();
        let mut parts = Vec::new();
        for d in oodpipe_plan::detector::ALL.iter().filter(|d| d.model.name() == model) {
            let side = |p: usize| format!("{}@{p}", d.name);
            for &p in std::iter::once(&paper).chain(&others) {
                for (key, per_seed) in
                    collected[p].val_values.iter().filter(|(key, _)| key.side == d.name && key.metric == Metric::FprAt95Tpr)
                {
                    let method = format!("{} ({short} = {})", d.label, points[p].values[k]);
                    values.push((Key { side: side(p), method, ..key.clone() }, per_seed.clone()));
                }
            }
            parts.push(Part {
                says: format!("{}: {short} = {shown} gives the lowest validation FPR at 95% TPR on every OOD set", d.label),
                comparisons: others.iter().map(|&p| Comparison { a: side(paper), b: side(p), relation: Relation::Better }).collect(),
                metrics: vec![Metric::FprAt95Tpr],
                sets: None,
                margin: None,
                untested: None,
            });
        }
        claims.push(Claim { paper: hyper.paper.clone(), parts });
    }
    let mut page = None;
    if !claims.is_empty() {
        let resamples = if config.report.claims_bootstrap > 0 { config.report.claims_bootstrap } else { config.report.bootstrap };
        let checked = crate::claims::check(&claims, &values, sets, resamples, config.report.bootstrap_seed);
        page = Some(crate::report_html::claims_markup(&checked, "sweep-claim"));
        let seeds = collected.first().map_or(1, |c| c.seeds.len());
        writeln!(
            md,
            "\nThe paper's claim that its values minimize the validation FPR at 95% TPR, tested as the report's claims are \
             (`claims.md`): the paper's point against each other point, A − B on the same validation images (FPR: lower is \
             better, so a holding comparison has a negative difference).\n\n{}\n{}",
            checked.rules(seeds),
            checked.sections(3)
        )
        .unwrap();
    }
    (md, page)
}

/// The sweep's report stage.
pub fn run(
    ctx: &StageContext,
    sets: &[(String, String)],
    python: &[(String, oodpipe_plan::python::PythonDetector)],
    keys: &[String],
    points: &[SweepPoint],
) -> Result<()> {
    let config: view::Report = ctx.view()?;
    let all = crate::detector::with_python(python);
    let mut collected = Vec::with_capacity(points.len());
    for p in points {
        let resolve = |id: &str| p.inputs.get(id).cloned().unwrap_or_else(|| id.to_string());
        collected.push(report::collect(ctx, &config, sets, &p.seeds, &resolve, &all)?);
    }
    let cells = cells(&collected, config.report.bootstrap_seed);
    let chosen = choose(&cells);
    std::fs::write(ctx.output(SWEEP_CSV), csv(keys, points, &cells, &chosen))?;
    let seeds = points.first().map(|p| p.seeds.len()).unwrap_or(1);
    let mut md = markdown(keys, points, sets, &cells, &chosen, seeds);
    let mut checked_html = None;
    if let Some(source) = ctx.sources.iter().find(|s| s.label == crate::table::CLAIMS_SOURCE) {
        let hypers =
            oodpipe_plan::claims::load_hyperparameters(&source.path).map_err(|e| oodpipe_engine::bad_input::BadInput(e.to_string()))?;
        // The hyper-parameters' models' detectors, measured again with the claims' resamples.
        let sides: std::collections::BTreeSet<String> = hypers
            .iter()
            .filter(|h| keys.contains(&h.key) && h.claim == HyperparameterClaim::Minimizes)
            .filter_map(|h| h.key.split('.').nth(1))
            .flat_map(|model| oodpipe_plan::detector::ALL.iter().filter(move |d| d.model.name() == model).map(|d| d.name.to_string()))
            .collect();
        let mut claimed = Vec::with_capacity(points.len());
        for p in points {
            let resolve = |id: &str| p.inputs.get(id).cloned().unwrap_or_else(|| id.to_string());
            claimed.push(report::collect_for_claims(ctx, &config, sets, &p.seeds, &resolve, &sides, &all)?);
        }
        let (section, checked) = paper_hyperparameters(&hypers, keys, points, sets, &claimed, &config);
        if !section.is_empty() {
            md.push_str(&format!("## The paper's Section 5.3, checked\n\n{section}\n"));
        }
        checked_html = checked;
    }
    std::fs::write(ctx.output(SWEEP_MD), md)?;
    std::fs::create_dir_all(ctx.output(crate::figures::DIR))?;
    let methods = varying(&cells);
    for k in 0..keys.len() {
        figure(&ctx.output(&figure_path(&keys[k])), keys, k, points, &cells, &methods)?;
    }
    let sizes: Vec<&Sizes> = collected.iter().flat_map(|c| c.sizes.values()).collect();
    let mut readme = format!(
        "# Sweep report\n\nRebuilt by `oodpipe run`; see [sweep.md]({SWEEP_MD}) and [sweep.csv]({SWEEP_CSV}). \
         {} points; {} (CIFAR-10 : OOD) test-set sizes.\n\n",
        points.len(),
        sizes.first().map(|(a, b)| format!("{a} : {b}")).unwrap_or_default()
    );
    readme.push_str(&std::fs::read_to_string(ctx.output(SWEEP_MD))?.replacen("# Sweep\n\n", "", 1));
    readme.push_str(&format!("\nThe same sweep to look at, sortable and with its figures inline: [{0}]({0}).\n", crate::report_html::FILE));
    std::fs::write(ctx.output(crate::ids::files::REPORT_INDEX), readme)?;
    page(ctx, keys, checked_html)
}

/// The sweep's `report.html`: every row of `sweep.csv` (sortable, filtered by OOD set, method,
/// metric, split and each swept key), its figures inline, and Section 5.3 checked.
fn page(ctx: &StageContext, keys: &[String], checked: Option<maud::Markup>) -> Result<()> {
    use maud::html;
    let csv = std::fs::read_to_string(ctx.output(SWEEP_CSV))?;
    let mut lines = csv.lines();
    let headers: Vec<String> = crate::report_html::split_csv(lines.next().unwrap_or_default());
    let rows: Vec<Vec<oodpipe_html::Cell>> = lines
        .map(|l| {
            crate::report_html::split_csv(l)
                .into_iter()
                .map(|f| match f.parse::<f64>() {
                    Ok(v) => oodpipe_html::Cell::number(f, v),
                    Err(_) => oodpipe_html::Cell::text(f),
                })
                .collect()
        })
        .collect();
    let k = keys.len();
    let table = oodpipe_html::Table {
        id: "sweep".into(),
        caption: "sweep.csv: every point's values (percent); `chosen`: the lowest validation FPR at 95% TPR".into(),
        headers,
        rows,
        filters: (0..k).chain([k, k + 1, k + 2, k + 3]).collect(),
    };
    let figures: Vec<oodpipe_html::Figure> = keys
        .iter()
        .filter_map(|key| {
            let svg = std::fs::read_to_string(ctx.output(&figure_path(key))).ok()?;
            oodpipe_html::Figure::new(format!("Validation FPR at 95% TPR against {key}"), &svg)
        })
        .collect();
    let title = format!("Sweep of {}", keys.join(", "));
    let body = html! {
        h1 { (title) }
        p { "Every point's numbers, as in sweep.md and sweep.csv: click a header to sort, choose in a filter to narrow." }
        section #figures { @for f in &figures { (f.markup()) } }
        @if let Some(claims) = &checked {
            section #claims { h2 { "The paper's Section 5.3, checked" } (claims) }
        }
        section #all-results { (table.markup()) }
        section #run { h2 { "The run" } (maud::PreEscaped(oodpipe_html::RUN_MARKER)) }
    };
    std::fs::write(ctx.output(crate::report_html::FILE), oodpipe_html::page(&title, body))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Measured;

    fn key(set: &str, method: &str, metric: Metric) -> Key {
        Key { set: set.to_lowercase(), set_label: set.into(), side: method.to_lowercase(), method: method.into(), metric }
    }

    fn collected(fpr_val: f64, fpr_test: f64) -> Collected {
        let m = |v: f64| vec![(0u64, Measured { value: v, replicates: vec![], exact: None, bounds: (0.0, 1.0) })];
        Collected {
            values: vec![(key("G", "BIN", Metric::FprAt95Tpr), m(fpr_test)), (key("G", "Baseline", Metric::FprAt95Tpr), m(0.5))],
            val_values: vec![(key("G", "BIN", Metric::FprAt95Tpr), m(fpr_val)), (key("G", "Baseline", Metric::FprAt95Tpr), m(0.5))],
            hyper: vec![],
            sizes: BTreeMap::new(),
            seeds: vec![0],
        }
    }

    #[test]
    fn the_choice_is_the_lowest_validation_fpr_with_ties_to_the_first_point() {
        let points: Vec<SweepPoint> = ["0.01", "0.05", "0.2"]
            .iter()
            .map(|v| SweepPoint { values: vec![v.to_string()], seeds: vec![(0, String::new())], inputs: Default::default() })
            .collect();
        let c = cells(&[collected(0.40, 0.30), collected(0.35, 0.50), collected(0.35, 0.20)], 0);
        let chosen = choose(&c);
        assert_eq!(chosen[&("G".to_string(), "BIN".to_string())], 1, "0.35 first reached at the second point");
        assert_eq!(chosen[&("G".to_string(), "Baseline".to_string())], 0, "a tie everywhere: the first point");
        let text = csv(&["methods.bin.zeta".into()], &points, &c, &chosen);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "methods.bin.zeta,ood_set,method,metric,split,value,ci_low,ci_high,interval,chosen");
        assert!(lines.contains(&"0.05,G,BIN,fpr_at_95_tpr,val,35,,,,true"), "{text}");
        assert!(lines.contains(&"0.05,G,BIN,fpr_at_95_tpr,test,50,,,,true"), "{text}");
        assert!(lines.contains(&"0.2,G,BIN,fpr_at_95_tpr,val,35,,,,false"), "{text}");
        assert_eq!(varying(&c), ["BIN"]);
        let md = markdown(&["methods.bin.zeta".into()], &points, &[("g".into(), "G".into())], &c, &chosen, 1);
        assert!(md.contains("| methods.bin.zeta = 0.05 | 35.00 | **chosen** |"), "{md}");
        assert!(md.contains("Not changed by the swept keys (the same stages at every point): Baseline."), "{md}");
    }

    #[test]
    fn the_text_says_how_the_keys_were_combined() {
        let point = |a: &str, b: &str| SweepPoint {
            values: vec![a.to_string(), b.to_string()],
            seeds: vec![(0, String::new())],
            inputs: Default::default(),
        };
        let keys = ["methods.bin.zeta".to_string(), "methods.vib.beta".to_string()];
        let c = cells(&[collected(0.4, 0.3), collected(0.3, 0.3)], 0);
        let chosen = choose(&c);
        let sets = [("g".to_string(), "G".to_string())];
        let zip = markdown(&keys, &[point("0.01", "0.001"), point("0.05", "0.005")], &sets, &c, &chosen, 1);
        assert!(zip.contains("2 points (the keys side by side: the i-th values of every key together)."), "{zip}");
        let c4 = cells(&[collected(0.4, 0.3), collected(0.3, 0.3), collected(0.3, 0.3), collected(0.3, 0.3)], 0);
        let grid_points = [point("0.01", "0.001"), point("0.01", "0.005"), point("0.05", "0.001"), point("0.05", "0.005")];
        let grid = markdown(&keys, &grid_points, &sets, &c4, &choose(&c4), 1);
        assert!(grid.contains("4 points (the cross product)."), "{grid}");
        let one = markdown(&keys[..1], &[point("0.01", ""), point("0.05", "")], &sets, &c, &chosen, 1);
        assert!(one.contains("2 points. Every point's"), "{one}");
    }

    #[test]
    fn a_key_spanning_a_decade_gets_a_log_axis() {
        assert_eq!(axis(&["0.01".into(), "0.1".into()]), (vec![-2.0, -1.0], true, true));
        assert_eq!(axis(&["1".into(), "2".into()]), (vec![1.0, 2.0], false, true));
        assert_eq!(axis(&["step".into(), "one_cycle".into()]), (vec![0.0, 1.0], false, false));
    }
}
