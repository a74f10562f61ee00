//! Stage keys: the blake3 hash of everything that determines a stage's outputs.
//!
//! A key covers the stage's id (two stages of one kind, such as `data.tin_crop` and
//! `data.tin_resize`, may read the same fields and sources yet compute different things), its kind
//! and code-version salt, exactly the config fields it reads, the
//! keys of its input stages, the content hashes of its source files, the libtorch version and the
//! device. Input stages contribute their *keys*, not their outputs, so every key in the graph can
//! be computed before anything runs: `status` and `--dry-run` are pure, and a change anywhere
//! reaches exactly the stages downstream of it.
//!
//! The material is serialised canonically (serde_json over sorted maps, shortest round-trip floats),
//! so a key does not depend on the order of fields in the config file or on the run. The material
//! itself is kept in the stage's entry, which is what lets `status` explain a change (see
//! [`crate::dirty_reason`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where the computation runs; part of every key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub libtorch: String,
    pub device: String,
}

/// Everything a key is the hash of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub id: String,
    pub kind: String,
    pub salt: String,
    /// Dotted config field -> value.
    pub params: BTreeMap<String, Value>,
    /// Input stage id -> its key.
    pub inputs: BTreeMap<String, String>,
    /// Source label -> content hash.
    pub sources: BTreeMap<String, String>,
    pub platform: Platform,
}

/// A stage key: 64 hex digits of blake3.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageKey(pub String);

impl std::fmt::Display for StageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyMaterial {
    pub fn key(&self) -> StageKey {
        let canonical = serde_json::to_vec(self).expect("key material serialises");
        StageKey(blake3::hash(&canonical).to_hex().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn material() -> KeyMaterial {
        KeyMaterial {
            id: "train.softmax".into(),
            kind: "train".into(),
            salt: "train-1".into(),
            params: [("train.epochs".to_string(), json!(3))].into(),
            inputs: [("data.cifar10".to_string(), "ab".to_string())].into(),
            sources: BTreeMap::new(),
            platform: Platform { libtorch: "2.13.0".into(), device: "cpu".into() },
        }
    }

    #[test]
    fn key_is_blake3_of_the_canonical_material() {
        let m = material();
        let expected = blake3::hash(
            br#"{"id":"train.softmax","kind":"train","salt":"train-1","params":{"train.epochs":3},"inputs":{"data.cifar10":"ab"},"sources":{},"platform":{"libtorch":"2.13.0","device":"cpu"}}"#,
        );
        assert_eq!(m.key().0, expected.to_hex().to_string());
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = material().key();
        let mut m = material();
        m.id = "train.bin".into();
        assert_ne!(m.key(), base);
        let mut m = material();
        m.salt = "train-2".into();
        assert_ne!(m.key(), base);
        let mut m = material();
        m.params.insert("train.epochs".into(), json!(4));
        assert_ne!(m.key(), base);
        let mut m = material();
        m.inputs.insert("data.cifar10".into(), "cd".into());
        assert_ne!(m.key(), base);
        let mut m = material();
        m.sources.insert("f".into(), "00".into());
        assert_ne!(m.key(), base);
        let mut m = material();
        m.platform.device = "cuda".into();
        assert_ne!(m.key(), base);
    }
}
