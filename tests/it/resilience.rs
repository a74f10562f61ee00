//! What holds after a kill, concurrent runs and a full disk: the real binary on the smoke config,
//! in child processes.

use crate::cli::{Scratch, ids, last_json, ok, stale_ids};
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
    // The reference: one uninterrupted cold run.
    let reference = Scratch::new(|_| {});
    let cold = Instant::now();
    ok(&reference.oodpipe(&["run"]));
    let cold_ms = cold.elapsed().as_millis() as u64;
    let expected = std::fs::read(reference.path("reports/results.csv")).unwrap();

    let s = Scratch::new(|_| {});
    let mut moments = Moments(0x5EED_0F_C4A05);
    let mut killed = 0;
    for _ in 0..8 {
        let mut child = s.command(&["run"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(moments.next_ms(50, cold_ms.max(400) / 3)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed >= 3, "runs must have been killed mid-way ({killed} of 8)");
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
    let s = Scratch::new(|_| {});
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
    assert_eq!(out.status.code(), Some(1), "a failed stage exits 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data.cifar10") && err.contains("cifar10.safetensors"), "names the stage and the file: {err}");
    assert!(err.to_lowercase().contains("too large") || err.contains("EFBIG") || err.contains("No space"), "{err}");
    let store = oodpipe::store::Store::open(&s.path("cache")).unwrap();
    assert!(store.all_entries().is_empty(), "no entry written");
    assert_eq!(std::fs::read_dir(s.path("cache/tmp")).unwrap().count(), 0, "the stage's temporary folder is removed");
    let next = last_json(&s.oodpipe(&["run", "--json", "data.cifar10"]));
    assert_eq!(ids(&next["executed"]), ["data.cifar10".to_string()].into_iter().collect());
}
