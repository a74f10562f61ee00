//! The BIN, BINC, VIB and VIBY losses against finite differences (in f64), MMCE against a direct
//! evaluation with plain loops, the closed-form KL against Monte Carlo, the heads end to end on a
//! batch, and the scores of the four models.

use oodpipe_stages::config::{Config, ModelKind};
use oodpipe_stages::methods::{kl, sigmoid};
use oodpipe_stages::model::head::{Head, Loss, Table, smoothed_cross_entropy};
use oodpipe_stages::model::losses::{at_labels, binc_loss, gaussian_kl, gaussian_kl_per_class, posterior, vib_loss, weighted_bce};
use oodpipe_stages::model::mmce::{binary_mmce_sum, mmce, mmce_columns};
use oodpipe_stages::{model, view};
use tch::{Device, Kind, Tensor, nn};

/// libtorch's random generator is process-wide, and the tests of this file run in parallel
/// threads: every test holds this lock for its whole body, so that no test's draws (weight
/// initialisation, `Tensor::rand`, VIB's sampling) interleave with another's and each test's
/// `tch::manual_seed` gives it the same numbers on every run.
fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).contiguous().view([-1])).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t).unwrap()
}

/// N(0, 1) draws in f64 from a local generator (splitmix64 + Box-Muller), so that tests running
/// in parallel never share libtorch's global one.
fn randn(shape: &[i64], seed: i64) -> Tensor {
    let mut state = seed as u64 ^ 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let n: i64 = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|_| {
            let (u, v) = (1.0 - uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
        .collect();
    Tensor::from_slice(&values).view(shape)
}

/// A parameter of a finite-difference check: its name, shape and values.
#[derive(Clone)]
struct Param {
    name: &'static str,
    shape: Vec<i64>,
    values: Vec<f64>,
}

impl Param {
    fn new(name: &'static str, t: &Tensor) -> Param {
        Param { name, shape: t.size(), values: vec(t) }
    }
    fn tensor(&self) -> Tensor {
        Tensor::from_slice(&self.values).view(self.shape.as_slice())
    }
}

/// Compares the autograd gradient of the scalar `f(params)` with central differences (step 1e-6)
/// for every entry of every parameter; panics when max |autograd - numeric| / max |autograd|
/// exceeds 1e-5 for a parameter. Returns the worst relative error.
fn check_gradients(params: &[Param], f: impl Fn(&[Tensor]) -> Tensor) -> f64 {
    let leaves: Vec<Tensor> = params.iter().map(|p| p.tensor().set_requires_grad(true)).collect();
    let loss = f(&leaves);
    assert!(scalar(&loss).is_finite(), "the loss is {}", scalar(&loss));
    let grads = Tensor::run_backward(&[loss], &leaves, false, false);
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for (i, p) in params.iter().enumerate() {
        let auto = vec(&grads[i]);
        let mut numeric = Vec::with_capacity(p.values.len());
        for j in 0..p.values.len() {
            let eval = |delta: f64| {
                let _no_grad = tch::no_grad_guard();
                let inputs: Vec<Tensor> = params
                    .iter()
                    .enumerate()
                    .map(|(k, q)| {
                        let mut q = q.clone();
                        if k == i {
                            q.values[j] += delta;
                        }
                        q.tensor()
                    })
                    .collect();
                scalar(&f(&inputs))
            };
            numeric.push((eval(h) - eval(-h)) / (2.0 * h));
        }
        let scale = auto.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1e-8, "{}: the gradient is zero", p.name);
        let err = auto.iter().zip(&numeric).fold(0.0f64, |m, (a, n)| m.max((a - n).abs())) / scale;
        assert!(err < 1e-5, "{}: relative error {err:e}\nautograd {auto:?}\nnumeric  {numeric:?}", p.name);
        worst = worst.max(err);
    }
    worst
}

fn labels(values: &[i64]) -> Tensor {
    Tensor::from_slice(values)
}

/// Logits [n, c] from N(0, scale^2) pushed away from 0 (|p| >= 0.3), so that neither the
/// correctness of a binary classifier nor |p| has a kink within a finite-difference step.
fn logits_away_from_zero(n: i64, c: i64, scale: f64, seed: i64) -> Tensor {
    let x = randn(&[n, c], seed) * scale;
    &x + x.sign() * 0.3
}

// ---------------------------------------------------------------------------------------------
// MMCE

fn laplacian(a: f64, b: f64) -> f64 {
    (-(a - b).abs() / 0.4).exp()
}

/// SPEC.md's weighted MMCE estimator with plain loops.
fn mmce_direct(r: &[f64], correct: &[bool]) -> f64 {
    let m = correct.iter().filter(|&&c| c).count() as f64;
    let n = correct.len() as f64 - m;
    if m == 0.0 || n == 0.0 {
        return 0.0;
    }
    let (mut cc, mut ii, mut ci) = (0.0, 0.0, 0.0);
    for i in 0..r.len() {
        for j in 0..r.len() {
            let k = laplacian(r[i], r[j]);
            match (correct[i], correct[j]) {
                (true, true) => cc += (1.0 - r[i]) * (1.0 - r[j]) * k,
                (false, false) => ii += r[i] * r[j] * k,
                (true, false) => ci += (1.0 - r[i]) * r[j] * k,
                (false, true) => {}
            }
        }
    }
    let mmd = cc / (m * m + 1e-5) + ii / (n * n + 1e-5) - 2.0 * ci / (m * n + 1e-5);
    (mmd + 1e-10).sqrt()
}

fn mmce_of(r: &[f64], correct: &[bool]) -> f64 {
    let c: Vec<f64> = correct.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    scalar(&mmce(&Tensor::from_slice(r), &Tensor::from_slice(&c)))
}

#[test]
fn mmce_matches_a_direct_evaluation_on_known_batches() {
    let _rng = global_rng();
    let batches: Vec<(Vec<f64>, Vec<bool>)> = vec![
        (vec![0.9, 0.8, 0.6, 0.95, 0.55], vec![true, true, false, true, false]),
        (vec![0.99, 0.51, 0.7], vec![false, true, true]),
        (vec![0.6, 0.6, 0.6, 0.6], vec![true, false, true, false]),
        (vec![0.52, 0.97, 0.88, 0.61, 0.75, 0.99, 0.5, 0.83], vec![true, true, false, false, true, true, false, true]),
    ];
    for (r, c) in &batches {
        let (ours, direct) = (mmce_of(r, c), mmce_direct(r, c));
        assert!((ours - direct).abs() < 1e-12, "r {r:?} c {c:?}: {ours} vs {direct}");
        assert!(direct > 1e-5, "a batch that exercises every term: {direct}");
    }
    // A perfectly calibrated-looking batch is not the point; a batch with no incorrect example
    // or no correct example gives 0 (and no NaN).
    assert_eq!(mmce_of(&[0.9, 0.7, 0.6], &[true, true, true]), 0.0);
    assert_eq!(mmce_of(&[0.9, 0.7, 0.6], &[false, false, false]), 0.0);
    assert_eq!(mmce_direct(&[0.9, 0.7, 0.6], &[true, true, true]), 0.0);

    // Columns are independent classifiers.
    let r = Tensor::from_slice(&[0.9, 0.6, 0.8, 0.7, 0.55, 0.95]).view([3, 2]);
    let c = Tensor::from_slice(&[1.0, 1.0, 0.0, 1.0, 1.0, 1.0]).view([3, 2]);
    let cols = vec(&mmce_columns(&r, &c));
    assert!((cols[0] - mmce_direct(&[0.9, 0.8, 0.55], &[true, false, true])).abs() < 1e-12);
    assert_eq!(cols[1], 0.0);
}

#[test]
fn binary_mmce_sums_the_classifiers_with_r_max_s_1_minus_s() {
    let _rng = global_rng();
    let (n, c) = (12, 4);
    let logits = logits_away_from_zero(n, c, 1.5, 11);
    let y = labels(&[0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 1, 3]);
    let p = vec(&logits);
    let yv = vec(&y);
    let mut expected = 0.0;
    for k in 0..c as usize {
        let mut r = Vec::new();
        let mut correct = Vec::new();
        for i in 0..n as usize {
            let s = 1.0 / (1.0 + (-p[i * c as usize + k]).exp());
            r.push(s.max(1.0 - s));
            correct.push((s > 0.5) == (yv[i] as usize == k));
        }
        expected += mmce_direct(&r, &correct);
    }
    let ours = scalar(&binary_mmce_sum(&logits, &y));
    assert!(expected > 0.01);
    assert!((ours - expected).abs() < 1e-12, "{ours} vs {expected}");
}

// ---------------------------------------------------------------------------------------------
// BIN and BINC

#[test]
fn weighted_bce_is_its_formula_and_its_gradient_is_right() {
    let _rng = global_rng();
    let logits = randn(&[5, 4], 1) * 2.0;
    let y = labels(&[0, 3, 1, 1, 2]);
    let zeta = 0.05;
    let (p, yv) = (vec(&logits), vec(&y));
    // The formula written out in plain f64, with the smoothed targets t = (1 - a) onehot + a / C.
    for smoothing in [0.0, 0.1, 0.3] {
        let mut total = 0.0;
        for i in 0..5 {
            for k in 0..4 {
                let s = 1.0 / (1.0 + (-p[i * 4 + k]).exp());
                let is_label = yv[i] as usize == k;
                let t = if is_label { 1.0 - smoothing + smoothing / 4.0 } else { smoothing / 4.0 };
                let w = if is_label { 1.0 } else { zeta };
                total += w * (-t * s.ln() - (1.0 - t) * (1.0 - s).ln());
            }
        }
        let ours = scalar(&weighted_bce(&logits, &y, zeta, smoothing));
        assert!((ours - total / 5.0).abs() < 1e-12, "smoothing {smoothing}: {ours} vs {}", total / 5.0);
        let worst = check_gradients(&[Param::new("logits", &logits)], |t| weighted_bce(&t[0], &y, zeta, smoothing));
        eprintln!("weighted BCE (smoothing {smoothing}): worst relative error {worst:e}");
    }

    // Stable for saturated logits: no infinity, the loss of a confident mistake grows linearly.
    let extreme = Tensor::from_slice(&[200.0, -200.0]).view([1, 2]);
    let v = scalar(&weighted_bce(&extreme, &labels(&[1]), 1.0, 0.0));
    assert!((v - 400.0).abs() < 1e-9, "{v}");
}

#[test]
fn binc_loss_with_mmce_has_the_right_gradient() {
    let _rng = global_rng();
    let (n, c) = (10, 4);
    let soft = randn(&[n, c], 2);
    let bin = logits_away_from_zero(n, c, 1.5, 3);
    let y = labels(&[0, 1, 2, 3, 0, 1, 2, 3, 2, 1]);
    let (zeta, lambda, smoothing) = (0.05, 0.5, 0.1);
    let mmce_part = scalar(&binary_mmce_sum(&bin, &y));
    assert!(mmce_part > 0.01, "the batch exercises MMCE: {mmce_part}");
    let total = scalar(&binc_loss(&soft, &bin, &y, zeta, lambda, smoothing));
    let parts =
        scalar(&smoothed_cross_entropy(&soft, &y, smoothing)) + scalar(&weighted_bce(&bin, &y, zeta, smoothing)) + lambda * mmce_part;
    assert!((total - parts).abs() < 1e-12);

    let worst = check_gradients(&[Param::new("softmax logits", &soft), Param::new("bin logits", &bin)], |t| {
        binc_loss(&t[0], &t[1], &y, zeta, lambda, smoothing)
    });
    eprintln!("BINC: worst relative error {worst:e}");
    // MMCE alone, so that its gradient is not hidden behind the larger BCE's.
    check_gradients(&[Param::new("bin logits", &bin)], |t| binary_mmce_sum(&t[0], &y));
}

// ---------------------------------------------------------------------------------------------
// VIB and VIBY

/// The VIB/VIBY loss with a fixed eps, from (mu, rho), the decoder and the prior(s).
fn vib_objective(t: &[Tensor], eps: &Tensor, y: &Tensor, beta: f64, per_class: bool) -> Tensor {
    let (encoded, w, b, prior_mean, prior_log_std) = (&t[0], &t[1], &t[2], &t[3], &t[4]);
    let (mu, sigma) = posterior(encoded);
    let sampled_logits = (&mu + &sigma * eps).matmul(w) + b;
    let kl = if per_class {
        at_labels(&gaussian_kl_per_class(&mu, &sigma, prior_mean, prior_log_std), y)
    } else {
        gaussian_kl(&mu, &sigma, prior_mean, prior_log_std)
    };
    vib_loss(&sampled_logits, y, &kl, beta, 0.1)
}

fn vib_params(n: i64, z: i64, c: i64, prior_rows: Option<i64>, seed: i64) -> Vec<Param> {
    // rho around 5 so that sigma = softplus(rho - 5) spans ~0.2..2, where every term matters.
    let mu = randn(&[n, z], seed);
    let rho = randn(&[n, z], seed + 1) + 5.0;
    let prior_shape: Vec<i64> = prior_rows.into_iter().chain([z]).collect();
    vec![
        Param::new("mu, rho", &Tensor::cat(&[mu, rho], 1)),
        Param::new("decoder weight", &(randn(&[z, c], seed + 2) * 0.5)),
        Param::new("decoder bias", &(randn(&[c], seed + 3) * 0.1)),
        Param::new("prior mean", &(randn(&prior_shape, seed + 4) * 0.5)),
        Param::new("prior log-std", &(randn(&prior_shape, seed + 5) * 0.3)),
    ]
}

#[test]
fn vib_loss_with_a_fixed_eps_has_the_right_gradient() {
    let _rng = global_rng();
    let (n, z, c) = (6, 3, 4);
    let params = vib_params(n, z, c, None, 20);
    let eps = randn(&[n, z], 30);
    let y = labels(&[0, 1, 2, 3, 1, 0]);
    let worst = check_gradients(&params, |t| vib_objective(t, &eps, &y, 0.5, false));
    eprintln!("VIB: worst relative error {worst:e}");
}

#[test]
fn viby_loss_with_a_fixed_eps_has_the_right_gradient() {
    let _rng = global_rng();
    let (n, z, c) = (6, 3, 4);
    // Every class appears, so every class's prior gets a gradient.
    let params = vib_params(n, z, c, Some(c), 40);
    let eps = randn(&[n, z], 50);
    let y = labels(&[0, 1, 2, 3, 1, 3]);
    let worst = check_gradients(&params, |t| vib_objective(t, &eps, &y, 0.5, true));
    eprintln!("VIBY: worst relative error {worst:e}");
}

#[test]
fn closed_form_kl_matches_monte_carlo() {
    let _rng = global_rng();
    let mu = Tensor::from_slice(&[0.3, -1.2, 2.0]);
    let sigma = Tensor::from_slice(&[0.5, 1.5, 0.2]);
    let prior_mean = Tensor::from_slice(&[0.0, -0.5, 1.0]);
    let prior_log_std = Tensor::from_slice(&[0.0, 0.4, -0.3]);
    let closed = scalar(&gaussian_kl(&mu.unsqueeze(0), &sigma.unsqueeze(0), &prior_mean, &prior_log_std).squeeze());

    let samples = 200_000;
    let x = &mu + &sigma * randn(&[samples, 3], 60);
    let log_density = |x: &Tensor, mean: &Tensor, std: &Tensor| {
        (-((x - mean) / std).square() * 0.5 - std.log() - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum_dim_intlist(-1, false, Kind::Double)
    };
    let log_ratio = log_density(&x, &mu, &sigma) - log_density(&x, &prior_mean, &prior_log_std.exp());
    let estimate = scalar(&log_ratio.mean(Kind::Double));
    let stderr = scalar(&log_ratio.std(true)) / (samples as f64).sqrt();
    eprintln!("KL closed form {closed}, Monte Carlo {estimate} +- {stderr}");
    assert!((closed - estimate).abs() < 4.0 * stderr, "closed {closed} vs MC {estimate} +- {stderr}");
    assert!(stderr < 0.01 * closed);

    // Per-class priors: row y of the [N, C] matrix is the KL against prior y.
    let priors_mean = Tensor::stack(&[prior_mean.shallow_clone(), prior_mean.zeros_like()], 0);
    let priors_log_std = Tensor::stack(&[prior_log_std.shallow_clone(), prior_log_std.zeros_like()], 0);
    let per_class = vec(&gaussian_kl_per_class(&mu.unsqueeze(0), &sigma.unsqueeze(0), &priors_mean, &priors_log_std));
    let standard = scalar(&gaussian_kl(&mu.unsqueeze(0), &sigma.unsqueeze(0), &mu.zeros_like(), &mu.zeros_like()).squeeze());
    assert!((per_class[0] - closed).abs() < 1e-12 && (per_class[1] - standard).abs() < 1e-12);
    // KL of a distribution against itself is 0.
    let same = scalar(&gaussian_kl(&mu.unsqueeze(0), &sigma.unsqueeze(0), &mu, &sigma.log()).squeeze());
    assert!(same.abs() < 1e-12, "{same}");
}

// ---------------------------------------------------------------------------------------------
// The heads

/// Model `name`'s head on features of size 8 (its latent space, if it has one, of size 5) and its
/// loss with its default weights, made by its code in `models/` from its table.
fn head_and_loss(vs: &nn::VarStore, name: &str) -> (Box<dyn Head>, Loss) {
    let kind = ModelKind::find(name).unwrap();
    let mut c = Config::default();
    if let Some(table) = c.methods.0.get_mut(name).filter(|t| t.get("z").is_some()) {
        table["z"] = serde_json::json!(5);
    }
    let network: view::Network = view::of_config_for_training(&c, kind).unwrap();
    let table = Table { model: kind, fields: network.table(kind) };
    let code = model::code(kind).unwrap();
    (code.head(vs.root() / "head", 8, &table).unwrap(), code.loss(&table).unwrap())
}

/// The models with a head of their own (all but softmax).
const NEW_HEADS: [&str; 4] = ["bin", "binc", "vib", "viby"];

#[test]
fn every_new_head_trains_with_finite_loss_and_gradients_reaching_every_variable() {
    let _rng = global_rng();
    tch::manual_seed(0);
    let features = Tensor::randn([16, 8], (Kind::Float, Device::Cpu));
    let y = Tensor::arange(16, (Kind::Int64, Device::Cpu)).remainder(10);
    for kind in NEW_HEADS {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let (head, loss_of) = head_and_loss(&vs, kind);
        let out = head.forward_t(&features, true);
        assert_eq!(out.logits.size(), [16, 10]);
        let loss = loss_of(&out, &y, 0.1).unwrap();
        assert!(scalar(&loss).is_finite(), "{kind:?}");
        loss.backward();
        for (name, var) in vs.variables() {
            let g = var.grad();
            assert!(g.defined(), "{kind:?}: no gradient for {name}");
            let norm = scalar(&g.abs().sum(Kind::Double));
            assert!(norm.is_finite() && norm > 0.0, "{kind:?}: gradient of {name} is {norm}");
        }

        let eval = head.forward_t(&features, false);
        let names: Vec<&str> = eval.extras.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ModelKind::find(kind).unwrap().model().extras, "{kind}: the extras its description declares");
        match kind {
            "bin" => assert!(names.is_empty()),
            "binc" => assert_eq!((names, eval.extra("bin_logits").unwrap().size()), (vec!["bin_logits"], vec![16, 10])),
            _ => {
                let kl = eval.extra("kl").unwrap();
                assert_eq!(names, vec!["kl"]);
                assert_eq!(kl.kind(), Kind::Double, "the KL the scores use is f64");
                assert_eq!(kl.size(), if kind == "vib" { vec![16] } else { vec![16, 10] });
                assert!(scalar(&kl.min()) >= 0.0);
                // Prediction logits are the decoder at mu in both modes; training samples.
                let diff = scalar(&(&out.logits - &eval.logits).abs().max());
                assert!(diff < 1e-5, "{kind:?}: train-mode logits are not the decoder at mu ({diff})");
                let sampled = out.extra("sampled_logits").unwrap();
                assert!(scalar(&(sampled - &out.logits).abs().max()) > 0.0);
            }
        }
    }
}

#[test]
fn a_nan_in_the_features_gives_a_nan_loss_the_training_loop_refuses() {
    let _rng = global_rng();
    // train.rs stops on a non-finite loss; every head must propagate a NaN rather than hide it.
    let mut values = vec![0.5f32; 32];
    values[3] = f32::NAN;
    let features = Tensor::from_slice(&values).view([4, 8]);
    let y = labels(&[0, 1, 2, 3]);
    for kind in NEW_HEADS {
        let vs = nn::VarStore::new(Device::Cpu);
        let (head, loss_of) = head_and_loss(&vs, kind);
        let loss = loss_of(&head.forward_t(&features, true), &y, 0.0).unwrap();
        assert!(scalar(&loss).is_nan(), "{kind:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scores

#[test]
fn bin_scores_are_log_max_sigmoid_without_saturation() {
    let _rng = global_rng();
    for x in [-30.0f64, -3.0, -0.5, 0.0, 0.7, 4.0, 15.0] {
        let naive = (1.0 / (1.0 + (-x).exp())).ln();
        assert!((sigmoid::log_sigmoid(x) - naive).abs() < 1e-12, "{x}");
    }
    let logits = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 40.0, 50.0, 0.0, -60.0, -70.0, -65.0]).view([3, 3]);
    let s = sigmoid::max_log_sigmoid(&logits);
    assert!((s[0] - sigmoid::log_sigmoid(3.0)).abs() < 1e-15);
    // s(40) and s(50) are both 1.0 in f32 and in f64; their logs still order them.
    assert!(s[1] > s[0] && s[1] < 0.0 && s[1] > -1e-17);
    let logits2 = Tensor::from_slice(&[40.0f32, 0.0]).view([1, 2]);
    assert!(sigmoid::max_log_sigmoid(&logits2)[0] < s[1]);
    assert!((s[2] - sigmoid::log_sigmoid(-60.0)).abs() < 1e-12);
}

#[test]
fn vib_and_viby_scores_are_minus_kl_forms() {
    let _rng = global_rng();
    let kl_vib = Tensor::from_slice(&[0.5f64, 800.0, 900.0]);
    let s = kl::vib(&kl_vib);
    assert_eq!(s, vec![-0.5, -800.0, -900.0], "exp(-800) and exp(-900) would both be 0; their logs are not");

    let logits = Tensor::from_slice(&[2.0f32, 0.0, -1.0, 0.0, 0.0, 0.0]).view([2, 3]);
    let kl_y = Tensor::from_slice(&[1.0f64, 5.0, 9.0, 3.0, 2.0, 7.0]).view([2, 3]);
    let expected = kl::viby_expected(&logits, &kl_y);
    let z: f64 = [2.0f64, 0.0, -1.0].iter().map(|v| v.exp()).sum();
    let first = -(2.0f64.exp() * 1.0 + 5.0 + (-1.0f64).exp() * 9.0) / z;
    assert!((expected[0] - first).abs() < 1e-6, "{} vs {first}", expected[0]);
    assert!((expected[1] + 4.0).abs() < 1e-12);
    assert_eq!(kl::viby_min(&kl_y), vec![-1.0, -2.0]);
}
