//! `oodpipe status`: every stage, fresh or stale, and for a stale one each reason it would run.

use oodpipe_engine::fingerprint::staleness;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &crate::pipeline::ConfigArgs, cache: &Path, targets: &[String], as_json: bool) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, targets)?;
    // Stages a run has submitted to Slurm and that have no entry yet: where their job is.
    let jobs = oodpipe_engine::slurm::in_flight(&session.store.state_dir().join("slurm"));
    let mut rows = Vec::new();
    let mut notes: Vec<(String, Vec<String>)> = Vec::new();
    for ks in &session.stages {
        let mut reasons: Vec<String> = staleness(&session.store, ks).iter().map(|r| r.to_string()).collect();
        if let (false, Some(job)) = (reasons.is_empty(), jobs.get(&ks.spec.id)) {
            if let Some((state, _)) = oodpipe_engine::slurm::job_state(job) {
                let place = match state.as_str() {
                    "PENDING" => "queued",
                    "RUNNING" | "COMPLETING" | "CONFIGURING" => "running",
                    _ => "ended",
                };
                reasons.insert(0, format!("{place} on Slurm (job {job}, {state})"));
            }
        }
        if reasons.is_empty() && !ks.kept.is_empty() {
            // Fresh by early cutoff: say why it did not rerun.
            rows.push((ks.spec.id.clone(), Vec::new()));
            notes.push((ks.spec.id.clone(), ks.kept.iter().map(|id| format!("input {id} rebuilt with the same bytes: kept")).collect::<Vec<_>>()));
            continue;
        }
        rows.push((ks.spec.id.clone(), reasons));
    }
    if as_json {
        let stages: Vec<_> = rows
            .iter()
            .map(|(id, reasons)| {
                let kept = notes.iter().find(|(n, _)| n == id).map(|(_, k)| k.clone()).unwrap_or_default();
                json!({"id": id, "state": if reasons.is_empty() { "fresh" } else { "stale" }, "reasons": reasons, "kept": kept})
            })
            .collect();
        println!("{}", json!({ "stages": stages }));
    } else {
        let width = rows.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
        for (id, reasons) in &rows {
            if let Some((_, kept)) = notes.iter().find(|(n, _)| n == id) {
                println!("fresh  {id:width$}  {}", kept.join("; "));
            } else if reasons.is_empty() {
                println!("fresh  {id}");
            } else {
                println!("stale  {id:width$}  {}", reasons.join("; "));
            }
        }
        let stale = rows.iter().filter(|(_, r)| !r.is_empty()).count();
        println!("{} stages: {} fresh, {stale} stale", rows.len(), rows.len() - stale);
    }
    Ok(ExitCode::SUCCESS)
}
