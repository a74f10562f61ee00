//! The shape of oodpipe's pipeline, without libtorch: the config schema ([`config`]), the detectors
//! ([`detector`], registered in `detectors/`), the trained models ([`model`], registered in `models/`), the OOD sets ([`ood`], their kinds registered in `ood_kinds/`), the config views stages
//! read ([`view`]) and the stage table ([`table`]), which turns a config into the engine's stage
//! specs, each with a [`table::Task`] that the worker (in `oodpipe-stages`) knows how to compute.
//!
//! The `oodpipe` command plans, keys and schedules with this crate alone; only the worker links
//! the ML code. A stage's task is a closed enum, so the worker's dispatch is checked by the compiler.

pub mod claims;
pub mod config;
pub mod detector;
pub mod detector_params;
#[path = "../../detectors/mod.rs"]
pub mod detectors;
pub mod ids;
pub mod metric;
pub mod model;
/// The models' descriptions (their head and loss code is compiled in `oodpipe-stages`).
#[path = "../../models/mod.rs"]
pub mod models;
pub mod network;
pub mod ood;
/// The OOD set kinds' descriptions (their code is compiled in `oodpipe-stages`).
#[path = "../../ood_kinds/mod.rs"]
pub mod ood_kinds;
pub mod python;
pub mod table;
pub mod view;

pub use config::Config;
