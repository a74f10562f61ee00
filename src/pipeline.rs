//! Binds the pipeline's stage table (`oodpipe_plan`) and its worker (`oodpipe-worker`) to the engine.
//!
//! It loads the config and plans the stages with no libtorch in this process: the table gives the
//! engine's stage specs directly, each keyed on exactly the fields it declares, and those fields
//! are all the config the worker is given. What keys need of libtorch (its version, the device
//! that "auto" means here) comes from the worker's probe, remembered per machine in the store
//! ([`machine`]).

use crate::experiment::{self, Assignment, Experiment, Sweep};
use anyhow::Context as _;
use oodpipe_engine::config_file;
use oodpipe_engine::executor::StageRunner;
use oodpipe_engine::graph::Graph;
use oodpipe_engine::slurm::SlurmRunner;
use oodpipe_engine::stage_key::Platform;
use oodpipe_engine::stage_spec::StageSpec;
use oodpipe_engine::stage_spec::flatten_all as all_fields;
use oodpipe_engine::variants::{self, Variant};
use oodpipe_engine::worker::{self, WorkerRunner};
use oodpipe_engine::zygote::Zygote;
use oodpipe_plan::{Config, table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The worker binary, built beside `oodpipe` by `cargo build`.
pub const WORKER: &str = "oodpipe-worker";

/// The config file and what the command line adds to it (`--set`, `--sweep`).
#[derive(Debug, Clone)]
pub struct ConfigArgs {
    pub path: PathBuf,
    pub experiment: Experiment,
}

pub struct Pipeline {
    pub config_path: PathBuf,
    pub config: Config,
    /// blake3 of the whole config, canonically serialised.
    pub config_key: String,
    /// Every config field, defaults included, flattened to dotted paths (`--set`s applied).
    pub config_fields: BTreeMap<String, serde_json::Value>,
    /// The command line's `--set KEY=VALUE`s, as given.
    pub overrides: Vec<String>,
    /// A sweep's keys and their values (as TOML shows them), in order.
    pub sweep: Option<Vec<(String, Vec<String>)>>,
    /// A sweep's points: each one's values (`methods.bin.zeta=0.2`) and the ids of its stages in
    /// the merged graph, in its plan's order.
    pub points: Vec<PointStages>,
    pub graph: Graph,
}

/// What the machine adds to the keys and the run records, and how its stages are run.
pub struct Machine {
    pub platform: Platform,
    /// What results depend on beyond their keys (processor, instruction set, threads, GPU),
    /// recorded in run.json and each run record.
    pub platform_details: BTreeMap<String, String>,
    pub runner: WorkerRunner,
    /// The GPUs a parallel run hands out (every visible one on a CUDA device; none on a CPU).
    pub gpus: Vec<String>,
    /// Whether libtorch finds a CUDA device on this machine.
    pub cuda_here: bool,
    config_path: PathBuf,
}

/// Where stages are built: `--executor local` (worker processes on this machine) or `slurm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

impl Machine {
    /// Refuses to build stages here on a device this machine does not have.
    pub fn check_local(&self) -> anyhow::Result<()> {
        if self.platform.device == "cuda" && !self.cuda_here {
            return Err(oodpipe_engine::bad_input::BadInput(format!(
                "{}: config key device = \"cuda\", but libtorch finds no CUDA device here (device = \"auto\" uses one \
                 when there is one; `--executor slurm` builds on the cluster's nodes)",
                self.config_path.display()
            ))
            .into());
        }
        Ok(())
    }

    /// The runner for `executor`: this machine's workers, or one Slurm job per stage (whose
    /// in-flight job ids are kept under `state_dir`).
    pub fn runner(&self, executor: Executor, config: &Config, state_dir: &Path) -> Box<dyn StageRunner> {
        match executor {
            Executor::Local => Box::new(self.runner.clone()),
            Executor::Slurm => Box::new(SlurmRunner {
                worker: self.runner.program.clone(),
                worker_args: self.runner.args.clone(),
                runtime: self.runner.runtime.clone(),
                options: config.executor.clone(),
                state_dir: state_dir.join("slurm"),
                board: oodpipe_engine::slurm::JobBoard::new(config.executor.poll()),
            }),
        }
    }
}

/// Whether a run's stages are processes forked from one worker it starts (the default: the
/// `zygote` mode of `oodpipe-worker`, see `oodpipe_engine::zygote`), or each a worker started
/// for it (`OODPIPE_FORK_SERVER=0`). The same processes either way, started from the same
/// state; forking saves loading libtorch again for each stage (0.65 s of CPU each here).
fn fork_server() -> bool {
    std::env::var("OODPIPE_FORK_SERVER").map_or(true, |v| v != "0")
}

/// The machine as the worker's probe sees it (remembered in `state_dir`), with the config's device
/// and threads applied.
pub fn machine(config: &Config, config_path: &Path, state_dir: &Path) -> anyhow::Result<Machine> {
    let program = worker::locate(WORKER)?;
    let probe = worker::probe_cached(&program, &["probe".to_string()], state_dir)?;
    let cuda = probe["cuda_available"].as_bool().unwrap_or(false);
    // "cuda" is taken at its word here: on a cluster the GPUs are on the nodes, not where the
    // engine plans; a local run checks that this machine has one ([`Machine::check_local`]).
    let device = match config.device.as_str() {
        "cpu" => "cpu",
        "cuda" => "cuda",
        _ if cuda => "cuda",
        _ => "cpu",
    };
    let mut platform_details: BTreeMap<String, String> =
        serde_json::from_value(probe[format!("platform_{device}")].clone()).unwrap_or_default();
    let threads = if config.threads > 0 { config.threads.to_string() } else { probe["default_threads"].to_string() };
    platform_details.insert("threads".into(), threads);
    let gpus =
        if device == "cuda" { (0..probe["cuda_devices"].as_u64().unwrap_or(1)).map(|g| g.to_string()).collect() } else { Vec::new() };
    Ok(Machine {
        cuda_here: cuda,
        config_path: config_path.to_path_buf(),
        gpus,
        platform: Platform { libtorch: probe["libtorch"].as_str().unwrap_or("unknown").to_string(), device: device.to_string() },
        platform_details,
        runner: WorkerRunner {
            zygote: fork_server().then(|| Arc::new(Zygote::new(program.clone(), vec!["zygote".into()]))),
            program,
            args: vec!["run".into()],
            runtime: serde_json::json!({"device": device, "threads": config.threads}),
        },
    })
}

/// Every field of a config file's text, defaults included, as `diff` compares them. A config
/// written for another version of the schema (a field since removed or renamed, a value since
/// refused) is not an error here: its fields are today's defaults overlaid with the file's values
/// as written, and each field unknown to today's schema is named in a note on stderr.
pub fn config_fields(text: &str, origin: &Path) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let strict = match config_file::parse::<Config>(text, origin) {
        Ok(config) => return Ok(all_fields(&serde_json::to_value(&config)?)),
        Err(e) => e,
    };
    let mut table: toml::Table =
        text.parse().map_err(|e| oodpipe_engine::bad_input::BadInput(format!("{}: not TOML: {e}", origin.display())))?;
    // Set aside, one by one, the keys today's schema does not know; the rest is read as today's
    // config, so that its values compare exactly (1 and 1.0 alike).
    let mut unknown = BTreeMap::new();
    let mut error = strict;
    while let Some(key) = unknown_key(&error) {
        let Some(value) = remove_dotted(&mut table, &key) else { break };
        eprintln!("note: {}: `{key}` is not a field of today's schema", origin.display());
        unknown.insert(key, serde_json::to_value(value)?);
        match config_file::parse::<Config>(&toml::to_string(&table)?, origin) {
            Ok(config) => {
                let mut fields = all_fields(&serde_json::to_value(&config)?);
                fields.extend(unknown);
                return Ok(fields);
            }
            Err(e) => error = e,
        }
    }
    // Values today's schema refuses: today's defaults overlaid with the file's values as written.
    eprintln!("note: {} does not fit today's config schema ({error}); comparing its fields as written", origin.display());
    let mut fields = all_fields(&serde_json::to_value(Config::default())?);
    fields.extend(all_fields(&serde_json::to_value(&table)?));
    fields.extend(unknown);
    Ok(fields)
}

