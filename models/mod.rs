//! The registry of trained models (`models = [...]` in the config, Table 2's rows): one file each
//! in this folder, one line each in [`registry!`] below.
//!
//! A model's file holds everything about it: its description ([`Model`]: name, label, its config
//! table `[methods.<name>]` as a shape and a weights struct, its extra outputs, the version of its
//! training), from which the config is checked and its stages keyed, and its head and loss (`mod
//! code`, compiled only where libtorch is, `cfg(oodpipe_compute)`). Like `detectors/`, this folder
//! is compiled twice: by `oodpipe-plan` (descriptions) and by `oodpipe-stages` (descriptions and
//! code). Its detectors are files in `detectors/` that name it (`model: ModelKind::of(&models::<name>::MODEL)`).
//!
//! A file left out of the registry fails the test `every_model_file_is_registered`; a listed one
//! without a `MODEL` or (in the stages crate) a `code::Code` does not compile. The order here is
//! the order of the stages and of Table 2's rows; the first is the plain softmax network, which
//! every config trains.

use crate::model::{Model, ModelKind};

macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every registered model, in Table 2's order.
        pub const ALL: &[ModelKind] = &[$(ModelKind::of(&$name::MODEL)),*];

        /// The head and loss code of the model called `name`.
        #[cfg(oodpipe_compute)]
        pub fn code(name: &str) -> Option<&'static dyn crate::model::Compute> {
            $(if name == $name::MODEL.name {
                return Some(&$name::code::Code);
            })*
            None
        }

        /// The description of the model called `name` (also reachable as `ModelKind::find`).
        pub fn find(name: &str) -> Option<&'static Model> {
            ALL.iter().map(|m| m.model()).find(|m| m.name == name)
        }
    };
}

registry! {
    softmax,
    bin,
    binc,
    vib,
    viby,
}
