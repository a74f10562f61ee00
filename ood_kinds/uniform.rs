//! `kind = "uniform"`: every value of every pixel drawn i.i.d. from U(low, high), in [0, 1] pixel
//! units (default U(0, 1); drawing: `stages/src/data/noise.rs`).

use crate::ood::{Generator, Param, ParamValue::*, SetKind};

pub const KIND: SetKind = SetKind {
    name: "uniform",
    params: &[Param { name: "low", value: Float(0.0) }, Param { name: "high", value: Float(1.0) }],
    check,
    version: "data-1",
};

fn check(g: &Generator) -> Vec<(&'static str, String, String)> {
    let (low, high) = (g.float("low").unwrap_or(f64::NAN), g.float("high").unwrap_or(f64::NAN));
    if low < high { Vec::new() } else { vec![("high", format!("{high:?} (low {low:?})"), "finite numbers with low < high".into())] }
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
            let values = noise::uniform(g.float("low")?, g.float("high")?, set.count, set.seed);
            Ok(noise::split(&values, set))
        }
    }
}
