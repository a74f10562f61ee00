//! The ML side of oodpipe: data, models, training, network outputs, OOD methods, tuning, scoring
//! and the report, as plain functions of (config, input files) -> output files.
//!
//! Nothing here knows about caching: the stage table (`oodpipe-plan`) declares each stage (what it
//! reads, what it depends on), the engine (`oodpipe-engine`) decides what runs, and the worker
//! binary `oodpipe-worker` ([`worker`]) computes one stage per process. This is the only crate
//! that links libtorch.

pub use oodpipe_plan::{config, ids, ood, table, view};

pub mod claims;
pub mod data;
pub mod detector;
/// The detectors, with their score code (`cfg(oodpipe_compute)`, set by this crate's build script).
#[path = "../../detectors/mod.rs"]
pub mod detectors;
pub mod features;
pub mod figures;
pub mod import;
pub mod methods;
pub mod model;
/// The trained models, with their head and loss code (`cfg(oodpipe_compute)`).
#[path = "../../models/mod.rs"]
pub mod models;
pub mod nearest;
/// The OOD set kinds, with the code that makes their images (`cfg(oodpipe_compute)`).
#[path = "../../ood_kinds/mod.rs"]
pub mod ood_kinds;
pub mod outputs;
pub mod python;
pub mod report;
pub mod report_html;
pub mod report_summary;
pub mod runtime;
pub mod stage;
pub mod sweep;
pub mod tensors;
pub mod train;
pub mod uncertainty;
pub mod worker;

pub use config::Config;
pub use stage::{Source, StageContext};
