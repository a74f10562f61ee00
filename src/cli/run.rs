//! `oodpipe run`: build the targets and what they need, then record the run beside the report.

use crate::pipeline::Executor;
use oodpipe_engine::executor;
use oodpipe_engine::progress::ConsoleReporter;
use oodpipe_engine::run_record::{RunRecord, results_digest};
use oodpipe_plan::ids::files;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// How a run builds stages: how many at once, on which GPUs, where.
pub struct Parallel {
    pub jobs: Option<usize>,
    pub gpus: Option<Vec<String>>,
    pub executor: Executor,
}

pub fn run(
    config: &crate::pipeline::ConfigArgs,
    cache: &Path,
    targets: &[String],
    dry_run: bool,
    as_json: bool,
    parallel: Parallel,
    remote: &super::remote::RunRemoteArgs,
) -> anyhow::Result<ExitCode> {
    if parallel.jobs == Some(0) {
        return Err(oodpipe_engine::bad_input::BadInput("-j/--jobs: expected at least 1".into()).into());
    }
    let session = super::open(config, cache, targets)?;
    if parallel.executor == Executor::Local && !dry_run {
        session.machine.check_local()?;
    }
    if !dry_run {
        crate::pipeline::check_networks(&session.store, &session.stages)?;
    }
    let jobs = match parallel.executor {
        Executor::Local => executor::Jobs {
            jobs: parallel.jobs.unwrap_or(1),
            cpus: Some(executor::available_cpus()),
            gpus: parallel.gpus.unwrap_or_else(|| session.machine.gpus.clone()),
        },
        // The cluster shares out cores and GPUs; every ready stage is submitted unless -j caps it.
        Executor::Slurm => executor::Jobs { jobs: parallel.jobs.unwrap_or(usize::MAX), cpus: None, gpus: Vec::new() },
    };
    let runner = session.machine.runner(parallel.executor, &session.pipeline.config, &session.store.state_dir());
    let reporter = ConsoleReporter::new(false);
    let remote = super::remote::connect(&remote.remote, &session, !remote.uploads(&session), false)?;
    let started_unix = unix_now();
    oodpipe_engine::interrupt::install();
    let outcome = executor::run_with_remote(&session.store, &session.stages, runner.as_ref(), &reporter, dry_run, &jobs, remote.as_ref());
    // A run that built nothing (and failed at nothing) changed nothing: it is not recorded, which
    // also keeps a no-op run from asking git about the work tree.
    let built_nothing = outcome.executed.is_empty() && outcome.failed.is_empty() && !outcome.interrupted;
    if !dry_run && !built_nothing {
        record_run(&session, cache, targets, started_unix, &outcome)?;
    }

    if !dry_run && outcome.failed.is_empty() && !outcome.interrupted {
        for ks in &session.stages {
            let Some(dir) = &ks.spec.publish else { continue };
            let mut record = run_record(&session, &outcome.entries);
            let path = dir.join(files::RUN_RECORD);
            if outcome.executed.contains(&ks.spec.id) || !path.exists() {
                let git = session.git_state();
                record["git_commit"] = json!(git.map(|g| g.commit.clone()));
                record["git_dirty"] = json!(git.map(|g| !g.changed.is_empty()));
                if let Some(g) = git.filter(|g| !g.changed.is_empty()) {
                    record["git_changes"] = json!(g.changed);
                }
                oodpipe_engine::atomic_file::write(&path, serde_json::to_string_pretty(&record)?.as_bytes())?;
            }
            draw_dag(&session.pipeline.graph, dir);
            if let Some(entry) = outcome.entries.get(&ks.spec.id) {
                append_run_section(&session, entry, dir, &record)?;
                super::run_page::write(&session, entry, dir, &record)?;
            }
            if let Ok(summary) = std::fs::read_to_string(dir.join(files::SUMMARY)) {
                eprintln!("\nThe report is in {}/ (README.md, table1.md, table2.md, results.csv).\n{summary}", dir.display());
            }
        }
    }

    // A sweep's dry run: what each point would build (its own stages and those it shares).
    if dry_run {
        for (i, (point, ids)) in session.pipeline.points.iter().enumerate() {
            let building: Vec<&str> = ids.iter().filter(|id| outcome.executed.contains(id)).map(String::as_str).collect();
            eprintln!(
                "point {} ({point}): would build {} of its {} stages{}{}",
                i + 1,
                building.len(),
                ids.len(),
                if building.is_empty() { "" } else { ": " },
                building.join(", ")
            );
        }
    }
    let verb = if dry_run { "would run" } else { "executed" };
    let fetched = match (&remote, outcome.fetched.len()) {
        (Some(remote), n) if n > 0 => format!(" ({n} {} from {})", if dry_run { "on the remote" } else { "fetched" }, remote.url()),
        _ => String::new(),
    };
    eprintln!(
        "{verb} {}, cached {}{fetched}, failed {}, skipped {} in {:.2}s",
        outcome.executed.len(),
        outcome.cached.len(),
        outcome.failed.len(),
        outcome.skipped.len(),
        outcome.seconds
    );
    for (id, error) in &outcome.failed {
        eprintln!("error: stage {id} failed: {error}");
    }
    if outcome.interrupted {
        eprintln!("interrupted: what finished is kept; the next run resumes from there");
    }
    if as_json {
        println!(
            "{}",
            json!({"executed": outcome.executed, "cached": outcome.cached, "fetched": outcome.fetched, "seconds": outcome.seconds})
        );
    }
    Ok(super::exit_code(&outcome))
}

