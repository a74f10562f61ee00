//! Networks trained elsewhere: the config's `[networks.<name>]` tables, each a TorchScript file of
//! a CIFAR-10 classifier that every post-hoc detector then scores. Why a table and not a model
//! file: a researcher's own PyTorch network enters the pipeline without a line of Rust and without
//! being retrained.
//!
//! ```toml
//! [networks.resnet18]
//! torchscript = "nets/resnet18.pt"   # torch.jit.script(net).save(...): forward, features, fc
//! label = "ResNet-18 (ours)"         # how its report names it (default: the table's name)
//! head = "fc"                        # its final linear layer's parameter prefix (default fc)
//! ```
//!
//! Each network gets the plain pipeline of the first model (`softmax`) with the network in place
//! of the training: its stages are the softmax network's with the suffix `@<name>`
//! (`train.softmax@resnet18` imports and checks the file, `outputs.softmax.gaussian@resnet18`,
//! `score.energy.gaussian@resnet18`, ...), and its own report in `<report.dir>/networks/<name>/`.
//! The import stage is keyed by the file's bytes (a source: `status` says "network file
//! nets/resnet18.pt changed") and its table; nothing of it is trained, so a training seed does not
//! apply. The detectors of the models oodpipe trains (BIN, BINC, VIB, VIBY) do not apply either.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The config key of the tables.
pub const KEY: &str = "networks";
/// The code version of the import stage.
pub const VERSION: &str = "import-1";
/// The source label of a network's file: `status` shows "network file <path> changed".
pub fn source_label(file: &std::path::Path) -> String {
    format!("network file: {}", file.display())
}

/// One `[networks.<name>]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The TorchScript file, relative to where oodpipe runs.
    pub torchscript: PathBuf,
    /// Its name in its report (default: the table's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The prefix of its final linear layer's parameters (`<head>.weight`, `<head>.bias`).
    #[serde(default = "default_head")]
    pub head: String,
}

fn default_head() -> String {
    "fc".into()
}

impl NetworkConfig {
    /// Its label, else `name`.
    pub fn label_or(&self, name: &str) -> String {
        self.label.clone().unwrap_or_else(|| name.to_string())
    }

    /// Its problems: (key, value, expected). `name` must be a stage-id word that cannot be read as
    /// a seed's tag, the file a file.
    pub fn problems(&self, name: &str) -> Vec<(String, String, String)> {
        let mut problems = Vec::new();
        let word = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let seedlike = name.strip_prefix("seed").is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()));
        if !word || seedlike {
            problems.push((
                format!("{KEY}.{name}"),
                name.to_string(),
                "a name of letters, digits, '_' and '-' (at most 64), not seed<N>".to_string(),
            ));
        }
        if !self.torchscript.is_file() {
            problems.push((
                format!("{KEY}.{name}.torchscript"),
                self.torchscript.display().to_string(),
                "an existing TorchScript file (torch.jit.script(net).save(path); README \"Your own network\")".to_string(),
            ));
        }
        let head_ok = !self.head.is_empty() && self.head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !head_ok {
            problems.push((format!("{KEY}.{name}.head"), self.head.clone(), "a module path such as fc or classifier.2".to_string()));
        }
        problems
    }
}

/// The id suffix of a network's stages.
pub fn suffix(name: &str) -> String {
    format!("@{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_seeds_or_hold_odd_characters_are_refused() {
        let file = std::env::current_exe().unwrap();
        let net = NetworkConfig { torchscript: file, label: None, head: "fc".into() };
        assert!(net.problems("resnet18").is_empty());
        for bad in ["seed2", "a.b", "a@b", "", "x y"] {
            assert_eq!(net.problems(bad).len(), 1, "{bad}");
        }
        let missing = NetworkConfig { torchscript: "no/such.pt".into(), label: None, head: "fc".into() };
        let p = missing.problems("r");
        assert_eq!(p[0].0, "networks.r.torchscript");
    }
}
