//! A network trained elsewhere, given as a TorchScript file (`[networks.<name>] torchscript = ...`):
//! a researcher's own classifier, run by the same outputs, features and ODIN code as the networks
//! oodpipe trains, so that every detector that needs only logits, features and the final linear
//! layer scores it.
//!
//! The contract (README "Your own network"), checked by [`ScriptNetwork::load`] on a seeded batch
//! before anything is computed with it:
//! - `forward(x)`: x float32 [N, 3, 32, 32] in [0, 1] (the module normalises itself) -> logits
//!   [N, 10], one per CIFAR-10 class;
//! - `features(x)` (a method, `@torch.jit.export`): the same x -> the pooled penultimate features
//!   [N, D], the final linear layer's input;
//! - parameters `<head>.weight` [10, D] and `<head>.bias` [10] (`head`, default `fc`): that layer,
//!   with `head(features(x)) == forward(x)` to 1e-4.
//!
//! ODIN perturbs normalised images; an imported network normalises itself, so it is handed back
//! `x * std + mean` with CIFAR-10's mean and std: the step is the same in pixel units as on a
//! network trained here.

use super::{mean_tensor, std_tensor, to_unit_range};
use anyhow::{Result, anyhow, bail};
use std::path::{Path, PathBuf};
use tch::{CModule, Device, Kind, Tensor};

/// The number of classes a network must output (CIFAR-10's).
pub const CLASSES: i64 = 10;
/// The images the contract is checked on: this many, seeded uniform in [0, 1].
const CHECK_BATCH: i64 = 4;
/// How far `head(features(x))` may be from `forward(x)` (max abs, scaled by the logits' size when
/// they exceed 1).
pub const HEAD_TOLERANCE: f64 = 1e-4;

/// A loaded TorchScript classifier that keeps the contract.
#[derive(Debug)]
pub struct ScriptNetwork {
    module: CModule,
    /// The file it came from (for errors).
    pub path: PathBuf,
    /// The final linear layer: weight [10, D] and bias [10], f32.
    pub head: (Tensor, Tensor),
    /// D, the size of its features.
    pub feature_dim: i64,
    device: Device,
}

/// The images the contract is checked on: [CHECK_BATCH, 3, 32, 32] in [0, 1], the same every time
/// (a fixed pattern, no random generator touched).
fn check_batch() -> Tensor {
    let n = CHECK_BATCH * 3 * 32 * 32;
    (Tensor::arange(n, (Kind::Int64, Device::Cpu)) * 7919).remainder(1000).to_kind(Kind::Float).view([CHECK_BATCH, 3, 32, 32]) / 999.0
}

/// What a libtorch error says, in one line: a TorchScript interpreter's error ends with the
/// Python-style `SomeError: message` line, others start with it (a C++ backtrace follows).
fn first_line(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let s = s.trim_start_matches("Torch exception: ").trim_start_matches("Internal torch error: ");
    if let Some(line) = s.lines().rev().find(|l| l.starts_with("RuntimeError: ") || l.contains("Error: ")) {
        return line.trim().to_string();
    }
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
}

