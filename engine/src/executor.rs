//! Running the stages a command needs, in dependency order, each at most once.
//!
//! For every stage in the closure of the targets: if the store has an entry for its key it is
//! cached; otherwise the key is locked (another run building it makes this one wait and then find
//! it cached), a [`StageRunner`] (a worker process, a Slurm job) builds it into a temporary folder,
//! and its outputs are committed to the store. With [`Jobs`], independent stages build at once as
//! far as their declared cores and GPUs fit ([`run_jobs`]).
//! A failed stage keeps everything finished so far and stops only the stages that depend on it;
//! independent stages still run (like `make -k`), and the command reports every failure.
//!
//! **Early cutoff.** A stage rebuilt with the same output bytes as its last build (a salt bump that
//! changed nothing, a touched source) is recorded as such ([`Store::record_same`]), and a stage
//! whose inputs are all built is keyed again on them before it is looked up: keyed on the earlier
//! build's key, it finds its entry and is not rebuilt (`train.softmax: input data.cifar10 rebuilt
//! with the same bytes: kept`).
//!
//! Before anything runs, the objects the run will use are checked against their digests (the
//! inputs of every stage that will execute, and the outputs of every stage that publishes); a
//! damaged one is reported, moved aside, and its stage rebuilt in its turn (see
//! [`check_used_objects`]).
//!
//! With a remote store ([`run_with_remote`]), the stages without a local entry are first fetched
//! from it where it has them, and each stage built here is uploaded to it in the background; a
//! remote that fails is one warning, never a failed run (see [`crate::remote`]).

use crate::fingerprint::KeyedStage;
use crate::interrupt;
use crate::progress::Reporter;
use crate::stage_spec::InputFiles;
use crate::store::{Entry, Store};
use crate::worker::{StageFailure, StageRequest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Reports (done, total, message) of a long stage.
pub type Progress<'a> = &'a (dyn Fn(u64, u64, &str) + Sync);

/// What builds a stage: a worker process ([`crate::worker::WorkerRunner`]) in the command, or a
/// closure `Fn(&StageRequest, Progress) -> Result<()>` in tests. It writes the stage's outputs into
/// `request.out_dir`; `log` is where it may keep what the stage printed.
pub trait StageRunner: Sync {
    fn run(&self, request: &StageRequest, log: &Path, progress: Progress) -> anyhow::Result<()>;
}

impl<F> StageRunner for F
where
    F: Fn(&StageRequest, Progress) -> anyhow::Result<()> + Sync,
{
    fn run(&self, request: &StageRequest, _log: &Path, progress: Progress) -> anyhow::Result<()> {
        self(request, progress)
    }
}

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
    /// The cached stages that this run fetched from the remote store (or, dry, found there).
    pub fetched: Vec<String>,
    /// Stage id -> error (with its causes).
    pub failed: Vec<(String, String)>,
    /// Stages not run because an input failed.
    pub skipped: Vec<String>,
    /// Ctrl-C (or SIGTERM) stopped the run; stages after that point were not started.
    pub interrupted: bool,
    /// A failure was the stage refusing its input (a damaged data file): the command exits with 2.
    pub bad_input: bool,
    pub seconds: f64,
    /// The entries of every stage that is now built, by id.
    #[serde(skip)]
    pub entries: BTreeMap<String, Entry>,
}

/// How much a run may do at once.
#[derive(Debug, Clone)]
pub struct Jobs {
    /// At most this many stages build at once (`-j N`).
    pub jobs: usize,
    /// CPU cores to share out: a stage takes [`crate::stage_spec::Uses::threads`] of them (0: all).
    /// None: not counted here (a cluster's scheduler shares its nodes' cores out).
    pub cpus: Option<usize>,
    /// GPUs to hand out one per stage that uses one (`--gpus 0,1,2,3`); none: GPUs are not counted.
    pub gpus: Vec<String>,
}

impl Jobs {
    /// One stage at a time.
    pub fn sequential() -> Jobs {
        Jobs { jobs: 1, cpus: Some(available_cpus()), gpus: Vec::new() }
    }
}

