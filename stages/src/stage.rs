//! What a running stage sees: [`StageContext`], the typed view of the worker's request.
//!
//! A stage is declared in the table (`oodpipe-plan`) and computed by a plain function here, which
//! gets only what its key covers through [`StageContext`] (its declared config views, its inputs'
//! files, its sources) and writes its outputs into a fresh folder; it never learns where they end
//! up, whether a result was cached, or that a cache exists. It has no config: it reads views of
//! it ([`StageContext::view`], `oodpipe_plan::view`), so a field outside them does not compile.

use anyhow::{Context, Result, bail};
use oodpipe_plan::view::{self, Params, View};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file or folder outside the cache that a stage reads, hashed by content (the engine's type).
pub use oodpipe_engine::stage_spec::SourceSpec as Source;

/// Progress of a long stage: (done, total, message), e.g. batches of an epoch.
pub type ProgressFn<'a> = &'a dyn Fn(u64, u64, &str);

/// Everything a running stage may look at.
pub struct StageContext<'a> {
    pub id: &'a str,
    /// The stage's config params: the leaves of the views it declares, by dotted name.
    pub params: &'a Params,
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
    /// The config view `V` (`view::Training`, `view::EvalBatch`, ...) from the stage's params.
    /// Fails naming the fields when `V` has one the stage does not declare.
    pub fn view<V: View>(&self) -> Result<V> {
        view::from_params(self.params).with_context(|| format!("stage {}", self.id))
    }

    /// The path of output `name` of input stage `stage`.
    pub fn input(&self, stage: &str, name: &str) -> Result<&Path> {
        let outputs = self.inputs.get(stage).with_context(|| format!("stage {} has no input `{stage}`", self.id))?;
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
