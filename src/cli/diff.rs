//! `oodpipe diff A [B]`: how the results (and the config) moved between two commits or runs.
//!
//! A side is a run id (or a unique prefix) from `oodpipe runs`, or a git revision, whose
//! `reports/results.csv` and config are read with `git show` (the config named by that revision's
//! `reports/run.json`, else the `-c` config's path). B defaults to the working tree. An unknown
//! revision, or one without results, exits 2 with a message saying which.
//!
//! Each changed value is tested by what differs between the two sides (`oodpipe_engine::
//! change_test`); whether they share their trained networks, and the paired bootstrap when they
//! do, comes from the stage keys each side recorded and the scores in the local store
//! ([`crate::pairing`]).

use crate::pairing::{Pairer, SideStages};
use oodpipe_engine::results_diff::{ResultsDiff, changed_values, config_changes, platform_changes};
use oodpipe_engine::results_frame::Results;
use oodpipe_engine::run_record::RunRecord;
use oodpipe_plan::ids::files;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// One side of the comparison.
struct Side {
    results: Results,
    config: BTreeMap<String, Value>,
    /// The platform its run.json (or run record) names; empty when it names none.
    platform: BTreeMap<String, String>,
    /// The stage keys and OOD sets its run.json (or run record) names; empty when it names none.
    stages: SideStages,
    /// The run's `--set` and `--sweep` arguments, as `oodpipe runs` shows them.
    overrides: Vec<String>,
}

/// `--set K=V` and `--sweep K=V1,V2` of a run's overrides and sweep.
pub(super) fn override_args(overrides: &[String], sweep: &[(String, Vec<String>)]) -> Vec<String> {
    overrides
        .iter()
        .map(|o| format!("--set {o}"))
        .chain(sweep.iter().map(|(key, values)| format!("--sweep {key}={}", values.join(","))))
        .collect()
}

/// The overrides and sweep a run.json's text names.
fn overrides_of(run_json: Option<&str>) -> Vec<String> {
    let Some(v) = run_json.and_then(|text| serde_json::from_str::<Value>(text).ok()) else { return Vec::new() };
    let overrides: Vec<String> = serde_json::from_value(v["overrides"].clone()).unwrap_or_default();
    let sweep: Vec<(String, Vec<String>)> = serde_json::from_value(v["sweep"].clone()).unwrap_or_default();
    override_args(&overrides, &sweep)
}

/// The `keys` and `sets` of a run.json's text.
fn stages_of(run_json: Option<&str>) -> SideStages {
    run_json.and_then(|text| serde_json::from_str::<Value>(text).ok()).map(|v| SideStages::of_json(&v)).unwrap_or_default()
}

/// The `platform` object of a run.json's text.
fn platform_of(run_json: Option<&str>) -> BTreeMap<String, String> {
    run_json
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|v| v["platform"].as_object().cloned())
        .map(|o| o.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect())
        .unwrap_or_default()
}

/// An error that means "that side does not exist or has no results" (exit 2).
struct Unresolvable(String);

