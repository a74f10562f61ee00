//! The Wide-ResNet, its training loop and the train/outputs stages, on tiny networks and data.

use oodpipe_stages::config::{Config, ModelKind, Schedule, TrainConfig};
use oodpipe_stages::model::{self, Network, is_channels_last, normalise};
use oodpipe_stages::stage::StageContext;
use oodpipe_stages::view;
use oodpipe_stages::{outputs, tensors, train};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// libtorch's random generator is process-wide, and the tests of this file run in parallel
/// threads: every test holds this lock for its whole body, so that no test's draws (weight
/// initialisation, `Tensor::rand`, VIB's sampling) interleave with another's and each test's
/// `tch::manual_seed` gives it the same numbers on every run.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_config() -> Config {
    let mut c = Config { device: "cpu".into(), ..Config::default() };
    c.model.depth = 10;
    c.model.widen = 1;
    c.train.epochs = 1;
    c.train.batch_size = 8;
    c.eval.batch_size = 7;
    c
}

/// `n` images of `classes` classes that a network separates easily: each class has its own
/// colour, plus a little noise.
fn separable_images(n: i64, classes: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(classes);
    let palette = Tensor::from_slice(&[220.0f32, 40.0, 40.0, 40.0, 220.0, 40.0, 40.0, 40.0, 220.0, 128.0, 128.0, 128.0]).view([4, 3, 1, 1]);
    let base = palette.index_select(0, &labels).expand([n, 3, 32, 32], false);
    let noise = Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu)) * 20.0;
    ((base + noise).clamp(0.0, 255.0).to_kind(Kind::Uint8), labels)
}

/// A `data.cifar10` output with tiny splits, in `dir`.
fn write_cifar10(dir: &Path) -> PathBuf {
    let (train_x, train_y) = separable_images(24, 4, 1);
    let (val_x, val_y) = separable_images(9, 4, 2);
    let (test_x, test_y) = separable_images(11, 4, 3);
    let path = dir.join("cifar10.safetensors");
    tensors::write(
        &path,
        &[
            ("train_images", &train_x),
            ("train_labels", &train_y),
            ("val_images", &val_x),
            ("val_labels", &val_y),
            ("test_images", &test_x),
            ("test_labels", &test_y),
        ],
    )
    .unwrap();
    path
}

fn run_stage(
    id: &str,
    config: &Config,
    inputs: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    out_dir: &Path,
    f: impl Fn(&StageContext) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir).unwrap();
    let params = every_field(config);
    let ctx = StageContext { id, params: &params, inputs, sources: &[], out_dir, device: "cpu", progress: &|_, _, _| {} };
    f(&ctx)
}

fn outputs_of(pairs: &[(&str, &Path)]) -> BTreeMap<String, PathBuf> {
    pairs.iter().map(|(n, p)| (n.to_string(), p.to_path_buf())).collect()
}

#[test]
fn parameter_counts_match_the_published_wide_resnets() {
    let _rng = global_rng();
    // Zagoruyko & Komodakis, Table 1/2: WRN-16-4 2.7M, WRN-28-10 36.5M parameters.
    for (depth, widen, published, exact) in [(16, 4, 2.7e6, 2_748_890), (28, 10, 36.5e6, 36_479_194)] {
        let mut c = Config::default();
        c.model.depth = depth;
        c.model.widen = widen;
        let net = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap();
        let count = net.parameter_count();
        assert!(((count as f64 - published) / 1e5).abs() < 0.5, "WRN-{depth}-{widen}: {count} parameters");
        assert_eq!(count, exact, "WRN-{depth}-{widen} (the PyTorch WRN code's count)");
    }
}

#[test]
fn depth_must_be_6n_plus_4() {
    let _rng = global_rng();
    let mut c = tiny_config();
    c.model.depth = 12;
    let err = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("6n + 4"), "{err}");
}

#[test]
fn every_head_gives_prediction_logits_in_both_modes() {
    let _rng = global_rng();
    tch::manual_seed(2);
    let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    for &kind in ModelKind::ALL {
        tch::manual_seed(3);
        let net = Network::new(kind, &shape(&tiny_config(), kind), Device::Cpu).unwrap();
        for train in [false, true] {
            assert_eq!(net.forward(&x, train).logits.size(), [3, 10], "{kind:?}");
        }
    }
}