/// The dotted key of an "unknown field" error (the field, below the table the error names).
fn unknown_key(error: &config_file::ConfigError) -> Option<String> {
    let rest = error.message.strip_prefix("unknown field `")?;
    let field = &rest[..rest.find('`')?];
    Some(match error.key.as_deref() {
        Some(key) if key == field || key.ends_with(&format!(".{field}")) => key.to_string(),
        Some(table) if !table.is_empty() && table != "." => format!("{table}.{field}"),
        _ => field.to_string(),
    })
}

/// Removes the value at a dotted key of a TOML table.
fn remove_dotted(table: &mut toml::Table, key: &str) -> Option<toml::Value> {
    let (parent, last) = match key.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, key),
    };
    let mut node = table;
    for part in parent.map(|p| p.split('.').collect::<Vec<_>>()).unwrap_or_default() {
        node = node.get_mut(part)?.as_table_mut()?;
    }
    node.remove(last)
}

/// Every value of `config` that types alone do not refuse: numbers that are NaN or infinite, and
/// values out of range; all of them in one error, each with the file, line and key, or, for a key
/// an assignment set, with that assignment (`--set train.epochs=0: key ...`).
fn check_values(config: &Config, config_path: &Path, text: &str, assignments: &[Assignment]) -> Result<(), config_file::ConfigErrors> {
    let error = |key: String, message: String| match experiment::blame(assignments, &key) {
        Some(a) => config_file::ConfigError { file: PathBuf::from(&a.origin), position: None, key: Some(key), message },
        None => config_file::ConfigError {
            file: config_path.to_path_buf(),
            position: config_file::position_of_key(text, key.split('[').next().unwrap_or(&key)),
            key: Some(key),
            message,
        },
    };
    let value = serde_json::to_value(config).expect("config serialises");
    let default = serde_json::to_value(Config::default()).expect("config serialises");
    let mut errors: Vec<config_file::ConfigError> = config_file::non_finite_paths(&value, &default)
        .into_iter()
        .map(|key| error(key, "not a finite number (NaN and infinities are refused)".into()))
        .collect();
    if errors.is_empty()
        && let Err(invalid) = config.validate()
    {
        errors.extend(invalid.into_iter().map(|i| error(i.key, i.message)));
    }
    if errors.is_empty() { Ok(()) } else { Err(config_file::ConfigErrors(errors)) }
}

