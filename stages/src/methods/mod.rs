//! The score functions the paper's detectors are made of (temperature-scaled softmax, ODIN's
//! perturbation, BIN's sigmoids, VIB's KL) and the tuning rule. The detectors themselves, which
//! say what each score reads and how it is tuned, are in `detectors/` ([`crate::detector`]).

pub mod kl;
pub mod odin;
pub mod sigmoid;
pub mod temperature;
pub mod tuner;
