//! The `train.<model>` stages: fit a [`Network`] to the CIFAR-10 training split with the paper's
//! recipe (SPEC.md "Model and training") or the CPU-sized variants the config allows (one-cycle
//! learning rate, label smoothing, channels-last), and save its weights.
//!
//! Everything random is seeded from `train.seed`: libtorch's generator (weight init) through
//! `tch::manual_seed`, and a ChaCha8 stream for the per-epoch shuffle and the augmentation, so the
//! same config trains the same network. A NaN or infinite loss stops the stage, naming the step.

use crate::config::{ModelKind, Schedule, TrainConfig};
use crate::ids::{self, files};
use crate::model::{Loss, Network, to_unit_range};
use crate::stage::{ProgressFn, StageContext};
use crate::tensors;
use anyhow::{Context, Result, bail, ensure};
use oodpipe_plan::view;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Reflect-padding of the training augmentation (SPEC.md: pad 4, random 32x32 crop, flip).
pub const AUGMENT_PAD: i64 = 4;

/// How often (in batches) training reports progress.
const PROGRESS_EVERY: usize = 10;

/// The learning rate of optimisation step `step` (0-based, counted over all epochs).
///
/// - Step: `lr * gamma^m`, m = the number of milestones (fractions of the epochs) already reached
///   by the step's epoch, e.g. epochs 100.. and 150.. of 200 for milestones 0.5 and 0.75.
/// - OneCycle: with W = round(warmup * total) warm-up steps, `lr * (step + 1) / W` for step < W,
///   then `lr * (total - step) / (total - W)`, a linear decay that reaches lr / (total - W) on
///   the last step.
pub fn learning_rate(cfg: &TrainConfig, step: usize, steps_per_epoch: usize) -> f64 {
    let total = cfg.epochs * steps_per_epoch;
    match cfg.schedule {
        Schedule::Step => {
            let epoch = (step / steps_per_epoch.max(1)) as f64;
            let reached = cfg.milestones.iter().filter(|&&m| epoch >= m * cfg.epochs as f64).count();
            cfg.lr * cfg.gamma.powi(reached as i32)
        }
        Schedule::OneCycle => {
            let warm = ((cfg.warmup * total as f64).round() as usize).min(total);
            if step < warm {
                cfg.lr * (step + 1) as f64 / warm as f64
            } else {
                cfg.lr * (total - step.min(total)) as f64 / (total - warm).max(1) as f64
            }
        }
    }
}

/// Reflect-pads images [B, C, H, W] (any dtype) by `pad`, crops the H x W window whose top-left
/// corner in the padded image is `offsets[b] = (dy, dx)` (each in 0..=2 pad), and mirrors it left
/// to right where `flips[b]`: the augmentation, with the random draws made explicit.
///
/// Done as two gathers with reflected indices, never materialising the padded batch.
pub fn pad_crop_flip(images: &Tensor, pad: i64, offsets: &[(i64, i64)], flips: &[bool]) -> Tensor {
    let size = images.size();
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    assert_eq!(offsets.len() as i64, b, "one offset per image");
    assert_eq!(flips.len() as i64, b, "one flip per image");
    assert!(pad < h && pad < w, "reflect padding must be smaller than the image");
    let reflect = |p: i64, n: i64| {
        let r = p - pad;
        if r < 0 {
            -r
        } else if r > n - 1 {
            2 * (n - 1) - r
        } else {
            r
        }
    };
    let mut rows = Vec::with_capacity((b * h) as usize);
    let mut cols = Vec::with_capacity((b * w) as usize);
    for (&(dy, dx), &flip) in offsets.iter().zip(flips) {
        assert!((0..=2 * pad).contains(&dy) && (0..=2 * pad).contains(&dx), "offset out of range");
        rows.extend((0..h).map(|i| reflect(dy + i, h)));
        cols.extend((0..w).map(|j| reflect(dx + if flip { w - 1 - j } else { j }, w)));
    }
    let device = images.device();
    let rows = Tensor::from_slice(&rows).to_device(device).view([b, 1, h, 1]).expand([b, c, h, w], false);
    let cols = Tensor::from_slice(&cols).to_device(device).view([b, 1, 1, w]).expand([b, c, h, w], false);
    images.gather(2, &rows, false).gather(3, &cols, false)
}

/// [`pad_crop_flip`] with offsets and flips drawn from `rng`.
pub fn random_pad_crop_flip(images: &Tensor, pad: i64, rng: &mut ChaCha8Rng) -> Tensor {
    let b = images.size()[0] as usize;
    let span = (2 * pad + 1) as u64;
    let offsets: Vec<(i64, i64)> = (0..b).map(|_| ((rng.next_u64() % span) as i64, (rng.next_u64() % span) as i64)).collect();
    let flips: Vec<bool> = (0..b).map(|_| rng.next_u32() & 1 == 1).collect();
    pad_crop_flip(images, pad, &offsets, &flips)
}

/// A uniformly random permutation of 0..n (Fisher-Yates).
pub fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// What one epoch did, as written to `train.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f64,
    /// Fraction of the (augmented) training images predicted right, in train mode.
    pub train_accuracy: f64,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Trains `net` in place on `images` ([N,3,H,W], u8 CIFAR bytes or f32 in [0,1], on the CPU) and