#[test]
fn output_shape_and_channels_last_give_the_same_logits() {
    let _rng = global_rng();
    let c = tiny_config();
    tch::manual_seed(7);
    let net = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap();
    let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let out = net.forward(&x, false);
    assert_eq!(out.logits.size(), [3, 10]);
    assert!(out.extras.is_empty());

    let mut c_last = c.clone();
    c_last.train.channels_last = true;
    tch::manual_seed(7);
    let net_last = Network::new(softmax(), &shape(&c_last, softmax()), Device::Cpu).unwrap();
    let conv_weights: Vec<Tensor> = net_last.vs.variables().into_values().filter(|t| t.dim() == 4).collect();
    assert!(!conv_weights.is_empty() && conv_weights.iter().all(is_channels_last));
    let logits_last = net_last.forward(&x, false).logits;
    let diff = f64::try_from((logits_last - &out.logits).abs().max()).unwrap();
    assert!(diff < 1e-4, "channels-last changes the logits by {diff}");
}

#[test]
fn normalisation_uses_the_wrn_mean_and_std() {
    let _rng = global_rng();
    let x = Tensor::from_slice(&[125.3f32 / 255.0, 0.0, 1.0]).view([1, 3, 1, 1]);
    let got = Vec::<f32>::try_from(normalise(&x).flatten(0, -1)).unwrap();
    let want = [0.0, -(123.0 / 62.1), (255.0 - 113.9) / 66.7];
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    let bytes = Tensor::from_slice(&[255u8, 0, 51]).view([1, 3, 1, 1]);
    let unit = Vec::<f32>::try_from(model::to_unit_range(&bytes).flatten(0, -1)).unwrap();
    assert_eq!(unit, vec![1.0, 0.0, 0.2]);
}

#[test]
fn step_schedule_drops_at_the_milestones() {
    let _rng = global_rng();
    let cfg = TrainConfig { epochs: 200, lr: 0.1, schedule: Schedule::Step, ..TrainConfig::default() };
    let spe = 352;
    let lr = |epoch: usize| train::learning_rate(&cfg, epoch * spe + 5, spe);
    assert!((lr(0) - 0.1).abs() < 1e-15);
    assert!((lr(99) - 0.1).abs() < 1e-15);
    assert!((lr(100) - 0.01).abs() < 1e-15);
    assert!((lr(149) - 0.01).abs() < 1e-15);
    assert!((lr(150) - 0.001).abs() < 1e-15);
    assert!((lr(199) - 0.001).abs() < 1e-15);
    // The epoch's last step still has the epoch's rate.
    assert!((train::learning_rate(&cfg, 100 * spe - 1, spe) - 0.1).abs() < 1e-15);
}

#[test]
fn one_cycle_schedule_warms_up_then_decays_linearly() {
    let _rng = global_rng();
    let cfg = TrainConfig { epochs: 10, lr: 0.2, warmup: 0.2, schedule: Schedule::OneCycle, ..TrainConfig::default() };
    let spe = 100; // 1000 steps, 200 of warm-up
    let lr = |step| train::learning_rate(&cfg, step, spe);
    assert!((lr(0) - 0.2 / 200.0).abs() < 1e-15);
    assert!((lr(99) - 0.2 * 100.0 / 200.0).abs() < 1e-15);
    assert!((lr(199) - 0.2).abs() < 1e-15);
    assert!((lr(200) - 0.2).abs() < 1e-15);
    assert!((lr(600) - 0.2 * 400.0 / 800.0).abs() < 1e-15);
    assert!((lr(999) - 0.2 / 800.0).abs() < 1e-15);
}