/// Every `--set` of the command line, or all their problems at once.
fn parse_sets(experiment: &Experiment) -> Result<Vec<Assignment>, config_file::ConfigErrors> {
    let (mut ok, mut problems) = (Vec::new(), Vec::new());
    for arg in &experiment.sets {
        match experiment::parse_set(arg) {
            Ok(a) => ok.push(a),
            Err(e) => problems.extend(e.0),
        }
    }
    if problems.is_empty() { Ok(ok) } else { Err(config_file::ConfigErrors(problems)) }
}

/// The config file at `config_path` with the command line's `--set`s and `--sweep`s: its stages
/// (every point's, merged, and the sweep's report, when there is a sweep), checked.
pub fn load(config_path: &Path, experiment: &Experiment) -> anyhow::Result<Pipeline> {
    let text = config_file::read(config_path)?;
    let file_config: Config = config_file::parse(&text, config_path)?;
    let sets = parse_sets(experiment)?;
    let config = experiment::apply(&file_config, &sets)?;
    check_values(&config, config_path, &text, &sets)?;
    // The claims are the report's, but a typo in them should stop the run now, not in an hour.
    if !config.report.claims.as_os_str().is_empty() {
        let python: Vec<&str> = config.python.detectors.keys().map(String::as_str).collect();
        oodpipe_plan::claims::load_with(&config.report.claims, &python)?;
    }
    let config_json = serde_json::to_value(&config).expect("config serialises");
    let config_key = blake3::hash(&serde_json::to_vec(&config_json).expect("config serialises")).to_hex().to_string();
    let sweep = experiment::sweep(file_config.sweep.as_ref(), &config_path.display().to_string(), &experiment.sweeps, experiment.mode)?;
    let (specs, points) = match &sweep {
        None => (table::plan(&config)?, Vec::new()),
        Some(sweep) => plan_sweep(&config, sweep, file_config.sweep.is_some(), config_path, &text)?,
    };
    Ok(Pipeline {
        config_path: config_path.to_path_buf(),
        config_key,
        config_fields: all_fields(&config_json),
        config,
        overrides: experiment.sets.clone(),
        sweep: sweep.map(|s| s.axes.iter().map(|(k, v)| (k.clone(), v.iter().map(experiment::show).collect())).collect()),
        points,
        graph: Graph::new(specs)?,
    })
}