/// Ends the published README.md with what produced it: the config, libtorch, the device and each
/// stage's time (as recorded when it was built: stable across runs that rebuild nothing).
fn append_run_section(
    session: &super::Session,
    entry: &oodpipe_engine::store::Entry,
    dir: &Path,
    record: &serde_json::Value,
) -> anyhow::Result<()> {
    let Some(readme) = session.store.output_files(entry).remove("README.md") else { return Ok(()) };
    let mut text = std::fs::read_to_string(readme)?;
    let p = &session.pipeline;
    let details = &session.machine.platform_details;
    let detail = |k: &str| details.get(k).map(String::as_str).unwrap_or("unknown");
    text.push_str(&format!(
        "## This run\n\nConfig `{}` (key `{}`), libtorch {}, device {}. The pipeline's own time on a cold cache \
         (the sum of the stages' times, build excluded): {:.1} min.\n\n\
         Platform: {} (ATen kernels: {}), {} threads{}. Training repeats bit for bit only on the same processor \
         kind, instruction set and thread count; elsewhere only within the intervals across seeds (a one-seed \
         bootstrap interval does not cover training noise).\n\n\
         | Stage | Seconds |\n|---|---:|\n",
        p.config_path.display(),
        &p.config_key[..12],
        session.machine.platform.libtorch,
        session.machine.platform.device,
        record["total_seconds"].as_f64().unwrap_or(0.0) / 60.0,
        detail("cpu_model"),
        detail("cpu_capability"),
        detail("threads"),
        details.get("gpu").map(|g| format!(", GPU {g}")).unwrap_or_default(),
    ));
    for ks in &session.stages {
        if let Some(secs) = record["stages"][&ks.spec.id].as_f64() {
            text.push_str(&format!("| {} | {secs:.1} |\n", ks.spec.id));
        }
    }
    let path = dir.join("README.md");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        oodpipe_engine::atomic_file::write(&path, text.as_bytes())?;
    }
    Ok(())
}

