//! `report.html`: the report to look at, one self-contained page beside the Markdown.
//!
//! Every number on it is text the Markdown shows too, made by the same code from the same
//! estimates ([`crate::uncertainty::Estimate::cell`], the claims' own texts), or a field of
//! `results.csv` as written: the page cannot say another number than the files. What it adds is
//! what a browser is good at: tables sorted by any column and filtered by OOD set, method and
//! network (the frame and its script: `oodpipe_html`), a cell's interval, test and the paper's
//! number on hover, the claims opened one by one, and the figures inline: the ROC curves of each
//! OOD set, one ROC curve per detector and set (new here, from the stored scores), the score
//! histograms, and with several seeds each seed's AUROC against its aggregate interval.
//! The run's section (config, platform, commit, each stage's time, the DAG) is written into the
//! published page by the command that ran it ([`oodpipe_html::RUN_MARKER`]): the stage cannot
//! know it.

use crate::claims::{Checked, Verdict};
use crate::detector::{Detector, ids};
use crate::figures::{FPR_LABEL, MAX_ROC_POINTS, PALETTE, TPR_LABEL};
use crate::report::{Estimated, Lookup};
use crate::report_summary::SummaryRow;
use crate::stage::StageContext;
use crate::uncertainty::Estimate;
use anyhow::{Result, anyhow};
use maud::{Markup, html};
use oodpipe_html::{Cell, Figure, Table};
use oodpipe_plan::config::ModelKind;
use oodpipe_plan::metric::Metric;
use plotters::prelude::*;

/// `report.html`, in every report folder.
pub const FILE: &str = oodpipe_html::PAGE;

/// What the page shows, gathered by the report stage.
pub(crate) struct ReportPage<'a> {
    pub title: &'a str,
    pub note: &'a str,
    pub sets: &'a [(String, String)],
    /// (detector, its table: "1" or "3").
    pub detectors: Vec<(&'a Detector, &'static str)>,
    pub models: &'a [ModelKind],
    pub lookup: &'a Lookup<'a>,
    pub estimated: &'a Estimated,
    pub seeds: &'a [u64],
    pub summary: Vec<SummaryRow>,
    pub summary_metrics: Vec<(&'static str, &'static str)>,
    pub results_csv: &'a str,
    pub checked: Option<&'a Checked<'a>>,
}

/// The cell of a value: the same text as the Markdown's, sorted by the value, the paper's number
/// and the interval's kind on hover.
fn value_cell(est: &Estimate, paper: Option<f64>) -> Cell {
    let (text, _) = est.cell();
    let mut title = format!("interval: {}", est.kind.name().replace('_', " "));
    if est.n > 1 {
        title.push_str(&format!(" over {} seeds", est.n));
    }
    if let Some(p) = paper {
        title.push_str(&format!("; paper {p:.2} (ours minus paper {:+.2})", est.value - p));
    }
    Cell::number(text, est.value).titled(title)
}

fn detector_table(page: &ReportPage) -> Table {
    let mut headers: Vec<String> = ["Table", "OOD set", "Method", "Network"].iter().map(|s| s.to_string()).collect();
    headers.extend(Metric::OOD.iter().map(|m| m.header().to_string()));
    let mut rows = Vec::new();
    for (_, set) in page.sets {
        for (d, table) in &page.detectors {
            let cells: Vec<Cell> = Metric::OOD
                .iter()
                .map(|&m| page.lookup.parts(set, d.label, m).map_or(Cell::text("–"), |(est, paper)| value_cell(est, paper)))
                .collect();
            if cells.iter().all(|c| c.text == "–") {
                continue;
            }
            let mut row = vec![Cell::text(*table), Cell::text(set.clone()), Cell::text(d.label), Cell::text(d.model.label())];
            row.extend(cells);
            rows.push(row);
        }
    }
    Table {
        id: "detectors".into(),
        caption: "Tables 1 and 3: out-of-distribution detection (ours, with the paper's number on hover)".into(),
        headers,
        rows,
        filters: vec![0, 1, 2, 3],
    }
}

