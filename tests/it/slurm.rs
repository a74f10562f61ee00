//! The Slurm executor against a real Slurm: a one-node cluster on localhost started by
//! scripts/slurm_local.sh (which installs Debian's slurm-wlm and munge when missing).

use crate::cli::{Scratch, ids, last_json, ok, repo, stale_ids};
use crate::shared::stored_tensors;
use std::time::{Duration, Instant};

/// Starts the local cluster (idempotent). `OODPIPE_SKIP_SLURM=1` skips these tests, counted as
/// skipped ([`crate::shared::skip`]: a failure under CI).
fn slurm() -> bool {
    if std::env::var_os("OODPIPE_SKIP_SLURM").is_some_and(|v| v == "1") {
        crate::shared::skip("slurm::*", "OODPIPE_SKIP_SLURM=1");
        return false;
    }
    let out = std::process::Command::new(repo().join("scripts/slurm_local.sh")).output().unwrap();
    assert!(out.status.success(), "scripts/slurm_local.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    true
}

/// The smoke config narrowed (`shared::narrow`), its queue polled every half second (the default,
/// 5 s, is for real clusters; each of the pipeline's levels waits for a poll).
fn on_the_cluster(config: &mut toml::Table) {
    crate::shared::narrow(config);
    let mut executor = toml::Table::new();
    executor.insert("poll_seconds".into(), toml::Value::Float(0.5));
    config.insert("executor".into(), executor.into());
}

#[test]
fn the_smoke_pipeline_through_slurm_gives_the_local_results_byte_for_byte() {
    if !slurm() {
        return;
    }
    // The local reference: the shared cold run of the whole smoke config. The cluster builds the
    // smoke config narrowed to one network and three detectors (23 jobs instead of 105; a job
    // costs a scheduling round on the one-node cluster).
    let local = &crate::shared::built().scratch;
    let cluster = Scratch::new(on_the_cluster);
    // With credentials in the submitter's environment, which sbatch would export to every job.
    let out = cluster
        .command(&["run", "--executor", "slurm", "--json"])
        .env("AWS_SECRET_ACCESS_KEY", crate::remote::SECRET)
        .env("OODPIPE_TEST_CANARY", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(&out);
    let done = last_json(&out);
    assert_eq!(ids(&done["cached"]).len(), 0, "everything was built by Slurm jobs");
    assert_eq!(ids(&done["executed"]).len(), 23, "{done}");
    // Every tensor a job stored (data, weights, outputs, scores) is byte for byte one the local run
    // stored: objects are named by the blake3 of their bytes.
    let (ours, theirs) = (stored_tensors(&cluster), stored_tensors(local));
    assert!(ours.len() >= 12, "{ours:?}");
    assert!(ours.is_subset(&theirs), "tensors the local run did not store: {:?}\n{err}", ours.difference(&theirs).collect::<Vec<_>>());
    // And every row of its results is the local run's row, to the last digit.
    let local_rows = std::fs::read_to_string(local.path("reports/results.csv")).unwrap();
    let rows = std::fs::read_to_string(cluster.path("reports/results.csv")).unwrap();
    assert_eq!(rows.lines().next(), local_rows.lines().next(), "the same columns");
    let local_rows: std::collections::BTreeSet<&str> = local_rows.lines().collect();
    assert!(rows.lines().count() > 50, "{rows}");
    for row in rows.lines() {
        assert!(local_rows.contains(row), "a row the local run does not have: {row}\n{err}");
    }
    // Each stage's job wrote its log under the cache, and said when it started.
    let started = std::fs::read_to_string(cluster.path("cache/logs/train.softmax.slurm")).unwrap();
    assert!(started.starts_with("job ") && started.contains("after submission"), "{started}");
    // What the job's worker saw (its log's first line names its environment's variables): the
    // submitter's ordinary variables, none of its credentials.
    crate::remote::assert_no_credentials_reached(&cluster.path("cache/logs/train.softmax.log"));
}

#[test]
fn a_cancelled_job_fails_its_stage_and_the_next_run_resumes() {
    if !slurm() {
        return;
    }
    let s = Scratch::new(on_the_cluster);
    let child = s
        .command(&["run", "--executor", "slurm"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run keeps each in-flight job's id in the store; cancel train.softmax's.
    let job_file = s.path("cache/state/slurm/train.softmax.job");
    let started = Instant::now();
    let job = loop {
        if let Ok(job) = std::fs::read_to_string(&job_file)
            && !job.trim().is_empty()
        {
            break job.trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "train.softmax was never submitted");
        std::thread::sleep(Duration::from_millis(20));
    };
    // While it is in flight, status says where it is.
    let status = ok(&s.oodpipe(&["status"]));
    assert!(status.contains(&format!("on Slurm (job {job}")), "{status}");
    assert!(std::process::Command::new("scancel").arg(&job).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stage train.softmax failed") && err.contains(&format!("Slurm job {job}")) && err.contains("CANCELLED"), "{err}");
    // The next run resumes: it builds exactly what is stale, and completes.
    let stale = stale_ids(&last_json(&s.oodpipe(&["status", "--json"])));
    assert!(stale.contains("train.softmax"));
    let last = last_json(&s.oodpipe(&["run", "--executor", "slurm", "--json"]));
    assert_eq!(ids(&last["executed"]), stale);
    assert!(std::fs::read(s.path("reports/results.csv")).is_ok());
}
