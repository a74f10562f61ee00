//! Why a stage must run, in words a person understands.
//!
//! A stage is fresh when the store has an entry for its current key. When it has none, the reason
//! is found by comparing the key's material with the material of the entry last built for the same
//! stage id: each differing config field, input key, source hash, salt or platform value becomes
//! one [`DirtyReason`] (cargo's `DirtyReason`, DVC's `status`).

use crate::stage_key::KeyMaterial;
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum DirtyReason {
    /// Never built (or its entry was collected).
    NoEntry,
    ConfigChanged {
        field: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    InputChanged {
        id: String,
    },
    InputsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    SourceChanged {
        label: String,
    },
    SaltChanged {
        kind: String,
        old: String,
        new: String,
    },
    LibtorchChanged {
        old: String,
        new: String,
    },
    DeviceChanged {
        old: String,
        new: String,
    },
    /// The material matches the last build, but that build's entry or objects are gone.
    EntryMissing,
}

fn show(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "unset".into(),
        Some(v) => v.to_string(),
    }
}

/// A fact's value as a person writes it: a string without quotes, nothing as `(none)`.
fn plain(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// A source label that says what the file is (`python script: methods/x.py`): (what, path).
fn described(label: &str) -> Option<(&str, &str)> {
    let (what, path) = label.split_once(": ")?;
    (!what.contains('/') && !what.is_empty()).then_some((what, path))
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoEntry => write!(f, "no entry yet"),
            // A fact of the environment a stage keys (`@python environment: numpy`), not a config field.
            Self::ConfigChanged { field, old, new } if field.starts_with('@') => {
                write!(f, "{} {} -> {}", &field[1..], plain(old), plain(new))
            }
            Self::ConfigChanged { field, old, new } => {
                write!(f, "config field `{field}` changed from {} to {}", show(old), show(new))
            }
            Self::InputChanged { id } => write!(f, "input `{id}` changed"),
            Self::InputsChanged { added, removed } => {
                write!(f, "inputs changed (added: [{}], removed: [{}])", added.join(", "), removed.join(", "))
            }
            Self::SourceChanged { label } => match described(label) {
                Some((what, path)) => write!(f, "{what} {path} changed"),
                None => write!(f, "source file {label} changed"),
            },
            Self::SaltChanged { kind, old, new } => {
                write!(f, "code version of `{kind}` changed from {old} to {new}")
            }
            Self::LibtorchChanged { old, new } => write!(f, "libtorch changed from {old} to {new}"),
            Self::DeviceChanged { old, new } => write!(f, "device changed from {old} to {new}"),
            Self::EntryMissing => write!(f, "its cached result is missing from the store"),
        }
    }
}

/// The differences between the material of the last build (`old`) and the current one (`new`).
pub fn diff(old: &KeyMaterial, new: &KeyMaterial) -> Vec<DirtyReason> {
    let mut out = Vec::new();
    if old.salt != new.salt {
        out.push(DirtyReason::SaltChanged { kind: new.kind.clone(), old: old.salt.clone(), new: new.salt.clone() });
    }
    let fields: std::collections::BTreeSet<&String> = old.params.keys().chain(new.params.keys()).collect();
    for field in fields {
        let (a, b) = (old.params.get(field), new.params.get(field));
        if a != b {
            out.push(DirtyReason::ConfigChanged { field: field.clone(), old: a.cloned(), new: b.cloned() });
        }
    }
    let added: Vec<String> = new.inputs.keys().filter(|k| !old.inputs.contains_key(*k)).cloned().collect();
    let removed: Vec<String> = old.inputs.keys().filter(|k| !new.inputs.contains_key(*k)).cloned().collect();
    if !added.is_empty() || !removed.is_empty() {
        out.push(DirtyReason::InputsChanged { added, removed });
    }
    for (id, key) in &new.inputs {
        if old.inputs.get(id).is_some_and(|k| k != key) {
            out.push(DirtyReason::InputChanged { id: id.clone() });
        }
    }
    let labels: std::collections::BTreeSet<&String> = old.sources.keys().chain(new.sources.keys()).collect();
    for label in labels {
        if old.sources.get(label) != new.sources.get(label) {
            out.push(DirtyReason::SourceChanged { label: label.clone() });
        }
    }
    if old.platform.libtorch != new.platform.libtorch {
        out.push(DirtyReason::LibtorchChanged { old: old.platform.libtorch.clone(), new: new.platform.libtorch.clone() });
    }
    if old.platform.device != new.platform.device {
        out.push(DirtyReason::DeviceChanged { old: old.platform.device.clone(), new: new.platform.device.clone() });
    }
    if out.is_empty() {
        out.push(DirtyReason::EntryMissing);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage_key::Platform;
    use serde_json::json;

    fn material() -> KeyMaterial {
        KeyMaterial {
            id: "tune.odin.gaussian".into(),
            kind: "tune".into(),
            salt: "tune-1".into(),
            params: [("tune.odin_epsilons".to_string(), json!([0.0, 0.001]))].into(),
            inputs: [("train.softmax".to_string(), "k1".to_string())].into(),
            sources: [("data/test_batch.bin".to_string(), "h1".to_string())].into(),
            platform: Platform { libtorch: "2.13.0".into(), device: "cpu".into() },
        }
    }

    #[test]
    fn a_fact_and_a_described_source_read_as_what_they_are() {
        let (mut old, mut new) = (material(), material());
        new.params.insert("@python environment: numpy".into(), json!("2.3.2"));
        old.params.insert("@python environment: numpy".into(), json!("2.3.1"));
        new.params.insert("@python environment: six".into(), json!("1.17.0"));
        old.sources.insert("python script: methods/x.py".into(), "h1".into());
        new.sources.insert("python script: methods/x.py".into(), "h2".into());
        let text: Vec<String> = diff(&old, &new).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            ["python environment: numpy 2.3.1 -> 2.3.2", "python environment: six (none) -> 1.17.0", "python script methods/x.py changed"]
        );
    }

    #[test]
    fn each_change_is_named() {
        let old = material();
        let mut new = material();
        new.params.insert("tune.odin_epsilons".into(), json!([0.0, 0.002]));
        new.inputs.insert("train.softmax".into(), "k2".into());
        new.sources.insert("data/test_batch.bin".into(), "h2".into());
        new.salt = "tune-2".into();
        let text: Vec<String> = diff(&old, &new).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            [
                "code version of `tune` changed from tune-1 to tune-2",
                "config field `tune.odin_epsilons` changed from [0.0,0.001] to [0.0,0.002]",
                "input `train.softmax` changed",
                "source file data/test_batch.bin changed",
            ]
        );
    }

    #[test]
    fn identical_material_means_the_entry_went_missing() {
        assert_eq!(diff(&material(), &material()), [DirtyReason::EntryMissing]);
    }
}
