//! The experiment's settings, as typed structs read from `pipeline.toml`.
//!
//! Every field has the paper's value as its default (SPEC.md), so `configs/paper.toml` can stay
//! short and a missing key never means "undefined". Unknown keys are refused (`deny_unknown_fields`)
//! because a typo such as `tune.odin_epsilon` would otherwise silently run the default grid.
//!
//! Stages never see the whole config: each reads views of it ([`crate::view`]), structs with only
//! the fields it reads, which the stage table declares and which alone make its key and reach its
//! worker. Reading a field outside them does not compile.

use crate::ood::OodSetConfig;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A registered model (`models/`): the config's `models` list holds them by name.
pub use crate::model::{ModelKind, ModelTables};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// "cpu", "cuda" or "auto" (CUDA when present).
    pub device: String,
    /// Intra-op threads for libtorch; 0 means one per core. Not part of any key.
    pub threads: usize,
    /// Which models to train and score; the detectors follow from the models.
    pub models: Vec<ModelKind>,
    /// Which registered detectors to score (`detectors/mod.rs`), by name; default: every one whose
    /// model is trained. Selects stages; never part of a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detectors: Option<Vec<String>>,
    /// The OOD sets, `[ood.<name>]` tables in config order ([`crate::ood`]); default: the paper's
    /// three. Declaring any replaces the default ones.
    pub ood: IndexMap<String, OodSetConfig>,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// `[methods.<model>]`: each registered model's own table (`models/<model>.rs`).
    pub methods: ModelTables,
    pub tune: TuneConfig,
    pub eval: EvalConfig,
    pub report: ReportConfig,
    /// Each detector's own hyper-parameters, `[detector.<name>]` tables declared in its file
    /// (`detectors/<name>.rs`); every field has the detector's default ([`crate::detector_params`]).
    pub detector: crate::detector_params::DetectorTables,
    /// `[python]`: detectors written in Python, `[python.<name>]` tables, and the interpreter
    /// ([`crate::python`]). Left out of the serialised config when empty, so configs without it
    /// keep their config key.
    #[serde(skip_serializing_if = "crate::python::PythonTables::is_empty")]
    pub python: crate::python::PythonTables,
    /// `[networks.<name>]`: classifiers trained elsewhere, as TorchScript files, each scored by
    /// every post-hoc detector in a pipeline and a report of its own ([`crate::network`]). Left
    /// out of the serialised config when empty, so configs without it keep their config key.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, crate::network::NetworkConfig>,
    /// How `oodpipe run --executor slurm` submits stages (partition, account, per-kind resources).
    /// Not part of any key: where a stage runs does not change what it computes.
    pub executor: oodpipe_engine::slurm::SlurmOptions,
    /// `[sweep]`: keys of this config and the values to sweep each over (`methods.vib.beta =
    /// [0.001, 0.005]`); the run builds every point of their cross product (`src/experiment.rs`).
    /// Never serialised: a sweep is its points' configs, not a field of any of them.
    #[serde(default, skip_serializing)]
    pub sweep: Option<toml::Table>,
    /// The remote store a team shares (`url = "s3://bucket/prefix"` or a folder); `--remote` and
    /// `$OODPIPE_REMOTE` come first. Not part of any key: where a result comes from does not
    /// change what it is. Left out of the serialised config when unset, so configs without it
    /// keep their config key.
    #[serde(skip_serializing_if = "oodpipe_engine::remote::RemoteOptions::is_unset")]
    pub remote: oodpipe_engine::remote::RemoteOptions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            device: "auto".into(),
            threads: 0,
            models: ModelKind::ALL.to_vec(),
            detectors: None,
            ood: crate::ood::paper_sets().into_iter().collect(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            methods: ModelTables::default(),
            tune: TuneConfig::default(),
            eval: EvalConfig::default(),
            report: ReportConfig::default(),
            detector: Default::default(),
            python: Default::default(),
            networks: IndexMap::new(),
            executor: Default::default(),
            sweep: None,
            remote: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The official `cifar-10-batches-bin/` folder (`make run` puts it here).
    pub cifar10_dir: PathBuf,
    /// An extracted `tiny-imagenet-200` folder. When absent: `$OODPIPE_TINYIMAGENET`, then
    /// `../shared/data/tiny-imagenet-200`.
    pub tiny_imagenet_dir: Option<PathBuf>,
    /// Seed of the 45k/5k train/validation permutation.
    pub split_seed: u64,
    /// Size of the CIFAR-10 validation split (paper: 5,000).
    pub val_size: usize,
    /// Keep only the first N training images after the split (smoke runs); None keeps all.
    pub train_limit: Option<usize>,
    /// Keep only the first N test images in file order (smoke runs); None keeps all 10,000.
    pub test_limit: Option<usize>,
    /// Seed of the OOD sets: the Gaussian draws, the Tiny ImageNet sample and crops, the splits
    /// (a set's `seed` overrides it).
    pub ood_seed: u64,
    /// Images per OOD set (paper: 1,500; a set's `count` overrides it).
    pub ood_count: usize,
    /// How many of them form the validation split (paper: 500); the rest is the test split (a
    /// set's `val` overrides it).
    pub ood_val: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            cifar10_dir: "data/cifar-10-batches-bin".into(),
            tiny_imagenet_dir: None,
            split_seed: 0,
            val_size: 5000,
            train_limit: None,
            test_limit: None,
            ood_seed: 0,
            ood_count: 1500,
            ood_val: 500,
        }
    }
}

