//! Stages run in worker processes: the protocol, the runner that spawns one, and how its death is told.
//!
//! The engine never loads what stages need (libtorch): it starts a worker program per stage (or
//! has its fork server, [`crate::zygote`], fork one: the same program started once), writes
//! one [`WorkerInput`] (the stage's request and the machine's runtime settings) as JSON to its stdin,
//! and reads its stdout for lines that begin with [`PROGRESS`] or [`ERROR`]; everything else the
//! worker prints, and all of its stderr, goes to the stage's log file, whose last lines are quoted
//! when it fails. A worker that panics, aborts, segfaults or is killed takes only its stage down:
//! its exit is turned into that stage's error with its cause ([`exit_cause`]).
//!
//! The worker also answers a `probe`: what the engine needs to know of the runtime to key stages
//! (its libtorch version, whether a GPU is there). The answer is remembered per machine in the
//! store ([`probe_cached`]), so commands that build nothing never start a worker.

use crate::executor::{Progress, StageRunner};
use crate::interrupt;
use crate::stage_spec::{InputFiles, SourceSpec};
use crate::zygote::{Forked, Zygote};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stdout line of the worker `@progress <done> <total> <message>`: progress of a long stage.
pub const PROGRESS: &str = "@progress ";
/// A stdout line of the worker `@error <JSON>` ([`WorkerError`]): why the stage failed.
pub const ERROR: &str = "@error ";
/// How many of the worker's last lines a failure quotes.
pub(crate) const TAIL_LINES: usize = 12;

/// One line the worker printed, as the runners read it.
pub(crate) enum WorkerLine<'a> {
    Progress {
        done: u64,
        total: u64,
        message: &'a str,
    },
    Error(WorkerError),
    /// Anything else: kept for the log and the failure's tail.
    Text(&'a str),
}

/// Reads a `@progress` or `@error` line (an `@error` whose JSON does not parse keeps its text as
/// the message); any other line is text.
pub(crate) fn parse_line(line: &str) -> WorkerLine<'_> {
    if let Some(rest) = line.strip_prefix(PROGRESS) {
        let mut parts = rest.splitn(3, ' ');
        let done = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let total = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        WorkerLine::Progress { done, total, message: parts.next().unwrap_or("") }
    } else if let Some(rest) = line.strip_prefix(ERROR) {
        WorkerLine::Error(serde_json::from_str(rest).unwrap_or_else(|_| WorkerError { message: rest.to_string(), bad_input: false }))
    } else {
        WorkerLine::Text(line)
    }
}

/// What a worker is asked to build: one stage, its inputs' files and an empty output folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRequest {
    pub id: String,
    pub kind: String,
    pub task: Value,
    /// The config fields the stage declared, and nothing else.
    pub params: BTreeMap<String, Value>,
    pub inputs: InputFiles,
    pub sources: Vec<SourceSpec>,
    /// An empty folder; every file the worker leaves in it is an output, named by its path in it.
    pub out_dir: PathBuf,
    /// CPU threads the stage may use (0: the runtime's setting, every core by default).
    #[serde(default)]
    pub threads: usize,
    /// The GPU handed to this stage (`CUDA_VISIBLE_DEVICES` of its worker), if the run hands them out.
    #[serde(default)]
    pub gpu: Option<String>,
}

/// What the worker reads on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInput {
    pub stage: StageRequest,
    /// Settings of the machine the engine passes through unread (device, threads).
    pub runtime: Value,
}

/// The error a worker reports before it exits with a failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerError {
    pub message: String,
    /// The stage was given input it cannot use (an unreadable data file): `oodpipe` exits with 2.
    #[serde(default)]
    pub bad_input: bool,
}

/// A worker's error reported as a stage's error, keeping whether it was bad input.
#[derive(Debug)]
pub struct StageFailure {
    pub message: String,
    pub bad_input: bool,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StageFailure {}

/// Runs each stage in a fresh process of `program args..`, or, with a [`Zygote`], in a process
/// the zygote forks (the same program, started once).
#[derive(Debug, Clone)]
pub struct WorkerRunner {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub runtime: Value,
    pub zygote: Option<Arc<Zygote>>,
}

impl WorkerRunner {
    /// A runner that starts `program args..` for each stage.
    pub fn new(program: PathBuf, args: Vec<String>, runtime: Value) -> Self {
        WorkerRunner { program, args, runtime, zygote: None }
    }
}

impl StageRunner for WorkerRunner {
    fn run(&self, request: &StageRequest, log: &Path, progress: Progress) -> anyhow::Result<()> {
        let input = WorkerInput { stage: request.clone(), runtime: self.runtime.clone() };
        let forked = self.zygote.as_ref().and_then(|z| z.fork(request.gpu.as_deref()));
        let process = match forked {
            Some(forked) => Process::Forked(forked),
            None => Process::spawn(&self.program, &self.args, request.gpu.as_deref())?,
        };
        run_worker(process, &input, log, progress)
    }
}

/// A worker process: spawned by the engine, or forked by the zygote.
enum Process {
    Spawned(Child),
    Forked(Forked),
}

impl Process {
    fn spawn(program: &Path, args: &[String], gpu: Option<&str>) -> anyhow::Result<Process> {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(gpu) = gpu {
            command.env("CUDA_VISIBLE_DEVICES", gpu);
        }
        crate::secrets::scrub(&mut command);
        die_with_parent(&mut command);
        Ok(Process::Spawned(command.spawn().with_context(|| format!("starting the worker {}", program.display()))?))
    }

