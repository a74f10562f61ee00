//! `oodpipe diff A B --html FILE`: the comparison as one self-contained page. Every changed value
//! old -> new with its intervals, the change with the interval and p of its test, the test in
//! words and the verdict (coloured), significant ones first, sortable and filtered by set, method,
//! metric and verdict; the values that did not change collapsed below; the config fields and
//! platform facts that differ. The cells are the Markdown's texts (`ChangedValue::texts`).

use maud::html;
use oodpipe_engine::results_diff::{ResultsDiff, Verdict};
use oodpipe_html::{Cell, Table};

/// The page, for sides named `a` and `b`; `unchanged`: (set, method, metric, value) of every
/// aggregate the two sides have alike.
pub fn page(diff: &ResultsDiff, a: &str, b: &str, unchanged: &[(String, String, String, f64)]) -> String {
    let class = |v: Verdict| match v {
        Verdict::Significant => "reversed",
        Verdict::WithinNoise => "holds",
        _ => "open",
    };
    let rows: Vec<Vec<Cell>> = diff
        .changed
        .iter()
        .map(|c| {
            let t = c.texts();
            vec![
                Cell::text(c.ood_set.clone()),
                Cell::text(c.method.clone()),
                Cell::text(c.metric.clone()),
                Cell::number(t.old, c.old.unwrap_or(f64::NAN)),
                Cell::number(t.new, c.new.unwrap_or(f64::NAN)),
                Cell::number(t.delta, c.delta.unwrap_or(f64::NAN)).titled(c.test_description.clone()),
                Cell::text(c.test_description.clone()),
                Cell::number(t.p, c.p.unwrap_or(f64::NAN)),
                Cell::number(t.p_adjusted, c.p_adjusted.unwrap_or(f64::NAN)),
                Cell::text(t.verdict).classed(class(c.verdict)),
            ]
        })
        .collect();
    let changed = Table {
        id: "changed".into(),
        caption: format!("Changed values, {a} -> {b}"),
        headers: ["OOD set", "Method", "Metric", "Old [95%]", "New [95%]", "Δ [95%]", "Test", "p", "adjusted p", "Verdict"]
            .map(String::from)
            .to_vec(),
        rows,
        filters: vec![0, 1, 2, 9],
    };
    let same = Table {
        id: "unchanged".into(),
        caption: format!("Values alike on both sides ({})", unchanged.len()),
        headers: ["OOD set", "Method", "Metric", "Value"].map(String::from).to_vec(),
        rows: unchanged
            .iter()
            .map(|(s, m, k, v)| {
                vec![Cell::text(s.clone()), Cell::text(m.clone()), Cell::text(k.clone()), Cell::number(format!("{v:.2}"), *v)]
            })
            .collect(),
        filters: vec![0, 1, 2],
    };
    let title = format!("oodpipe diff {a} {b}");
    let body = html! {
        h1 { (title) }
        p { (diff.summary(a, b)) }
        @if diff.correction.tests > 0 {
            p { "Each change is tested as its Test column says; p is two-sided, the adjusted p is Benjamini-Hochberg's across the "
                (diff.correction.tests) " tested changes (assuming positive dependence), and a change is significant at an adjusted p of at most "
                (diff.correction.false_discovery_rate) "." }
        }
        @if !diff.platform_changes.is_empty() {
            table { caption { "The two sides ran on different platforms: compare them within the intervals, not bit for bit" }
                thead { tr { th { "Platform" } th { (a) } th { (b) } } }
                tbody { @for c in &diff.platform_changes { tr { td { (c.field) } td { (c.old.to_string()) } td { (c.new.to_string()) } } } }
            }
        }
        @if !diff.changed.is_empty() { (changed.markup()) }
        @if !diff.config_changes.is_empty() {
            table { caption { "Config fields that differ" }
                thead { tr { th { "Field" } th { "Old" } th { "New" } } }
                tbody { @for c in &diff.config_changes { tr { td { code { (c.field) } } td { (c.old.to_string()) } td { (c.new.to_string()) } } } }
            }
        }
        details { summary { "Unchanged values (" (unchanged.len()) ")" } (same.markup()) }
    };
    oodpipe_html::page(&title, body)
}
