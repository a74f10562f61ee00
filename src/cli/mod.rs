//! One module per subcommand; each takes the parsed arguments and returns the exit code.

pub mod dag;
pub mod diff;
pub mod exec_stage;
pub mod gc;
pub mod remote;
pub mod run;
pub mod runs;
pub mod show;
pub mod status;
pub mod verify;

use crate::pipeline::{self, Machine, Pipeline};
use oodpipe_engine::fingerprint::{KeyedStage, key_stages};
use oodpipe_engine::source_hash::SourceMemo;
use oodpipe_engine::store::Store;
use std::path::Path;

/// The pipeline, its store, and the keyed closure of `targets`, as most subcommands need them.
pub struct Session {
    pub pipeline: Pipeline,
    pub machine: Machine,
    pub store: Store,
    pub stages: Vec<KeyedStage>,
    /// `git_state()`, asked once per command (it starts two git processes).
    pub git: std::sync::OnceLock<Option<(String, bool)>>,
}

pub fn open(config: &Path, cache: &Path, targets: &[String]) -> anyhow::Result<Session> {
    let pipeline = pipeline::load(config)?;
    let store = Store::open(cache).map_err(|e| anyhow::anyhow!("cannot open the store {}: {e}", cache.display()))?;
    let machine = pipeline::machine(&pipeline.config, config, &store.state_dir())?;
    let closure = pipeline.graph.closure(targets)?;
    let mut memo = SourceMemo::load(&store.memo_file());
    let stages = key_stages(&closure, &mut memo, &machine.platform)?;
    let _ = memo.save();
    Ok(Session { pipeline, machine, store, stages, git: std::sync::OnceLock::new() })
}

/// `git rev-parse HEAD` and whether the work tree has uncommitted changes, if this is a checkout.
pub fn git_state() -> Option<(String, bool)> {
    let head = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    if !head.status.success() {
        return None;
    }
    let status = std::process::Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]).output().ok()?;
    Some((String::from_utf8_lossy(&head.stdout).trim().to_string(), !status.stdout.is_empty()))
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