/// The Wide-ResNet WRN-depth-widen backbone (SPEC.md "Model and training").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// 6n + 4 (paper: 28).
    pub depth: i64,
    /// Width multiplier k (paper: 10).
    pub widen: i64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { depth: 28, widen: 10 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The paper's: lr multiplied by `gamma` at each fraction in `milestones`.
    Step,
    /// Linear warm-up to `lr` over `warmup` of the steps, then linear decay to 0.
    OneCycle,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The training seed (weight init, shuffle, augmentation) of a one-seed run.
    pub seed: u64,
    /// Train every model once per seed (`[0, 1, 2]`); when given, it replaces `seed`. Outputs,
    /// tuning and scores follow per seed; the data splits do not depend on it. The first seed's
    /// stages keep the plain ids (`train.softmax`), every other seed's carry `@seed<N>`
    /// (`train.softmax@seed2`). Never part of a stage's key: each seed's stages are keyed on
    /// `train.seed` = that seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Step schedule: fractions of training at which lr is multiplied by `gamma`.
    pub milestones: Vec<f64>,
    pub gamma: f64,
    /// One-cycle schedule: fraction of the steps spent warming up.
    pub warmup: f64,
    /// Label smoothing (0 = none, the paper): of every softmax cross-entropy, and its sigmoid
    /// counterpart (smoothed targets) in BIN's and BINC's weighted binary cross-entropy.
    pub label_smoothing: f64,
    /// Train and infer in the channels-last memory format (faster on CPUs; same maths).
    pub channels_last: bool,
    /// Training augmentation: reflect-pad 4, random crop, random flip (SPEC.md).
    pub augment: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            seeds: None,
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: Schedule::Step,
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
            warmup: 0.2,
            label_smoothing: 0.0,
            channels_last: false,
            augment: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    /// Temperatures tried by Baseline+T and ODIN.
    pub temperatures: Vec<f64>,
    /// Perturbation sizes tried by ODIN, in [0, 1] pixel units.
    pub odin_epsilons: Vec<f64>,
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            temperatures: vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            odin_epsilons: (0..=20).map(|i| 0.004 * i as f64 / 20.0).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Batch size for inference and ODIN's gradients.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { batch_size: 500 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Where the report's files are published.
    pub dir: PathBuf,
    /// The paper's Table 1 and Table 2, one row per value.
    pub paper_results: PathBuf,
    /// Bootstrap resamples of the test images behind each metric's interval (0: no bootstrap).
    pub bootstrap: usize,
    /// Seed of the bootstrap's resampling.
    pub bootstrap_seed: u64,
    /// Bootstrap resamples behind the claims' paired tests (their sides only, so many are cheap):
    /// enough that a p-value at the bootstrap's floor, 2 / (B + 1), still resolves after the
    /// correction across the file. 0: the report's own resamples (`bootstrap`).
    pub claims_bootstrap: usize,
    /// The paper's claims to check (`claims.md`; see [`crate::claims`]); empty: none.
    pub claims: PathBuf,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            dir: "reports".into(),
            paper_results: "configs/paper_results.csv".into(),
            bootstrap: 1000,
            bootstrap_seed: 0,
            claims_bootstrap: 20_000,
            claims: "configs/claims.toml".into(),
        }
    }
}

