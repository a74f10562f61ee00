//! The registry of detectors: one file each in this folder, one line each in [`registry!`] below.
//!
//! A detector's file holds everything about it: its description ([`Detector`]: id, label, model,
//! config fields, tuning, extra stage, code version), from which the stage table makes its
//! stages, and its score code (`mod code`, compiled only where libtorch is, `cfg(oodpipe_compute)`).
//! This folder is compiled twice, by `oodpipe-plan` (descriptions; no libtorch, so the `oodpipe`
//! command plans without it) and by `oodpipe-stages` (descriptions and code, for the worker).
//!
//! A file left out of the registry fails the test `every_detector_file_is_registered`; a listed
//! one without a `DETECTOR` or (in the stages crate) a `code::Code` does not compile.
//! The order here is the order of the report's rows.

use crate::detector::Detector;

macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every registered detector, in the report's order.
        pub const ALL: &[&Detector] = &[$(&$name::DETECTOR),*];

        /// The score code of the detector called `name`.
        #[cfg(oodpipe_compute)]
        pub fn code(name: &str) -> Option<&'static dyn crate::detector::Compute> {
            $(if name == $name::DETECTOR.name {
                return Some(&$name::code::Code);
            })*
            None
        }
    };
}

registry! {
    baseline,
    baseline_t,
    odin,
    bin,
    binc,
    vib,
    viby_i,
    viby_ii,
    energy,
    max_logit,
    mahalanobis,
    react,
    ash,
    dice,
    knn,
    vim,
    r#gen, // `gen` is a keyword in Rust 2024; the detector and its file are `gen`
    she,
    rmds,
}
