//! The one integration-test binary: the real `oodpipe` binary (and its worker) end to end on
//! configs/smoke.toml and on synthetic crashes. The engine's own tests are in engine/tests/.

mod browser;
mod cli;
mod extend;
mod network;
mod oracles;
mod python;
mod remote;
mod resilience;
mod shared;
mod slurm;
mod sweep;
