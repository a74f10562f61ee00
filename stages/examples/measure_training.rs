//! Measures training speed and accuracy on the real CIFAR-10, to choose the CPU-sized default
//! config: trains a Wide-ResNet with the pipeline's own training loop on the first N training
//! images (read straight from the official binary batches, no data stage) and reports images/s,
//! minutes and the test accuracy.
//!
//! cargo run --release -p oodpipe-stages --example measure_training -- \
//!     depth=10 widen=1 epochs=10 schedule=one_cycle lr=0.2 warmup=0.2 smoothing=0.1 \
//!     channels_last=true threads=2 [train=45000] [batches=200] [data=data/cifar-10-batches-bin]
//!
//! `batches=B` times B batches of one epoch (on the first B x batch images) and skips testing.

use anyhow::{Context, Result, bail};
use oodpipe_stages::config::{Config, ModelKind, Schedule};
use oodpipe_stages::model::Network;
use oodpipe_stages::train;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const RECORD: usize = 1 + 3072;

/// Images u8 [N,3,32,32] and labels i64 [N] of official CIFAR-10 binary batch files.
fn read_batches(dir: &Path, files: &[&str]) -> Result<(Tensor, Tensor)> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let bytes = std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))?;
        if bytes.len() % RECORD != 0 {
            bail!("{f}: {} bytes is not a whole number of records", bytes.len());
        }
        for record in bytes.chunks(RECORD) {
            labels.push(record[0] as i64);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    let n = labels.len() as i64;
    Ok((Tensor::from_slice(&pixels).view([n, 3, 32, 32]), Tensor::from_slice(&labels)))
}

fn main() -> Result<()> {
    let args: BTreeMap<String, String> = std::env::args()
        .skip(1)
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), "true"));
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |k: &str, default: &str| args.get(k).cloned().unwrap_or_else(|| default.to_string());
    let threads: i32 = get("threads", "2").parse()?;
    tch::set_num_threads(threads);
    let mut config = Config::default();
    config.model.depth = get("depth", "10").parse()?;
    config.model.widen = get("widen", "1").parse()?;
    let t = &mut config.train;
    t.epochs = get("epochs", "1").parse()?;
    t.batch_size = get("batch", "128").parse()?;
    t.lr = get("lr", "0.1").parse()?;
    t.warmup = get("warmup", "0.2").parse()?;
    t.label_smoothing = get("smoothing", "0").parse()?;
    t.channels_last = get("channels_last", "false").parse()?;
    t.augment = get("augment", "true").parse()?;
    t.seed = get("seed", "0").parse()?;
    t.schedule = match get("schedule", "step").as_str() {
        "step" => Schedule::Step,
        "one_cycle" | "onecycle" => Schedule::OneCycle,
        other => bail!("schedule={other}: expected step or one_cycle"),
    };
    let dir = std::path::PathBuf::from(get("data", "data/cifar-10-batches-bin"));
    let train_count: i64 = get("train", "45000").parse()?;
    let timing_batches: Option<i64> = args.get("batches").map(|b| b.parse()).transpose()?;

    let (images, labels) =
        read_batches(&dir, &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"])?;
    let count = match timing_batches {
        Some(b) => (b * config.train.batch_size as i64).min(train_count),
        None => train_count,
    };
    let (images, labels) = (images.narrow(0, 0, count), labels.narrow(0, 0, count));
    let t = &config.train;
    println!(
        "WRN-{}-{} threads={threads} epochs={} batch={} schedule={:?} lr={} warmup={} smoothing={} channels_last={} augment={} train_images={count}",
        config.model.depth,
        config.model.widen,
        t.epochs,
        t.batch_size,
        t.schedule,
        t.lr,
        t.warmup,
        t.label_smoothing,
        t.channels_last,
        t.augment
    );
    tch::manual_seed(t.seed as i64);
    let net = Network::new(ModelKind::ALL[0], &oodpipe_stages::view::of_config(&config, Some(ModelKind::ALL[0]))?, Device::Cpu)?;
    let last_print = std::cell::Cell::new(Instant::now());
    let progress = |done: u64, total: u64, msg: &str| {
        if last_print.get().elapsed().as_secs() >= 30 || done == total {
            eprintln!("  [{done}/{total}] {msg}");
            last_print.set(Instant::now());
        }
    };
    let started = Instant::now();
    let logs = train::train_network(
        &net,
        &images,
        &labels,
        &config.train,
        &net.loss(&oodpipe_stages::view::of_config(&config, Some(ModelKind::ALL[0]))?)?,
        &progress,
    )?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    for l in &logs {
        println!(
            "epoch {:>3} loss {:.4} train_acc {:.2}% lr {:.4} {:.1}s {:.0} img/s",
            l.epoch,
            l.loss,
            100.0 * l.train_accuracy,
            l.lr,
            l.seconds,
            l.images_per_second
        );
    }
    let img_s = logs.iter().map(|l| l.images_per_second * l.seconds).sum::<f64>() / logs.iter().map(|l| l.seconds).sum::<f64>();
    if timing_batches.is_some() {
        println!("RESULT timing WRN-{}-{} channels_last={} {:.0} img/s", config.model.depth, config.model.widen, t.channels_last, img_s);
        return Ok(());
    }
    let (test_images, test_labels) = read_batches(&dir, &["test_batch.bin"])?;
    let eval_started = Instant::now();
    let acc = train::accuracy(&net, &test_images, &test_labels.to_kind(Kind::Int64), 500)?;
    println!(
        "RESULT WRN-{}-{} epochs={} schedule={:?} channels_last={} {:.0} img/s train {:.2} min test_accuracy {:.2}% (eval {:.1}s)",
        config.model.depth,
        config.model.widen,
        t.epochs,
        t.schedule,
        t.channels_last,
        img_s,
        minutes,
        100.0 * acc,
        eval_started.elapsed().as_secs_f64()
    );
    Ok(())
}
