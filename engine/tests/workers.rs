//! Stages in worker processes that crash: a panic, an abort and a SIGKILL each fail their stage
//! alone, named with its cause; an independent stage completes; the next run re-executes only
//! the failed stages and what depends on them. And Ctrl-C: the run stops its worker, keeps what
//! finished, leaves nothing half-written, and the next run resumes.
//!
//! The worker is this test binary itself, started on its ignored test `synthetic_worker`, which
//! speaks the worker protocol (`oodpipe_engine::worker`) with tasks that misbehave on purpose.
//! Each test runs twice: with a worker started per stage, and with workers forked by the fork
//! server (`oodpipe_engine::zygote`, here the ignored test `synthetic_zygote`), which must fail,
//! report and stop exactly alike.

use oodpipe_engine::executor::{self, StageState};
use oodpipe_engine::fingerprint::{KeyedStage, key_stages};
use oodpipe_engine::graph::Graph;
use oodpipe_engine::progress::Reporter;
use oodpipe_engine::source_hash::SourceMemo;
use oodpipe_engine::stage_key::Platform;
use oodpipe_engine::stage_spec::StageSpec;
use oodpipe_engine::store::Store;
use oodpipe_engine::worker::{WorkerInput, WorkerRunner};
use oodpipe_engine::zygote::Zygote;
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

struct Collect(Mutex<Vec<(String, u64, u64)>>);
impl Reporter for Collect {
    fn started(&self, _: usize, _: usize, _: &str, _: StageState) {}
    fn progress(&self, id: &str, done: u64, total: u64, _: &str) {
        self.0.lock().unwrap().push((id.to_string(), done, total));
    }
    fn finished(&self, _: usize, _: usize, _: &str, _: f64) {}
    fn failed(&self, _: usize, _: usize, _: &str, _: &str) {}
    fn skipped(&self, _: usize, _: usize, _: &str, _: &str) {}
    fn note(&self, _: &str, _: &str) {}
}

/// The worker half. With `"healed": true` in the runtime every task behaves.
#[test]
#[ignore = "the synthetic worker process of the tests in this file, which start it"]
fn synthetic_worker() {
    if std::io::stdin().is_terminal() {
        return;
    }
    synthetic_stage();
}

/// The same worker as a fork server (`oodpipe_engine::zygote`): each child runs one synthetic stage.
#[test]
#[ignore = "the synthetic fork server of the tests in this file, which start it"]
fn synthetic_zygote() {
    // SAFETY: fstat into a zeroed struct.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(0, &mut stat) } != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return; // run by hand: stdin is not the engine's control socket
    }
    std::process::exit(oodpipe_engine::zygote::serve(|| {
        synthetic_stage();
        0
    }));
}

fn synthetic_stage() {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let input: WorkerInput = serde_json::from_str(&text).unwrap();
    let stage = &input.stage;
    let out = &stage.out_dir;
    println!("@progress 1 2 half way");
    let task = if input.runtime["healed"] == json!(true) { "ok" } else { stage.task.as_str().unwrap() };
    std::fs::write(out.join("out"), "partial").unwrap();
    eprintln!("{} is about to do `{task}` (pid {}, parent {})", stage.id, std::process::id(), std::os::unix::process::parent_id());
    match task {
        "ok" => {
            let mut text = String::new();
            for files in stage.inputs.values() {
                text.push_str(&std::fs::read_to_string(&files["out"]).unwrap());
            }
            text.push_str(&stage.id);
            std::fs::write(out.join("out"), text).unwrap();
        }
        "panic" => panic!("the synthetic stage panics on purpose"),
        "abort" => std::process::abort(),
        "sigkill" => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(60)),
        other => panic!("unknown task {other}"),
    }
}

/// Starts a worker per stage, or, `forked`, forks each from a synthetic zygote.
fn runner(healed: bool, forked: bool) -> WorkerRunner {
    let program = std::env::current_exe().unwrap();
    let args = |test: &str| ["--exact", test, "--ignored", "--nocapture", "--test-threads=1", "-q"].map(String::from).to_vec();
    let mut runner = WorkerRunner::new(program.clone(), args("synthetic_worker"), json!({ "healed": healed }));
    if forked {
        runner.zygote = Some(Arc::new(Zygote::new(program, args("synthetic_zygote"))));
    }
    runner
}

