//! One queue poll for every job of a run: 100 stages in flight on Slurm at once are followed with
//! one `squeue` per poll interval, not one per job. The cluster is a stand-in that counts its
//! calls: `sbatch` runs the job's script in the background, `squeue` and `scontrol` answer from
//! the job's state, each call logged. (The real one-node Slurm is driven by tests/it/slurm.rs.)

use oodpipe_engine::executor::{self, Jobs, StageState};
use oodpipe_engine::fingerprint::key_stages;
use oodpipe_engine::graph::Graph;
use oodpipe_engine::progress::Reporter;
use oodpipe_engine::slurm::{JobBoard, SlurmOptions, SlurmRunner};
use oodpipe_engine::source_hash::SourceMemo;
use oodpipe_engine::stage_key::Platform;
use oodpipe_engine::stage_spec::StageSpec;
use oodpipe_engine::store::Store;
use std::time::{Duration, Instant};

struct Quiet;
impl Reporter for Quiet {
    fn started(&self, _: usize, _: usize, _: &str, _: StageState) {}
    fn progress(&self, _: &str, _: u64, _: u64, _: &str) {}
    fn finished(&self, _: usize, _: usize, _: &str, _: f64) {}
    fn failed(&self, _: usize, _: usize, _: &str, _: &str) {}
    fn skipped(&self, _: usize, _: usize, _: &str, _: &str) {}
    fn note(&self, _: &str, _: &str) {}
}

/// The stand-in Slurm's three commands, in `bin`, keeping their state and call log in `state`.
fn stand_in_slurm(bin: &std::path::Path, state: &std::path::Path) {
    let s = state.display();
    let scripts = [
        (
            "sbatch",
            format!(
                r#"#!/bin/sh
# sbatch --parsable --job-name=.. --output=LOG ... --wrap SCRIPT: the job runs in the background.
echo "sbatch $*" >> {s}/calls.log
out=""; wrap=""
while [ $# -gt 0 ]; do
  case "$1" in --output=*) out="${{1#--output=}}";; --wrap) shift; wrap="$1";; esac
  shift
done
id=$(flock {s}/next.lock sh -c 'n=$(($(cat {s}/next 2>/dev/null || echo 100) + 1)); echo $n > {s}/next; echo $n')
( sh -c "$wrap" > "$out" 2>&1; echo $? > {s}/$id.done ) < /dev/null > /dev/null 2>&1 &
echo "$id"
"#
            ),
        ),
        (
            "squeue",
            format!(
                r#"#!/bin/sh
# squeue -h -j ID,ID,... -o "%i %T": RUNNING for each job not done.
echo "squeue $*" >> {s}/calls.log
ids=""
while [ $# -gt 0 ]; do [ "$1" = "-j" ] && {{ shift; ids="$1"; }}; shift; done
for id in $(echo "$ids" | tr ',' ' '); do [ -f {s}/$id.done ] || echo "$id RUNNING"; done
# What the jobs wait for: a poll that listed all 100 (written after the answer, atomically).
[ "$(echo "$ids" | tr ',' '\n' | grep -c .)" -ge 100 ] && touch {s}/all_listed
exit 0
"#
            ),
        ),
        (
            "scontrol",
            format!(
                r#"#!/bin/sh
# scontrol show job -o ID
echo "scontrol $*" >> {s}/calls.log
id="$4"
if [ -f {s}/$id.done ]; then
  code=$(cat {s}/$id.done)
  [ "$code" = 0 ] && echo "JobId=$id JobState=COMPLETED ExitCode=0:0" || echo "JobId=$id JobState=FAILED ExitCode=$code:0"
else
  echo "JobId=$id JobState=RUNNING ExitCode=0:0"
fi
"#
            ),
        ),
    ];
    for (name, text) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn stage(i: usize) -> StageSpec {
    StageSpec {
        id: format!("job.{i:03}"),
        key_id: None,
        kind: "job".into(),
        salt: "1".into(),
        params: Default::default(),
        inputs: Vec::new(),
        sources: Vec::new(),
        publish: None,
        task: serde_json::Value::Null,
        code: String::new(),
        uses: Default::default(),
    }
}

#[test]
fn a_hundred_jobs_in_flight_are_polled_with_one_squeue_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, state) = (dir.path().join("bin"), dir.path().join("state"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    stand_in_slurm(&bin, &state);
    // SAFETY: this test binary has this one test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()));
    }
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let graph = Graph::new((0..100).map(stage).collect()).unwrap();
    let platform = Platform { libtorch: "none".into(), device: "cpu".into() };
    let stages = key_stages(&graph.closure(&[]).unwrap(), &mut SourceMemo::default(), &platform).unwrap();
    // Each job's "worker" reads its request and waits (at most 60 s, then fails) until an
    // `squeue` call has listed all 100 jobs: so none leaves the board before such a poll, however
    // slowly the jobs start or the machine runs, and an executor that never polls them all
    // together fails the run. (Waiting only until all 100 had started let the last ones leave
    // before the next poll on a loaded machine.)
    let interval = Duration::from_secs(1);
    let barrier = format!(
        "cat > /dev/null; i=0; while [ ! -f {s}/all_listed ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done",
        s = state.display()
    );
    let runner = SlurmRunner {
        worker: "/bin/sh".into(),
        worker_args: vec!["-c".into(), barrier],
        runtime: serde_json::Value::Null,
        options: SlurmOptions { poll_seconds: Some(1.0), ..Default::default() },
        state_dir: dir.path().join("cache/state/slurm"),
        board: JobBoard::new(interval),
    };
    let start = Instant::now();
    let outcome = executor::run_jobs(&store, &stages, &runner, &Quiet, false, &Jobs { jobs: 100, cpus: None, gpus: Vec::new() });
    let elapsed = start.elapsed().as_secs_f64();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.executed.len(), 100);

    let log = std::fs::read_to_string(state.join("calls.log")).unwrap();
    let squeues: Vec<&str> = log.lines().filter(|l| l.starts_with("squeue")).collect();
    let listed = |l: &str| l.split_whitespace().skip_while(|w| *w != "-j").nth(1).map_or(0, |ids| ids.split(',').count());
    // One call per interval at most (and one at the start), each listing every job in flight.
    assert!(squeues.len() as f64 <= elapsed / interval.as_secs_f64() + 2.0, "{} squeue calls in {elapsed:.1} s", squeues.len());
    assert!(squeues.iter().map(|l| listed(l)).max().unwrap() == 100, "no call listed all 100 jobs: {squeues:#?}");
    // scontrol only for jobs that left the queue: about once each.
    let scontrols = log.lines().filter(|l| l.starts_with("scontrol")).count();
    assert!(scontrols <= 100 + 5, "{scontrols} scontrol calls for 100 jobs");
    eprintln!(
        "100 jobs in flight for {elapsed:.1} s: {} squeue calls ({:.0} a minute at a {} s interval), {scontrols} scontrol calls",
        squeues.len(),
        squeues.len() as f64 * 60.0 / elapsed,
        interval.as_secs()
    );
}
