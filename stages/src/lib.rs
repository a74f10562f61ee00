//! The ML side of oodpipe: data, models, training, network outputs, OOD methods, tuning, scoring
//! and the report, as plain functions of (config, input files) -> output files.
//!
//! Nothing here knows about caching: [`table::plan`] declares each stage (what it reads, what it
//! depends on) and the engine in the `oodpipe` crate decides what runs.

pub mod config;
pub mod data;
pub mod figures;
pub mod method;
pub mod model;
pub mod methods;
pub mod outputs;
pub mod report;
pub mod runtime;
pub mod stage;
pub mod table;
pub mod tensors;
pub mod uncertainty;
pub mod train;

pub use config::Config;
pub use stage::{Source, StageContext, StageDef};