impl Config {
    /// The training seeds, in the order given: `train.seeds`, else `[train.seed]`.
    pub fn seeds(&self) -> Vec<u64> {
        self.train.seeds.clone().unwrap_or_else(|| vec![self.train.seed])
    }

    /// The config one seed's stages see: `train.seed` = `seed` and no seed list.
    pub fn for_seed(&self, seed: u64) -> Config {
        let mut c = self.clone();
        c.train.seed = seed;
        c.train.seeds = None;
        c
    }
}

/// The value at a dotted path of a JSON tree.
pub fn lookup<'a>(tree: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(tree, |node, part| node.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers() {
        let c = Config::default();
        assert_eq!((c.model.depth, c.model.widen), (28, 10));
        assert_eq!(c.train.epochs, 200);
        assert_eq!(c.tune.odin_epsilons.len(), 21);
        assert!((c.tune.odin_epsilons[20] - 0.004).abs() < 1e-15);
        assert_eq!(
            (c.methods.field("vib", "beta"), c.methods.field("viby", "beta")),
            (Some(&serde_json::json!(0.005)), Some(&serde_json::json!(0.01)))
        );
    }

    #[test]
    fn two_ood_sets_may_not_share_a_label() {
        let mut c = Config::default();
        let mut twin = c.ood["tin_crop"].clone();
        twin.label = Some("Gaussian Noise".into());
        c.ood.insert("twin".into(), twin);
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "ood.twin.label");
        assert!(problems[0].message.contains("ood.gaussian"), "{problems:?}");
    }
}

/// A value already formatted for an error message, shown as it is (not quoted again).
struct Shown<'a>(&'a str);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A value of the right type but outside what the pipeline accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidValue {
    /// The dotted key, e.g. `model.depth`.
    pub key: String,
    /// The value and what was expected.
    pub message: String,
}

