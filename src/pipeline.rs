//! Binds the ML stage table (`oodpipe_stages`) to the engine.
//!
//! This is the only module of the binary that names the stages crate. It loads the config, turns
//! each row of the stage table into an engine [`StageSpec`] whose key covers exactly the fields the
//! row declares, and runs the row's function with a config restricted to those same fields, so a
//! stage cannot read what its key does not cover.

use anyhow::Context;
use oodpipe::config_file;
use oodpipe::graph::Graph;
use oodpipe::stage_key::Platform;
use oodpipe::stage_spec::{SourceSpec, StageSpec, flatten_fields};
use oodpipe_stages::{Config, StageContext, runtime, table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Pipeline {
    pub config_path: PathBuf,
    /// blake3 of the whole config, canonically serialised.
    pub config_key: String,
    /// Every config field, defaults included, flattened to dotted paths.
    pub config_fields: BTreeMap<String, serde_json::Value>,
    pub platform: Platform,
    /// What results depend on beyond their keys (processor, instruction set, threads, GPU),
    /// recorded in run.json and each run record.
    pub platform_details: BTreeMap<String, String>,
    pub graph: Graph,
}

/// Every field of a config file's text, defaults included, as `diff` compares them.
pub fn config_fields(text: &str, origin: &Path) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let config: Config = config_file::parse(text, origin)?;
    Ok(all_fields(&serde_json::to_value(&config)?))
}

fn all_fields(config_json: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let top: Vec<String> = config_json.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    flatten_fields(config_json, &top)
}

pub fn load(config_path: &Path) -> anyhow::Result<Pipeline> {
    let config: Config = config_file::load(config_path)?;
    if let Err(invalid) = config.validate() {
        let text = std::fs::read_to_string(config_path).unwrap_or_default();
        return Err(config_file::ConfigError {
            file: config_path.to_path_buf(),
            position: config_file::position_of_key(&text, &invalid.key),
            key: Some(invalid.key),
            message: invalid.message,
        }
        .into());
    }
    runtime::set_threads(config.threads);
    let device = runtime::resolve_device(&config.device).with_context(|| config_path.display().to_string())?;
    let platform = Platform { libtorch: runtime::libtorch_version().to_string(), device: device.to_string() };
    let config_json = serde_json::to_value(&config).expect("config serialises");
    let config_key = blake3::hash(&serde_json::to_vec(&config_json).expect("config serialises")).to_hex().to_string();
    let specs = table::plan(&config)
        .into_iter()
        .map(|def| {
            let view = serde_json::to_value(&def.config).expect("config serialises");
            let params = flatten_fields(&view, &def.reads);
            let restricted = def.config.restricted_to(&def.reads);
            let sources: Vec<_> = def.sources.clone();
            let run_def = def.clone();
            StageSpec {
                id: def.id.clone(),
                kind: def.kind.to_string(),
                salt: def.salt.to_string(),
                params,
                inputs: def.inputs.clone(),
                sources: def
                    .sources
                    .iter()
                    .map(|s| SourceSpec { label: s.label.clone(), path: s.path.clone(), hint: s.hint.clone() })
                    .collect(),
                publish: def.publish.clone(),
                run: Arc::new(move |run| {
                    let ctx = StageContext {
                        id: run.id,
                        config: restricted.clone(),
                        inputs: run.inputs,
                        sources: &sources,
                        out_dir: run.out_dir,
                        device,
                        progress: run.progress,
                    };
                    (run_def.run)(&ctx)
                }),
            }
        })
        .collect();
    Ok(Pipeline {
        config_path: config_path.to_path_buf(),
        config_key,
        config_fields: all_fields(&config_json),
        platform_details: runtime::platform_details(device),
        platform,
        graph: Graph::new(specs)?,
    })
}