fn git_show(rev: &str, path: &Path) -> Option<String> {
    let spec = format!("{rev}:./{}", path.display());
    let out = Command::new("git").args(["show", &spec]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_revision(rev: &str) -> bool {
    Command::new("git").args(["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).output().is_ok_and(|o| o.status.success())
}

/// The config a published report was made from: its run.json's `config`, else `fallback`.
fn config_path_of(run_json: Option<String>, fallback: &Path) -> PathBuf {
    run_json
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v["config"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| fallback.to_path_buf())
}

/// A side whose config cannot be found: its results are still compared, its config is not.
fn no_config(why: &str) -> BTreeMap<String, Value> {
    eprintln!("note: {why}; comparing the results without that side's config");
    BTreeMap::new()
}

fn resolve(spec: Option<&str>, cache: &Path, report_dir: &Path, config: &Path) -> Result<Side, Unresolvable> {
    let results_path = report_dir.join(files::RESULTS);
    let fail = |e: anyhow::Error| Unresolvable(format!("{e:#}"));
    let Some(spec) = spec else {
        let text = std::fs::read_to_string(&results_path)
            .map_err(|e| Unresolvable(format!("the working tree has no {} ({e})", results_path.display())))?;
        let run_json = std::fs::read_to_string(report_dir.join(files::RUN_RECORD)).ok();
        let config_path = config_path_of(run_json.clone(), config);
        let config = match std::fs::read_to_string(&config_path) {
            Ok(config_text) => crate::pipeline::config_fields(&config_text, &config_path).map_err(fail)?,
            Err(e) => no_config(&format!("cannot read {}: {e}", config_path.display())),
        };
        return Ok(Side {
            results: oodpipe_engine::results_frame::parse(&text, &results_path.display().to_string()).map_err(fail)?,
            config,
            platform: platform_of(run_json.as_deref()),
            stages: stages_of(run_json.as_deref()),
            overrides: overrides_of(run_json.as_deref()),
        });
    };
    if let Some(record) = RunRecord::find(cache, spec) {
        let path =
            record.published.get(files::RESULTS).ok_or_else(|| Unresolvable(format!("run {} published no results.csv", record.id)))?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            Unresolvable(format!("the results of run {} are gone from the store ({e}); was it collected by gc?", record.id))
        })?;
        return Ok(Side {
            results: oodpipe_engine::results_frame::parse(&text, &format!("run {}", record.id)).map_err(fail)?,
            config: record.config,
            platform: record.platform,
            overrides: override_args(&record.overrides, &record.sweep),
            stages: SideStages { keys: record.keys, sets: record.sets },
        });
    }
    if !is_revision(spec) {
        return Err(Unresolvable(format!("`{spec}` is neither a git revision nor a run id (see `oodpipe runs`)")));
    }
    let text = git_show(spec, &results_path)
        .ok_or_else(|| Unresolvable(format!("revision {spec} has no {} (no results committed there)", results_path.display())))?;
    let run_json = git_show(spec, &report_dir.join(files::RUN_RECORD));
    let config_path = config_path_of(run_json.clone(), config);
    let origin = format!("{spec}:{}", config_path.display());
    let config = match git_show(spec, &config_path) {
        Some(config_text) => crate::pipeline::config_fields(&config_text, Path::new(&origin)).map_err(fail)?,
        None => no_config(&format!("revision {spec} has no config file {}", config_path.display())),
    };
    Ok(Side {
        results: oodpipe_engine::results_frame::parse(&text, &format!("{spec}:{}", results_path.display())).map_err(fail)?,
        config,
        platform: platform_of(run_json.as_deref()),
        stages: stages_of(run_json.as_deref()),
        overrides: overrides_of(run_json.as_deref()),
    })
}

pub fn run(config: &Path, cache: &Path, a: &str, b: Option<&str>, as_json: bool, html: Option<&Path>) -> anyhow::Result<ExitCode> {
    // The report folder of the current config; without a loadable config (a checkout with no
    // pipeline.toml, a config of another schema), the default `reports`.
    let report_dir = crate::pipeline::load(config, &crate::experiment::Experiment::default())
        .ok()
        .and_then(|p| p.graph.ordered().find_map(|s| s.publish.clone()))
        .unwrap_or_else(|| PathBuf::from("reports"));
    let sides = resolve(Some(a), cache, &report_dir, config).and_then(|old| Ok((old, resolve(b, cache, &report_dir, config)?)));
    let (old, new) = match sides {
        Ok(s) => s,
        Err(Unresolvable(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    // The paired bootstrap resamples as the new side's report did (1,000 times when it did not).
    let field = |name: &str| new.config.get(name).or_else(|| old.config.get(name)).and_then(Value::as_u64);
    let resamples = field("report.bootstrap").filter(|&b| b > 0).unwrap_or(1000) as usize;
    let boot_seed = field("report.bootstrap_seed").unwrap_or(0);
    // A diff never creates a store: without one, the same networks get no paired bootstrap.
    let store = cache.join("stages").is_dir().then(|| oodpipe_engine::store::Store::open(cache).ok()).flatten();
    let mut pairer = Pairer::new(store, &old.stages, &new.stages, resamples, boot_seed);
    let changed = changed_values(&old.results, &new.results, &mut |key, a, b| pairer.pairing(key, a, b))?;
    for note in &pairer.notes {
        eprintln!("note: {note}; that value gets no paired bootstrap");
    }
    let diff = ResultsDiff::of(
        changed,
        if old.config.is_empty() || new.config.is_empty() { Vec::new() } else { config_changes(&old.config, &new.config) },
        platform_changes(&old.platform, &new.platform),
        (old.overrides, new.overrides),
    );
    let b_name = b.unwrap_or("the working tree");
    if let Some(path) = html {
        let page = super::diff_page::page(&diff, a, b_name, &unchanged(&old.results, &new.results)?);
        oodpipe_engine::atomic_file::write(path, page.as_bytes()).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if as_json {
        println!("{}", serde_json::to_string(&diff)?);
    } else {
        print!("{}", diff.to_markdown(a, b_name));
    }
    Ok(ExitCode::SUCCESS)
}

/// The aggregates both sides have with the same value: (set, method, metric, value).
fn unchanged(old: &Results, new: &Results) -> anyhow::Result<Vec<(String, String, String, f64)>> {
    let rows = |r: &Results| -> anyhow::Result<BTreeMap<(String, String, String), f64>> {
        let f = &r.frame;
        let (o, m, k) = (f.column("ood_set")?.str()?, f.column("method")?.str()?, f.column("metric")?.str()?);
        let v = f.column("value")?.f64()?;
        Ok((0..f.height())
            .filter_map(|i| {
                let text = |c: &polars::prelude::StringChunked| c.get(i).unwrap_or_default().to_string();
                Some(((text(o), text(m), text(k)), v.get(i)?))
            })
            .collect())
    };
    let (a, b) = (rows(old)?, rows(new)?);
    Ok(b.into_iter().filter(|(key, v)| a.get(key) == Some(v)).map(|((o, m, k), v)| (o, m, k, v)).collect())
}
