//! The OOD methods: how each of the paper's eight scores is tuned and computed.
//!
//! A tune stage picks a method's hyper-parameters on the validation splits; a score stage computes
//! the in-distribution (CIFAR-10 test) and OOD (the set's test split) scores and the five metrics.
//! Higher scores mean "more in-distribution" throughout.

pub mod kl;
pub mod odin;
pub mod sigmoid;
pub mod temperature;
pub mod tuner;

use crate::config::{ModelKind, OodSet};
use crate::method::Method;
use crate::model::{Network, to_unit_range};
use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result, bail};
use oodpipe_metrics::ood_metrics;
use serde_json::json;
use tuner::{GridPoint, Tuned};

/// Output names shared with the report.
pub const TUNE_FILE: &str = "tune.json";
pub const METRICS_FILE: &str = "metrics.json";
pub const SCORES_FILE: &str = "scores.safetensors";

fn fpr(in_scores: &[f64], out_scores: &[f64]) -> Result<f64> {
    Ok(ood_metrics(in_scores, out_scores)?.fpr_at_95_tpr)
}

fn load_network(ctx: &StageContext, model: ModelKind) -> Result<Network> {
    let path = ctx.input(&format!("train.{}", model.name()), "model.safetensors")?;
    Network::load(path, model, &ctx.config, ctx.tch_device())
}

/// Images of a data stage's split, as f32 in [0, 1].
fn images(ctx: &StageContext, set: &str, split: &str) -> Result<tch::Tensor> {
    let path = ctx.input(&format!("data.{set}"), &format!("{set}.safetensors"))?;
    Ok(to_unit_range(&tensors::read_one(path, &format!("{split}_images"))?))
}

fn logits(ctx: &StageContext, model: ModelKind, set: &str, split: &str) -> Result<tch::Tensor> {
    output(ctx, model, set, split, "logits")
}

/// The tensor `<split>_<name>` of the outputs stage of `model` on `set`.
fn output(ctx: &StageContext, model: ModelKind, set: &str, split: &str, name: &str) -> Result<tch::Tensor> {
    let path = ctx.input(&format!("outputs.{}.{set}", model.name()), "outputs.safetensors")?;
    tensors::read_one(path, &format!("{split}_{name}"))
}

/// The tune stage of a tuned method: writes `tune.json`.
pub fn tune(ctx: &StageContext, method: Method, ood: OodSet) -> Result<()> {
    let tune = &ctx.config.tune;
    let grid = match method {
        Method::BaselineT => {
            let (cin, cout) = (logits(ctx, ModelKind::Softmax, "cifar10", "val")?, logits(ctx, ModelKind::Softmax, ood.name(), "val")?);
            tune.temperatures
                .iter()
                .map(|&t| {
                    let f = fpr(&temperature::max_softmax(&cin, t), &temperature::max_softmax(&cout, t))?;
                    Ok(GridPoint { temperature: t, epsilon: None, fpr_at_95_tpr: f })
                })
                .collect::<Result<Vec<_>>>()?
        }
        Method::Odin => {
            let in_grid = tensors::read_one(ctx.input("tune.odin.cifar10", "grid.safetensors")?, "scores")?;
            let net = load_network(ctx, ModelKind::Softmax)?;
            let out_images = images(ctx, ood.name(), "val")?;
            let out_grid = odin::grid_scores(
                &net,
                &out_images,
                &tune.temperatures,
                &tune.odin_epsilons,
                ctx.config.eval.batch_size,
                ctx.progress,
            );
            let mut grid = Vec::new();
            for (ti, &t) in tune.temperatures.iter().enumerate() {
                for (ei, &e) in tune.odin_epsilons.iter().enumerate() {
                    let in_scores = Vec::<f64>::try_from(in_grid.get(ti as i64).get(ei as i64))
                        .context("reading the CIFAR-10 validation grid")?;
                    grid.push(GridPoint { temperature: t, epsilon: Some(e), fpr_at_95_tpr: fpr(&in_scores, &out_grid[ti][ei])? });
                }
            }
            grid
        }
        other => bail!("{} has no hyper-parameters to tune", other.label()),
    };
    let tuned = Tuned { method: method.label().into(), ood_set: ood.label().into(), chosen: tuner::choose(&grid), grid };
    std::fs::write(ctx.output(TUNE_FILE), serde_json::to_vec_pretty(&tuned)?)?;
    Ok(())
}

