//! What holds after a kill, concurrent runs and a full disk: the real binary on the smoke config,
//! in child processes.

use crate::cli::{Scratch, ids, last_json, ok, stale_ids};
use crate::shared::stored_tensors;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Stage ids that `status` reports stale.
fn stale(s: &Scratch) -> BTreeSet<String> {
    stale_ids(&last_json(&s.oodpipe(&["status", "--json"])))
}

/// A seeded xorshift: the kill moments are random but the same on every run of the test.
struct Moments(u64);
impl Moments {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

#[test]
fn sigkill_at_random_moments_then_a_run_resumes_to_identical_results() {
    // The reference: one uninterrupted cold run (the shared one).
    let reference = crate::shared::built();
    let expected = std::fs::read(reference.scratch.path("reports/results.csv")).unwrap();

    let s = Scratch::new(|_| {});
    let mut moments = Moments(0x05EE_D0FC_4A05);
    // Each run is killed after a random number of its stages (1 to 8) were committed, once the
    // next one is being built (a temporary folder holds its outputs), and a random moment (0 to
    // 100 ms) later: the point is random, the state it hits is observed, so every kill lands
    // mid-way through the pipeline (8 runs of at most 8 stages of its 105).
    let entries = || {
        std::fs::read_dir(s.path("cache/stages"))
            .map_or(0, |kinds| kinds.filter_map(|k| std::fs::read_dir(k.ok()?.path()).ok()).map(|d| d.count()).sum())
    };
    let building = || std::fs::read_dir(s.path("cache/tmp")).is_ok_and(|d| d.filter_map(|e| e.ok()).any(|e| e.path().is_dir()));
    let mut killed_mid_stage = 0;
    for _ in 0..8 {
        let target = entries() + moments.next_ms(1, 9) as usize;
        let mut child = s.command(&["run"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        while child.try_wait().unwrap().is_none() && !(entries() >= target && building()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(moments.next_ms(0, 100)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_stage += 1;
        }
        child.wait().unwrap();
    }
    assert_eq!(killed_mid_stage, 8, "every run must be killed mid-way ({killed_mid_stage} of 8)");
    // The next run executes exactly what no killed run finished, and ends with the same results.
    let unfinished = stale(&s);
    let last = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&last["executed"]), unfinished);
    assert_eq!(std::fs::read(s.path("reports/results.csv")).unwrap(), expected, "byte-identical results");
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));
    // gc clears what the killed runs left; their liveness locks are free, so nothing is "live".
    ok(&s.oodpipe(&["gc"]));
    assert_eq!(std::fs::read_dir(s.path("cache/tmp")).unwrap().count(), 0);
}

#[test]
fn three_concurrent_runs_on_one_cache_build_each_stage_once() {
    let s = Scratch::new(crate::shared::narrow);
    let children: Vec<_> = (0..3)
        .map(|_| s.command(&["run", "--json"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    let finished: Vec<std::process::Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let outputs: Vec<Value> = finished.iter().map(last_json).collect();
    // A run that meets a stage another run is building says whom it waits for.
    let waited = finished.iter().any(|o| {
        let err = String::from_utf8_lossy(&o.stderr);
        err.contains("waiting for ") && err.contains(", being built by pid ")
    });
    assert!(waited, "no run said it was waiting for another");
    let mut executed: Vec<String> = outputs.iter().flat_map(|o| ids(&o["executed"])).collect();
    let total = executed.len();
    executed.sort();
    executed.dedup();
    assert_eq!(total, executed.len(), "a stage executed twice: {executed:?}");
    let all = ids(&outputs[0]["executed"]).union(&ids(&outputs[0]["cached"])).cloned().collect::<BTreeSet<_>>();
    assert_eq!(executed.into_iter().collect::<BTreeSet<_>>(), all, "every stage executed exactly once in total");
}

#[test]
fn a_full_disk_fails_the_stage_with_the_path_writes_no_entry_and_the_next_run_completes() {
    let s = Scratch::new(|_| {});
    // A file-size limit of 256 KiB stands in for a full disk: writes past it fail with EFBIG
    // (SIGXFSZ ignored, as a process on a full disk gets ENOSPC rather than a signal).
    let mut cmd = s.command(&["run", "data.cifar10"]);
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: 256 * 1024, rlim_max: 256 * 1024 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.to_lowercase().contains("too large") || err.contains("EFBIG") || err.contains("No space"), "{err}");
    the_write_failed_cleanly(&s, &out);
    the_next_run_builds_exactly_data_cifar10(&s);
}

/// A stage whose write failed: exit 1, the stage and the file named, no entry, no temporary folder.
fn the_write_failed_cleanly(s: &Scratch, out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(1), "a failed stage exits 1: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data.cifar10") && err.contains("cifar10.safetensors"), "names the stage and the file: {err}");
    let store = oodpipe_engine::store::Store::open(&s.path("cache")).unwrap();
    assert!(store.all_entries().is_empty(), "no entry written");
    assert_eq!(std::fs::read_dir(s.path("cache/tmp")).unwrap().count(), 0, "the stage's temporary folder is removed");
}

