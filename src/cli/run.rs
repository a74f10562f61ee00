//! `oodpipe run`: build the targets and what they need, then record the run beside the report.

use oodpipe::executor;
use oodpipe::progress::ConsoleReporter;
use oodpipe::run_record::{RunRecord, results_digest};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &Path, cache: &Path, targets: &[String], dry_run: bool, as_json: bool) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, targets)?;
    let reporter = ConsoleReporter::new(false);
    let started_unix = unix_now();
    let outcome = executor::run(&session.store, &session.stages, &reporter, dry_run);
    if !dry_run {
        record_run(&session, cache, targets, started_unix, &outcome)?;
    }

    if !dry_run && outcome.failed.is_empty() {
        for ks in &session.stages {
            let Some(dir) = &ks.spec.publish else { continue };
            let record = run_record(&session, &outcome.entries);
            let path = dir.join("run.json");
            if outcome.executed.contains(&ks.spec.id) || !path.exists() {
                oodpipe::atomic_file::write(&path, serde_json::to_string_pretty(&record)?.as_bytes())?;
            }
            if let Ok(summary) = std::fs::read_to_string(dir.join("summary.txt")) {
                eprintln!("\nThe report is in {}/ (README.md, table1.md, table2.md, results.csv).\n{summary}", dir.display());
            }
        }
    }

    let verb = if dry_run { "would run" } else { "executed" };
    eprintln!(
        "{verb} {}, cached {}, failed {}, skipped {} in {:.2}s",
        outcome.executed.len(),
        outcome.cached.len(),
        outcome.failed.len(),
        outcome.skipped.len(),
        outcome.seconds
    );
    for (id, error) in &outcome.failed {
        eprintln!("error: stage {id} failed: {error}");
    }
    if as_json {
        println!("{}", json!({"executed": outcome.executed, "cached": outcome.cached, "seconds": outcome.seconds}));
    }
    Ok(if outcome.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Appends this run to `cache/runs/` (see `oodpipe runs`).
fn record_run(
    session: &super::Session,
    cache: &Path,
    targets: &[String],
    started_unix: u64,
    outcome: &executor::Outcome,
) -> anyhow::Result<()> {
    let git = super::git_state();
    let mut published = BTreeMap::new();
    let mut published_digests = BTreeMap::new();
    for ks in session.stages.iter().filter(|ks| ks.spec.publish.is_some()) {
        if let Some(entry) = outcome.entries.get(&ks.spec.id) {
            published.extend(session.store.output_files(entry));
            published_digests.extend(entry.outputs.clone());
        }
    }
    let mut record = RunRecord {
        id: String::new(),
        started_unix,
        git_commit: git.as_ref().map(|(c, _)| c.clone()),
        git_dirty: git.as_ref().map(|(_, d)| *d),
        config_path: session.pipeline.config_path.clone(),
        config_key: session.pipeline.config_key.clone(),
        config: session.pipeline.config_fields.clone(),
        targets: targets.to_vec(),
        executed: outcome.executed.clone(),
        cached: outcome.cached.clone(),
        failed: outcome.failed.iter().map(|(id, _)| id.clone()).collect(),
        seconds: outcome.seconds,
        stage_seconds: outcome.entries.iter().map(|(id, e)| (id.clone(), e.seconds)).collect(),
        results_digest: (!published_digests.is_empty()).then(|| results_digest(&published_digests)),
        published,
    };
    record.save(cache).map_err(|e| anyhow::anyhow!("writing the run record under {}: {e}", cache.display()))?;
    eprintln!("run recorded as {}", record.id);
    Ok(())
}

/// reports/run.json: which config and code produced the published results, and each stage's time
/// (as recorded when it was built, so `total_seconds` is the pipeline's own time on a cold cache).
fn run_record(session: &super::Session, entries: &BTreeMap<String, oodpipe::store::Entry>) -> serde_json::Value {
    let stages: serde_json::Map<String, serde_json::Value> =
        session.stages.iter().filter_map(|ks| Some((ks.spec.id.clone(), json!(entries.get(&ks.spec.id)?.seconds)))).collect();
    let total: f64 = stages.values().filter_map(|v| v.as_f64()).sum();
    let git = super::git_state();
    json!({
        "config": session.pipeline.config_path,
        "config_key": session.pipeline.config_key,
        "git_commit": git.as_ref().map(|(c, _)| c.clone()),
        "git_dirty": git.as_ref().map(|(_, d)| *d),
        "libtorch": session.pipeline.platform.libtorch,
        "device": session.pipeline.platform.device,
        "total_seconds": total,
        "stages": stages,
    })
}