/// The cores this process may use.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs `stages` (already in topological order, with their keys), one at a time. With `dry_run`,
/// nothing runs and nothing is published: stale stages are listed as executed.
pub fn run(store: &Store, stages: &[KeyedStage], runner: &dyn StageRunner, reporter: &dyn Reporter, dry_run: bool) -> Outcome {
    run_jobs(store, stages, runner, reporter, dry_run, &Jobs::sequential())
}

/// What a building stage holds of the machine.
struct Slot {
    cpus: usize,
    gpu: Option<String>,
}

/// Runs `stages` as [`run`] does, building up to `jobs.jobs` at once among those whose inputs are
/// built, in table order, as long as their [`crate::stage_spec::Uses`] fit in the cores and GPUs
/// left. Each stage's thread count is its declared one, whatever `jobs`, so the results are those
/// of a sequential run.
pub fn run_jobs(
    store: &Store,
    stages: &[KeyedStage],
    runner: &dyn StageRunner,
    reporter: &dyn Reporter,
    dry_run: bool,
    jobs: &Jobs,
) -> Outcome {
    run_with_remote(store, stages, runner, reporter, dry_run, jobs, None)
}

/// Runs `stages` as [`run_jobs`] does, sharing them through `remote`: what it has is fetched
/// before anything is built, and what is built here is uploaded to it.
pub fn run_with_remote(
    store: &Store,
    stages: &[KeyedStage],
    runner: &dyn StageRunner,
    reporter: &dyn Reporter,
    dry_run: bool,
    jobs: &Jobs,
    remote: Option<&crate::remote::Remote>,
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome::default();
    if !dry_run {
        check_used_objects(store, stages, reporter);
    }
    let fetched = remote.map(|r| r.prefetch(store, stages, reporter, dry_run)).unwrap_or_default();
    let total = stages.len();
    let mut broken: std::collections::HashSet<&str> = Default::default();
    let mut done: std::collections::HashSet<&str> = Default::default();
    let mut pending: Vec<usize> = (0..total).collect();
    let mut running = 0usize;
    let all_cpus = jobs.cpus.unwrap_or(usize::MAX).max(1);
    let mut free_cpus = all_cpus;
    let mut free_gpus = jobs.gpus.clone();
    let (sender, results) = std::sync::mpsc::channel::<(usize, Slot, anyhow::Result<(Entry, bool)>)>();
    // Stages keyed again on inputs rebuilt with the same bytes (early cutoff), set once each.
    let rekeyed: Vec<std::sync::OnceLock<KeyedStage>> = (0..total).map(|_| Default::default()).collect();
    let stage_of = |n: usize| rekeyed[n].get().unwrap_or(&stages[n]);
    std::thread::scope(|scope| {
        loop {
            if interrupt::requested() {
                outcome.interrupted = true;
            }
            // Start or settle every stage that can be, in table order.
            let mut i = 0;
            while i < pending.len() && !outcome.interrupted {
                let n = pending[i];
                let spec = &stages[n].spec;
                if let Some(bad) = spec.inputs.iter().find(|x| broken.contains(x.as_str())) {
                    reporter.skipped(n + 1, total, &spec.id, bad);
                    broken.insert(&spec.id);
                    outcome.skipped.push(spec.id.clone());
                    pending.remove(i);
                    continue;
                }
                if !spec.inputs.iter().all(|x| done.contains(x.as_str())) {
                    i += 1;
                    continue;
                }
                if !dry_run
                    && rekeyed[n].get().is_none()
                    && let Some(again) = rekey(store, &stages[n], &outcome.entries)
                {
                    for id in again.kept.iter().filter(|id| !stages[n].kept.contains(id)) {
                        reporter.note(&spec.id, &format!("input {id} rebuilt with the same bytes: kept"));
                    }
                    let _ = rekeyed[n].set(again);
                }
                let ks = stage_of(n);
                if let Some(entry) = store.entry(&ks.material.kind, &ks.key) {
                    if fetched.contains(&spec.id) {
                        outcome.fetched.push(spec.id.clone());
                    } else {
                        reporter.started(n + 1, total, &spec.id, StageState::Cached);
                    }
                    if !dry_run {
                        publish(store, ks, &entry, &mut outcome);
                    }
                    outcome.cached.push(spec.id.clone());
                    outcome.entries.insert(spec.id.clone(), entry);
                    done.insert(&spec.id);
                    pending.remove(i);
                    continue;
                }
                if dry_run && fetched.contains(&spec.id) {
                    outcome.fetched.push(spec.id.clone());
                    outcome.cached.push(spec.id.clone());
                    done.insert(&spec.id);
                    pending.remove(i);
                    continue;
                }
                if dry_run {
                    reporter.started(n + 1, total, &spec.id, StageState::Running);
                    outcome.executed.push(spec.id.clone());
                    done.insert(&spec.id);
                    pending.remove(i);
                    continue;
                }
                // A stage given a GPU counts for one core (its GPU does the arithmetic).
                let needs_gpu = spec.uses.gpu && !jobs.gpus.is_empty();
                let cpus = match spec.uses.threads {
                    _ if jobs.cpus.is_none() => 0,
                    _ if needs_gpu => 1,
                    0 => all_cpus,
                    n => n.min(all_cpus),
                };
                if running >= jobs.jobs.max(1) || cpus > free_cpus || (needs_gpu && free_gpus.is_empty()) {
                    i += 1;
                    continue;
                }
                free_cpus -= cpus;
                let slot = Slot { cpus, gpu: if needs_gpu { Some(free_gpus.remove(0)) } else { None } };
                let inputs: BTreeMap<String, Entry> = spec.inputs.iter().map(|x| (x.clone(), outcome.entries[x].clone())).collect();
                let sender = sender.clone();
                running += 1;
                pending.remove(i);
                scope.spawn(move || {
                    let threads = if spec.uses.threads == 0 || slot.gpu.is_some() { 0 } else { spec.uses.threads.min(all_cpus) };
                    // A runner that panics (in-process, in tests) fails its stage instead of leaving
                    // the run waiting for a result that never comes.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        build(store, ks, &inputs, runner, reporter, n + 1, total, threads, slot.gpu.clone())
                    }))
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the stage's runner panicked")));
                    let _ = sender.send((n, slot, result));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((n, slot, result)) = results.recv() else { break };
            running -= 1;
            free_cpus += slot.cpus;
            free_gpus.extend(slot.gpu);
            let ks = stage_of(n);
            let spec = &ks.spec;
            match result {
                Ok((entry, was_cached)) => {
                    publish(store, ks, &entry, &mut outcome);
                    if was_cached {
                        outcome.cached.push(spec.id.clone());
                    } else {
                        reporter.finished(n + 1, total, &spec.id, entry.seconds);
                        outcome.executed.push(spec.id.clone());
                        if let Some(remote) = remote {
                            remote.upload_later(store, &entry, reporter);
                        }
                    }
                    outcome.entries.insert(spec.id.clone(), entry);
                    done.insert(&spec.id);
                }
                Err(e) if e.is::<interrupt::Interrupted>() => {
                    reporter.note(&spec.id, "interrupted; nothing of it was kept, the next run builds it");
                    outcome.interrupted = true;
                }
                Err(e) => {
                    outcome.bad_input |= e.downcast_ref::<StageFailure>().is_some_and(|f| f.bad_input);
                    let message = readable(&format!("{e:#}"));
                    reporter.failed(n + 1, total, &spec.id, &message);
                    broken.insert(&spec.id);
                    outcome.failed.push((spec.id.clone(), message));
                }
            }
        }
    });
    if let Some(remote) = remote {
        remote.finish(reporter, outcome.interrupted);
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome
}

/// `ks` keyed on its inputs' entries as built (each on its canonical key), if that changes its key.
fn rekey(store: &Store, ks: &KeyedStage, built: &BTreeMap<String, Entry>) -> Option<KeyedStage> {
    let mut again = ks.clone();
    for id in &ks.spec.inputs {
        let entry = built.get(id)?;
        let canonical = store.canonical(&entry.key);
        if again.material.inputs.get(&entry.material.id) != Some(&canonical.0) {
            if canonical != entry.key {
                again.kept.push(id.clone());
            }
            again.material.inputs.insert(entry.material.id.clone(), canonical.0);
        }
    }
    again.key = again.material.key();
    (again.key != ks.key).then_some(again)
}

/// Verifies the objects this run will read: the inputs of every stage without an entry and the
/// outputs of every cached stage that publishes. A damaged object is reported and moved aside and
/// its entry removed, so the run rebuilds that stage (same key: its dependants stay cached); the
/// rebuilt stage's own inputs are then checked in turn.
pub fn check_used_objects(store: &Store, stages: &[KeyedStage], reporter: &dyn Reporter) {
    let index: std::collections::HashMap<&str, usize> = stages.iter().enumerate().map(|(i, ks)| (ks.spec.id.as_str(), i)).collect();
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

/// Builds one stage under its key's lock, with `threads` CPU threads (0: the runtime's setting)
/// and the GPU `gpu`. Returns the entry and whether another run had built it meanwhile.
#[allow(clippy::too_many_arguments)]
fn build(
    store: &Store,
    ks: &KeyedStage,
    built: &BTreeMap<String, Entry>,
    runner: &dyn StageRunner,
    reporter: &dyn Reporter,
    n: usize,
    total: usize,
    threads: usize,
    gpu: Option<String>,
) -> anyhow::Result<(Entry, bool)> {
    let spec = &ks.spec;
    let _lock = store.lock(&ks.key, &spec.id, &|message| reporter.note(&spec.id, message))?;
    if let Some(entry) = store.entry(&ks.material.kind, &ks.key) {
        reporter.started(n, total, &spec.id, StageState::Cached);
        return Ok((entry, true));
    }
    reporter.started(n, total, &spec.id, StageState::Running);
    // Its last build, to tell whether this one gives the same bytes (early cutoff).
    let last = store.last_entry(&spec.id);
    let inputs: InputFiles = spec.inputs.iter().map(|id| (id.clone(), store.output_files(&built[id]))).collect();
    let out_dir = store.temp_dir(&ks.key)?;
    let request = StageRequest {
        id: spec.id.clone(),
        kind: spec.kind.clone(),
        task: spec.task.clone(),
        params: spec.params.clone(),
        inputs,
        sources: spec.sources.clone(),
        out_dir: out_dir.clone(),
        threads,
        gpu,
    };
    let progress = |done: u64, of: u64, msg: &str| reporter.progress(&spec.id, done, of, msg);
    let started = Instant::now();
    let result = runner.run(&request, &store.log_path(&spec.id), &progress);
    let seconds = started.elapsed().as_secs_f64();
    let committed = result.and_then(|()| Ok(store.commit(&spec.id, &ks.material, &out_dir, seconds, spec.publish.is_some())?));
    if committed.is_err() {
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    let entry = committed?;
    if let Some(last) = last.filter(|l| l.key != entry.key && l.outputs == entry.outputs) {
        store.record_same(&entry.key, &last.key)?;
        reporter.note(&spec.id, "rebuilt with the same bytes as its last build: what reads it is kept");
    }
    Ok((entry, false))
}

/// Copies a stage's outputs into its publish folder, rewriting only files whose content differs;
/// nothing of an entry whose output names may not be published there (the folder is in the
/// user's work tree: see [`crate::output_name`]).
fn publish(store: &Store, ks: &KeyedStage, entry: &Entry, outcome: &mut Outcome) {
    let Some(dir) = &ks.spec.publish else { return };
    if let Err(why) = entry.check_outputs(true) {
        outcome.failed.push((ks.spec.id.clone(), format!("not published into {}: {why}", dir.display())));
        return;
    }
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
    message.lines().filter(|l| !l.starts_with("frame #") && !l.starts_with("Exception raised from")).collect::<Vec<_>>().join("\n")
}