fn stage(id: &str, task: &str, inputs: &[&str]) -> StageSpec {
    StageSpec {
        key_id: None,
        id: id.into(),
        kind: "synthetic".into(),
        salt: "1".into(),
        params: Default::default(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        sources: Vec::new(),
        publish: None,
        task: json!(task),
        code: String::new(),
        uses: Default::default(),
    }
}

fn keyed(stages: Vec<StageSpec>) -> Vec<KeyedStage> {
    let graph = Graph::new(stages).unwrap();
    let platform = Platform { libtorch: "none".into(), device: "cpu".into() };
    key_stages(&graph.closure(&[]).unwrap(), &mut SourceMemo::default(), &platform).unwrap()
}

#[test]
fn a_panic_an_abort_and_a_sigkill_each_fail_their_stage_alone() {
    crashes_fail_their_stage_alone(false);
}

#[test]
fn a_panic_an_abort_and_a_sigkill_each_fail_their_stage_alone_in_forked_workers() {
    crashes_fail_their_stage_alone(true);
}

fn crashes_fail_their_stage_alone(forked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let stages = keyed(vec![
        stage("a.ok", "ok", &[]),
        stage("b.panic", "panic", &["a.ok"]),
        stage("b.after_panic", "ok", &["b.panic"]),
        stage("c.abort", "abort", &[]),
        stage("d.sigkill", "sigkill", &["a.ok"]),
        stage("e.independent", "ok", &["a.ok"]),
    ]);
    let reporter = Collect(Mutex::new(Vec::new()));
    let outcome = executor::run(&store, &stages, &runner(false, forked), &reporter, false);
    assert_eq!(outcome.executed, ["a.ok", "e.independent"]);
    assert_eq!(outcome.skipped, ["b.after_panic"]);
    let failed: std::collections::BTreeMap<_, _> = outcome.failed.iter().cloned().collect();
    assert_eq!(failed.len(), 3, "{failed:#?}");
    let panic = &failed["b.panic"];
    assert!(panic.contains("exited with code 101 (a Rust panic)") && panic.contains("panics on purpose"), "{panic}");
    let abort = &failed["c.abort"];
    assert!(abort.contains("signal 6 SIGABRT") && abort.contains("about to do `abort`"), "{abort}");
    let kill = &failed["d.sigkill"];
    assert!(kill.contains("signal 9 SIGKILL") && kill.contains("out-of-memory killer"), "{kill}");
    // Progress crossed the process boundary; each worker's output is in its stage's log.
    assert!(reporter.0.lock().unwrap().contains(&("a.ok".to_string(), 1, 2)));
    let log = std::fs::read_to_string(store.log_path("c.abort")).unwrap();
    assert!(log.contains("c.abort is about to do `abort`"), "{log}");
    // Forked by the fork server, or started by the engine (this process) itself.
    let parent: u32 = log.split(", parent ").nth(1).and_then(|r| r.split(')').next()).unwrap().parse().unwrap();
    assert_eq!(parent == std::process::id(), !forked, "the worker's parent {parent}, the engine {}", std::process::id());
    // Nothing half-written: no entry for a failed stage, no temporary folder left.
    for ks in &stages {
        assert_eq!(store.entry(&ks.material.kind, &ks.key).is_some(), outcome.executed.contains(&ks.spec.id), "{}", ks.spec.id);
    }
    assert_eq!(std::fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(store.output_files(&outcome.entries["e.independent"])["out"].clone()).unwrap(), "a.oke.independent");

    // The next run, with the causes gone, re-executes exactly the failed stages and their dependant.
    let again = executor::run(&store, &stages, &runner(true, forked), &Collect(Mutex::new(Vec::new())), false);
    assert_eq!(again.executed, ["b.panic", "b.after_panic", "c.abort", "d.sigkill"]);
    assert_eq!(again.cached, ["a.ok", "e.independent"]);
    assert!(again.failed.is_empty());
}

#[test]
fn a_fork_server_that_does_not_start_leaves_each_stage_a_worker_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let stages = keyed(vec![stage("a.ok", "ok", &[]), stage("e.independent", "ok", &["a.ok"])]);
    // A program that is no fork server: this test binary running no test, which exits at once.
    let mut runner = runner(true, false);
    let program = std::env::current_exe().unwrap();
    runner.zygote = Some(Arc::new(Zygote::new(program, ["--exact", "no_such_test"].map(String::from).to_vec())));
    let outcome = executor::run(&store, &stages, &runner, &Collect(Mutex::new(Vec::new())), false);
    assert_eq!(outcome.executed, ["a.ok", "e.independent"], "{:?}", outcome.failed);
    for id in ["a.ok", "e.independent"] {
        let log = std::fs::read_to_string(store.log_path(id)).unwrap();
        assert!(log.contains(&format!(", parent {})", std::process::id())), "started by the engine itself: {log}");
    }
}

#[test]
fn a_killed_engine_takes_its_worker_with_it() {
    killed_engine_takes_its_worker(false);
}

#[test]
fn a_killed_engine_takes_its_forked_worker_and_the_fork_server_with_it() {
    killed_engine_takes_its_worker(true);
}

