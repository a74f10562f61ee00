//! The report's figures, drawn as SVG with `plotters` (its SVG backend writes `<text>` elements, so
//! no font is needed to draw them; the viewer lays the text out):
//! - `figures/roc_<ood set>.svg`: the ROC curve of every method scored on that OOD set, with each
//!   method's AUROC in the legend;
//! - `figures/hist_<method>_<ood set>.svg`: the method's scores on the CIFAR-10 test split against
//!   the OOD set's test split, each normalised to fractions of its own images.
//!
//! [`write_all`] draws them from the report stage's inputs (each `score.<method>.<ood set>` stage's
//! `scores.safetensors`); [`Figures::markdown`] is the README section that shows them.

use crate::detector::{Detector, files, ids};
use crate::stage::StageContext;
use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// The folder (inside the stage's outputs, and so inside the published report) of the figures.
pub const DIR: &str = "figures";
/// At most this many points of a ROC curve are drawn.
pub const MAX_ROC_POINTS: usize = 1000;
/// The number of bins of a histogram.
pub const BINS: usize = 40;
pub const FPR_LABEL: &str = "False positive rate (OOD accepted)";
pub const TPR_LABEL: &str = "True positive rate (CIFAR-10 accepted)";
pub const SCORE_LABEL: &str = "score";
pub const FRACTION_LABEL: &str = "fraction of images";

/// Distinct colours for up to twelve detectors (Tableau 10 without its grey, which draws chance,
/// then black, navy and olive).
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 0),
];
const CHANCE: RGBColor = RGBColor(127, 127, 127);
const FONT: &str = "sans-serif";

/// One method's scores on CIFAR-10 (`in_scores`) and on one OOD set (`out_scores`); higher means
/// more in-distribution. `colour` indexes [`PALETTE`] (modulo its length).
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    pub label: &'a str,
    pub colour: usize,
    pub in_scores: &'a [f64],
    pub out_scores: &'a [f64],
}

/// The legend entry of a ROC curve: `ODIN (AUROC 95.85%)`, `auroc` a fraction.
pub fn legend_entry(label: &str, auroc: f64) -> String {
    format!("{label} (AUROC {:.2}%)", 100.0 * auroc)
}

/// At most `max` (at least 2) of `points`, in order, always with the first and the last: where
/// the path is longer than that, one point each time the path has gone another `1 / (max - 1)` of
/// its length (in L1 distance, so that a ROC staircase's flat and steep runs count alike).
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let max = max.max(2);
    if points.len() <= max {
        return points.to_vec();
    }
    let mut cum = Vec::with_capacity(points.len());
    let mut total = 0.0;
    cum.push(0.0);
    for w in points.windows(2) {
        total += (w[1].0 - w[0].0).abs() + (w[1].1 - w[0].1).abs();
        cum.push(total);
    }
    let last = points.len() - 1;
    let mut out = vec![points[0]];
    if total > 0.0 {
        // Kept interior points are at least `step` apart along the path and short of its end, so
        // there are at most `max - 2` of them.
        let step = total / (max - 1) as f64;
        let mut next = step;
        for i in 1..last {
            if cum[i] >= next && cum[i] < total && out.len() < max - 1 {
                out.push(points[i]);
                next = ((cum[i] / step).floor() + 1.0) * step;
            }
        }
    }
    out.push(points[last]);
    out
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {}: {e}", path.display())
}

/// Draws the ROC curves of `curves` (all on the OOD set `ood_label`) into the SVG file `path`.
/// Returns each curve's AUROC (a fraction, from `oodpipe_metrics`, as in `metrics.json`).
pub fn roc_figure(path: &Path, ood_label: &str, curves: &[Scored]) -> Result<Vec<f64>> {
    let mut drawn = Vec::new();
    for c in curves {
        let metrics = oodpipe_metrics::ood_metrics(c.in_scores, c.out_scores).map_err(|e| anyhow!("{} on {ood_label}: {e}", c.label))?;
        let points = oodpipe_metrics::roc_curve(c.in_scores, c.out_scores).map_err(|e| anyhow!("{} on {ood_label}: {e}", c.label))?;
        drawn.push((c, metrics.auroc, downsample(&points, MAX_ROC_POINTS)));
    }
    // Good detectors leave the lower right empty; curves below chance, the upper left.
    let mean_auroc = drawn.iter().map(|d| d.1).sum::<f64>() / drawn.len().max(1) as f64;
    let legend_at = if mean_auroc >= 0.5 { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperLeft };
    let err = plot_err(path);
    let root = SVGBackend::new(path, (760, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("ROC: CIFAR-10 (in) vs {ood_label} (out)"), (FONT, 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(FPR_LABEL)
        .y_desc(TPR_LABEL)
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 20))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(DashedLineSeries::new([(0.0, 0.0), (1.0, 1.0)], 6, 5, CHANCE.stroke_width(1)))
        .map_err(&err)?
        .label("chance")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], CHANCE.stroke_width(1)));
    for (c, auroc, points) in &drawn {
        let colour = PALETTE[c.colour % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
            .map_err(&err)?
            .label(legend_entry(c.label, *auroc))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .margin(12)
        .label_font((FONT, 19))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(drawn.into_iter().map(|(_, auroc, _)| auroc).collect())
}

/// The `q` quantile (0..=1) of sorted values, interpolated linearly.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() { sorted[i] + frac * (sorted[i + 1] - sorted[i]) } else { sorted[i] }
}