fn tuned(ctx: &StageContext, method: Method, ood: OodSet) -> Result<GridPoint> {
    let path = ctx.input(&format!("tune.{}.{}", method.name(), ood.name()), TUNE_FILE)?;
    let tuned: Tuned = serde_json::from_slice(&std::fs::read(path)?).with_context(|| format!("reading {}", path.display()))?;
    Ok(tuned.chosen)
}

/// The score stage: test-split scores of CIFAR-10 and the OOD set, and their five metrics.
pub fn score(ctx: &StageContext, method: Method, ood: OodSet) -> Result<()> {
    let model = method.model();
    let mut params = json!({});
    let (in_scores, out_scores) = match method {
        Method::Baseline | Method::BaselineT => {
            let t = if method == Method::Baseline { 1.0 } else { tuned(ctx, method, ood)?.temperature };
            params = json!({ "temperature": t });
            let (cin, cout) = (logits(ctx, model, "cifar10", "test")?, logits(ctx, model, ood.name(), "test")?);
            (temperature::max_softmax(&cin, t), temperature::max_softmax(&cout, t))
        }
        Method::Odin => {
            let chosen = tuned(ctx, method, ood)?;
            let eps = chosen.epsilon.context("ODIN's tuning chose no epsilon")?;
            params = json!({ "temperature": chosen.temperature, "epsilon": eps });
            let net = load_network(ctx, model)?;
            let batch = ctx.config.eval.batch_size;
            let cin = odin::scores(&net, &images(ctx, "cifar10", "test")?, chosen.temperature, eps, batch);
            let cout = odin::scores(&net, &images(ctx, ood.name(), "test")?, chosen.temperature, eps, batch);
            (cin, cout)
        }
        // BIN and BINC: log max_y s(p_y) of the BIN head's logits; VIB, VIBY: the log of
        // exp(-KL) (see sigmoid.rs and kl.rs). No hyper-parameters.
        Method::Bin | Method::Binc => {
            let name = if method == Method::Bin { "logits" } else { "bin_logits" };
            let of = |set: &str| Ok::<_, anyhow::Error>(sigmoid::max_log_sigmoid(&output(ctx, model, set, "test", name)?));
            (of("cifar10")?, of(ood.name())?)
        }
        Method::Vib => {
            let of = |set: &str| Ok::<_, anyhow::Error>(kl::vib(&output(ctx, model, set, "test", "kl")?));
            (of("cifar10")?, of(ood.name())?)
        }
        Method::VibyI | Method::VibyII => {
            let of = |set: &str| {
                let kl_y = output(ctx, model, set, "test", "kl")?;
                Ok::<_, anyhow::Error>(if method == Method::VibyI {
                    kl::viby_expected(&logits(ctx, model, set, "test")?, &kl_y)
                } else {
                    kl::viby_min(&kl_y)
                })
            };
            (of("cifar10")?, of(ood.name())?)
        }
    };
    let metrics = ood_metrics(&in_scores, &out_scores).with_context(|| format!("metrics of {}", ctx.id))?;
    tensors::write(
        &ctx.output(SCORES_FILE),
        &[("in_scores", &tch::Tensor::from_slice(&in_scores)), ("out_scores", &tch::Tensor::from_slice(&out_scores))],
    )?;
    let record = json!({
        "method": method.label(),
        "ood_set": ood.label(),
        "hyperparameters": params,
        "metrics": metrics,
    });
    std::fs::write(ctx.output(METRICS_FILE), serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}
