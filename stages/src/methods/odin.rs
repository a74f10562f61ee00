//! ODIN (Liang et al. 2017; the paper's eq. 2) exactly as SPEC.md pins it down: with the predicted
//! class y^ = argmax f(x), take the gradient of CE = -log softmax_y^(f(x)/T) with respect to the
//! NORMALISED input x, step x' = x - eps * s / std with s = +1 where the gradient is >= 0 and -1
//! elsewhere (ODIN's official code) and std the per-channel std, so that eps is in [0, 1] pixel
//! units; the score is max softmax(f(x')/T), in f64.
//!
//! Tuning tries every (T, eps) of a grid. The gradient depends on T but not on eps, and the logits
//! at eps = 0 depend on neither, so one forward per batch, one backward per (batch, T) and one
//! forward per (batch, T, eps > 0) cover the whole grid.

use crate::detector::{CIFAR10, DetectorStage, VAL, files};
use crate::methods::temperature::max_softmax;
use crate::model::{Loaded, mean_tensor, normalise, std_tensor, to_unit_range};
use crate::stage::ProgressFn;
use crate::tensors;
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// A network seen as a function from normalised images [N,3,H,W] to logits [N,K] (eval mode).
pub type LogitsFn<'a> = &'a dyn Fn(&Tensor) -> Tensor;

/// s = sign of d CE / d x at temperature T (+1 where the gradient is >= 0), with the logits'
/// graph kept so that further temperatures can reuse it.
fn gradient_sign(logits: &Tensor, x: &Tensor, temperature: f64) -> Tensor {
    let predicted = logits.detach().argmax(-1, true);
    let ce = -(logits / temperature).log_softmax(-1, Kind::Float).gather(1, &predicted, false).sum(Kind::Float);
    let grad = Tensor::run_backward(&[ce], &[x], true, false).remove(0);
    grad.ge(0.0).to_kind(Kind::Float) * 2.0 - 1.0
}

/// The ODIN input x' of images in [0, 1], given back in [0, 1] pixel units (not clipped): each
/// pixel moves by exactly +-eps, against the sign of the gradient of CE in normalised space.
pub fn perturb_fn(logits_of: LogitsFn, images01: &Tensor, temperature: f64, epsilon: f64) -> Tensor {
    let device = images01.device();
    let x = normalise(images01).detach().set_requires_grad(true);
    let sign = gradient_sign(&logits_of(&x), &x, temperature);
    let x_perturbed = x.detach() - sign * epsilon / std_tensor(device);
    x_perturbed * std_tensor(device) + mean_tensor(device)
}

/// ODIN scores of `images01` ([N,3,H,W] in [0,1], or u8 bytes) for every temperature and epsilon,
/// indexed [t][e][i], with the network given as a function on `device`.
pub fn grid_scores_fn(
    logits_of: LogitsFn,
    device: Device,
    images01: &Tensor,
    temperatures: &[f64],
    epsilons: &[f64],
    batch: usize,
    progress: ProgressFn,
) -> Vec<Vec<Vec<f64>>> {
    let n = images01.size()[0];
    let batch = batch.max(1) as i64;
    let batches = ((n + batch - 1) / batch) as u64;
    let std = std_tensor(device);
    let mut scores = vec![vec![Vec::with_capacity(n as usize); epsilons.len()]; temperatures.len()];
    for (b, start) in (0..n).step_by(batch as usize).enumerate() {
        let len = batch.min(n - start);
        let x01 = to_unit_range(&images01.narrow(0, start, len).to_device(device));
        let x = normalise(&x01).detach().set_requires_grad(true);
        let logits = logits_of(&x);
        let clean_logits = logits.detach();
        for (ti, &t) in temperatures.iter().enumerate() {
            let clean = max_softmax(&clean_logits, t);
            let step = epsilons.iter().any(|&e| e != 0.0).then(|| gradient_sign(&logits, &x, t) / &std);
            for (ei, &eps) in epsilons.iter().enumerate() {
                let row = match &step {
                    Some(step) if eps != 0.0 => tch::no_grad(|| {
                        let perturbed = x.detach() - step * eps;
                        max_softmax(&logits_of(&perturbed), t)
                    }),
                    _ => clean.clone(),
                };
                scores[ti][ei].extend(row);
            }
        }
        progress(b as u64 + 1, batches, &format!("ODIN {} x {} grid, batch {}/{batches}", temperatures.len(), epsilons.len(), b + 1));
    }
    scores
}

/// ODIN scores of `images01` for every (temperature, epsilon), indexed [t][e][i].
pub fn grid_scores(
    net: &Loaded,
    images01: &Tensor,
    temperatures: &[f64],
    epsilons: &[f64],
    batch: usize,
    progress: ProgressFn,
) -> Vec<Vec<Vec<f64>>> {
    let logits_of = |x: &Tensor| net.logits_normalised(x);
    grid_scores_fn(&logits_of, net.device(), images01, temperatures, epsilons, batch, progress)
}

/// ODIN scores of `images01` at one (temperature, epsilon).
pub fn scores(net: &Loaded, images01: &Tensor, temperature: f64, epsilon: f64, batch: usize) -> Vec<f64> {
    grid_scores(net, images01, &[temperature], &[epsilon], batch, &|_, _, _| {}).remove(0).remove(0)
}

/// ODIN's shared stage `tune.odin.cifar10`: ODIN scores of the CIFAR-10 validation split over the
/// whole (T, eps) grid, shared by every OOD set's tune stage. Writes `grid.safetensors` with
/// `scores` f64 [nT, nEps, N_val], `temperatures` f64 [nT] and `epsilons` f64 [nEps].
pub fn cifar10_grid(stage: &DetectorStage, temperatures: &[f64], epsilons: &[f64], batch: usize) -> Result<()> {
    let net = stage.network()?;
    let images = stage.images(CIFAR10, VAL)?;
    let grid = grid_scores(&net, &images, temperatures, epsilons, batch, stage.progress());
    let flat: Vec<f64> = grid.iter().flatten().flatten().copied().collect();
    let shape = [temperatures.len() as i64, epsilons.len() as i64, images.size()[0]];
    let scores = Tensor::from_slice(&flat).view(shape);
    tensors::write(
        &stage.output_path(files::ODIN_GRID),
        &[
            (crate::ids::tensors::GRID_SCORES, &scores),
            ("temperatures", &Tensor::from_slice(temperatures)),
            ("epsilons", &Tensor::from_slice(epsilons)),
        ],
    )
}
