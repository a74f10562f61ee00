//! Times KNN's exact scoring (`detectors/knn.rs`) at the default run's size: 45,000 training
//! features against CIFAR-10's 10,000 test features and three OOD sets' 1,000 each, for D = 64
//! (WRN-10-1, the default network) and D = 640 (WRN-28-10, the paper's), with one thread (what
//! the pipeline's KNN stages get: they do not run the network) and with every core.
//!
//! `cargo bench -p oodpipe-stages --bench knn` (release build). Features are ReLU-like random
//! numbers (the timing depends only on the sizes). A plain `Instant` loop, best of `RUNS`.

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
    println!(
        "KNN, exact, K = {K}: {TRAIN} training features against 10,000 + 3 x 1,000 test features (f64 distances, blocks of 256 queries)"
    );
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
