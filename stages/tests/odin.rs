//! ODIN and the temperature-scaled softmax score, checked against closed forms on explicit examples.

use oodpipe_stages::config::{Config, ModelKind};
use oodpipe_stages::methods::{odin, temperature};
use oodpipe_stages::model::{Loaded, Network, STD, normalise};
use oodpipe_stages::stage::StageContext;
use oodpipe_stages::tensors;
use oodpipe_stages::view;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// libtorch's random generator is process-wide, and the tests of this file run in parallel
/// threads: every test holds this lock for its whole body, so that no test's draws (weight
/// initialisation, `Tensor::rand`, VIB's sampling) interleave with another's and each test's
/// `tch::manual_seed` gives it the same numbers on every run.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn temperature_score_matches_the_two_class_closed_form() {
    let _rng = global_rng();
    let (a, b) = (3.0f64, 1.0f64);
    let logits = Tensor::from_slice(&[a as f32, b as f32, 0.0, 0.0, -2.0, 5.0]).view([3, 2]);
    for t in [1.0, 2.0, 10.0, 1000.0] {
        let got = temperature::max_softmax(&logits, t);
        assert!(close(got[0], 1.0 / (1.0 + ((b - a) / t).exp()), 1e-12), "T={t}: {got:?}");
        assert!(close(got[1], 0.5, 1e-15));
        assert!(close(got[2], 1.0 / (1.0 + (-7.0 / t).exp()), 1e-12));
    }
    // No overflow with huge logits, and f64 keeps 1 - 1e-10 apart from 1.
    let huge = Tensor::from_slice(&[1000.0f32, 0.0, 23.025_85, 0.0]).view([2, 2]);
    let got = temperature::max_softmax(&huge, 1.0);
    assert_eq!(got[0], 1.0);
    assert!(got[1] < 1.0 && close(1.0 - got[1], 1e-10, 1e-15), "{}", 1.0 - got[1]);
}

/// A linear "network" on 1 x 3 x 2 x 2 images: logits = W . x_normalised, 2 classes.
/// Class 0's and class 1's weights differ with a known sign per pixel; the last pixel of every
/// channel has zero weights, so its gradient is exactly 0.
fn linear_model() -> (Tensor, Vec<f32>) {
    let w0: Vec<f32> = vec![1.0, -1.0, 0.5, 0.0, 2.0, 0.0, -0.5, 0.0, -1.0, 1.0, 0.0, 0.0];
    let w1: Vec<f32> = vec![0.0, 0.5, -0.5, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, -1.0, 0.0, 0.0];
    let w = Tensor::from_slice(&[w0.clone(), w1.clone()].concat()).view([2, 12]);
    // sign of d CE / d x when class 0 is predicted: CE = -log p0, dCE/dx = -(1 - p0)(w0 - w1) / T,
    // so its sign is sign(w1 - w0), and +1 where w0 = w1 (gradient exactly 0).
    let sign: Vec<f32> = w0.iter().zip(&w1).map(|(a, b)| if b - a >= 0.0 { 1.0 } else { -1.0 }).collect();
    (w, sign)
}

fn image() -> Tensor {
    // Chosen so that class 0 is predicted.
    Tensor::from_slice(&[0.9f32, 0.2, 0.7, 0.5, 0.8, 0.1, 0.3, 0.5, 0.2, 0.6, 0.5, 0.5]).view([1, 3, 2, 2])
}

