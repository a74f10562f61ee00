//! The error kind that means "the input is wrong" (a config, a data file, a score file, a
//! revision), as opposed to a stage that failed: the command line exits 2 for it, 1 for a failed
//! stage, 0 otherwise.

use std::fmt;

/// Wraps the message of an error in the user's input.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Whether an error (or any of its causes) is bad input.
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<BadInput>() || c.is::<crate::config_file::ConfigError>() || c.is::<crate::config_file::ConfigErrors>())
}
