//! The oodpipe engine: a make-like, content-addressed cache for a DAG of stages.
//!
//! It knows nothing of machine learning, and its crate has no dependency that does (no tch): the
//! compiler keeps it so. Stages arrive as [`stage_spec::StageSpec`]s (an id, the config fields
//! they read, their inputs and source files, an opaque task); the engine keys them ([`stage_key`],
//! [`fingerprint`]), explains why one is stale ([`dirty_reason`]), runs what is stale in dependency
//! order ([`executor`]), each in a worker process that may crash alone ([`worker`], [`interrupt`]),
//! and keeps the results in a store that an interrupted or concurrent run cannot corrupt ([`store`],
//! [`atomic_file`]), and shares them with other machines through a remote store ([`remote`]).
//! Several variants of a pipeline (a sweep's points) merge into one graph that shares what they
//! share ([`variants`]). Each run is recorded
//! ([`run_record`]), and the results frames of two runs or commits can be compared
//! ([`results_frame`], [`results_diff`]).

pub mod atomic_file;
pub mod bad_input;
pub mod change_test;
pub mod config_file;
pub mod dirty_reason;
pub mod executor;
pub mod fingerprint;
pub mod graph;
pub mod interrupt;
pub mod output_name;
pub mod progress;
pub mod remote;
pub mod results_diff;
pub mod results_frame;
pub mod results_schema;
pub mod run_record;
pub mod secrets;
pub mod slurm;
pub mod source_hash;
pub mod stage_key;
pub mod stage_spec;
pub mod store;
pub mod variants;
pub mod worker;
pub mod zygote;
