//! `kind = "gaussian"`: every value of every pixel drawn i.i.d. from N(mean, std), in [0, 1] pixel
//! units, clipped to [0, 1] unless `clip = false`. The paper's "Gaussian noise" is the default,
//! N(0.5, 1) clipped (SPEC.md; drawing: `stages/src/data/noise.rs`).

use crate::ood::{Generator, Param, ParamValue::*, SetKind};

pub const KIND: SetKind = SetKind {
    name: "gaussian",
    params: &[
        Param { name: "mean", value: Float(0.5) },
        Param { name: "std", value: Float(1.0) },
        Param { name: "clip", value: Bool(true) },
    ],
    check,
    version: "data-1",
};

fn check(g: &Generator) -> Vec<(&'static str, String, String)> {
    let std = g.float("std").unwrap_or(f64::NAN);
    if std > 0.0 { Vec::new() } else { vec![("std", format!("{std:?}"), "a positive number".into())] }
}

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::data::noise;
    use crate::data::ood_set::{Make, Made};
    use crate::ood::OodSet;
    use crate::stage::StageContext;

    pub struct Code;
    impl Make for Code {
        fn make(&self, ctx: &StageContext, set: &OodSet) -> anyhow::Result<Made> {
            let g = &set.generator;
            (ctx.progress)(0, 1, "drawing noise");
            let values = noise::gaussian_with(g.float("mean")?, g.float("std")?, g.bool("clip")?, set.count, set.seed);
            Ok(noise::split(&values, set))
        }
    }
}