/// `labels` (i64 [N]) with the optimiser, schedule and augmentation of `cfg` and the model's
/// `loss` ([`Network::loss`], with the loss weights of its `methods.<model>` table).
pub fn train_network(
    net: &Network,
    images: &Tensor,
    labels: &Tensor,
    cfg: &TrainConfig,
    loss_of: &Loss,
    progress: ProgressFn,
) -> Result<Vec<EpochLog>> {
    let n = images.size()[0] as usize;
    ensure!(n > 0, "no training images");
    ensure!(labels.size() == [n as i64], "{} labels for {n} images", labels.numel());
    ensure!(cfg.batch_size > 0, "train.batch_size must be positive");
    let device = net.vs.device();
    let images = images.to_device(Device::Cpu);
    let labels = labels.to_device(Device::Cpu).to_kind(Kind::Int64);
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let mut opt =
        nn::Sgd { momentum: cfg.momentum, dampening: 0.0, wd: cfg.weight_decay, nesterov: cfg.nesterov }.build(&net.vs, cfg.lr)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut logs = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let started = Instant::now();
        let order = shuffled(n, &mut rng);
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0, 0i64, 0usize, cfg.lr);
        for (batch, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let step = epoch * steps_per_epoch + batch;
            lr = learning_rate(cfg, step, steps_per_epoch);
            let index = Tensor::from_slice(chunk);
            let mut x = images.index_select(0, &index);
            if cfg.augment {
                x = random_pad_crop_flip(&x, AUGMENT_PAD, &mut rng);
            }
            let x = to_unit_range(&x.to_device(device));
            let y = labels.index_select(0, &index).to_device(device);
            let out = net.forward(&x, true);
            let loss = loss_of(&out, &y, cfg.label_smoothing)?;
            let value = f64::try_from(&loss)?;
            if !value.is_finite() {
                bail!(
                    "training diverged: the loss is {value} at epoch {}/{} step {}/{steps_per_epoch} \
                     (learning rate {lr:.4}); try a lower train.lr",
                    epoch + 1,
                    cfg.epochs,
                    batch + 1,
                );
            }
            opt.set_lr(lr);
            opt.backward_step(&loss);
            loss_sum += value * chunk.len() as f64;
            correct += i64::try_from(out.logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64))?;
            seen += chunk.len();
            if (batch + 1) % PROGRESS_EVERY == 0 || batch + 1 == steps_per_epoch {
                progress(
                    (step + 1) as u64,
                    total_steps as u64,
                    &format!(
                        "epoch {}/{} loss {:.3} acc {:.1}% {:.0} img/s",
                        epoch + 1,
                        cfg.epochs,
                        loss_sum / seen as f64,
                        100.0 * correct as f64 / seen as f64,
                        seen as f64 / started.elapsed().as_secs_f64()
                    ),
                );
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        logs.push(EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            lr,
            seconds,
            images_per_second: seen as f64 / seconds,
        });
    }
    Ok(logs)
}

/// Fraction of `images` whose predicted class (argmax of the logits, eval mode) is `labels`.
pub fn accuracy(net: &Network, images: &Tensor, labels: &Tensor, batch: usize) -> Result<f64> {
    crate::outputs::accuracy_of(&net.eval_outputs(images, batch).logits, labels)
}

#[derive(Serialize)]
struct TrainReport<'a> {
    model: &'static str,
    depth: i64,
    widen: i64,
    parameters: i64,
    device: String,
    threads: i32,
    epochs: &'a [EpochLog],
    seconds: f64,
    val_accuracy: f64,
}

/// The `train.<model>` stage: `model.safetensors` (the weights) and `train.json` (the log).
pub fn run(ctx: &StageContext, model: ModelKind) -> Result<()> {
    let (network, config): (view::Network, view::Training) = (ctx.view()?, ctx.view()?);
    let data = ctx.input(&ids::cifar10_data(), &files::data(ids::CIFAR10))?;
    let mut split = tensors::read(data)?;
    let mut take = |name: &str| split.remove(name).with_context(|| format!("{} has no `{name}`", data.display()));
    let (train_images, train_labels) = (take("train_images")?, take("train_labels")?);
    let (val_images, val_labels) = (take("val_images")?, take("val_labels")?);

    tch::manual_seed(config.train.seed as i64);
    let net = Network::new(model, &network, ctx.tch_device())?;
    let loss = net.loss(&network)?;
    let started = Instant::now();
    let epochs = train_network(&net, &train_images, &train_labels, &config.train, &loss, ctx.progress)
        .with_context(|| format!("training the {} model", model.name()))?;
    let seconds = started.elapsed().as_secs_f64();
    let val_accuracy = accuracy(&net, &val_images, &val_labels, config.eval.batch_size)?;

    net.save(&ctx.output(files::MODEL))?;
    let report = TrainReport {
        model: model.name(),
        depth: network.model.depth,
        widen: network.model.widen,
        parameters: net.parameter_count(),
        device: ctx.device.to_string(),
        threads: tch::get_num_threads(),
        epochs: &epochs,
        seconds,
        val_accuracy,
    };
    std::fs::write(ctx.output(files::TRAIN_LOG), serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(())
}
