//! Stage ids and output file names, made in one place.
//!
//! The table names its stages with these functions, and the stages name their inputs with the
//! same ones, so a producer and its consumers cannot disagree on a spelling. Ids are the plain
//! (first seed's) ones; the table appends a seed suffix ([`crate::table::seed_suffix`]) and the
//! worker maps it away for a seed's stages.

use crate::config::ModelKind;

/// The CIFAR-10 splits.
pub fn cifar10_data() -> String {
    data(CIFAR10)
}

/// The in-distribution set's name among the data stages and outputs.
pub const CIFAR10: &str = "cifar10";

/// A data stage: `data.cifar10` or `data.<ood set>`.
pub fn data(set: &str) -> String {
    format!("data.{set}")
}

pub fn train(model: ModelKind) -> String {
    format!("train.{}", model.name())
}

/// A network's outputs on a data set: `outputs.<model>.<set>`.
pub fn outputs(model: ModelKind, set: &str) -> String {
    format!("outputs.{}.{set}", model.name())
}

/// A model's pooled penultimate features on a data set, shared by every detector that reads
/// features: `features.<model>.<set>`.
pub fn features(model: ModelKind, set: &str) -> String {
    format!("features.{}.{set}", model.name())
}

/// A detector's stage shared by every OOD set, on CIFAR-10: `<kind>.<detector>.cifar10`
/// (`tune.odin.cifar10`, `fit.mahalanobis.cifar10`).
pub fn prepare(kind: &str, detector: &str) -> String {
    format!("{kind}.{detector}.{CIFAR10}")
}

/// A detector's tuning on one OOD set's validation split: `tune.<detector>.<set>`.
pub fn tune(detector: &str, set: &str) -> String {
    format!("tune.{detector}.{set}")
}

/// A detector's scores and metrics on one OOD set: `score.<detector>.<set>`.
pub fn score(detector: &str, set: &str) -> String {
    format!("score.{detector}.{set}")
}

pub const REPORT: &str = "report";
/// A sweep's report.
pub const SWEEP: &str = "sweep";

/// Output files, by the stage kind that writes them.
pub mod files {
    /// A data stage's images: `<set>.safetensors` (`test_images`, `val_images`, ...).
    pub fn data(set: &str) -> String {
        format!("{set}.safetensors")
    }
    /// A train stage's weights and log.
    pub const MODEL: &str = "model.safetensors";
    pub const TRAIN_LOG: &str = "train.json";
    /// An import stage's copy of a network's TorchScript file, and what it found checking it
    /// (its head's name, its features' width).
    pub const NETWORK: &str = "network.pt";
    pub const NETWORK_JSON: &str = "network.json";
    /// An outputs stage's tensors (`<split>_logits`, ...) and, on CIFAR-10, its accuracy.
    pub const OUTPUTS: &str = "outputs.safetensors";
    pub const ACCURACY: &str = "accuracy.json";
    /// A features stage's tensors (`<split>_features`, and the head's `head_weight`, `head_bias`).
    pub const FEATURES: &str = "features.safetensors";
    /// A tune stage's grid and choice.
    pub const TUNE: &str = "tune.json";
    /// A detector's shared stage on CIFAR-10.
    pub const PREPARED: &str = "prepared.safetensors";
    /// ODIN's shared grid (kept under its first name, so the stage's key and files stay).
    pub const ODIN_GRID: &str = "grid.safetensors";
    /// A score stage's record and scores.
    pub const METRICS: &str = "metrics.json";
    pub const SCORES: &str = "scores.safetensors";
    /// The report's long-format frame (read back by `oodpipe diff`) and its headline (printed by `oodpipe run`).
    pub const RESULTS: &str = "results.csv";
    pub const SUMMARY: &str = "summary.txt";
    /// The report's other files: its index, the tables, every value per seed, the validation
    /// splits' metrics, what tuning chose, the claims' verdicts.
    pub const REPORT_INDEX: &str = "README.md";
    pub const TABLE1: &str = "table1.md";
    pub const TABLE2: &str = "table2.md";
    pub const TABLE3: &str = "table3.md";
    pub const SEEDS_TABLE: &str = "seeds.md";
    pub const VALIDATION: &str = "validation.csv";
    pub const HYPERPARAMETERS: &str = "hyperparameters.csv";
    pub const CLAIMS_MD: &str = "claims.md";
    pub const CLAIMS_CSV: &str = "claims.csv";
    /// Written beside the report by `oodpipe run` (config, commit, platform, stage times), read by
    /// `oodpipe diff`.
    /// The engine's names, which no stage may make (`oodpipe_engine::output_name::BESIDE_PUBLISHED`).
    pub use oodpipe_engine::output_name::RUN_RECORD;
    /// The stage graph, drawn beside the report by `oodpipe run`.
    pub use oodpipe_engine::output_name::{DAG_DOT, DAG_SVG};
}

/// The splits of a data set (CIFAR-10 has all three, an OOD set `val` and `test`).
pub mod splits {
    pub const TRAIN: &str = "train";
    pub const VAL: &str = "val";
    pub const TEST: &str = "test";
}

/// Tensor names inside those files, one definition for the stage that writes a tensor and every
/// one that reads it (the worker's stages, the detectors, `oodpipe diff`'s pairing).
pub mod tensors {
    /// In `outputs.safetensors` (each prefixed by the split, `test_logits`): the logits whose
    /// argmax is the prediction; BINC's BIN-head logits; VIB's and VIBY's KL to their prior(s).
    pub const LOGITS: &str = "logits";
    pub const BIN_LOGITS: &str = "bin_logits";
    pub const KL: &str = "kl";
    /// VIB's and VIBY's decoder at a sampled latent (train mode only: the loss reads it).
    pub const SAMPLED_LOGITS: &str = "sampled_logits";
    /// In `scores.safetensors`: the scores of CIFAR-10's test images and of the OOD set's.
    pub const IN_SCORES: &str = "in_scores";
    pub const OUT_SCORES: &str = "out_scores";
    /// In ODIN's grid: the scores over (temperature, epsilon).
    pub const GRID_SCORES: &str = "scores";

    /// A split's tensor in `outputs.safetensors`: `test_logits`, `val_kl`.
    pub fn of_split(split: &str, name: &str) -> String {
        format!("{split}_{name}")
    }

    /// A split's scores in `scores.safetensors`: the test split's bare (`in_scores`, as they were
    /// named before validation scores were kept), the validation split's prefixed (`val_in_scores`).
    pub fn scores_of(split: &str, name: &str) -> String {
        if split == super::splits::TEST { name.to_string() } else { of_split(split, name) }
    }
}
