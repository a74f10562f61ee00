//! A stage as the engine sees it: an id, what its key is made of, and an opaque function to run.
//!
//! The engine never learns what a stage computes. It keys the stage on the declared config fields,
//! the keys of its inputs and the content of its source files, and runs the function when that key
//! has no entry in the store.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Output files of each input stage: stage id -> output name -> path in the store.
pub type InputFiles = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// What a running stage is given.
pub struct StageRun<'a> {
    pub id: &'a str,
    pub inputs: &'a InputFiles,
    /// An empty folder; every file the stage leaves in it is an output, named by its file name.
    pub out_dir: &'a Path,
    /// Reports (done, total, message) for long stages.
    pub progress: &'a dyn Fn(u64, u64, &str),
}

pub type RunFn = Arc<dyn Fn(&StageRun) -> anyhow::Result<()> + Send + Sync>;

/// A file or folder outside the store that a stage reads; keyed by content, named by `label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub label: String,
    pub path: PathBuf,
    /// What to tell the user when the path does not exist.
    pub hint: String,
}

#[derive(Clone)]
pub struct StageSpec {
    pub id: String,
    pub kind: String,
    /// The kind's code version.
    pub salt: String,
    /// The config fields the stage reads, flattened to dotted leaf paths.
    pub params: BTreeMap<String, Value>,
    pub inputs: Vec<String>,
    pub sources: Vec<SourceSpec>,
    /// Copy the outputs into this folder whenever the stage is built or found cached.
    pub publish: Option<PathBuf>,
    pub run: RunFn,
}

impl std::fmt::Debug for StageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageSpec").field("id", &self.id).field("inputs", &self.inputs).finish()
    }
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
