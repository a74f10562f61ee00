//! Running the stages a command needs, in dependency order, each at most once.
//!
//! For every stage in the closure of the targets: if the store has an entry for its key it is
//! cached; otherwise the key is locked (another run building it makes this one wait and then find
//! it cached), the stage runs into a temporary folder, and its outputs are committed to the store.
//! A failed stage keeps everything finished so far and stops only the stages that depend on it;
//! independent stages still run (like `make -k`), and the command reports every failure.
//!
//! Before anything runs, the objects the run will use are checked against their digests (the
//! inputs of every stage that will execute, and the outputs of every stage that publishes); a
//! damaged one is reported, moved aside, and its stage rebuilt in its turn (see
//! [`check_used_objects`]).

use crate::fingerprint::KeyedStage;
use crate::progress::Reporter;
use crate::stage_spec::{InputFiles, StageRun};
use crate::store::{Entry, Store};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    Cached,
    Running,
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub executed: Vec<String>,
    pub cached: Vec<String>,
    /// Stage id -> error (with its causes).
    pub failed: Vec<(String, String)>,
    /// Stages not run because an input failed.
    pub skipped: Vec<String>,
    pub seconds: f64,
    /// The entries of every stage that is now built, by id.
    #[serde(skip)]
    pub entries: BTreeMap<String, Entry>,
}

/// Runs `stages` (already in topological order, with their keys). With `dry_run`, nothing runs
/// and nothing is published: stale stages are listed as executed.
pub fn run(store: &Store, stages: &[KeyedStage], reporter: &dyn Reporter, dry_run: bool) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome::default();
    if !dry_run {
        check_used_objects(store, stages, reporter);
    }
    let total = stages.len();
    let mut broken: std::collections::HashSet<&str> = Default::default();
    for (n, ks) in stages.iter().enumerate() {
        let spec = &ks.spec;
        if let Some(bad) = spec.inputs.iter().find(|i| broken.contains(i.as_str())) {
            reporter.skipped(n + 1, total, &spec.id, bad);
            broken.insert(&spec.id);
            outcome.skipped.push(spec.id.clone());
            continue;
        }
        if let Some(entry) = store.entry(&ks.material.kind, &ks.key) {
            reporter.started(n + 1, total, &spec.id, StageState::Cached);
            if !dry_run {
                publish(store, ks, &entry, &mut outcome);
            }
            outcome.cached.push(spec.id.clone());
            outcome.entries.insert(spec.id.clone(), entry);
            continue;
        }
        if dry_run {
            reporter.started(n + 1, total, &spec.id, StageState::Running);
            outcome.executed.push(spec.id.clone());
            continue;
        }
        match build(store, ks, &outcome.entries, reporter, n + 1, total) {
            Ok((entry, was_cached)) => {
                publish(store, ks, &entry, &mut outcome);
                if was_cached {
                    outcome.cached.push(spec.id.clone());
                } else {
                    reporter.finished(n + 1, total, &spec.id, entry.seconds);
                    outcome.executed.push(spec.id.clone());
                }
                outcome.entries.insert(spec.id.clone(), entry);
            }
            Err(e) => {
                let message = readable(&format!("{e:#}"));
                reporter.failed(n + 1, total, &spec.id, &message);
                broken.insert(&spec.id);
                outcome.failed.push((spec.id.clone(), message));
            }
        }
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome
}