    /// Its stdin, stdout and stderr, taken once.
    fn streams(&mut self) -> (Box<dyn Write>, Box<dyn Read + Send>, Box<dyn Read + Send>) {
        match self {
            Process::Spawned(child) => (
                Box::new(child.stdin.take().expect("piped")),
                Box::new(child.stdout.take().expect("piped")),
                Box::new(child.stderr.take().expect("piped")),
            ),
            Process::Forked(forked) => {
                let (stdin, stdout, stderr) = forked.streams().expect("taken once");
                (Box::new(stdin), Box::new(stdout), Box::new(stderr))
            }
        }
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            Process::Spawned(child) => child.try_wait(),
            Process::Forked(forked) => forked.try_wait(),
        }
    }

    fn signal(&mut self, signal: i32) {
        match self {
            // SAFETY: kill(2) on our own child, not yet waited for.
            Process::Spawned(child) => unsafe {
                libc::kill(child.id() as i32, signal);
            },
            Process::Forked(forked) => forked.signal(signal),
        }
    }
}

/// Feeds the worker `input`, relays its progress, waits for it; on Ctrl-C (or SIGTERM to the
/// engine) stops it. Its stdout and stderr are written to `log`.
fn run_worker(mut process: Process, input: &WorkerInput, log: &Path, progress: Progress) -> anyhow::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log_file = std::fs::File::create(log).with_context(|| format!("creating the stage log {}", log.display()))?;
    let (mut stdin, stdout, stderr) = process.streams();
    // A worker that dies before reading its input is reported below by its exit.
    let _ = stdin.write_all(&serde_json::to_vec(input)?);
    drop(stdin);
    let log_file = std::sync::Mutex::new(log_file);
    let tail = std::sync::Mutex::new(VecDeque::<String>::new());
    // A panic's message (the line after `panicked at`), which a backtrace would push out of the tail.
    let panic = std::sync::Mutex::new((false, Vec::<String>::new()));
    let error = std::sync::Mutex::new(None::<WorkerError>);
    let keep = |line: &str| {
        let _ = writeln!(log_file.lock().unwrap(), "{line}");
        {
            let mut panic = panic.lock().unwrap();
            if panic.1.is_empty() && line.contains(" panicked at ") {
                *panic = (true, vec![line.to_string()]);
            } else if panic.0 {
                panic.1.push(line.to_string());
                panic.0 = false;
            }
        }
        let mut tail = tail.lock().unwrap();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    };
    let mut stopping: Option<Instant> = None;
    let status = std::thread::scope(|scope| -> anyhow::Result<ExitStatus> {
        scope.spawn(|| {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match parse_line(&line) {
                    WorkerLine::Progress { done, total, message } => progress(done, total, message),
                    WorkerLine::Error(e) => *error.lock().unwrap() = Some(e),
                    WorkerLine::Text(text) => keep(text),
                }
            }
        });
        scope.spawn(|| {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep(&line);
            }
        });
        loop {
            if let Some(status) = process.try_wait()? {
                return Ok(status);
            }
            if interrupt::requested() {
                // The worker got the terminal's SIGINT too; if it was only us, or it lingers, stop it.
                match stopping {
                    None => {
                        process.signal(libc::SIGTERM);
                        stopping = Some(Instant::now());
                    }
                    Some(t) if t.elapsed() > Duration::from_secs(5) => process.signal(libc::SIGKILL),
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })?;
    if status.success() {
        return Ok(());
    }
    if interrupt::requested() {
        bail!(interrupt::Interrupted);
    }
    if let Some(e) = error.into_inner().unwrap() {
        return Err(StageFailure { message: e.message, bad_input: e.bad_input }.into());
    }
    let tail: Vec<String> = tail.into_inner().unwrap().into();
    let mut message = format!("the worker {}", exit_cause(status));
    let panic = panic.into_inner().unwrap().1;
    if !panic.is_empty() && !panic.iter().all(|l| tail.contains(l)) {
        message.push_str(&format!(": {}", panic.join(" ")));
    }
    if tail.is_empty() {
        message.push_str(", printing nothing");
    } else {
        message.push_str(&format!("; its last lines (all in {}):\n  {}", log.display(), tail.join("\n  ")));
    }
    Err(StageFailure { message, bad_input: false }.into())
}