/// The histogram's range over the pooled finite scores: their whole range, or the 0.5th to 99.5th
/// percentile range when the outer 1% would take more than half of the axis (long tails, as of
/// log-confidences). The flag says whether the range was narrowed.
pub fn histogram_range(in_scores: &[f64], out_scores: &[f64]) -> (f64, f64, bool) {
    let mut all: Vec<f64> = in_scores.iter().chain(out_scores).copied().filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return (0.0, 1.0, false);
    }
    all.sort_by(f64::total_cmp);
    let (min, max) = (all[0], all[all.len() - 1]);
    let (lo, hi) = (quantile(&all, 0.005), quantile(&all, 0.995));
    let (lo, hi, clipped) = if hi > lo && 2.0 * (hi - lo) < max - min { (lo, hi, true) } else { (min, max, false) };
    if hi > lo {
        (lo, hi, clipped)
    } else {
        let pad = if lo == 0.0 { 0.5 } else { 0.05 * lo.abs() };
        (lo - pad, hi + pad, false)
    }
}

/// Each bin's fraction of the finite `scores`; scores outside `[lo, hi]` count in the end bins.
pub fn bin_fractions(scores: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    let mut n = 0usize;
    for &s in scores.iter().filter(|s| s.is_finite()) {
        let b = ((s - lo) / (hi - lo) * bins as f64).floor();
        counts[b.clamp(0.0, (bins - 1) as f64) as usize] += 1;
        n += 1;
    }
    counts.iter().map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 }).collect()
}

/// Draws the histograms of one method's scores on CIFAR-10 and on the OOD set into the SVG file `path`.
pub fn histogram_figure(path: &Path, method_label: &str, ood_label: &str, in_scores: &[f64], out_scores: &[f64]) -> Result<()> {
    let (lo, hi, clipped) = histogram_range(in_scores, out_scores);
    let series = [
        (format!("CIFAR-10 (in), {} images", in_scores.len()), bin_fractions(in_scores, lo, hi, BINS), PALETTE[0]),
        (format!("{ood_label} (out), {} images", out_scores.len()), bin_fractions(out_scores, lo, hi, BINS), PALETTE[1]),
    ];
    let top = series.iter().flat_map(|s| s.1.iter().copied()).fold(0.0, f64::max).max(1e-3) * 1.3;
    // The legend goes in the upper corner over the lower bars.
    let peak = |bins: std::ops::Range<usize>| series.iter().flat_map(|s| s.1[bins.clone()].iter().copied()).fold(0.0, f64::max);
    let legend_at =
        if peak(0..BINS / 2) <= peak(BINS / 2..BINS) { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::UpperRight };
    let width = (hi - lo) / BINS as f64;
    let x_desc = if clipped {
        format!("{SCORE_LABEL} (0.5th to 99.5th percentile; scores beyond it counted in the end bins)")
    } else {
        SCORE_LABEL.to_string()
    };

    let err = plot_err(path);
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{method_label}: scores on CIFAR-10 vs {ood_label}"), (FONT, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d(lo..hi, 0f64..top)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(FRACTION_LABEL)
        .x_labels(9)
        .y_labels(8)
        .x_label_formatter(&|v| format_tick(*v, (hi - lo) / 8.0))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(&err)?;
    for (label, fractions, colour) in &series {
        let colour = *colour;
        chart
            .draw_series(fractions.iter().enumerate().map(|(i, &f)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, f)], colour.mix(0.4).filled())
            }))
            .map_err(&err)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], colour.mix(0.6).filled()));
        // The outline of the bars, so that each set stays visible where the two overlap.
        let mut outline = vec![(lo, 0.0)];
        for (i, &f) in fractions.iter().enumerate() {
            outline.push((lo + i as f64 * width, f));
            outline.push((lo + (i + 1) as f64 * width, f));
        }
        outline.push((hi, 0.0));
        chart.draw_series(LineSeries::new(outline, colour.stroke_width(1))).map_err(&err)?;
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .margin(10)
        .label_font((FONT, 17))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// A tick label for an axis whose ticks are about `spacing` apart: as many decimals as that