impl Config {
    /// Checks the values that types alone do not; each problem names the key, the value and what
    /// was expected, and all of them are returned at once.
    pub fn validate(&self) -> Result<(), Vec<InvalidValue>> {
        let mut problems = Vec::new();
        self.checks(&mut |ok, key, value, expected| {
            if !ok {
                problems.push(InvalidValue { key: key.to_string(), message: format!("{value:?}: expected {expected}") });
            }
        });
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Calls `check(ok, key, value, expected)` once per rule.
    fn checks(&self, check: &mut dyn FnMut(bool, &str, &dyn std::fmt::Debug, &str)) {
        check(["cpu", "cuda", "auto"].contains(&self.device.as_str()), "device", &self.device, "\"cpu\", \"cuda\" or \"auto\"");
        check(
            self.models.contains(&ModelKind::ALL[0]),
            "models",
            &self.models,
            &format!("a list that includes \"{}\"", ModelKind::ALL[0].name()),
        );
        if let Some(names) = &self.detectors {
            let known: Vec<&str> = crate::detector::ALL.iter().map(|d| d.name).collect();
            for name in names {
                check(known.contains(&name.as_str()), "detectors", name, &format!("a registered detector: {}", known.join(", ")));
            }
        }
        for (name, table) in &self.detector.0 {
            let problems = crate::detector::find(name).and_then(|d| d.params).map(|p| p.problems(table)).unwrap_or_default();
            for p in problems {
                check(false, &format!("{}.{name}.{}", crate::detector_params::KEY, p.field), &Shown(&p.value), &p.expected);
            }
        }
        for (name, python) in &self.python.detectors {
            for (key, value, expected) in python.problems(name, &self.models) {
                check(false, &key, &Shown(&value), &expected);
            }
        }
        for (name, network) in &self.networks {
            for (key, value, expected) in network.problems(name) {
                check(false, &key, &Shown(&value), &expected);
            }
        }
        check(!self.ood.is_empty(), "ood", &self.ood.len(), "at least one [ood.<name>] table");
        // Results are keyed by a set's label (results.csv, the tables): two sets may not share one.
        let mut labels = std::collections::BTreeMap::new();
        for (name, table) in &self.ood {
            let label = table.label_or(name);
            if let Some(first) = labels.insert(label.clone(), name.clone()) {
                check(false, &format!("ood.{name}.label"), &label, &format!("a label no other set has (ood.{first} has it)"));
            }
        }
        for (name, table) in &self.ood {
            for (key, value, expected) in table.problems(name) {
                check(false, &key, &Shown(&value), &expected);
            }
            let (count, val) = (table.count.unwrap_or(self.data.ood_count), table.val.unwrap_or(self.data.ood_val));
            check(val >= 1 && val < count, &format!("ood.{name}.val"), &val, &format!("at least 1 and below the set's count ({count})"));
        }
        let d = &self.data;
        check((1..50_000).contains(&d.val_size), "data.val_size", &d.val_size, "1 to 49999");
        check(d.train_limit.is_none_or(|n| n >= 1), "data.train_limit", &d.train_limit, "at least 1");
        check(d.test_limit.is_none_or(|n| (1..=10_000).contains(&n)), "data.test_limit", &d.test_limit, "1 to 10000");
        check(d.ood_count >= 2 && d.ood_count <= 10_000, "data.ood_count", &d.ood_count, "2 to 10000");
        check(d.ood_val >= 1 && d.ood_val < d.ood_count, "data.ood_val", &d.ood_val, "at least 1 and below data.ood_count");
        let m = &self.model;
        check(m.depth >= 10 && (m.depth - 4) % 6 == 0, "model.depth", &m.depth, "6n + 4 with n >= 1 (10, 16, 22, 28, ...)");
        check(m.widen >= 1, "model.widen", &m.widen, "at least 1");
        let t = &self.train;
        if let Some(seeds) = &t.seeds {
            let distinct: std::collections::BTreeSet<_> = seeds.iter().collect();
            check(!seeds.is_empty() && distinct.len() == seeds.len(), "train.seeds", &seeds, "a non-empty list of distinct seeds");
            check(
                t.seed == 0 || seeds.contains(&t.seed),
                "train.seed",
                &t.seed,
                "one of train.seeds, or no train.seed (train.seeds replaces it)",
            );
        }
        check(t.gamma > 0.0 && t.gamma.is_finite(), "train.gamma", &t.gamma, "a positive number");
        check(t.epochs >= 1, "train.epochs", &t.epochs, "at least 1");
        check(t.batch_size >= 2, "train.batch_size", &t.batch_size, "at least 2");
        check(t.lr > 0.0 && t.lr.is_finite(), "train.lr", &t.lr, "a positive number");
        check((0.0..1.0).contains(&t.momentum), "train.momentum", &t.momentum, "in [0, 1)");
        check(t.weight_decay >= 0.0, "train.weight_decay", &t.weight_decay, "a non-negative number");
        check(t.milestones.iter().all(|m| (0.0..=1.0).contains(m)), "train.milestones", &t.milestones, "fractions in [0, 1]");
        check((0.0..1.0).contains(&t.warmup), "train.warmup", &t.warmup, "in [0, 1)");
        check((0.0..1.0).contains(&t.label_smoothing), "train.label_smoothing", &t.label_smoothing, "in [0, 1)");
        let temps = &self.tune.temperatures;
        check(
            !temps.is_empty() && temps.iter().all(|t| *t > 0.0 && t.is_finite()),
            "tune.temperatures",
            &temps,
            "a non-empty list of positive numbers",
        );
        let eps = &self.tune.odin_epsilons;
        check(
            !eps.is_empty() && eps.iter().all(|e| *e >= 0.0 && e.is_finite()),
            "tune.odin_epsilons",
            &eps,
            "a non-empty list of non-negative numbers",
        );
        check(self.report.bootstrap != 1, "report.bootstrap", &self.report.bootstrap, "0 (no bootstrap) or at least 2 resamples");
        check(
            self.report.claims_bootstrap != 1,
            "report.claims_bootstrap",
            &self.report.claims_bootstrap,
            "0 (the report's own resamples) or at least 2 resamples",
        );
        check(self.eval.batch_size >= 1, "eval.batch_size", &self.eval.batch_size, "at least 1");
        if let Some(poll) = self.executor.poll_seconds {
            check(poll > 0.0, "executor.poll_seconds", &poll, "a positive number of seconds");
        }
        for (name, table) in &self.methods.0 {
            let problems = ModelKind::find(name).map(|m| m.model().problems(table)).unwrap_or_default();
            for p in problems {
                check(false, &format!("{}.{name}.{}", crate::model::KEY, p.field), &Shown(&p.value), &p.expected);
            }
        }
    }
}
