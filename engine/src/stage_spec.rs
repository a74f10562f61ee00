//! A stage as the engine sees it: an id, what its key is made of, and an opaque task for a worker.
//!
//! The engine never learns what a stage computes. It keys the stage on the declared config fields,
//! the keys of its inputs and the content of its source files, and when that key has no entry in
//! the store it hands the stage's task to a runner (a worker process, see [`crate::worker`]).
//! This is the one definition of a stage: the pipeline's table produces it, the engine keys and
//! schedules it, the worker receives it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Output files of each input stage: stage id -> output name -> path in the store.
pub type InputFiles = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// A file or folder outside the store that a stage reads; keyed by content, named by `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// A stable, location-independent name, shown in `status` (`cifar-10-batches-bin/test_batch.bin`).
    pub label: String,
    pub path: PathBuf,
    /// What to tell the user when the path does not exist: each way to provide it.
    pub hint: String,
}

/// One stage of a pipeline: everything its key is made of, and what a worker needs to build it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Dotted and stable: `data.cifar10`, `train.softmax`, `score.odin.gaussian@seed2`,
    /// `train.bin@zeta=0.2` (a sweep's variant, [`crate::variants`]).
    pub id: String,
    /// The id its key is made with, when that is not `id`: a sweep's variant keeps the id of its
    /// plain pipeline, so a variant and a plain run of the same config share their cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The family of stages sharing one implementation (`data`, `train`, ...).
    pub kind: String,
    /// The code version of what computes the stage: bumped when its results change.
    pub salt: String,
    /// The config fields the stage reads, flattened to dotted leaf paths: all the config it is given.
    pub params: BTreeMap<String, Value>,
    pub inputs: Vec<String>,
    pub sources: Vec<SourceSpec>,
    /// Copy the outputs into this folder whenever the stage is built or found cached.
    pub publish: Option<PathBuf>,
    /// What the worker is to compute, opaque to the engine: handed to the worker as it is.
    pub task: Value,
    /// Where the code that computes it lives (`stages/src/train.rs: train::run`), for people.
    #[serde(default)]
    pub code: String,
    /// What it takes of the machine while it runs (parallel runs never oversubscribe it).
    #[serde(default)]
    pub uses: Uses,
}

/// What a stage takes of the machine while it runs. It decides the stage's thread count whatever
/// the parallelism of the run, so `-j 1` and `-j N` compute the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Uses {
    /// CPU threads; 0 = every core (the stage's arithmetic is multi-threaded: training, network passes).
    pub threads: usize,
    /// One GPU when the run has GPUs to hand out: the worker sees only that one.
    pub gpu: bool,
}

/// Flattens the `fields` (dotted paths into `config`, leaves or whole tables) into dotted leaf
/// paths. A field absent from the config is recorded as null, so that adding it later shows as a
/// change.
pub fn flatten_fields(config: &Value, fields: &[String]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for field in fields {
        let value = field.split('.').try_fold(config, |node, part| node.get(part));
        flatten_into(field, value.unwrap_or(&Value::Null), &mut out);
    }
    out
}

/// Every leaf of `tree` under its dotted path (an empty table is a leaf): [`flatten_fields`] of all
/// its top-level fields.
pub fn flatten_all(tree: &Value) -> BTreeMap<String, Value> {
    let top: Vec<String> = tree.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    flatten_fields(tree, &top)
}

fn flatten_into(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_tables_and_leaves() {
        let config = json!({"train": {"epochs": 3, "lr": 0.1}, "tune": {"t": [1, 2]}});
        let flat = flatten_fields(&config, &["train".into(), "tune.t".into(), "missing.x".into()]);
        let keys: Vec<_> = flat.keys().cloned().collect();
        assert_eq!(keys, ["missing.x", "train.epochs", "train.lr", "tune.t"]);
        assert_eq!(flat["tune.t"], json!([1, 2]));
        assert_eq!(flat["missing.x"], Value::Null);
    }
}
