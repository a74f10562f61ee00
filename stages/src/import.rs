//! The `train.<model>@<network>` stage of a network trained elsewhere (`[networks.<name>]`):
//! checks its TorchScript file against the contract ([`crate::model::script`]) and keeps the file
//! as the stage's output, so that the outputs, features and ODIN stages read the exact bytes the
//! key was made of (the file is a source, hashed by content), wherever they run.

use crate::ids::files;
use crate::model::{Imported, ScriptNetwork};
use crate::stage::StageContext;
use anyhow::{Context, Result};

/// The stage: `network.pt` (the file as it was) and `network.json` (its head's name and its
/// features' width).
pub fn run(ctx: &StageContext, network: &str, head: &str) -> Result<()> {
    let source = ctx.sources.first().with_context(|| format!("stage {}: network {network} has no file", ctx.id))?;
    let checked = ScriptNetwork::load(&source.path, head, ctx.tch_device())?;
    std::fs::copy(&source.path, ctx.output(files::NETWORK)).with_context(|| format!("copying {}", source.path.display()))?;
    let about = Imported { head: head.to_string(), feature_dim: checked.feature_dim };
    std::fs::write(ctx.output(files::NETWORK_JSON), serde_json::to_string_pretty(&about)? + "\n")?;
    Ok(())
}