/// A sweep point's values as written (`methods.bin.zeta=0.2`) and the ids of its stages.
pub type PointStages = (String, Vec<String>);

/// Every point's stages, merged so that what the points share is built once, and the sweep's
/// report. It publishes to the config's report folder when the config file declares the sweep
/// (`[sweep]`: a sweep config), else to `<report.dir>/sweeps/<swept keys>` (never over a plain
/// run's report).
fn plan_sweep(
    config: &Config,
    sweep: &Sweep,
    declared_in_file: bool,
    config_path: &Path,
    text: &str,
) -> anyhow::Result<(Vec<StageSpec>, Vec<PointStages>)> {
    let points = sweep.points();
    let mut variants = Vec::with_capacity(points.len());
    let mut reads = Vec::with_capacity(points.len());
    for assignments in &points {
        let mut point = experiment::apply(config, assignments)?;
        check_values(&point, config_path, text, assignments)?;
        // A sweep is of the config's own pipeline: its `[networks.<name>]` are built by plain runs.
        point.networks.clear();
        let mut stages = table::plan(&point)?;
        let report = stages.iter().position(|s| s.id == oodpipe_plan::ids::REPORT).expect("a plan has a report");
        let report = stages.remove(report);
        let seeds = point.seeds().into_iter().map(|s| (s, table::seed_suffix(&point, s))).collect::<Vec<_>>();
        reads.push((report.inputs, seeds));
        let shown = assignments.iter().map(|a| (a.key.clone(), experiment::show(&a.value))).collect();
        variants.push(Variant { assignments: shown, stages });
    }
    let merged = variants::merge(&variants);
    let listed = variants
        .iter()
        .zip(&merged.ids)
        .map(|(v, ids)| {
            let name = v.assignments.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(", ");
            (name, v.stages.iter().map(|s| ids[&s.id].clone()).collect())
        })
        .collect();
    let sweep_points = points
        .iter()
        .zip(reads)
        .enumerate()
        .map(|(i, (assignments, (inputs, seeds)))| table::SweepPoint {
            values: assignments.iter().map(|a| experiment::show(&a.value)).collect(),
            seeds,
            inputs: inputs.iter().map(|id| (id.clone(), merged.ids[i][id].clone())).collect(),
        })
        .collect();
    let keys: Vec<String> = sweep.axes.iter().map(|(k, _)| k.clone()).collect();
    let dir = if declared_in_file { config.report.dir.clone() } else { config.report.dir.join("sweeps").join(keys.join("+")) };
    let mut stages = merged.stages;
    stages.push(table::sweep_stage(config, &keys, sweep_points, dir)?);
    Ok((stages, listed))
}

