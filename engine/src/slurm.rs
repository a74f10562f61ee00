//! Stages as Slurm jobs: one `sbatch` job per stage, run by the same worker as locally.
//!
//! [`SlurmRunner`] is a [`StageRunner`]: the executor takes the stage's lock and temporary folder
//! in the store (which must be on a filesystem the nodes share), the runner writes the worker's
//! input next to the stage's log, submits `oodpipe-worker run < request.json` with the job name =
//! the stage id and the log file = `cache/logs/<id>.log`, follows the job, relays the worker's
//! `@progress` lines from the log, and returns when the job ends; the executor then commits the
//! outputs as for a local stage.
//!
//! **One poll for all jobs.** A sweep puts hundreds of jobs on the cluster at once, and a
//! slurmctld's admins forbid a `squeue` per job every second. The run's jobs share one
//! [`JobBoard`]: once per `executor.poll_seconds` (default 5 s) one `squeue -j <every job in
//! flight>` asks for all of them, as Snakemake's Slurm executor does; only a job that has left the
//! queue is asked about once more, with `scontrol show job` (no accounting database needed). With
//! 100 jobs in flight that is 12 `squeue` calls a minute, whatever the number of jobs.
//! A failed, cancelled or timed-out job is that stage's failure, named with its job id, state and
//! the tail of its log. Ctrl-C cancels the jobs of this run (`scancel`). While a job is in flight
//! its id is kept in `cache/state/slurm/<id>.job`, which `oodpipe status` reads.

use crate::executor::{Progress, StageRunner};
use crate::interrupt;
use crate::worker::{StageFailure, StageRequest, TAIL_LINES, WorkerError, WorkerInput, WorkerLine, parse_line};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What `sbatch` is told, from the config's `[executor]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Per stage kind (`train`, `outputs`, ...): time limit, memory, CPUs, `--gres`.
    pub kinds: BTreeMap<String, KindResources>,
    /// Seconds between two polls of the queue (one `squeue` for every job of the run); None: 5.
    pub poll_seconds: Option<f64>,
}

impl SlurmOptions {
    /// The interval between two polls of the queue.
    pub fn poll(&self) -> Duration {
        Duration::from_secs_f64(self.poll_seconds.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(5.0))
    }
}

/// The resources of one stage kind's jobs; unset = the cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindResources {
    /// `--time`, e.g. "12:00:00".
    pub time: Option<String>,
    /// `--mem`, e.g. "32G".
    pub mem: Option<String>,
    /// `--cpus-per-task`; also the stage's thread count.
    pub cpus: Option<usize>,
    /// `--gres`, e.g. "gpu:1".
    pub gres: Option<String>,
}

pub struct SlurmRunner {
    pub worker: PathBuf,
    pub worker_args: Vec<String>,
    pub runtime: serde_json::Value,
    pub options: SlurmOptions,
    /// Where in-flight job ids are kept (`cache/state/slurm`).
    pub state_dir: PathBuf,
    /// The run's jobs and their last polled states.
    pub board: JobBoard,
}

/// The states of a run's jobs in flight, polled for all of them at once (see the module doc).
pub struct JobBoard {
    interval: Duration,
    state: std::sync::Mutex<BoardState>,
    polled: std::sync::Condvar,
}

#[derive(Default)]
struct BoardState {
    /// Job id -> its last polled state and exit code (None: not polled yet).
    jobs: BTreeMap<String, Option<(String, Option<String>)>>,
    last_poll: Option<Instant>,
    /// Polls so far: a follower waits for the next one.
    generation: u64,
    polling: bool,
}

impl JobBoard {
    pub fn new(interval: Duration) -> JobBoard {
        JobBoard { interval, state: Default::default(), polled: Default::default() }
    }

    fn add(&self, job: &str) {
        self.state.lock().expect("the board's lock").jobs.insert(job.to_string(), None);
    }

    fn remove(&self, job: &str) {
        self.state.lock().expect("the board's lock").jobs.remove(job);
    }

