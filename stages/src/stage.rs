//! What a stage is, seen from the ML side: a declaration (what it reads) and a plain function that
//! turns its inputs into output files.
//!
//! The declaration is all a cache needs to key the stage: the config fields it reads, the stages it
//! depends on, the files outside the project it reads, and a code-version salt. The function gets
//! only those, through [`StageContext`], and writes its outputs into a fresh folder; it never learns
//! where they end up, whether a result was cached, or that a cache exists.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file or folder outside the cache that a stage reads, hashed by content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// A stable, location-independent name, shown in `status` (`cifar-10-batches-bin/test_batch.bin`).
    pub label: String,
    pub path: PathBuf,
    /// Said when the path does not exist: each way to provide it.
    pub hint: String,
}

/// The function that runs a stage.
pub type StageFn = Arc<dyn Fn(&StageContext) -> Result<()> + Send + Sync>;

/// One row of the stage table.
#[derive(Clone)]
pub struct StageDef {
    /// Dotted and stable: `data.cifar10`, `train.softmax`, `score.odin.gaussian`.
    pub id: String,
    /// The family of stages sharing one implementation (`data`, `train`, `score`, ...).
    pub kind: &'static str,
    /// Bumped whenever the kind's code changes its results, so that old entries go stale.
    pub salt: &'static str,
    /// Dotted config fields (or whole tables) that the stage reads; nothing else reaches it.
    pub reads: Vec<String>,
    /// The config the `reads` are taken from: the run's, with `train.seed` set to the stage's
    /// seed (see [`Config::for_seed`]).
    pub config: Config,
    /// Ids of the stages whose outputs it reads.
    pub inputs: Vec<String>,
    pub sources: Vec<Source>,
    /// A folder (relative to the project) where the outputs are copied after a run: the report.
    pub publish: Option<PathBuf>,
    pub run: StageFn,
}

impl std::fmt::Debug for StageDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageDef")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("reads", &self.reads)
            .field("seed", &self.config.train.seed)
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// Progress of a long stage: (done, total, message), e.g. batches of an epoch.
pub type ProgressFn<'a> = &'a dyn Fn(u64, u64, &str);

/// Everything a running stage may look at.
pub struct StageContext<'a> {
    pub id: &'a str,
    /// The config restricted to the stage's `reads` (every other field is its default).
    pub config: Config,
    /// Output files of each input stage: stage id -> output name -> path (read-only).
    pub inputs: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
    pub sources: &'a [Source],
    /// An empty folder for this stage's output files; each file's name is an output's name.
    pub out_dir: &'a Path,
    /// "cpu" or "cuda", already resolved from "auto".
    pub device: &'a str,
    pub progress: ProgressFn<'a>,
}

impl StageContext<'_> {
    /// The path of output `name` of input stage `stage`.
    pub fn input(&self, stage: &str, name: &str) -> Result<&Path> {
        let outputs = self
            .inputs
            .get(stage)
            .with_context(|| format!("stage {} has no input `{stage}`", self.id))?;
        match outputs.get(name) {
            Some(p) => Ok(p),
            None => bail!(
                "input `{stage}` of stage {} has no output `{name}` (it has: {})",
                self.id,
                outputs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Where to write output `name`.
    pub fn output(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    /// The source with this label.
    pub fn source(&self, label: &str) -> Result<&Path> {
        self.sources
            .iter()
            .find(|s| s.label == label)
            .map(|s| s.path.as_path())
            .with_context(|| format!("stage {} has no source `{label}`", self.id))
    }

    /// The tch device named by `device`.
    pub fn tch_device(&self) -> tch::Device {
        if self.device == "cuda" { tch::Device::Cuda(0) } else { tch::Device::Cpu }
    }
}
