//! Times KNN's exact scoring (`detectors/knn.rs`, `stages/src/features/nearest.rs`) at the default
//! run's size, K = 50, with one thread and with every core.
//!
//! `cargo bench -p oodpipe-stages --bench knn` (release build): ReLU-like random features, 45,000
//! training rows against CIFAR-10's 10,000 test and three OOD sets' 1,000 queries, for D = 64
//! (WRN-10-1, the default network) and D = 640 (WRN-28-10, the paper's). A plain `Instant` loop,
//! best of `RUNS`.
//!
//! With `OODPIPE_KNN_FEATURES=<features.safetensors of features.softmax.cifar10>` it times the real
//! features instead (the 45,000 training rows against the 10,000 test and 5,000 validation rows:
//! what `fit.knn.cifar10` computes), prints one line `oodpipe <threads> <seconds>` per thread
//! count, and with `OODPIPE_KNN_OUT=<file>` writes the K-th squared distances of the test then
//! validation rows (little-endian f64): what `scripts/bench_knn.sh` compares with faiss and numpy.

use oodpipe_stages::detectors::knn::code::{normalise, scores};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

const TRAIN: i64 = 45_000;
const QUERIES: [(&str, i64); 4] = [("CIFAR-10 test", 10_000), ("OOD set 1", 1_000), ("OOD set 2", 1_000), ("OOD set 3", 1_000)];
const K: usize = 50;

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    tch::manual_seed(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Ok(path) = std::env::var("OODPIPE_KNN_FEATURES") {
        return real_features(&path, cores);
    }
    println!("KNN, exact, K = {K}: {TRAIN} training features against 10,000 + 3 x 1,000 test features");
    for (d, runs) in [(64i64, 3), (640, 1)] {
        let train = Tensor::randn([TRAIN, d], (Kind::Float, Device::Cpu)).relu();
        let queries: Vec<Tensor> = QUERIES.iter().map(|(_, n)| Tensor::randn([*n, d], (Kind::Float, Device::Cpu)).relu()).collect();
        for threads in [1, cores] {
            tch::set_num_threads(threads as i32);
            let mut checksum = 0.0;
            let t = time(runs, || {
                let normalised = normalise(&train);
                for q in &queries {
                    checksum += scores(&normalised, q, K).unwrap().iter().sum::<f64>();
                }
            });
            println!("D = {d:>3}, {threads} thread(s): {:>7.2} s (best of {runs}; checksum {checksum:.3})", t.as_secs_f64());
        }
    }
}

/// The fit's work on a real features file: normalising the training rows, then the test and
/// validation rows' K-th squared distances.
fn real_features(path: &str, cores: usize) {
    let named: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{path}: {e}")).into_iter().collect();
    let get = |name: &str| named.get(name).unwrap_or_else(|| panic!("{path} has no {name}")).shallow_clone();
    let (train, test, val) = (get("train_features"), get("test_features"), get("val_features"));
    let mut kth = Vec::new();
    for threads in [1, cores] {
        tch::set_num_threads(threads as i32);
        let t = time(3, || {
            let normalised = normalise(&train);
            kth = [&test, &val].iter().flat_map(|q| scores(&normalised, q, K).unwrap()).map(|s| -s).collect();
        });
        println!("oodpipe {threads} {:.3}", t.as_secs_f64());
    }
    if let Ok(out) = std::env::var("OODPIPE_KNN_OUT") {
        let bytes: Vec<u8> = kth.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&out, bytes).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
}