/// SIGKILL to an engine whose worker sleeps: the worker must not outlive it (it would go on
/// computing into a folder nobody commits).
fn killed_engine_takes_its_worker(forked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut child = start_engine(&cache, forked, std::process::Stdio::null());
    let started = std::time::Instant::now();
    let (pid, parent) = loop {
        let log = std::fs::read_to_string(cache.join("logs").join("b.sleep.log")).unwrap_or_default();
        if let Some(rest) = log.split("(pid ").nth(1)
            && let Some((pid, rest)) = rest.split_once(", parent ")
            && let Some((parent, _)) = rest.split_once(')')
        {
            break (pid.parse::<i32>().unwrap(), parent.parse::<i32>().unwrap());
        }
        assert!(started.elapsed().as_secs() < 60, "the sleeping stage never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(parent == child.id() as i32, !forked, "the worker's parent: the engine, or the fork server");
    child.kill().unwrap();
    child.wait().unwrap();
    // Gone, or a zombie waiting for init to reap it: either way, no longer running.
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|s| !s.starts_with('Z')))
    };
    let killed = std::time::Instant::now();
    while running(pid) || (forked && running(parent)) {
        assert!(killed.elapsed().as_secs() < 10, "the worker {pid} (parent {parent}) outlived the engine");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The engine half of the Ctrl-C and SIGKILL tests: a run whose second stage sleeps; prints its outcome.
#[test]
#[ignore = "the engine process of the Ctrl-C and SIGKILL tests in this file, which start it"]
fn interrupted_engine() {
    let Some(cache) = std::env::var_os("OODPIPE_TEST_CTRL_C_CACHE") else { return };
    oodpipe_engine::interrupt::install();
    let store = Store::open(Path::new(&cache)).unwrap();
    let stages = keyed(ctrl_c_pipeline());
    let forked = std::env::var_os("OODPIPE_TEST_FORKED").is_some();
    let outcome = executor::run(&store, &stages, &runner(false, forked), &Collect(Mutex::new(Vec::new())), false);
    println!("OUTCOME {}", json!({"executed": outcome.executed, "interrupted": outcome.interrupted, "failed": outcome.failed}));
}

/// Starts `interrupted_engine` in a process of its own on `cache` (its workers forked by the
/// synthetic fork server if `forked`), its stdout as given.
fn start_engine(cache: &Path, forked: bool, stdout: std::process::Stdio) -> std::process::Child {
    let mut engine = std::process::Command::new(std::env::current_exe().unwrap());
    engine.args(["--exact", "interrupted_engine", "--ignored", "--nocapture", "--test-threads=1"]);
    if forked {
        engine.env("OODPIPE_TEST_FORKED", "1");
    }
    engine.env("OODPIPE_TEST_CTRL_C_CACHE", cache).stdout(stdout).stderr(std::process::Stdio::null()).spawn().unwrap()
}

fn ctrl_c_pipeline() -> Vec<StageSpec> {
    vec![stage("a.ok", "ok", &[]), stage("b.sleep", "sleep", &["a.ok"]), stage("c.after", "ok", &["b.sleep"])]
}

#[test]
fn ctrl_c_stops_the_worker_and_the_next_run_resumes() {
    ctrl_c_stops_and_the_next_run_resumes(false);
}

#[test]
fn ctrl_c_stops_the_forked_worker_and_the_next_run_resumes() {
    ctrl_c_stops_and_the_next_run_resumes(true);
}

fn ctrl_c_stops_and_the_next_run_resumes(forked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let child = start_engine(&cache, forked, std::process::Stdio::piped());
    // Wait until the sleeping stage's worker has started (its temporary folder holds `out`).
    let started = std::time::Instant::now();
    loop {
        let busy =
            std::fs::read_dir(cache.join("tmp")).map(|d| d.filter_map(|e| e.ok()).any(|e| e.path().join("out").exists())).unwrap_or(false);
        if busy && cache.join("logs").join("b.sleep.log").exists() {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the sleeping stage never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line =
        stdout.lines().find_map(|l| l.split_once("OUTCOME ").map(|(_, rest)| rest)).unwrap_or_else(|| panic!("no outcome: {stdout}"));
    let outcome: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(outcome["interrupted"], json!(true));
    assert_eq!(outcome["executed"], json!(["a.ok"]));
    assert_eq!(outcome["failed"], json!([]), "an interrupted stage is not a failed one");

    let store = Store::open(&cache).unwrap();
    assert_eq!(std::fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "nothing half-written is left");
    let stages = keyed(ctrl_c_pipeline());
    let again = executor::run(&store, &stages, &runner(true, forked), &Collect(Mutex::new(Vec::new())), false);
    assert_eq!(again.cached, ["a.ok"]);
    assert_eq!(again.executed, ["b.sleep", "c.after"]);
}