    /// The state of `job` after the next poll: this thread polls for every job when the interval
    /// has passed and no other thread is polling, else it waits for the one that does.
    fn next_state(&self, job: &str) -> (String, Option<String>) {
        let mut s = self.state.lock().expect("the board's lock");
        let seen = s.generation;
        loop {
            let due = s.last_poll.is_none_or(|t| t.elapsed() >= self.interval);
            if due && !s.polling {
                s.polling = true;
                let jobs: Vec<String> = s.jobs.keys().cloned().collect();
                drop(s);
                let states = poll_jobs(&jobs);
                s = self.state.lock().expect("the board's lock");
                for (j, state) in states {
                    if let Some(slot) = s.jobs.get_mut(&j) {
                        *slot = Some(state);
                    }
                }
                s.last_poll = Some(Instant::now());
                s.generation += 1;
                s.polling = false;
                self.polled.notify_all();
            } else if s.generation == seen {
                let wait = match s.last_poll {
                    Some(t) if !s.polling => self.interval.saturating_sub(t.elapsed()),
                    _ => self.interval,
                };
                s = self.polled.wait_timeout(s, wait.max(Duration::from_millis(10))).expect("the board's lock").0;
                continue;
            }
            if s.generation != seen {
                return s.jobs.get(job).cloned().flatten().unwrap_or_else(|| ("UNKNOWN".into(), None));
            }
        }
    }
}

/// Every job's state: one `squeue` for all of them; `scontrol show job` for each that has left the
/// queue (or if `squeue` fails).
fn poll_jobs(jobs: &[String]) -> Vec<(String, (String, Option<String>))> {
    let mut queued: BTreeMap<String, String> = BTreeMap::new();
    if !jobs.is_empty()
        && let Ok(out) = Command::new("squeue").args(["-h", "-j", &jobs.join(","), "-o", "%i %T"]).output()
        && out.status.success()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((id, state)) = line.trim().split_once(' ') {
                queued.insert(id.trim().to_string(), state.trim().to_string());
            }
        }
    }
    jobs.iter()
        .map(|job| match queued.get(job).filter(|state| !is_final(state)) {
            Some(state) => (job.clone(), (state.clone(), None)),
            None => (job.clone(), scontrol_state(job).unwrap_or_else(|| ("UNKNOWN".into(), None))),
        })
        .collect()
}

/// A job's state as Slurm names it (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, ...).
pub fn job_state(job: &str) -> Option<(String, Option<String>)> {
    let out = Command::new("squeue").args(["-h", "-j", job, "-o", "%T"]).output().ok()?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !state.is_empty() && !is_final(&state) {
        return Some((state, None));
    }
    scontrol_state(job)
}

/// A job's state and exit code from its record in slurmctld (kept MinJobAge seconds after it ends).
fn scontrol_state(job: &str) -> Option<(String, Option<String>)> {
    let out = Command::new("scontrol").args(["show", "job", "-o", job]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| text.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string));
    Some((field("JobState")?, field("ExitCode")))
}

fn is_final(state: &str) -> bool {
    !matches!(state, "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED" | "RESIZING")
}

/// The in-flight job of each stage, as recorded by runs in progress: stage id -> job id.
pub fn in_flight(state_dir: &Path) -> BTreeMap<String, String> {
    let Ok(dir) = std::fs::read_dir(state_dir) else { return BTreeMap::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().strip_suffix(".job")?.to_string();
            Some((name, std::fs::read_to_string(e.path()).ok()?.trim().to_string()))
        })
        .collect()
}

impl SlurmRunner {
    fn submit(&self, request: &StageRequest, input_file: &Path, log: &Path) -> anyhow::Result<String> {
        let mut command = Command::new("sbatch");
        // sbatch exports its own environment to the job (and a cluster may keep it in its
        // accounting): no credentials in it.
        crate::secrets::scrub(&mut command);
        command.arg("--parsable").arg(format!("--job-name={}", request.id)).arg(format!("--output={}", log.display()));
        if let Some(p) = &self.options.partition {
            command.arg(format!("--partition={p}"));
        }
        if let Some(a) = &self.options.account {
            command.arg(format!("--account={a}"));
        }
        if let Some(k) = self.options.kinds.get(&request.kind) {
            if let Some(t) = &k.time {
                command.arg(format!("--time={t}"));
            }
            if let Some(m) = &k.mem {
                command.arg(format!("--mem={m}"));
            }
            if let Some(c) = k.cpus {
                command.arg(format!("--cpus-per-task={c}"));
            }
            if let Some(g) = &k.gres {
                command.arg(format!("--gres={g}"));
            }
        }
        let mut script = format!("exec {}", shell_quote(&self.worker.display().to_string()));
        for a in &self.worker_args {
            script.push(' ');
            script.push_str(&shell_quote(a));
        }
        script.push_str(&format!(" < {}", shell_quote(&input_file.display().to_string())));
        command.arg("--wrap").arg(script);
        let out = command.output().context("running sbatch (is Slurm installed? scripts/slurm_local.sh starts a one-node cluster)")?;
        if !out.status.success() {
            bail!("sbatch refused stage {}: {}", request.id, String::from_utf8_lossy(&out.stderr).trim());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.trim().split(';').next().unwrap_or("").to_string())
    }
}

