//! One module per subcommand; each takes the parsed arguments and returns the exit code.

pub mod dag;
pub mod diff;
pub mod diff_page;
pub mod exec_stage;
pub mod export;
pub mod forget;
pub mod gc;
pub mod remote;
pub mod run;
pub mod run_page;
pub mod runs;
pub mod show;
pub mod status;
pub mod verify;

use crate::pipeline::{self, ConfigArgs, Machine, Pipeline};
use oodpipe_engine::fingerprint::{KeyedStage, key_stages_in};
use oodpipe_engine::source_hash::SourceMemo;
use oodpipe_engine::store::{Builder, BuilderSource, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The pipeline, its store, and the keyed closure of `targets`, as most subcommands need them.
pub struct Session {
    pub pipeline: Pipeline,
    pub machine: Machine,
    pub store: Store,
    pub stages: Vec<KeyedStage>,
    /// [`Session::git_state`], asked once per command (it starts two git processes), shared with
    /// the store, which records it in the entries it commits.
    pub git: Arc<OnceLock<Option<GitState>>>,
}

pub fn open(config: &ConfigArgs, cache: &Path, targets: &[String]) -> anyhow::Result<Session> {
    let pipeline = pipeline::load(&config.path, &config.experiment)?;
    let store = Store::open(cache).map_err(|e| anyhow::anyhow!("cannot open the store {}: {e}", cache.display()))?;
    let machine = pipeline::machine(&pipeline.config, &config.path, &store.state_dir())?;
    let closure = pipeline.graph.closure(targets)?;
    let mut memo = SourceMemo::load(&store.memo_file());
    let stages = key_stages_in(&closure, &mut memo, &machine.platform, &store)?;
    let _ = memo.save();
    let git: Arc<OnceLock<Option<GitState>>> = Default::default();
    let reports: Vec<PathBuf> = stages.iter().filter_map(|ks| ks.spec.publish.clone()).collect();
    let store = store.built_by(builder_source(git.clone(), reports, &machine));
    Ok(Session { pipeline, machine, store, stages, git })
}

/// This machine's processor kind as entries record it (`AMD EPYC (AVX512)`): model and the
/// instruction set libtorch's kernels use, on which training repeats bit for bit.
pub fn processor_kind(machine: &Machine) -> Option<String> {
    let details = &machine.platform_details;
    match (details.get("cpu_model"), details.get("cpu_capability")) {
        (Some(model), Some(isa)) => Some(format!("{model} ({isa})")),
        (model, isa) => model.or(isa).cloned(),
    }
}

/// Who builds this command's entries: this host, the checkout's commit, the processor kind.
fn builder_source(git: Arc<OnceLock<Option<GitState>>>, reports: Vec<PathBuf>, machine: &Machine) -> BuilderSource {
    let processor = processor_kind(machine);
    Box::new(move || {
        let state = git.get_or_init(|| git_state(&reports.iter().map(PathBuf::as_path).collect::<Vec<_>>()));
        Builder {
            host: host_name(),
            commit: state.as_ref().map(|g| g.commit.clone()),
            dirty: state.as_ref().map(|g| !g.changed.is_empty()),
            processor: processor.clone(),
        }
    })
}

/// This machine's host name (`gethostname`), or `unknown`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname NUL-terminates within it or fails.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok && end > 0 { String::from_utf8_lossy(&buf[..end]).into_owned() } else { "unknown".into() }
}

/// The commit a run was made from, and the tracked files that differ from it.
#[derive(Debug, Clone)]
pub struct GitState {
    pub commit: String,
    /// Changed tracked files (as `git status --porcelain` names them), the run's own report folders
    /// left out: a run rewrites its report before it records itself, and that is not a change to
    /// what made the results. Empty: the tree was clean.
    pub changed: Vec<String>,
}

impl Session {
    /// [`git_state`] with this session's published report folders left out, asked once.
    pub fn git_state(&self) -> Option<&GitState> {
        self.git
            .get_or_init(|| {
                let reports: Vec<&Path> = self.stages.iter().filter_map(|ks| ks.spec.publish.as_deref()).collect();
                git_state(&reports)
            })
            .as_ref()
    }
}

/// `git rev-parse HEAD` and the tracked files that differ from it but those under `exclude`, if
/// this is a checkout.
pub fn git_state(exclude: &[&Path]) -> Option<GitState> {
    let head = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    if !head.status.success() {
        return None;
    }
    let mut args = vec!["status".to_string(), "--porcelain".into(), "--untracked-files=no".into(), "--".into(), ".".into()];
    args.extend(exclude.iter().map(|p| format!(":(exclude){}", p.display())));
    let status = std::process::Command::new("git").args(&args).output().ok()?;
    let changed = String::from_utf8_lossy(&status.stdout).lines().filter_map(|l| l.get(3..)).map(str::to_string).collect();
    Some(GitState { commit: String::from_utf8_lossy(&head.stdout).trim().to_string(), changed })
}

/// The exit code of a run: 130 interrupted (128 + SIGINT, as shells report Ctrl-C), 2 a stage
/// refused its input (bad input), 1 a stage failed, 0 otherwise.
pub fn exit_code(outcome: &oodpipe_engine::executor::Outcome) -> std::process::ExitCode {
    if outcome.interrupted {
        std::process::ExitCode::from(130)
    } else if outcome.bad_input {
        std::process::ExitCode::from(2)
    } else if outcome.failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