fn accuracy_table(page: &ReportPage) -> Table {
    let rows = page
        .models
        .iter()
        .filter_map(|m| {
            page.lookup.parts(crate::report::IN_DISTRIBUTION, m.label(), Metric::Accuracy).map(|(est, paper)| {
                let paper_cell = paper.map_or(Cell::text("–"), |p| Cell::number(format!("{p:.2}"), p));
                vec![Cell::text(m.label()), value_cell(est, paper), paper_cell]
            })
        })
        .collect();
    Table {
        id: "accuracy".into(),
        caption: "Table 2: CIFAR-10 test accuracy".into(),
        headers: vec!["Network".into(), "Accuracy".into(), "Paper".into()],
        rows,
        filters: vec![],
    }
}

fn summary_table(page: &ReportPage) -> Table {
    let mut headers: Vec<String> = vec!["Rank".into(), "Method".into(), "Table".into()];
    headers.extend(page.summary_metrics.iter().map(|(_, h)| h.to_string()));
    let rows = page
        .summary
        .iter()
        .map(|r| {
            let mut row = vec![
                r.rank.map_or(Cell::text("–"), |k| Cell::number(k.to_string(), k as f64)),
                Cell::text(r.method.clone()),
                Cell::text(r.table.clone()),
            ];
            row.extend(r.cells.iter().map(|c| c.as_ref().map_or(Cell::text("–"), |(m, text)| Cell::number(text.clone(), m.value))));
            row
        })
        .collect();
    Table { id: "summary".into(), caption: "Mean over the OOD sets, ranked by mean AUROC".into(), headers, rows, filters: vec![2] }
}

/// Every row of `results.csv`, its fields as written.
fn results_table(csv: &str) -> Table {
    let mut lines = csv.lines();
    let headers: Vec<String> = lines.next().unwrap_or_default().split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| {
            split_csv(l)
                .into_iter()
                .map(|f| match f.parse::<f64>() {
                    Ok(v) => Cell::number(f, v),
                    Err(_) => Cell::text(f),
                })
                .collect()
        })
        .collect();
    Table {
        id: "results".into(),
        caption: "results.csv: every value, per seed and aggregated (percent)".into(),
        headers,
        rows,
        filters: vec![0, 1, 2, 3],
    }
}

/// A CSV line's fields (quoted fields may hold commas; a doubled quote is a quote).
pub(crate) fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.last_mut().expect("one field").push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

/// The claims: each with its verdict in colour and words, opened to its comparisons.
pub(crate) fn claims_markup(checked: &Checked, id: &str) -> Markup {
    html! {
        @for (i, claim) in checked.claims.iter().enumerate() {
            @let summary = checked.summary(i);
            details.claim {
                summary class=(oodpipe_html::verdict_class(summary.trim_start_matches('*'))) {
                    strong { (i + 1) ". " } (claim.paper) " — " (summary.replace("**", ""))
                }
                @for (j, part) in claim.parts.iter().enumerate() {
                    @if claim.parts.len() > 1 { p { em { (part.says) } ": " (checked.part_summary(i, j)) } }
                    @if part.untested.is_none() {
                        (claim_rows(checked, i, j, &format!("{id}-{i}-{j}")).markup())
                    }
                }
            }
        }
    }
}

