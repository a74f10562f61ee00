//! Keying a set of stages: hashing their sources and chaining their inputs' keys.
//!
//! Stages are keyed in topological order, so each stage's input keys are known when it is keyed.
//! Nothing runs and no output is read: a key is a promise about what a stage *would* compute.

use crate::dirty_reason::{self, DirtyReason};
use crate::source_hash::SourceMemo;
use crate::stage_key::{KeyMaterial, Platform, StageKey};
use crate::stage_spec::StageSpec;
use crate::store::Store;
use anyhow::Context;
use std::collections::BTreeMap;

/// A stage with its key.
#[derive(Debug, Clone)]
pub struct KeyedStage {
    pub spec: StageSpec,
    pub material: KeyMaterial,
    pub key: StageKey,
    /// Inputs keyed on an earlier key, because they were rebuilt with the same bytes as it
    /// ([`Store::canonical`]): what kept this stage's key.
    pub kept: Vec<String>,
}

/// Keys `stages` as [`key_stages`] does, each input keyed on its canonical key in `store` (early
/// cutoff: an input rebuilt with the same bytes keeps its dependants' keys).
pub fn key_stages_in(stages: &[&StageSpec], memo: &mut SourceMemo, platform: &Platform, store: &Store) -> anyhow::Result<Vec<KeyedStage>> {
    key_stages_with(stages, memo, platform, &|k| store.canonical(k))
}

/// Keys `stages`, which must be in topological order and closed under inputs.
pub fn key_stages(stages: &[&StageSpec], memo: &mut SourceMemo, platform: &Platform) -> anyhow::Result<Vec<KeyedStage>> {
    key_stages_with(stages, memo, platform, &|k| k.clone())
}

fn key_stages_with(
    stages: &[&StageSpec],
    memo: &mut SourceMemo,
    platform: &Platform,
    canonical: &dyn Fn(&StageKey) -> StageKey,
) -> anyhow::Result<Vec<KeyedStage>> {
    // Stage id -> (the id it is keyed under, its key).
    let mut keys: BTreeMap<&str, (&str, StageKey)> = BTreeMap::new();
    let mut out = Vec::with_capacity(stages.len());
    // Stages that read one source (both Tiny ImageNet sets read one folder) hash it once per pass.
    let mut hashed: BTreeMap<&std::path::Path, String> = BTreeMap::new();
    for spec in stages {
        let mut sources = BTreeMap::new();
        for source in &spec.sources {
            if !source.path.exists() {
                return Err(crate::bad_input::BadInput(format!(
                    "stage {} needs {}, which does not exist at {}.\n{}",
                    spec.id,
                    source.label,
                    source.path.display(),
                    source.hint
                ))
                .into());
            }
            let hash = match hashed.get(source.path.as_path()) {
                Some(hash) => hash.clone(),
                None => memo.hash(&source.path).with_context(|| format!("hashing {} ({})", source.label, source.path.display()))?,
            };
            hashed.insert(&source.path, hash.clone());
            sources.insert(source.label.clone(), hash);
        }
        let mut kept = Vec::new();
        let inputs = spec
            .inputs
            .iter()
            .map(|id| {
                let (key_id, key) = keys.get(id.as_str()).with_context(|| format!("input {id} of {} is not keyed yet", spec.id))?;
                let keyed_on = canonical(key);
                if keyed_on != *key {
                    kept.push(id.clone());
                }
                Ok((key_id.to_string(), keyed_on.0))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let key_id = spec.key_id.as_deref().unwrap_or(spec.id.as_str());
        let material = KeyMaterial {
            id: key_id.to_string(),
            kind: spec.kind.clone(),
            salt: spec.salt.clone(),
            params: spec.params.clone(),
            inputs,
            sources,
            platform: platform.clone(),
        };
        let key = material.key();
        keys.insert(&spec.id, (key_id, key.clone()));
        out.push(KeyedStage { spec: (*spec).clone(), material, key, kept });
    }
    Ok(out)
}

/// Whether a keyed stage is fresh, and if not, why.
pub fn staleness(store: &Store, ks: &KeyedStage) -> Vec<DirtyReason> {
    if store.entry(&ks.material.kind, &ks.key).is_some() {
        return Vec::new();
    }
    // A sweep's variant never built under its own id is compared with its plain id's last build.
    let last = store.last_entry(&ks.spec.id).or_else(|| ks.spec.key_id.as_deref().and_then(|id| store.last_entry(id)));
    match last {
        Some(last) => dirty_reason::diff(&last.material, &ks.material),
        None => vec![DirtyReason::NoEntry],
    }
}