#[test]
fn augmentation_pads_by_reflection_crops_and_flips() {
    let _rng = global_rng();
    // One 1-channel 4x4 image with values 0..16 (row-major), pad 2.
    let img = Tensor::arange(16, (Kind::Int64, Device::Cpu)).view([1, 1, 4, 4]).to_kind(Kind::Uint8);
    let at = |dy, dx, flip| {
        let out = train::pad_crop_flip(&img, 2, &[(dy, dx)], &[flip]);
        assert_eq!(out.size(), [1, 1, 4, 4]);
        assert_eq!(out.kind(), Kind::Uint8);
        Vec::<u8>::try_from(out.flatten(0, -1)).unwrap()
    };
    // Offset (pad, pad) without a flip is the identity.
    assert_eq!(at(2, 2, false), (0..16).collect::<Vec<u8>>());
    // Top-left corner of the padded image: rows and columns reflected (2,1,0,1).
    // Reflect-padding [a b c d] by 2 gives [c b a b c d c b].
    assert_eq!(at(0, 0, false), vec![10, 9, 8, 9, 6, 5, 4, 5, 2, 1, 0, 1, 6, 5, 4, 5]);
    // Bottom-right corner: rows and columns (2,3,2,1).
    assert_eq!(at(4, 4, false), vec![10, 11, 10, 9, 14, 15, 14, 13, 10, 11, 10, 9, 6, 7, 6, 5]);
    // A flip mirrors the crop: identity crop flipped.
    assert_eq!(at(2, 2, true), vec![3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12]);
    // Shift down by one row and flip: rows 1,2,3,2; columns 3,2,1,0.
    assert_eq!(at(3, 2, true), vec![7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 11, 10, 9, 8]);
    // Batched: each image gets its own window; all channels share it.
    let batch = Tensor::cat(&[&img, &(&img + 16)], 1).repeat([2, 1, 1, 1]); // [2, 2, 4, 4]
    let out = train::pad_crop_flip(&batch, 2, &[(2, 2), (0, 0)], &[true, false]);
    let first = Vec::<u8>::try_from(out.get(0).get(1).flatten(0, -1)).unwrap();
    assert_eq!(first, at(2, 2, true).iter().map(|v| v + 16).collect::<Vec<u8>>());
    let second = Vec::<u8>::try_from(out.get(1).get(0).flatten(0, -1)).unwrap();
    assert_eq!(second, at(0, 0, false));
}

#[test]
fn shuffle_is_a_seeded_permutation() {
    let _rng = global_rng();
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    let a = train::shuffled(100, &mut ChaCha8Rng::seed_from_u64(3));
    let b = train::shuffled(100, &mut ChaCha8Rng::seed_from_u64(3));
    assert_eq!(a, b);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<i64>>());
    assert_ne!(a, sorted);
}

#[test]
fn a_tiny_network_learns_separable_images() {
    let _rng = global_rng();
    let mut c = tiny_config();
    c.train.epochs = 6;
    c.train.batch_size = 16;
    c.train.lr = 0.05;
    c.train.augment = false;
    c.train.schedule = Schedule::OneCycle;
    let (x, y) = separable_images(64, 4, 5);
    tch::manual_seed(0);
    let net = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap();
    let before = train::accuracy(&net, &x, &y, 32).unwrap();
    let logs = train::train_network(&net, &x, &y, &c.train, &net.loss(&shape(&c, softmax())).unwrap(), &|_, _, _| {}).unwrap();
    assert_eq!(logs.len(), 6);
    let (first, last) = (&logs[0], &logs[5]);
    assert!(last.loss < first.loss * 0.5, "loss {} -> {}", first.loss, last.loss);
    assert!(last.train_accuracy > first.train_accuracy, "{} -> {}", first.train_accuracy, last.train_accuracy);
    let after = train::accuracy(&net, &x, &y, 32).unwrap();
    assert!(after >= 0.9 && after > before, "accuracy {before} -> {after}");
}

