//! The one integration-test binary: the engine on synthetic stages (no libtorch), and the real
//! `oodpipe` binary end to end on configs/smoke.toml.

mod cli;
mod engine;
mod resilience;
