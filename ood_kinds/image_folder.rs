//! `kind = "image_folder"`: a folder of JPEG or PNG images of any size, colour or greyscale, made
//! 32 x 32 by `transform = "crop"` (a uniformly random 32 x 32 patch; images must be at least
//! that big) or `"resize"` (the whole image averaged down). `folder` defaults to Tiny ImageNet's
//! test images: the paper's two Tiny ImageNet sets are the two transforms of that folder. The
//! steps and their random streams: `stages/src/data/image_folder.rs`.

use crate::ood::{Generator, Param, ParamValue::*, SetKind};

pub const KIND: SetKind = SetKind {
    name: "image_folder",
    params: &[Param { name: "folder", value: Folder }, Param { name: "transform", value: Choice(&["crop", "resize"], None) }],
    check,
    version: "data-1",
};

fn check(_: &Generator) -> Vec<(&'static str, String, String)> {
    Vec::new()
}

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::data::image_folder::{self, Transform};
    use crate::data::ood_set::{Make, Made};
    use crate::ood::OodSet;
    use crate::stage::StageContext;
    use anyhow::Context;

    pub struct Code;
    impl Make for Code {
        fn make(&self, ctx: &StageContext, set: &OodSet) -> anyhow::Result<Made> {
            let transform = match set.generator.choice("transform")? {
                "crop" => Transform::Crop,
                "resize" => Transform::Resize,
                other => anyhow::bail!("OOD set `{}`: transform {other:?}: expected \"crop\" or \"resize\"", set.name),
            };
            let label = set.folder_source.as_deref().context("an image_folder set without its folder's source label")?;
            image_folder::make(ctx.source(label)?, set, transform, ctx.progress)
        }
    }
}
