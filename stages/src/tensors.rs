//! Reading and writing the stages' safetensors files.
//!
//! Every array that passes between stages is a safetensors file: Python's `safetensors` and numpy
//! read them directly, and they carry dtype and shape. Writers get contiguous tensors, since a
//! non-contiguous view would be stored with the wrong bytes.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// Writes named tensors (made contiguous, on the CPU) to one safetensors file.
pub fn write(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let owned: Vec<(&str, Tensor)> = tensors.iter().map(|(n, t)| (*n, t.to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&owned, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads every tensor of a safetensors file, by name.
pub fn read(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let named = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(named.into_iter().collect())
}

/// Reads one named tensor of a safetensors file.
pub fn read_one(path: &Path, name: &str) -> Result<Tensor> {
    let mut all = read(path)?;
    all.remove(name).with_context(|| format!("{} has no tensor `{name}`", path.display()))
}