#[test]
fn odin_steps_against_the_gradient_sign_by_eps_pixels() {
    let _rng = global_rng();
    let (w, sign) = linear_model();
    let logits_of = |x: &Tensor| x.flatten(1, -1).matmul(&w.tr());
    let x = image();
    let logits = Vec::<f32>::try_from(logits_of(&normalise(&x)).flatten(0, -1)).unwrap();
    assert!(logits[0] > logits[1], "the example must predict class 0: {logits:?}");
    for (t, eps) in [(1.0, 0.002), (1000.0, 0.004)] {
        let perturbed = odin::perturb_fn(&logits_of, &x, t, eps);
        // In [0, 1] pixel units every pixel moves by exactly eps, against the gradient's sign.
        let delta = Vec::<f32>::try_from((&perturbed - &x).flatten(0, -1)).unwrap();
        for (i, (d, s)) in delta.iter().zip(&sign).enumerate() {
            assert!(close(*d as f64, -(eps * *s as f64), 1e-6), "T={t} pixel {i}: moved {d}, sign {s}");
        }
        // In normalised space the step is eps / std of the pixel's channel.
        let dn = Vec::<f32>::try_from((normalise(&perturbed) - normalise(&x)).flatten(0, -1)).unwrap();
        for (i, d) in dn.iter().enumerate() {
            assert!(close(*d as f64, -(eps * sign[i] as f64) / STD[i / 4], 1e-5), "normalised pixel {i}: {d}");
        }
    }
}

#[test]
fn odin_grid_shares_work_and_raises_the_predicted_class_score() {
    let _rng = global_rng();
    let (w, _) = linear_model();
    let logits_of = |x: &Tensor| x.flatten(1, -1).matmul(&w.tr());
    let x = Tensor::cat(&[image(), image().flip([3]), Tensor::full([1, 3, 2, 2], 0.5, (Kind::Float, Device::Cpu))], 0);
    let temps = [1.0, 10.0];
    let epsilons = [0.0, 0.001, 0.002];
    let calls = std::cell::Cell::new(0);
    let progress = |done: u64, total: u64, _: &str| {
        calls.set(calls.get() + 1);
        assert!(done <= total);
    };
    let grid = odin::grid_scores_fn(&logits_of, Device::Cpu, &x, &temps, &epsilons, 2, &progress);
    assert_eq!(calls.get(), 2, "one progress call per batch");
    assert_eq!((grid.len(), grid[0].len(), grid[0][0].len()), (2, 3, 3));
    let clean = logits_of(&normalise(&x));
    for (ti, &t) in temps.iter().enumerate() {
        // eps = 0 is the temperature-scaled baseline.
        let baseline = temperature::max_softmax(&clean, t);
        for i in 0..3 {
            assert!(close(grid[ti][0][i], baseline[i], 1e-7), "eps = 0 is Baseline+T");
        }
        for (ei, &eps) in epsilons.iter().enumerate() {
            for i in 0..3 {
                let single = odin::perturb_fn(&logits_of, &x.narrow(0, i, 1), t, eps);
                let want = temperature::max_softmax(&logits_of(&normalise(&single)), t)[0];
                assert!(close(grid[ti][ei][i as usize], want, 1e-6), "T={t} eps={eps} image {i}");
            }
            if ei > 0 {
                for i in 0..3 {
                    assert!(grid[ti][ei][i] > grid[ti][ei - 1][i], "score must rise with eps: {:?}", grid[ti]);
                }
            }
        }
    }
}

#[test]
fn odin_on_a_wide_resnet_matches_single_runs_and_batching() {
    let _rng = global_rng();
    let mut c = Config::default();
    c.model.depth = 10;
    c.model.widen = 1;
    c.train.channels_last = true;
    tch::manual_seed(3);
    let net = Loaded::Trained(Box::new(Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap()));
    let x = Tensor::rand([5, 3, 32, 32], (Kind::Float, Device::Cpu));
    let temps = [1.0, 100.0];
    let eps = [0.0, 0.004];
    let grid = odin::grid_scores(&net, &x, &temps, &eps, 2, &|_, _, _| {});
    let one_batch = odin::grid_scores(&net, &x, &temps, &eps, 5, &|_, _, _| {});
    for ti in 0..2 {
        for ei in 0..2 {
            let single = odin::scores(&net, &x, temps[ti], eps[ei], 3);
            for i in 0..5 {
                assert!(close(grid[ti][ei][i], single[i], 1e-6) && close(grid[ti][ei][i], one_batch[ti][ei][i], 1e-6));
            }
        }
        for (stepped, plain) in grid[ti][1].iter().zip(&grid[ti][0]).take(5) {
            assert!(stepped > plain, "a small step must raise the predicted class's score");
        }
    }
}