#[test]
fn train_and_outputs_stages_end_to_end() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let cifar = write_cifar10(dir.path());
    let mut config = tiny_config();
    config.train.channels_last = true;
    config.train.label_smoothing = 0.1;
    let inputs = BTreeMap::from([("data.cifar10".to_string(), outputs_of(&[("cifar10.safetensors", &cifar)]))]);
    let train_dir = dir.path().join("train");
    run_stage("train.softmax", &config, &inputs, &train_dir, |ctx| train::run(ctx, softmax())).unwrap();
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(train_dir.join("train.json")).unwrap()).unwrap();
    assert_eq!(log["epochs"].as_array().unwrap().len(), 1);
    for key in ["loss", "train_accuracy", "lr", "seconds", "images_per_second"] {
        assert!(log["epochs"][0][key].is_f64(), "train.json epoch lacks {key}: {log}");
    }
    let val_accuracy = log["val_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&val_accuracy));

    // Same config, same weights.
    let again = dir.path().join("again");
    run_stage("train.softmax", &config, &inputs, &again, |ctx| train::run(ctx, softmax())).unwrap();
    let (w1, w2) = (tensors::read(&train_dir.join("model.safetensors")).unwrap(), tensors::read(&again.join("model.safetensors")).unwrap());
    assert_eq!(w1.keys().collect::<Vec<_>>(), w2.keys().collect::<Vec<_>>());
    for (name, t) in &w1 {
        assert!(t.equal(&w2[name]), "training is not deterministic: {name} differs");
    }

    let mut inputs = inputs.clone();
    inputs.insert("train.softmax".into(), outputs_of(&[("model.safetensors", &train_dir.join("model.safetensors"))]));
    let out_dir = dir.path().join("outputs");
    run_stage("outputs.softmax.cifar10", &config, &inputs, &out_dir, |ctx| outputs::run(ctx, softmax(), "cifar10")).unwrap();
    let out = tensors::read(&out_dir.join("outputs.safetensors")).unwrap();
    assert_eq!(out["val_logits"].size(), [9, 10]);
    assert_eq!(out["test_logits"].size(), [11, 10]);
    assert_eq!(out["test_logits"].kind(), Kind::Float);
    let acc: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("accuracy.json")).unwrap()).unwrap();
    assert!((acc["val_accuracy"].as_f64().unwrap() - val_accuracy).abs() < 1e-12);
    assert!(acc["test_accuracy"].is_f64());

    // The saved weights reload into a network (either memory format) giving the same logits.
    config.train.channels_last = false;
    let net = Network::load(&train_dir.join("model.safetensors"), softmax(), &shape(&config, softmax()), Device::Cpu).unwrap();
    let val = tensors::read_one(&cifar, "val_images").unwrap();
    let logits = net.eval_outputs(&val, 4).logits;
    let diff = f64::try_from((logits - &out["val_logits"]).abs().max()).unwrap();
    assert!(diff < 1e-4, "reloaded logits differ by {diff}");

    // An OOD set: f32 images in [0, 1], no labels, no accuracy.json.
    let ood = dir.path().join("gaussian.safetensors");
    let (v, t) = (Tensor::rand([5, 3, 32, 32], (Kind::Float, Device::Cpu)), Tensor::rand([6, 3, 32, 32], (Kind::Float, Device::Cpu)));
    tensors::write(&ood, &[("val_images", &v), ("test_images", &t)]).unwrap();
    inputs.insert("data.gaussian".into(), outputs_of(&[("gaussian.safetensors", &ood)]));
    let ood_dir = dir.path().join("ood");
    run_stage("outputs.softmax.gaussian", &config, &inputs, &ood_dir, |ctx| outputs::run(ctx, softmax(), "gaussian")).unwrap();
    let out = tensors::read(&ood_dir.join("outputs.safetensors")).unwrap();
    assert_eq!((out["val_logits"].size(), out["test_logits"].size()), (vec![5, 10], vec![6, 10]));
    assert!(!ood_dir.join("accuracy.json").exists());
}

#[test]
fn a_diverging_loss_stops_training_naming_the_step() {
    let _rng = global_rng();
    let mut c = tiny_config();
    c.train.lr = 1e30;
    c.train.epochs = 2;
    c.train.augment = false;
    let (x, y) = separable_images(32, 4, 9);
    tch::manual_seed(0);
    let net = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap();
    let err =
        train::train_network(&net, &x, &y, &c.train, &net.loss(&shape(&c, softmax())).unwrap(), &|_, _, _| {}).unwrap_err().to_string();
    assert!(err.contains("epoch") && err.contains("step") && err.contains("diverged"), "{err}");
}

/// The network's view of a config, as a stage of `kind` is given it.
fn shape(c: &Config, kind: ModelKind) -> view::Network {
    view::of_config(c, Some(kind)).unwrap()
}

/// Every field of a config as a stage's params: the stage functions take the views they need.
fn every_field(c: &Config) -> view::Params {
    view::leaves(&serde_json::to_value(c).unwrap())
}

/// The baseline model.
fn softmax() -> ModelKind {
    ModelKind::find("softmax").unwrap()
}
