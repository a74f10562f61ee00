//! `oodpipe gc`: remove what the current config no longer reaches.
//!
//! Reachable means: the entry of every stage of the current config under its current key, and the
//! objects those entries name. Everything else in the store (entries of old keys, their objects,
//! pointers of stage ids that no longer exist, temporary files of runs that died, objects that were
//! found damaged and moved aside) is removed. A run's temporary files are kept while the run holds
//! its liveness lock.
//! Keys are computed first; if that fails (a source missing), nothing is removed. It holds the
//! store to itself while it works: a run or pull that writes into the store waits for it, and it
//! waits for them.

use oodpipe_engine::store::Store;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(config: &crate::pipeline::ConfigArgs, cache: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, &[])?;
    let store = &session.store;
    // No run or pull writes meanwhile: an object they commit before its entry would look unreachable.
    let _alone = store
        .lock_exclusive(&|| eprintln!("gc: waiting for the runs and pulls writing into {} to end", cache.display()))
        .map_err(|e| anyhow::anyhow!("locking the store {}: {e}", cache.display()))?;
    let mut keep_entries = HashSet::new();
    let mut keep_objects = HashSet::new();
    for ks in &session.stages {
        if let Some(entry) = store.entry(&ks.material.kind, &ks.key) {
            keep_entries.insert(entry.key.0.clone());
            keep_objects.extend(entry.outputs.values().cloned());
        }
    }
    let ids: HashSet<&str> = session.stages.iter().map(|s| s.spec.id.as_str()).collect();
    let mut doomed: Vec<(PathBuf, String)> = Vec::new();
    for (file, entry) in store.all_entries() {
        match entry {
            Some(e) if keep_entries.contains(&e.key.0) => {}
            Some(e) => doomed.push((file, format!("entry of {} ({})", e.id, &e.key.0[..12]))),
            None => doomed.push((file, "unreadable entry".into())),
        }
    }
    for (digest, file) in store.all_objects() {
        if !keep_objects.contains(&digest) {
            doomed.push((file, format!("object {}", &digest[..12])));
        }
    }
    for (id, file) in store.all_id_pointers() {
        if !ids.contains(id.as_str()) {
            doomed.push((file, format!("pointer of the former stage {id}")));
        }
    }
    for file in store.scratch() {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Temporary folders are named <key>.<token>.<n>, liveness locks <token>.lock; a run is
        // alive while it holds its token's lock (not judged by pid, which the system reuses).
        let alive = Store::token_of(&name).is_some_and(|t| store.is_live(&t));
        if !alive {
            doomed.push((file, "leftover of an interrupted run".into()));
        }
    }
    for file in store.damaged() {
        doomed.push((file, "object found damaged and moved aside".into()));
    }
    let mut total = 0u64;
    for (file, what) in &doomed {
        let bytes = size_of(file);
        total += bytes;
        println!("{} {what}: {} ({bytes} bytes)", if dry_run { "would remove" } else { "removing" }, file.display());
        if !dry_run {
            let removed = if file.is_dir() { std::fs::remove_dir_all(file) } else { std::fs::remove_file(file) };
            removed.map_err(|e| anyhow::anyhow!("removing {}: {e}", file.display()))?;
        }
    }
    println!("{} {} items, {total} bytes ({:.1} MB)", if dry_run { "would remove" } else { "removed" }, doomed.len(), total as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).map(|rd| rd.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum()).unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}
