//! Stage `data.<name>`: one OOD set of the config's `[ood.<name>]` tables (SPEC.md
//! "Out-of-distribution sets"; `oodpipe_plan::ood`).
//!
//! It exists so that every model is scored on the same images of each set, made once from the
//! set's seed. What the images are is the set's kind's: each kind is a file in `ood_kinds/` whose
//! `code::Code` ([`Make`]) this stage calls (noise drawn by [`super::noise`], image folders made
//! 32 x 32 by [`super::image_folder`]). The paper's sets are three of these: `gaussian`
//! (N(0.5, 1) clipped), `tin_crop` and `tin_resize` (Tiny ImageNet's test images, cropped or
//! averaged down).
//!
//! Output `<name>.safetensors`: `test_images` and `val_images`, f32 `[N, 3, 32, 32]` (in [0, 1]
//! for images and clipped noise); image folders also `test_source`, `val_source` (i64 `[N]`: the
//! image's position in the folder's listing, which for Tiny ImageNet is the n of `test_<n>.JPEG`)
//! and, cropped, `test_offsets`, `val_offsets` (i64 `[N, 2]`: the patch's top-left row, column).

use crate::ids::files;
use crate::ood::OodSet;
use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result};

/// A set's named tensors: `test_images` and `val_images` at least.
pub type Made = Vec<(String, tch::Tensor)>;

/// What a kind's file implements (`code::Code` in `ood_kinds/<kind>.rs`): the set's images.
pub trait Make: Sync {
    fn make(&self, ctx: &StageContext, set: &OodSet) -> Result<Made>;
}

/// The stage.
pub fn run(ctx: &StageContext, set: &OodSet) -> Result<()> {
    check_sizes(set)?;
    let kind = &set.generator.kind;
    let code =
        crate::ood_kinds::code(kind).with_context(|| format!("OOD set `{}`: no registered kind `{kind}` (ood_kinds/mod.rs)", set.name))?;
    let named = code.make(ctx, set)?;
    for split in ["test_images", "val_images"] {
        if !named.iter().any(|(n, _)| n == split) {
            anyhow::bail!("OOD set `{}`: kind `{kind}` made no `{split}`", set.name);
        }
    }
    let refs: Vec<(&str, &tch::Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tensors::write(&ctx.output(&files::data(&set.name)), &refs)?;
    (ctx.progress)(1, 1, "written");
    Ok(())
}

/// Both splits non-empty: 1 <= val < count (the config checks it too; a request made by hand
/// is checked here).
pub fn check_sizes(set: &OodSet) -> Result<()> {
    if set.count < 2 || set.val == 0 || set.val >= set.count {
        return Err(super::bad_input(anyhow::anyhow!(
            "OOD set `{}`: count {} and validation size {} (config keys ood.{0}.count / .val, or data.ood_count / \
             data.ood_val) must satisfy 1 <= val < count, so that both splits are non-empty (paper: 500 of 1500)",
            set.name,
            set.count,
            set.val
        )));
    }
    Ok(())
}