/// A worker must not outlive the engine that waits for it (an engine killed by SIGKILL or the OOM
/// killer would leave it computing into a folder nobody commits): on Linux the kernel kills it
/// when the thread that started it ends.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            let _ = parent;
            Ok(())
        });
    }
}

/// How a process ended, in words: `was killed by SIGKILL (signal 9: ...)`, `exited with code 101 (a panic)`.
pub fn exit_cause(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let (name, meaning) = match signal {
            libc::SIGABRT => ("SIGABRT", "aborted: an uncaught C++ exception, a failed assertion or abort()"),
            libc::SIGSEGV => ("SIGSEGV", "segmentation fault"),
            libc::SIGBUS => ("SIGBUS", "bus error"),
            libc::SIGILL => ("SIGILL", "illegal instruction"),
            libc::SIGFPE => ("SIGFPE", "arithmetic exception"),
            libc::SIGKILL => ("SIGKILL", "killed: by a person, a scheduler, or the kernel's out-of-memory killer"),
            libc::SIGTERM => ("SIGTERM", "terminated"),
            libc::SIGINT => ("SIGINT", "interrupted"),
            _ => ("", "a signal"),
        };
        let dumped = if status.core_dumped() { ", core dumped" } else { "" };
        return format!("was killed by signal {signal} {name} ({meaning}{dumped})");
    }
    match status.code() {
        Some(101) => "exited with code 101 (a Rust panic)".to_string(),
        Some(code) => format!("exited with code {code}"),
        None => "ended without an exit code".to_string(),
    }
}

/// The worker's answer to `probe`, remembered in `state_dir` per machine and worker binary:
/// computed again when the worker binary, the host, the processor or the GPUs visible change.
pub fn probe_cached(program: &Path, args: &[String], state_dir: &Path) -> anyhow::Result<Value> {
    let fingerprint = machine_fingerprint(program)?;
    let path = state_dir.join("probe.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(saved) = serde_json::from_str::<Value>(&text)
        && saved["fingerprint"] == Value::String(fingerprint.clone())
    {
        return Ok(saved["answer"].clone());
    }
    let mut command = Command::new(program);
    crate::secrets::scrub(&mut command);
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting the worker {} (build it with `cargo build`)", program.display()))?;
    if !output.status.success() {
        bail!(
            "the worker's probe ({} {}) {}: {}",
            program.display(),
            args.join(" "),
            exit_cause(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let answer: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the worker's probe ({}) did not answer JSON", program.display()))?;
    let saved = serde_json::json!({"fingerprint": fingerprint, "answer": answer});
    // Remembering is an optimisation: a read-only store only costs a probe per command.
    let _ = std::fs::create_dir_all(state_dir)
        .and_then(|()| crate::atomic_file::write(&path, serde_json::to_string_pretty(&saved)?.as_bytes()));
    Ok(answer)
}

/// What a probe's answer depends on: the worker binary (size and modification time: a rebuild or
/// another libtorch changes it), the host name, the processor, and the GPUs the process may see.
fn machine_fingerprint(program: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(program)
        .with_context(|| format!("the worker {} does not exist (build it with `cargo build`)", program.display()))?;
    let modified = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("model name") || l.starts_with("flags")).take(2).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let gpus: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("nvidia")).collect()
        })
        .unwrap_or_default();
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "(unset)".into());
    let text = format!(
        "{}\n{}\n{modified:?}\n{host}\n{cpu}\n{gpus:?}\n{visible}",
        program.canonicalize().unwrap_or_else(|_| program.to_path_buf()).display(),
        meta.len()
    );
    Ok(blake3::hash(text.as_bytes()).to_hex().to_string())
}

/// The worker program: `$OODPIPE_WORKER` if set, else `oodpipe-worker` beside the running binary.
pub fn locate(default_name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("OODPIPE_WORKER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("finding the running binary")?;
    let dir = exe.parent().context("the running binary has no folder")?;
    // Test binaries live one level down, in target/<profile>/deps/.
    for candidate in [dir.join(default_name), dir.join("..").join(default_name)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "the worker `{default_name}` is not beside {} (build it with `cargo build --release`, which builds the \
         whole workspace, or name it with $OODPIPE_WORKER)",
        exe.display()
    )
}
