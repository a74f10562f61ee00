//! `oodpipe export TARGET --out DIR`: a network trained here, out to PyTorch. Writes the
//! training's weights as a TorchScript file (`network.pt`, which keeps the import contract, so it
//! can come back as a `[networks.<name>]` table), as safetensors with PyTorch's names
//! (`network.safetensors`) and the network's PyTorch definition (`oodpipe_wrn.py`), through the
//! PyTorch of `$OODPIPE_TORCH_PYTHON` (default: the checkout's `.venv-torch`, made by `make torch`).
//! The definition's file checks that the three forms give the same logits before it returns.

use anyhow::{Context, bail};
use oodpipe_engine::bad_input::BadInput;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The environment variable that names the Python with PyTorch.
pub const TORCH_PYTHON_ENV: &str = "OODPIPE_TORCH_PYTHON";
/// The PyTorch definition of the WRN and its exporter, shipped inside the binary.
const DEFINITION: &str = include_str!("../../stages/torch/oodpipe_wrn.py");
/// The models whose head is one linear layer: the only ones a WRN with `fc` holds.
const EXPORTABLE: [&str; 2] = ["softmax", "bin"];

/// The Python to run the exporter with.
pub fn torch_python() -> PathBuf {
    match std::env::var_os(TORCH_PYTHON_ENV).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None if Path::new(".venv-torch/bin/python").exists() => PathBuf::from(".venv-torch/bin/python"),
        None => PathBuf::from("python3"),
    }
}

pub fn run(config: &crate::pipeline::ConfigArgs, cache: &Path, target: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, &[target.to_string()])?;
    let ks =
        session.stages.iter().find(|s| s.spec.id == target).ok_or_else(|| {
            BadInput(format!("`{target}` is not a stage id (export takes a training: train.softmax, train.bin@seed2, ...)"))
        })?;
    let model = oodpipe_plan::table::plain_id(target).strip_prefix("train.").unwrap_or("");
    if ks.spec.kind != "train" || !EXPORTABLE.contains(&model) {
        return Err(BadInput(format!(
            "`{target}`: export takes the training of a network with one linear head ({}), not a {} stage",
            EXPORTABLE.join(", "),
            ks.spec.kind
        ))
        .into());
    }
    let Some(entry) = session.store.entry(&ks.material.kind, &ks.key) else {
        return Err(BadInput(format!("{target} has not been built with the current config; `oodpipe run {target}` builds it")).into());
    };
    let outputs = session.store.output_files(&entry);
    let weights = outputs.get(oodpipe_plan::ids::files::MODEL).with_context(|| format!("{target}'s entry has no model file"))?;
    let shape = &session.pipeline.config.model;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let script = out.join("oodpipe_wrn.py");
    std::fs::write(&script, DEFINITION).with_context(|| format!("writing {}", script.display()))?;
    let python = torch_python();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .args(["--weights", &weights.display().to_string()])
        .args(["--depth", &shape.depth.to_string(), "--widen", &shape.widen.to_string()])
        .args(["--out", &out.display().to_string()])
        .status()
        .with_context(|| {
            format!("starting {} (PyTorch's Python: `make torch` makes .venv-torch, or set ${TORCH_PYTHON_ENV})", python.display())
        })?;
    if !status.success() {
        bail!("exporting {target} with {} failed ({status}); it needs PyTorch and safetensors (`make torch`)", python.display());
    }
    println!(
        "exported {target} (WRN-{}-{}) to {}: network.pt (TorchScript), network.safetensors, oodpipe_wrn.py",
        shape.depth,
        shape.widen,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