/// Checks the TorchScript file of every network whose import stage is not built yet against the
/// contract (`oodpipe-worker check-network`, which loads libtorch: this binary does not), so that a
/// file that breaks it is refused naming the file and what is wrong before any stage runs.
pub fn check_networks(store: &oodpipe_engine::store::Store, stages: &[oodpipe_engine::fingerprint::KeyedStage]) -> anyhow::Result<()> {
    let mut pending = stages.iter().filter(|ks| ks.spec.kind == "import" && store.entry(&ks.spec.kind, &ks.key).is_none()).peekable();
    if pending.peek().is_none() {
        return Ok(());
    }
    let program = worker::locate(WORKER)?;
    for ks in pending {
        let task: oodpipe_plan::table::Task = serde_json::from_value(ks.spec.task.clone())?;
        let (oodpipe_plan::table::Task::Import { head, .. }, Some(file)) = (task, ks.spec.sources.first()) else { continue };
        let out = std::process::Command::new(&program)
            .arg("check-network")
            .arg(&file.path)
            .arg(&head)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("starting {}", program.display()))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let why = if why.is_empty() { format!("{} check-network exited with {}", program.display(), out.status) } else { why };
            return Err(oodpipe_engine::bad_input::BadInput(format!("{}: {why}", ks.spec.id)).into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every key of the schema, and a few that are not.
    const KEYS: &[&str] = &[
        "device",
        "threads",
        "models",
        "data.split_seed",
        "data.val_size",
        "data.train_limit",
        "data.test_limit",
        "data.ood_seed",
        "data.ood_count",
        "data.ood_val",
        "model.depth",
        "model.widen",
        "train.seed",
        "train.seeds",
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.momentum",
        "train.nesterov",
        "train.weight_decay",
        "train.schedule",
        "train.milestones",
        "train.gamma",
        "train.warmup",
        "train.label_smoothing",
        "train.channels_last",
        "train.augment",
        "methods.bin.zeta",
        "methods.binc.zeta",
        "methods.binc.lambda",
        "methods.binc.z",
        "methods.vib.beta",
        "methods.vib.z",
        "methods.viby.beta",
        "methods.viby.z",
        "tune.temperatures",
        "tune.odin_epsilons",
        "eval.batch_size",
        "report.bootstrap",
        "report.bootstrap_seed",
        "detector.knn.k",
        "detector.react.percentile",
        "detector.vim.dim",
        "detector.gen.gamma",
        "detector.she.x",
        "train.nope",
        "nope",
        "methods.odin.t",
    ];

    fn value() -> impl Strategy<Value = String> {
        let float = prop_oneof![
            any::<f64>().prop_map(|f| format!("{f:?}").replace("NaN", "nan")),
            Just("nan".to_string()),
            Just("-inf".to_string()),
            Just("inf".to_string()),
        ];
        let scalar = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            float.clone(),
            any::<bool>().prop_map(|b| b.to_string()),
            "[a-z_]{0,8}".prop_map(|s| format!("\"{s}\"")),
        ];
        prop_oneof![scalar.clone(), prop::collection::vec(scalar, 0..4).prop_map(|v| format!("[{}]", v.join(", ")))]
    }

    #[test]
    fn a_config_of_an_older_schema_is_compared_field_by_field() {
        let today = "[tune]\ntemperatures = [1, 10]\n";
        let older = "[train]\nold_knob = 3\n[tune]\ntemperatures = [1, 10]\nold_grid = [2]\n";
        let mut expected = config_fields(today, Path::new("today.toml")).unwrap();
        expected.insert("train.old_knob".into(), serde_json::json!(3));
        expected.insert("tune.old_grid".into(), serde_json::json!([2]));
        assert_eq!(config_fields(older, Path::new("older.toml")).unwrap(), expected);
    }

    #[test]
    fn a_detectors_own_table_is_checked_like_the_rest_of_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let refused = |text: &str| {
            std::fs::write(&path, text).unwrap();
            format!("{:#}", load(&path, &Experiment::default()).err().expect("refused"))
        };
        let err = refused("[detector.knn]\nk = 0\n\n[detector.react]\npercentile = 100\n");
        assert!(err.contains("c.toml:2:1: key `detector.knn.k`: 0: expected at least 1"), "{err}");
        assert!(
            err.contains("c.toml:5:1: key `detector.react.percentile`: 100.0: expected a percentage strictly between 0 and 100"),
            "{err}"
        );
        let err = refused("[detector.react]\npercentile = nan\n");
        assert!(err.contains("c.toml:2:1: key `detector.react.percentile`: not a finite number"), "{err}");
        let err = refused("[detector.knn]\nK = 5\n");
        assert!(err.contains("c.toml:1:1: key `detector.knn`: unknown field `K`, expected `k`"), "{err}");
        std::fs::write(&path, "[detector.knn]\nk = 7\n").unwrap();
        let p = load(&path, &Experiment::default()).unwrap();
        assert_eq!(p.config_fields["detector.knn.k"], serde_json::json!(7));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any assignment of any keys: a pipeline, or an error naming the file; never a panic.
        #[test]
        fn any_config_loads_or_is_refused(entries in prop::collection::vec((prop::sample::select(KEYS), value()), 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.toml");
            let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            std::fs::write(&path, &text).unwrap();
            match load(&path, &Experiment::default()) {
                Ok(p) => prop_assert!(p.graph.ordered().count() > 0),
                Err(e) => prop_assert!(format!("{e:#}").contains("c.toml"), "{e:#}"),
            }
        }

        /// Any text at all is parsed or refused by the loader, never a panic.
        #[test]
        fn any_text_is_parsed_or_refused(text in "\\PC{0,120}") {
            let _ = config_file::parse::<Config>(&text, Path::new("c.toml"));
        }
    }
}