/// Writes the stage graph beside the report as `dag.dot` and, when Graphviz's `dot` is installed
/// (`make run` installs it), as `dag.svg`; redrawn only when the graph changed.
fn draw_dag(graph: &oodpipe_engine::graph::Graph, dir: &Path) {
    let dot = graph.render(oodpipe_engine::graph::DagFormat::Dot);
    let dot_path = dir.join(files::DAG_DOT);
    let svg_path = dir.join(files::DAG_SVG);
    let unchanged = std::fs::read_to_string(&dot_path).is_ok_and(|old| old == dot);
    if unchanged && svg_path.exists() {
        return;
    }
    if let Err(e) = oodpipe_engine::atomic_file::write(&dot_path, dot.as_bytes()) {
        eprintln!("warning: writing {}: {e}", dot_path.display());
        return;
    }
    let drawn = std::process::Command::new("dot").arg("-Tsvg").arg(&dot_path).arg("-o").arg(&svg_path).status();
    if !drawn.is_ok_and(|s| s.success()) {
        eprintln!("note: Graphviz's `dot` is not installed; the DAG is in {} (make run installs it)", dot_path.display());
    }
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
    let git = session.git_state();
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
        git_commit: git.map(|g| g.commit.clone()),
        git_dirty: git.map(|g| !g.changed.is_empty()),
        git_changes: git.map(|g| g.changed.clone()).unwrap_or_default(),
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
        platform: session.machine.platform_details.clone(),
        interrupted: outcome.interrupted,
        overrides: session.pipeline.overrides.clone(),
        sweep: session.pipeline.sweep.clone().unwrap_or_default(),
        keys: stage_keys(session),
        sets: report_sets(session),
    };
    record.save(cache).map_err(|e| anyhow::anyhow!("writing the run record under {}: {e}", cache.display()))?;
    eprintln!("run recorded as {}", record.id);
    Ok(())
}

/// Stage id -> key of every stage of the session (`oodpipe diff` pairs two sides by them).
fn stage_keys(session: &super::Session) -> BTreeMap<String, String> {
    session.stages.iter().map(|ks| (ks.spec.id.clone(), ks.key.0.clone())).collect()
}

/// The report's OOD sets, (name, label): how a results row's set label names its stages.
fn report_sets(session: &super::Session) -> Vec<(String, String)> {
    session
        .stages
        .iter()
        .find_map(|ks| match serde_json::from_value(ks.spec.task.clone()) {
            Ok(oodpipe_plan::table::Task::Report { sets, .. }) => Some(sets),
            _ => None,
        })
        .unwrap_or_default()
}

/// reports/run.json: which config and code produced the published results, and each stage's time
/// (as recorded when it was built, so `total_seconds` is the pipeline's own time on a cold cache),
/// the key of every stage and the OOD sets (name, label), for `oodpipe diff`.
/// The commit (`git_commit`, `git_dirty` and, when dirty, `git_changes`: the changed tracked files,
/// the report folders left out) is filled in by the caller when it writes the file.
fn run_record(session: &super::Session, entries: &BTreeMap<String, oodpipe_engine::store::Entry>) -> serde_json::Value {
    let stages: serde_json::Map<String, serde_json::Value> =
        session.stages.iter().filter_map(|ks| Some((ks.spec.id.clone(), json!(entries.get(&ks.spec.id)?.seconds)))).collect();
    let total: f64 = stages.values().filter_map(|v| v.as_f64()).sum();
    let p = &session.pipeline;
    let mut record = json!({
        "config": session.pipeline.config_path,
        "config_key": session.pipeline.config_key,
        "git_commit": null,
        "git_dirty": null,
        "libtorch": session.machine.platform.libtorch,
        "device": session.machine.platform.device,
        "platform": session.machine.platform_details,
        "total_seconds": total,
        "stages": stages,
        "keys": stage_keys(session),
        "sets": report_sets(session),
    });
    if !p.overrides.is_empty() {
        record["overrides"] = json!(p.overrides);
    }
    if let Some(sweep) = &p.sweep {
        record["sweep"] = json!(sweep);
    }
    record
}