impl ScriptNetwork {
    /// Loads `path` on `device` and checks the contract (the module doc), with `head` the name of
    /// its final linear layer. Every failure names the file and what is wrong.
    pub fn load(path: &Path, head: &str, device: Device) -> Result<ScriptNetwork> {
        let file = path.display();
        if !path.is_file() {
            bail!("network file {file}: not found (config key networks.<name>.torchscript)");
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            anyhow!("network file {file}: not a TorchScript file (save one with torch.jit.script(net).save(path)): {}", first_line(e))
        })?;
        module.set_eval();
        let x = check_batch().to_device(device);
        let _no_grad = tch::no_grad_guard();
        let shape = format!("float32 [{CHECK_BATCH}, 3, 32, 32] in [0, 1]");
        let logits = module
            .forward_ts(&[&x])
            .map_err(|e| anyhow!("network file {file}: forward fails on CIFAR-10's input, {shape}: {}", first_line(e)))?;
        if logits.size() != [CHECK_BATCH, CLASSES] {
            bail!(
                "network file {file}: forward gives {:?} for {shape}; expected logits [{CHECK_BATCH}, {CLASSES}] (CIFAR-10's {CLASSES} classes)",
                logits.size()
            );
        }
        let features = module.method_ts("features", &[&x]).map_err(|e| {
            let why = first_line(e);
            if why.contains("features") {
                anyhow!(
                    "network file {file}: the module has no method `features` (x -> pooled penultimate features [N, D], \
                     marked @torch.jit.export): {why}"
                )
            } else {
                anyhow!("network file {file}: features fails on {shape}: {why}")
            }
        })?;
        let size = features.size();
        if size.len() != 2 || size[0] != CHECK_BATCH {
            bail!("network file {file}: features gives {size:?} for {shape}; expected [{CHECK_BATCH}, D] (pooled features)");
        }
        let feature_dim = size[1];
        let params = module.named_parameters().map_err(|e| anyhow!("network file {file}: reading its parameters: {}", first_line(e)))?;
        let find = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, t)| t.detach().to_kind(Kind::Float));
        let (weight, bias) = match (find(&format!("{head}.weight")), find(&format!("{head}.bias"))) {
            (Some(w), Some(b)) => (w, b),
            _ => bail!(
                "network file {file}: no final linear layer `{head}` (parameters {head}.weight [{CLASSES}, D] and {head}.bias \
                 [{CLASSES}]; name it with networks.<name>.head)"
            ),
        };
        if weight.size() != [CLASSES, feature_dim] || bias.size() != [CLASSES] {
            bail!(
                "network file {file}: {head}.weight is {:?} and {head}.bias {:?}; expected [{CLASSES}, {feature_dim}] and [{CLASSES}] \
                 (features are {feature_dim} wide)",
                weight.size(),
                bias.size()
            );
        }
        let through_head = features.to_kind(Kind::Float).matmul(&weight.tr()) + &bias;
        let gap = f64::try_from((through_head - logits.to_kind(Kind::Float)).abs().max())?;
        let scale = f64::try_from(logits.abs().max())?.max(1.0);
        if gap.is_nan() || gap > HEAD_TOLERANCE * scale {
            bail!(
                "network file {file}: {head}(features(x)) differs from forward(x) by {gap:.3e} (more than {HEAD_TOLERANCE} x {scale:.3}): \
                 features must be the input of the final linear layer `{head}`"
            );
        }
        Ok(ScriptNetwork {
            module,
            path: path.to_path_buf(),
            head: (weight.to_device(Device::Cpu), bias.to_device(Device::Cpu)),
            feature_dim,
            device,
        })
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Logits [N, 10] of images in [0, 1] (with gradients if the input has them).
    pub fn logits(&self, images01: &Tensor) -> Result<Tensor> {
        self.module.forward_ts(&[images01]).map_err(|e| anyhow!("network file {}: forward: {}", self.path.display(), first_line(e)))
    }

    /// Logits of normalised images (ODIN's space): the module gets `x * std + mean`.
    pub fn logits_normalised(&self, x: &Tensor) -> Result<Tensor> {
        let device = x.device();
        self.logits(&(x * std_tensor(device) + mean_tensor(device)))
    }

    /// Pooled features [N, D] of images in [0, 1].
    pub fn features(&self, images01: &Tensor) -> Result<Tensor> {
        self.module
            .method_ts("features", &[images01])
            .map_err(|e| anyhow!("network file {}: features: {}", self.path.display(), first_line(e)))
    }

    /// `f` on a whole image set ([N,3,H,W], u8 or f32 in [0, 1]), `batch` images at a time in eval
    /// mode without gradients, concatenated on the CPU as f32.
    pub fn over_batches(&self, images: &Tensor, batch: usize, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let n = images.size()[0];
        let mut parts = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let len = (batch as i64).min(n - start);
            let x = to_unit_range(&images.narrow(0, start, len).to_device(self.device));
            parts.push(f(&x)?.to_kind(Kind::Float).to_device(Device::Cpu));
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, CLASSES], (Kind::Float, Device::Cpu)));
        }
        Ok(Tensor::cat(&parts, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_torchscript_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("oodpipe-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("net.pt");
        std::fs::write(&path, b"not a zip archive").unwrap();
        let err = ScriptNetwork::load(&path, "fc", Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("net.pt") && err.contains("not a TorchScript file"), "{err}");
        let err = ScriptNetwork::load(&dir.join("absent.pt"), "fc", Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("absent.pt") && err.contains("not found"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