fn the_next_run_builds_exactly_data_cifar10(s: &Scratch) {
    let next = last_json(&s.oodpipe(&["run", "--json", "data.cifar10"]));
    assert_eq!(ids(&next["executed"]), ["data.cifar10".to_string()].into_iter().collect());
}

/// A tmpfs mounted on a folder for the length of a test (unmounted when dropped).
struct Mounted(std::path::PathBuf);

impl Mounted {
    /// Mounts a tmpfs of `size` on `dir`, or says why it cannot (no privilege to mount).
    fn tmpfs(dir: &std::path::Path, size: &str) -> Result<Mounted, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() { Ok(Mounted(dir.to_path_buf())) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().unwrap();
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_fails_the_stage_with_the_path_writes_no_entry_and_the_next_run_completes() {
    let s = Scratch::new(|_| {});
    // A real full disk: the cache on a 1 MiB tmpfs, where CIFAR-10's smoke splits (about 2 MB)
    // do not fit. Mounting needs the privilege to; CI machines have it (.ci/run runs as root),
    // elsewhere the RLIMIT_FSIZE test above stands in.
    let mount = match Mounted::tmpfs(&s.path("cache"), "1m") {
        Ok(m) => m,
        Err(why) => {
            crate::shared::skip("resilience::a_full_file_system...", &format!("cannot mount a tmpfs here ({why})"));
            return;
        }
    };
    let out = s.oodpipe(&["run", "data.cifar10"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"), "{}", String::from_utf8_lossy(&out.stderr));
    the_write_failed_cleanly(&s, &out);
    // Space again: the next run completes.
    mount.resize("64m");
    the_next_run_builds_exactly_data_cifar10(&s);
    drop(mount);
}

#[test]
fn ctrl_c_stops_the_run_records_it_as_interrupted_and_the_next_run_resumes() {
    let s = Scratch::new(|_| {});
    // Like a terminal's Ctrl-C: SIGINT to the whole foreground group, the engine and its worker.
    let mut cmd = s.command(&["run"]);
    cmd.process_group(0).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    // Interrupt during the first training: once its worker has started on it (its log's first line).
    let started = Instant::now();
    let training = || {
        std::fs::read_dir(s.path("cache/logs")).is_ok_and(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("train."))
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|log| log.contains("worker: pid ")))
        })
    };
    while !training() {
        assert!(started.elapsed() < Duration::from_secs(120), "no training started");
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(-pid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let runs = last_json(&s.oodpipe(&["runs", "--json"]));
    let record = &runs.as_array().unwrap()[0];
    assert_eq!(record["interrupted"], Value::Bool(true), "{record}");
    assert!(ids(&record["failed"]).is_empty(), "an interrupted stage is not a failed one: {record}");
    assert_eq!(std::fs::read_dir(s.path("cache/tmp")).unwrap().count(), 0, "nothing half-written is left");
    // The next run builds what the first did not, and nothing it did.
    let done = ids(&record["executed"]);
    let last = last_json(&ok_run(&s));
    assert!(ids(&last["executed"]).is_disjoint(&done));
    assert_eq!(ids(&last["cached"]), done);
}

fn ok_run(s: &Scratch) -> std::process::Output {
    let out = s.oodpipe(&["run", "--json"]);
    crate::cli::ok(&out);
    out
}

#[test]
fn the_command_does_not_link_libtorch_and_the_worker_does() {
    // The names of the libraries `ldd` lists, one a line ("libc.so.6 => /lib/... (0x7f...)"): only
    // the first field, since the load address is random and may read "...c10..." (it did, once).
    let deps = |binary: &std::path::Path| -> Vec<String> {
        let out = std::process::Command::new("ldd").arg(binary).output().expect("ldd (from libc-bin) runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(|name| name.rsplit('/').next().unwrap_or(name).to_owned())
            .collect()
    };
    let is_torch = |name: &String| name.starts_with("libtorch") || name.starts_with("libc10");
    let command = deps(std::path::Path::new(env!("CARGO_BIN_EXE_oodpipe")));
    assert!(command.iter().any(|name| name.starts_with("libc.so")), "ldd must list the libraries: {command:?}");
    assert!(!command.iter().any(is_torch), "oodpipe links libtorch: {command:?}");
    let worker = deps(&std::path::Path::new(env!("CARGO_BIN_EXE_oodpipe")).with_file_name("oodpipe-worker"));
    assert!(worker.iter().any(|name| name.starts_with("libtorch_cpu")), "the worker links libtorch (the check above can tell): {worker:?}");
    assert!(worker.iter().any(|name| name.starts_with("libc10")), "{worker:?}");
}

#[test]
fn two_jobs_build_the_same_bytes_as_one() {
    // One job: the shared cold run (`run` builds one stage at a time by default).
    let one = &crate::shared::built().scratch;
    let two = Scratch::new(|_| {});
    let out = two.oodpipe(&["run", "-j", "2", "--json"]);
    let parallel = last_json(&out);
    // Every stored tensor (data sets, weights, outputs, scores) and the results: byte-identical.
    // (train.json differs by its timings, which is why it is not compared.) Objects are named by the
    // blake3 of their bytes.
    let (a, b) = (stored_tensors(one), stored_tensors(&two));
    assert!(a.len() > 40, "{} tensors", a.len());
    assert_eq!(a, b);
    assert_eq!(std::fs::read(one.path("reports/results.csv")).unwrap(), std::fs::read(two.path("reports/results.csv")).unwrap());
    assert_eq!(ids(&parallel["executed"]).len(), ids(&parallel["executed"]).union(&ids(&parallel["cached"])).count());
}

#[test]
fn gc_during_a_run_waits_for_it_and_removes_nothing_the_run_needs() {
    let s = Scratch::new(crate::shared::narrow);
    let mut run = s.command(&["run"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Once the run builds a stage (a temporary folder holds its outputs), gc starts.
    let started = Instant::now();
    while !std::fs::read_dir(s.path("cache/tmp")).is_ok_and(|d| d.filter_map(|e| e.ok()).any(|e| e.path().is_dir())) {
        assert!(run.try_wait().unwrap().is_none(), "the run ended before gc could start");
        assert!(started.elapsed() < Duration::from_secs(120), "no stage started");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut gc = s.command(&["gc"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // It says it waits, and it does: it does not end while the run goes on.
    let mut said = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(gc.stderr.take().unwrap()), &mut said).unwrap();
    assert!(said.starts_with("gc: waiting for the runs and pulls writing into "), "{said}");
    while run.try_wait().unwrap().is_none() {
        assert!(gc.try_wait().unwrap().is_none(), "gc ended while the run was building");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(run.wait().unwrap().success());
    let gc = gc.wait_with_output().unwrap();
    assert!(gc.status.success());
    // Nothing the config reaches was removed: every stage fresh, every object sound.
    assert!(stale(&s).is_empty());
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));
}