/// spacing needs, in e-notation for very large or very small numbers.
fn format_tick(v: f64, spacing: f64) -> String {
    let a = v.abs();
    if a <= 1e-6 * spacing.abs() {
        "0".into()
    } else if a >= 1e5 || (spacing > 0.0 && spacing < 1e-4) {
        format!("{v:.2e}")
    } else {
        let decimals = if spacing > 0.0 { (-spacing.log10()).ceil().clamp(0.0, 6.0) as usize } else { 2 };
        format!("{v:.decimals$}")
    }
}

/// What [`write_all`] drew.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    /// The OOD sets (name, label) with a ROC figure, in config order.
    pub roc: Vec<(String, String)>,
    /// The (detector, OOD set name) pairs with a histogram.
    pub histograms: Vec<(&'static Detector, String)>,
}

pub fn roc_path(set: &str) -> String {
    format!("{DIR}/roc_{set}.svg")
}

pub fn histogram_path(detector: &Detector, set: &str) -> String {
    format!("{DIR}/hist_{}_{set}.svg", detector.name)
}

pub(crate) fn read_scores(ctx: &StageContext, id: &str, name: &str) -> Result<Vec<f64>> {
    let path = ctx.input(id, files::SCORES)?;
    let tensor = crate::tensors::read_one(path, name)?;
    Vec::<f64>::try_from(tensor.to_kind(tch::Kind::Double).flatten(0, -1)).with_context(|| format!("{}: tensor `{name}`", path.display()))
}

/// Draws every figure from the stage's `score.<detector>.<ood set>` inputs into `figures/`, for
/// the OOD sets `sets` (name, label) in their order.
/// `detectors` in the report's order (the registry's, then the config's Python ones).
pub fn write_all(ctx: &StageContext, sets: &[(String, String)], detectors: &[&'static Detector]) -> Result<Figures> {
    let mut figures = Figures::default();
    std::fs::create_dir_all(ctx.output(DIR))?;
    for (name, label) in sets {
        let mut scored = Vec::new();
        for (i, detector) in detectors.iter().copied().enumerate() {
            let id = ids::score(detector.name, name);
            if ctx.inputs.contains_key(&id) {
                scored.push((
                    detector,
                    i,
                    read_scores(ctx, &id, ids::tensors::IN_SCORES)?,
                    read_scores(ctx, &id, ids::tensors::OUT_SCORES)?,
                ));
            }
        }
        if scored.is_empty() {
            continue;
        }
        let curves: Vec<Scored> =
            scored.iter().map(|(d, i, a, b)| Scored { label: d.label, colour: *i, in_scores: a, out_scores: b }).collect();
        roc_figure(&ctx.output(&roc_path(name)), label, &curves)?;
        figures.roc.push((name.clone(), label.clone()));
        for (detector, _, a, b) in &scored {
            histogram_figure(&ctx.output(&histogram_path(detector, name)), detector.label, label, a, b)?;
            figures.histograms.push((detector, name.clone()));
        }
    }
    Ok(figures)
}

impl Figures {
    /// The README section: the ROC figures shown, the histograms linked in a detector x OOD set table.
    pub fn markdown(&self) -> String {
        if self.roc.is_empty() && self.histograms.is_empty() {
            return String::new();
        }
        let mut md = String::from(
            "## Figures\n\nROC curves of each method, CIFAR-10 test (in-distribution, positive) against each OOD \
             set's test split; the legend gives each method's AUROC.\n\n",
        );
        for (name, label) in &self.roc {
            writeln!(md, "![ROC, {label}]({})\n", roc_path(name)).unwrap();
        }
        let sets: Vec<&(String, String)> = self.roc.iter().filter(|(n, _)| self.histograms.iter().any(|(_, h)| h == n)).collect();
        let mut detectors: Vec<&Detector> = Vec::new();
        for (d, _) in &self.histograms {
            if !detectors.iter().any(|x| x.name == d.name) {
                detectors.push(d);
            }
        }
        if !detectors.is_empty() {
            md.push_str(
                "Score histograms: each method's scores on the CIFAR-10 test split against the OOD set's, each as \
                 fractions of its own images.\n\n| Method |",
            );
            for (_, label) in &sets {
                write!(md, " {label} |").unwrap();
            }
            md.push_str("\n|---|");
            md.push_str(&"---|".repeat(sets.len()));
            md.push('\n');
            for detector in &detectors {
                write!(md, "| {} |", detector.label).unwrap();
                for (name, _) in &sets {
                    if self.histograms.iter().any(|(d, n)| d.name == detector.name && n == name) {
                        write!(md, " [histogram]({}) |", histogram_path(detector, name)).unwrap();
                    } else {
                        md.push_str(" – |");
                    }
                }
                md.push('\n');
            }
            md.push('\n');
        }
        md
    }
}
