//! The `outputs.<model>.<set>` stages: run a trained network once over an image set's validation
//! and test splits and keep what every score needs (the logits, plus a model's extra outputs), so
//! that the methods that need no gradients never touch the network again.

use crate::config::ModelKind;
use crate::ids::{self, files};
use crate::model::{HeadOutput, Loaded};
use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result, bail};
use oodpipe_plan::view;
use serde_json::json;
use tch::{Kind, Tensor};

/// The tensors of one split written to `outputs.safetensors`: `<split>_logits`, plus the extras
/// the model's description declares (named `<split>_<name>`): BINC's `<split>_bin_logits` [N,10]
/// (f32); VIB's `<split>_kl` [N] and VIBY's `<split>_kl` [N,10] (f64). Fails when the head's
/// eval-mode extras are not exactly those (its detectors read them by these names).
fn split_outputs(model: ModelKind, split: &str, out: HeadOutput) -> Result<Vec<(String, Tensor)>> {
    let produced: Vec<&str> = out.extras.iter().map(|(name, _)| *name).collect();
    let declared = model.model().extras;
    if produced != declared {
        bail!(
            "the {} head's outputs are {produced:?} besides the logits, but models/{}.rs declares {declared:?}",
            model.name(),
            model.name()
        );
    }
    let mut named = vec![(ids::tensors::of_split(split, ids::tensors::LOGITS), out.logits)];
    named.extend(out.extras.into_iter().map(|(name, t)| (ids::tensors::of_split(split, name), t)));
    Ok(named)
}

/// The fraction of rows of `logits` whose argmax is `labels`.
pub fn accuracy_of(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let right = logits.argmax(-1, false).eq_tensor(&labels.to_kind(Kind::Int64)).sum(Kind::Int64);
    Ok(i64::try_from(right)? as f64 / labels.numel().max(1) as f64)
}

/// The stage: `outputs.safetensors` (`val_logits`, `test_logits` f32 [N,10], the prediction
/// logits: BINC's softmax head, VIB's and VIBY's decoder at mu; and extras); for
/// CIFAR-10 also `accuracy.json` with the validation and test accuracies (fractions).
pub fn run(ctx: &StageContext, model: ModelKind, set: &str) -> Result<()> {
    let net = Loaded::load(ctx, model, || ctx.view())?;
    let data_path = ctx.input(&ids::data(set), &files::data(set))?;
    let mut data = tensors::read(data_path)?;
    let batch = ctx.view::<view::EvalBatch>()?.eval.batch_size;
    let mut named = Vec::new();
    let mut accuracy = serde_json::Map::new();
    for split in [ids::splits::VAL, ids::splits::TEST] {
        let images = data.remove(&format!("{split}_images")).with_context(|| format!("{} has no `{split}_images`", data_path.display()))?;
        let out = net.eval_outputs(&images, batch)?;
        if set == ids::CIFAR10 {
            let labels =
                data.remove(&format!("{split}_labels")).with_context(|| format!("{} has no `{split}_labels`", data_path.display()))?;
            accuracy.insert(format!("{split}_accuracy"), json!(accuracy_of(&out.logits, &labels)?));
        }
        named.extend(split_outputs(model, split, out)?);
    }
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tensors::write(&ctx.output(files::OUTPUTS), &refs)?;
    if set == ids::CIFAR10 {
        std::fs::write(ctx.output(files::ACCURACY), serde_json::to_string_pretty(&accuracy)? + "\n")?;
    }
    Ok(())
}