#[test]
fn cifar10_grid_stage_writes_the_grid() {
    let _rng = global_rng();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.model.depth = 10;
    c.model.widen = 1;
    c.eval.batch_size = 4;
    c.tune.temperatures = vec![1.0, 10.0, 1000.0];
    c.tune.odin_epsilons = vec![0.0, 0.002];
    tch::manual_seed(1);
    let net = Network::new(softmax(), &shape(&c, softmax()), Device::Cpu).unwrap();
    let weights = dir.path().join("model.safetensors");
    net.save(&weights).unwrap();
    let val = (Tensor::rand([6, 3, 32, 32], (Kind::Float, Device::Cpu)) * 255.0).to_kind(Kind::Uint8);
    let data = dir.path().join("cifar10.safetensors");
    tensors::write(&data, &[("val_images", &val)]).unwrap();
    let inputs = BTreeMap::from([
        ("train.softmax".to_string(), BTreeMap::from([("model.safetensors".to_string(), weights)])),
        ("data.cifar10".to_string(), BTreeMap::from([("cifar10.safetensors".to_string(), data)])),
    ]);
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // The params the plan declares for the stage: exactly what its code reads.
    let specs = oodpipe_stages::table::plan(&c).unwrap();
    let params = specs.into_iter().find(|s| s.id == "tune.odin.cifar10").unwrap().params;
    let ctx = |params, out_dir| StageContext {
        id: "tune.odin.cifar10",
        params,
        inputs: &inputs,
        sources: &[],
        out_dir,
        device: "cpu",
        progress: &|_, _, _| {},
    };
    oodpipe_stages::detector::prepare(&ctx(&params, &out_dir), "odin").unwrap();

    // Without one of them (as if the description did not declare what the code reads): refused
    // at the stage's start, naming the field and the detector's file; nothing written.
    let mut fewer = params.clone();
    fewer.remove("tune.odin_epsilons").unwrap();
    let none_dir = dir.path().join("none");
    std::fs::create_dir_all(&none_dir).unwrap();
    let err = format!("{:#}", oodpipe_stages::detector::prepare(&ctx(&fewer, &none_dir), "odin").unwrap_err());
    assert!(err.contains("tune.odin_epsilons") && err.contains("detectors/odin.rs") && err.contains("tune.odin.cifar10"), "{err}");
    assert!(std::fs::read_dir(&none_dir).unwrap().next().is_none());
    let grid = tensors::read(&out_dir.join("grid.safetensors")).unwrap();
    assert_eq!(grid["scores"].size(), [3, 2, 6]);
    assert_eq!(grid["scores"].kind(), Kind::Double);
    assert_eq!(Vec::<f64>::try_from(&grid["temperatures"]).unwrap(), c.tune.temperatures);
    assert_eq!(Vec::<f64>::try_from(&grid["epsilons"]).unwrap(), c.tune.odin_epsilons);
    let net = Loaded::Trained(Box::new(net));
    let direct = odin::scores(&net, &(val.to_kind(Kind::Float) / 255.0), 10.0, 0.002, 6);
    let stored = Vec::<f64>::try_from(grid["scores"].get(1).get(1)).unwrap();
    for (a, b) in direct.iter().zip(&stored) {
        assert!(close(*a, *b, 1e-6));
    }
}

/// The network's view of a config, as a stage of `kind` is given it.
fn shape(c: &Config, kind: ModelKind) -> view::Network {
    view::of_config(c, Some(kind)).unwrap()
}

/// The baseline model.
fn softmax() -> ModelKind {
    ModelKind::find("softmax").unwrap()
}
