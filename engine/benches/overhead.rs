//! The engine's own cost per stage on a synthetic DAG of 1,000 stages (`cargo bench -p oodpipe-engine`).
//!
//! Each stage reads two config fields and up to three earlier stages' outputs and writes one small
//! file, so what is measured is the engine: planning the graph, keying, store lookups, locks,
//! commits, and (for the worker rows) starting one process per stage. Rows:
//! - cold, in-process: every stage built by a closure (the engine alone);
//! - cold, worker processes: every stage built by a worker process (this binary with `--worker`,
//!   a program that starts in about a millisecond; the real worker's start, which loads libtorch,
//!   is measured by `scripts/bench_noop.py` and stated in the README);
//! - no-op: keying the graph and finding every stage in the store.

use oodpipe_engine::executor::{self, Progress, StageState};
use oodpipe_engine::fingerprint::key_stages;
use oodpipe_engine::graph::Graph;
use oodpipe_engine::progress::Reporter;
use oodpipe_engine::source_hash::SourceMemo;
use oodpipe_engine::stage_key::Platform;
use oodpipe_engine::stage_spec::{StageSpec, flatten_fields};
use oodpipe_engine::store::Store;
use oodpipe_engine::worker::{StageRequest, WorkerInput, WorkerRunner};
use serde_json::json;
use std::io::Read;
use std::time::Instant;

const STAGES: usize = 1000;

struct Silent;
impl Reporter for Silent {
    fn started(&self, _: usize, _: usize, _: &str, _: StageState) {}
    fn progress(&self, _: &str, _: u64, _: u64, _: &str) {}
    fn finished(&self, _: usize, _: usize, _: &str, _: f64) {}
    fn failed(&self, _: usize, _: usize, id: &str, e: &str) {
        eprintln!("{id} failed: {e}");
    }
    fn skipped(&self, _: usize, _: usize, _: &str, _: &str) {}
}

fn build(request: &StageRequest) -> anyhow::Result<()> {
    let mut text = request.id.clone();
    for files in request.inputs.values() {
        text.push_str(&std::fs::read_to_string(&files["out"])?[..8.min(text.len())]);
    }
    std::fs::write(request.out_dir.join("out"), text)?;
    Ok(())
}

fn stages() -> Vec<StageSpec> {
    let config = json!({"x": {"a": 1, "b": [1.5, 2.0]}, "y": {"c": "z"}});
    (0..STAGES)
        .map(|i| StageSpec {
            key_id: None,
            id: format!("s.{i:04}"),
            kind: format!("k{}", i % 7),
            salt: "1".into(),
            params: flatten_fields(&config, &["x.a".to_string(), if i % 2 == 0 { "x.b" } else { "y" }.to_string()]),
            inputs: [i / 2, i / 3, i.saturating_sub(1)]
                .into_iter()
                .filter(|&j| j < i)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|j| format!("s.{j:04}"))
                .collect(),
            sources: Vec::new(),
            publish: None,
            task: json!("write"),
            code: String::new(),
            uses: Default::default(),
        })
        .collect()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).unwrap();
        let input: WorkerInput = serde_json::from_str(&text).unwrap();
        build(&input.stage).unwrap();
        return;
    }
    let platform = Platform { libtorch: "none".into(), device: "cpu".into() };
    let in_process = |request: &StageRequest, _: Progress| build(request);
    let worker = WorkerRunner::new(std::env::current_exe().unwrap(), vec!["--worker".into()], json!(null));
    let runners: [(&str, &dyn executor::StageRunner); 2] = [("in-process", &in_process), ("worker processes", &worker)];
    println!("engine overhead on a synthetic DAG of {STAGES} stages (up to 3 inputs each)");
    for (name, runner) in runners {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();

        let t = Instant::now();
        let graph = Graph::new(stages()).unwrap();
        let keyed = key_stages(&graph.closure(&[]).unwrap(), &mut SourceMemo::default(), &platform).unwrap();
        let plan_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let cold = executor::run(&store, &keyed, runner, &Silent, false);
        let cold_s = t.elapsed().as_secs_f64();
        assert_eq!(cold.executed.len(), STAGES);

        let t = Instant::now();
        let graph = Graph::new(stages()).unwrap();
        let keyed = key_stages(&graph.closure(&[]).unwrap(), &mut SourceMemo::default(), &platform).unwrap();
        let noop = executor::run(&store, &keyed, runner, &Silent, false);
        let noop_s = t.elapsed().as_secs_f64();
        assert_eq!(noop.cached.len(), STAGES);

        let per = |s: f64| s * 1000.0 / STAGES as f64;
        println!(
            "  {name:<17} graph+keys {:>6.1} ms | cold {:>7.0} ms ({:.2} ms/stage) | no-op {:>5.0} ms ({:.3} ms/stage)",
            plan_s * 1000.0,
            cold_s * 1000.0,
            per(cold_s),
            noop_s * 1000.0,
            per(noop_s)
        );
    }
}