fn claim_rows(checked: &Checked, i: usize, j: usize, id: &str) -> Table {
    let rows = checked
        .part_rows(i, j)
        .into_iter()
        .map(|r| {
            let op = if r.comparison.relation == oodpipe_plan::claims::Relation::Better { ">" } else { "~" };
            let mut row =
                vec![Cell::text(format!("{} {op} {}", r.labels.0, r.labels.1)), Cell::text(r.set.clone()), Cell::text(r.metric.name())];
            match &r.outcome {
                Ok(t) => {
                    let class = match t.verdict {
                        Verdict::Holds => "holds",
                        Verdict::Reversed => "reversed",
                        Verdict::NotResolved => "open",
                    };
                    row.push(Cell::number(crate::claims::difference_text(t), t.difference).titled(t.test.name()));
                    row.push(Cell::number(crate::claims::p_text(t.p, t.at_floor), t.p));
                    row.push(Cell::number(crate::claims::p_text(t.p_adjusted, None), t.p_adjusted));
                    row.push(Cell::text(t.verdict.text()).classed(class));
                }
                Err(why) => {
                    row.extend([Cell::text("–"), Cell::text("–"), Cell::text("–")]);
                    row.push(Cell::text(format!("not tested: {why}")).classed("open"));
                }
            }
            row
        })
        .collect();
    let headers = ["Comparison", "Set", "Metric", "A − B [95%]", "p", "adjusted p", "Verdict"].map(String::from).to_vec();
    Table { id: id.into(), caption: String::new(), headers, rows, filters: vec![] }
}