/// Verifies the objects this run will read: the inputs of every stage without an entry and the
/// outputs of every cached stage that publishes. A damaged object is reported and moved aside and
/// its entry removed, so the run rebuilds that stage (same key: its dependants stay cached); the
/// rebuilt stage's own inputs are then checked in turn.
pub fn check_used_objects(store: &Store, stages: &[KeyedStage], reporter: &dyn Reporter) {
    let index: std::collections::HashMap<&str, usize> =
        stages.iter().enumerate().map(|(i, ks)| (ks.spec.id.as_str(), i)).collect();
    let mut entries: Vec<Option<Entry>> = stages.iter().map(|ks| store.entry(&ks.material.kind, &ks.key)).collect();
    let inputs_of = |i: usize| stages[i].spec.inputs.iter().filter_map(|id| index.get(id.as_str()).copied()).collect::<Vec<_>>();
    let mut queue = Vec::new();
    for (i, ks) in stages.iter().enumerate() {
        if entries[i].is_none() {
            queue.extend(inputs_of(i));
        } else if ks.spec.publish.is_some() {
            queue.push(i);
        }
    }
    let mut checked = std::collections::HashSet::new();
    while let Some(j) = queue.pop() {
        if !checked.insert(j) {
            continue;
        }
        let Some(entry) = entries[j].clone() else { continue };
        let damage = store.verify_entry(&entry);
        if damage.is_empty() {
            continue;
        }
        let id = &stages[j].spec.id;
        let moved = store.quarantine(&entry, &damage);
        for d in &damage {
            let fate = match &moved {
                Ok(_) => "moved aside into the store's damaged/ folder".to_string(),
                Err(e) => format!("could not be moved aside ({e})"),
            };
            reporter.note(
                id,
                &format!("stored output `{}` ({}) is damaged: {}; {fate}; rebuilding {id}", d.output, d.path.display(), d.problem),
            );
        }
        entries[j] = None;
        queue.extend(inputs_of(j));
    }
}

/// Builds one stage under its key's lock. Returns the entry and whether another run had built it
/// meanwhile.
fn build(
    store: &Store,
    ks: &KeyedStage,
    built: &BTreeMap<String, Entry>,
    reporter: &dyn Reporter,
    n: usize,
    total: usize,
) -> anyhow::Result<(Entry, bool)> {
    let spec = &ks.spec;
    let _lock = store.lock(&ks.key, &spec.id, &|message| reporter.note(&spec.id, message))?;
    if let Some(entry) = store.entry(&ks.material.kind, &ks.key) {
        reporter.started(n, total, &spec.id, StageState::Cached);
        return Ok((entry, true));
    }
    reporter.started(n, total, &spec.id, StageState::Running);
    let inputs: InputFiles = spec
        .inputs
        .iter()
        .map(|id| (id.clone(), store.output_files(&built[id])))
        .collect();
    let out_dir = store.temp_dir(&ks.key)?;
    let progress = |done: u64, of: u64, msg: &str| reporter.progress(&spec.id, done, of, msg);
    let started = Instant::now();
    let result = (spec.run)(&StageRun { id: &spec.id, inputs: &inputs, out_dir: &out_dir, progress: &progress });
    let seconds = started.elapsed().as_secs_f64();
    let committed = result.and_then(|()| Ok(store.commit(&spec.id, &ks.material, &out_dir, seconds)?));
    if committed.is_err() {
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    Ok((committed?, false))
}

/// Copies a stage's outputs into its publish folder, rewriting only files whose content differs.
fn publish(store: &Store, ks: &KeyedStage, entry: &Entry, outcome: &mut Outcome) {
    let Some(dir) = &ks.spec.publish else { return };
    for (name, path) in store.output_files(entry) {
        let dest = dir.join(&name);
        if let Err(e) = copy_if_changed(&path, &dest) {
            outcome.failed.push((ks.spec.id.clone(), format!("publishing {}: {e}", dest.display())));
        }
    }
}

fn copy_if_changed(src: &Path, dest: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(src)?;
    if std::fs::read(dest).ok().as_deref() == Some(&bytes[..]) {
        return Ok(());
    }
    crate::atomic_file::write(dest, &bytes)
}

/// An error message without the C++ stack frames libtorch appends to its exceptions.
fn readable(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.starts_with("frame #") && !l.starts_with("Exception raised from"))
        .collect::<Vec<_>>()
        .join("\n")
}
