//! The run's section of a published `report.html`: what only the command that ran it knows (the
//! config it read, the platform, the commit and whether the tree had changes, each stage's time,
//! and the stage graph drawn by Graphviz), written where the report stage left its marker
//! ([`oodpipe_html::RUN_MARKER`]). Like the README's run section, it is written each run from the
//! stored page, so the published file is always the stored page plus this run's section.

use maud::{Markup, html};
use oodpipe_engine::store::Entry;
use oodpipe_html::{Cell, Figure, Table};
use std::path::Path;

/// The section's markup, from the run's record (`run.json`'s fields) and the drawn DAG, if any.
pub fn section(record: &serde_json::Value, dag_svg: Option<&str>) -> Markup {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "unknown".into(),
        other => other.to_string(),
    };
    let platform = record["platform"].as_object().cloned().unwrap_or_default();
    let stages: Vec<Vec<Cell>> = record["stages"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(id, s)| {
                    vec![Cell::text(id.clone()), Cell::number(format!("{:.1}", s.as_f64().unwrap_or(0.0)), s.as_f64().unwrap_or(0.0))]
                })
                .collect()
        })
        .unwrap_or_default();
    let table = Table {
        id: "stage-times".into(),
        caption: "Each stage's time when it was built (seconds)".into(),
        headers: vec!["Stage".into(), "Seconds".into()],
        rows: stages,
        filters: vec![],
    };
    let dirty = match record["git_dirty"].as_bool() {
        Some(true) => " (the tree had uncommitted changes)",
        Some(false) => " (a clean tree)",
        None => "",
    };
    let dag = dag_svg.and_then(|svg| Figure::new("The stage graph (oodpipe dag --format dot, drawn by Graphviz)", svg));
    html! {
        p {
            "Config " code { (text(&record["config"])) } " (key " code { (text(&record["config_key"])) } "), commit "
            code { (text(&record["git_commit"])) } (dirty) ", libtorch " (text(&record["libtorch"])) ", device " (text(&record["device"]))
            ". The pipeline's own time on a cold cache (the sum of the stages' times): "
            (format!("{:.1}", record["total_seconds"].as_f64().unwrap_or(0.0) / 60.0)) " min."
        }
        table {
            caption { "Platform (training repeats bit for bit only on the same processor kind, instruction set and thread count)" }
            tbody { @for (k, v) in &platform { tr { th { (k) } td { (text(v)) } } } }
        }
        (table.markup())
        @if let Some(dag) = &dag { (dag.markup()) }
        details { summary { "The config" } pre { (serde_json::to_string_pretty(&record["config"]).unwrap_or_default()) } }
    }
}

/// Writes the published `report.html` of `entry` (if it has one) with this run's section.
pub fn write(session: &super::Session, entry: &Entry, dir: &Path, record: &serde_json::Value) -> anyhow::Result<()> {
    let Some(stored) = session.store.output_files(entry).remove(oodpipe_html::PAGE) else { return Ok(()) };
    let page = std::fs::read_to_string(&stored)?;
    let dag = std::fs::read_to_string(dir.join(oodpipe_plan::ids::files::DAG_SVG)).ok();
    let mut record = record.clone();
    if let Some(git) = session.git_state() {
        record["git_commit"] = serde_json::json!(git.commit);
        record["git_dirty"] = serde_json::json!(!git.changed.is_empty());
    }
    let text = page.replacen(oodpipe_html::RUN_MARKER, &section(&record, dag.as_deref()).into_string(), 1);
    let path = dir.join(oodpipe_html::PAGE);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        oodpipe_engine::atomic_file::write(&path, text.as_bytes())?;
    }
    Ok(())
}