/// One detector's ROC curve on one set, small.
fn roc_single(label: &str, set: &str, colour: usize, in_scores: &[f64], out_scores: &[f64]) -> Result<String> {
    let points = oodpipe_metrics::roc_curve(in_scores, out_scores).map_err(|e| anyhow!("{label} on {set}: {e}"))?;
    // Small multiples: 120 points and no grid keep 57 of them near 6 kB each.
    let points = crate::figures::downsample(&points, MAX_ROC_POINTS.min(120));
    let auroc = oodpipe_metrics::ood_metrics(in_scores, out_scores).map_err(|e| anyhow!("{label} on {set}: {e}"))?.auroc;
    let mut svg = String::new();
    {
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing the ROC of {label} on {set}: {e}");
        let root = SVGBackend::with_string(&mut svg, (300, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{label}, {set}: AUROC {:.2}", 100.0 * auroc), ("sans-serif", 13))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(36)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(3)
            .y_labels(3)
            .x_desc(FPR_LABEL)
            .y_desc(TPR_LABEL)
            .label_style(("sans-serif", 9))
            .draw()
            .map_err(|e| err(&e))?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(170, 170, 170))).map_err(|e| err(&e))?;
        chart.draw_series(LineSeries::new(points, PALETTE[colour % PALETTE.len()].stroke_width(2))).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// With several seeds: per OOD set, each detector's AUROC of every seed (dots) against its
/// aggregate and interval (a bar): how far training moves each number.
fn seeds_spread(page: &ReportPage, set: &str) -> Result<Option<String>> {
    let mut methods: Vec<(&str, Vec<f64>, &Estimate)> = Vec::new();
    for (d, _) in &page.detectors {
        if let Some((key_seeds, agg)) = page.estimated.per_seed(set, d.label, Metric::Auroc) {
            methods.push((d.label, key_seeds.iter().map(|(_, e)| e.value).collect(), agg));
        }
    }
    if methods.is_empty() || page.seeds.len() < 2 {
        return Ok(None);
    }
    let mut svg = String::new();
    {
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing the seeds' spread on {set}: {e}");
        let root = SVGBackend::with_string(&mut svg, (900, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = methods.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("AUROC per seed, {set} (bars: the aggregate's interval)"), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(45)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64)
            .map_err(|e| err(&e))?;
        let labels: Vec<String> = methods.iter().map(|m| m.0.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
            .y_desc("AUROC (%)")
            .label_style(("sans-serif", 10))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (_, values, agg)) in methods.iter().enumerate() {
            let x = i as f64;
            if let Some((lo, hi)) = agg.interval {
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], PALETTE[0].stroke_width(3))))
                    .map_err(|e| err(&e))?;
            }
            chart.draw_series(values.iter().map(|&v| Circle::new((x + 0.15, v), 3, PALETTE[1].filled()))).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(Some(svg))
}

/// The page's figures: per OOD set its ROC curves (all detectors), each detector's own ROC curve
/// and score histogram, and with seeds the seeds' spread.
fn figures_markup(ctx: &StageContext, page: &ReportPage) -> Result<Markup> {
    let read_figure = |path: &str, caption: String| -> Option<Figure> {
        std::fs::read_to_string(ctx.output(path)).ok().and_then(|svg| Figure::new(caption, &svg))
    };
    let mut sections = Vec::new();
    for (name, label) in page.sets {
        let mut figures: Vec<Figure> = Vec::new();
        figures.extend(read_figure(&crate::figures::roc_path(name), format!("ROC curves, {label}")));
        if let Some(svg) = seeds_spread(page, label)? {
            figures.extend(Figure::new(format!("AUROC per seed, {label}"), &svg));
        }
        for (i, (d, _)) in page.detectors.iter().enumerate() {
            let id = ids::score(d.name, name);
            if !ctx.inputs.contains_key(&id) {
                continue;
            }
            let in_scores = crate::figures::read_scores(ctx, &id, ids::tensors::IN_SCORES)?;
            let out_scores = crate::figures::read_scores(ctx, &id, ids::tensors::OUT_SCORES)?;
            figures.extend(Figure::new(format!("ROC, {}, {label}", d.label), &roc_single(d.label, label, i, &in_scores, &out_scores)?));
            figures.extend(read_figure(&crate::figures::histogram_path(d, name), format!("Scores, {}, {label}", d.label)));
        }
        sections.push((label.clone(), figures));
    }
    Ok(html! {
        @for (label, figures) in &sections {
            details.figures {
                summary { "Figures, " (label) " (" (figures.len()) ")" }
                @for f in figures { (f.markup()) }
            }
        }
    })
}

/// `report.html` (see the module doc).
pub(crate) fn write(ctx: &StageContext, page: &ReportPage) -> Result<()> {
    let figures = figures_markup(ctx, page)?;
    let body = html! {
        h1 { (page.title) }
        nav {
            a href="#tables" { "Tables" } a href="#summary-section" { "Mean over the sets" }
            @if page.checked.is_some() { a href="#claims" { "Claims" } }
            a href="#figures" { "Figures" } a href="#all-results" { "Every value" } a href="#run" { "The run" }
        }
        p { "In the tables, " (page.note) ". Hover a value for its interval's kind and the paper's number; click a header to sort; choose in a filter to narrow." }
        section #tables {
            (detector_table(page).markup())
            (accuracy_table(page).markup())
        }
        section #summary-section { (summary_table(page).markup()) }
        @if let Some(checked) = page.checked {
            section #claims {
                h2 { "The paper's claims, checked" }
                p { "Green: holds; red: reversed; grey: not resolved at this noise or not tested. Open a claim for its comparisons (claims.md says how they are tested)." }
                (claims_markup(checked, "claim"))
            }
        }
        section #figures { h2 { "Figures" } (figures) }
        section #all-results { h2 { "Every value" } (results_table(page.results_csv).markup()) }
        section #run { h2 { "The run" } (oodpipe_html::PreEscaped(oodpipe_html::RUN_MARKER)) }
    };
    std::fs::write(ctx.output(FILE), oodpipe_html::page(page.title, body))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas_and_quotes() {
        assert_eq!(split_csv("a,\"b, c\",\"d \"\"e\"\"\",4.5"), ["a", "b, c", "d \"e\"", "4.5"]);
        assert_eq!(split_csv(""), [""]);
    }

    #[test]
    fn every_row_of_results_is_a_row_of_the_page_with_its_fields_as_written() {
        let csv = "ood_set,method,metric,seed,value\nGaussian Noise,ODIN,auroc,all,99.83\n\"A, B\",<script>,auroc,0,1e-3\n";
        let table = results_table(csv);
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[1][0].text, "A, B");
        assert_eq!(table.rows[1][4].text, "1e-3");
        let html = table.markup().into_string();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
    }
}