impl StageRunner for SlurmRunner {
    fn run(&self, request: &StageRequest, log: &Path, progress: Progress) -> anyhow::Result<()> {
        let mut request = request.clone();
        if let Some(cpus) = self.options.kinds.get(&request.kind).and_then(|k| k.cpus)
            && request.threads == 0
        {
            request.threads = cpus;
        }
        let dir = log.parent().context("the log has a folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let input_file = dir.join(format!("{}.request.json", request.id));
        let input = WorkerInput { stage: request.clone(), runtime: self.runtime.clone() };
        crate::atomic_file::write(&input_file, &serde_json::to_vec(&input)?)?;
        let _ = std::fs::remove_file(log);
        let submitted = Instant::now();
        let job = self.submit(&request, &input_file, log)?;
        std::fs::create_dir_all(&self.state_dir)?;
        let job_file = self.state_dir.join(format!("{}.job", request.id));
        crate::atomic_file::write(&job_file, job.as_bytes())?;
        self.board.add(&job);
        let result = self.follow(&request, &job, log, progress, submitted);
        self.board.remove(&job);
        let _ = std::fs::remove_file(&job_file);
        let _ = std::fs::remove_file(&input_file);
        result
    }
}

impl SlurmRunner {
    fn follow(&self, request: &StageRequest, job: &str, log: &Path, progress: Progress, submitted: Instant) -> anyhow::Result<()> {
        let mut read = 0usize;
        let mut started = false;
        let mut error: Option<WorkerError> = None;
        let relay = |read: &mut usize, error: &mut Option<WorkerError>| {
            let Ok(text) = std::fs::read_to_string(log) else { return };
            let Some(new) = text.get(*read..) else { return };
            let complete = new.rfind('\n').map(|i| i + 1).unwrap_or(0);
            for line in new[..complete].lines() {
                match parse_line(line) {
                    WorkerLine::Progress { done, total, message } => progress(done, total, message),
                    WorkerLine::Error(e) => *error = Some(e),
                    WorkerLine::Text(_) => {}
                }
            }
            *read += complete;
        };
        loop {
            if interrupt::requested() {
                let _ = Command::new("scancel").arg(job).status();
                bail!(interrupt::Interrupted);
            }
            let (state, exit) = self.board.next_state(job);
            if !started && state != "PENDING" {
                started = true;
                let _ = std::fs::write(
                    log.with_extension("slurm"),
                    format!("job {job} started {:.3} s after submission\n", submitted.elapsed().as_secs_f64()),
                );
            }
            relay(&mut read, &mut error);
            if state == "COMPLETED" {
                return Ok(());
            }
            if is_final(&state) && state != "UNKNOWN" {
                relay(&mut read, &mut error);
                if let Some(e) = error.take() {
                    return Err(
                        StageFailure { message: format!("Slurm job {job} ended {state}: {}", e.message), bad_input: e.bad_input }.into()
                    );
                }
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().filter(|l| matches!(parse_line(l), WorkerLine::Text(_))).collect();
                let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
                let exit = exit.map(|e| format!(" (exit code {e})")).unwrap_or_default();
                return Err(StageFailure {
                    message: format!(
                        "Slurm job {job} of stage {} ended {state}{exit}; its log {}{}",
                        request.id,
                        log.display(),
                        if tail.is_empty() { " is empty".to_string() } else { format!(" ends:\n  {}", tail.join("\n  ")) }
                    ),
                    bad_input: false,
                }
                .into());
            }
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
