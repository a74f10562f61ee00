//! What a trained model is, to the config and the stage table: its name and label, its config
//! table `[methods.<name>]`, the extra tensors its head outputs and the code version of its
//! training. The models themselves live in `models/`, one file each, with their head and loss
//! (`mod code`, compiled only where libtorch is, `cfg(oodpipe_compute)`); this crate compiles
//! their descriptions only.
//!
//! A model's table has two parts, each a struct in its file named like a detector's
//! hyper-parameters ([`own`]): its **shape**, what inference reads (the size of its latent space,
//! `z`), and its **weights**, what only the training reads (its loss weights, `zeta`, `beta`).
//! The config holds one table per model with both parts' fields (`methods.binc.z`,
//! `methods.binc.zeta`), each with the file's default; an unknown field, or a table for a model
//! that is not registered or has no fields, is refused naming what exists. Every stage of a model
//! that reads its network (outputs, features, network detectors) is keyed on its shape's fields
//! ([`crate::view::for_model`]), its training on both parts ([`crate::view::for_training`]), so a
//! loss weight reruns the training and, through its new weights file, only what reads it.
//!
//! [`ModelKind`] is a registered model as a value (a stage's task names one; the config's
//! `models` list holds them): compared, hashed and written by its name, ordered as the registry.

pub use crate::detector_params::{Hyperparameters, OwnParams, Problems, own};
use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
pub use serde::{Deserialize, Serialize};
use serde::{Deserializer, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The config's top-level key of the models' tables.
pub const KEY: &str = "methods";

/// A model's description (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// In stage ids (`train.<name>`, `outputs.<name>.<set>`), the config (`models`,
    /// `[methods.<name>]`); must be its file's name.
    pub name: &'static str,
    /// In the report's Table 2 and `results.csv` (its accuracy rows).
    pub label: &'static str,
    /// The code version of its training (the `train.<name>` stage's salt): bump it when its head,
    /// its loss or the training loop change what is trained.
    pub version: &'static str,
    /// What inference reads of its table (the head's shape): `Some(own::<Shape>())`.
    pub shape: Option<OwnParams>,
    /// What only its training reads of its table (the loss weights): `Some(own::<Weights>())`.
    pub weights: Option<OwnParams>,
    /// The tensors its head outputs beside the logits, as `outputs.<name>.<set>` stores them
    /// (`<split>_<extra>`) and its detectors read them (names from [`crate::ids::tensors`]).
    pub extras: &'static [&'static str],
}

impl Model {
    /// The fields of its table that inference reads (its shape's).
    pub fn shape_fields(&self) -> Vec<String> {
        fields(self.shape)
    }

    /// Its table with every default (`None` when it has no fields).
    pub fn default_table(&self) -> Option<Value> {
        let mut table = serde_json::Map::new();
        for part in [self.shape, self.weights].into_iter().flatten() {
            if let Value::Object(fields) = part.default_value() {
                table.extend(fields);
            }
        }
        (!table.is_empty()).then_some(Value::Object(table))
    }

    /// Reads a `[methods.<name>]` table written in a config: each field by its part's type.
    fn parse(&self, table: toml::Value) -> Result<Value, String> {
        let toml::Value::Table(written) = table else {
            return Err(format!("expected a table of {}'s fields", self.name));
        };
        let (shape, weights) = (fields(self.shape), fields(self.weights));
        let (mut of_shape, mut of_weights) = (toml::Table::new(), toml::Table::new());
        for (field, value) in written {
            if shape.contains(&field) {
                of_shape.insert(field, value);
            } else if weights.contains(&field) {
                of_weights.insert(field, value);
            } else {
                let known: Vec<String> = shape.iter().chain(&weights).map(|f| format!("`{f}`")).collect();
                return Err(format!("unknown field `{field}`, expected one of {}", known.join(", ")));
            }
        }
        let mut table = serde_json::Map::new();
        for (part, written) in [(self.shape, of_shape), (self.weights, of_weights)] {
            if let Some(part) = part
                && let Value::Object(fields) = part.parse(toml::Value::Table(written))?
            {
                table.extend(fields);
            }
        }
        Ok(Value::Object(table))
    }

    /// The values out of range in `table` (as the config holds it), each with its field.
    pub fn problems(&self, table: &Value) -> Vec<crate::detector_params::Problem> {
        [self.shape, self.weights].into_iter().flatten().flat_map(|part| part.problems(&only(table, &fields(Some(part))))).collect()
    }
}

/// The field names of a part of a table.
fn fields(part: Option<OwnParams>) -> Vec<String> {
    match part.map(|p| p.default_value()) {
        Some(Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The fields of `table` named in `keep`.
fn only(table: &Value, keep: &[String]) -> Value {
    match table {
        Value::Object(fields) => {
            Value::Object(fields.iter().filter(|(k, _)| keep.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        other => other.clone(),
    }
}

/// A registered model, as a value (see the module's doc).
#[derive(Clone, Copy)]
pub struct ModelKind(&'static Model);

impl ModelKind {
    /// Every registered model, in the registry's order (Table 2's rows, the stages' order).
    pub const ALL: &'static [ModelKind] = crate::models::ALL;

    /// The model `model` (a registered model's `MODEL`), for descriptions: `ModelKind::of(&softmax::MODEL)`.
    pub const fn of(model: &'static Model) -> ModelKind {
        ModelKind(model)
    }

    /// The registered model called `name`.
    pub fn find(name: &str) -> Option<ModelKind> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The name used in stage ids and in the config (`train.softmax`, `methods.bin`).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The model's label in the paper's Table 2.
    pub fn label(self) -> &'static str {
        self.0.label
    }

    /// Its description.
    pub fn model(self) -> &'static Model {
        self.0
    }

    /// The names of every registered model, for messages.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|m| m.name()).collect()
    }

    fn position(self) -> usize {
        Self::ALL.iter().position(|m| *m == self).unwrap_or(usize::MAX)
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ModelKind {}

impl std::hash::Hash for ModelKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl PartialOrd for ModelKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ModelKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.position(), self.name()).cmp(&(other.position(), other.name()))
    }
}

impl fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

impl Serialize for ModelKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ModelKind::find(&name).ok_or_else(|| {
            let names: Vec<String> = ModelKind::names().iter().map(|n| format!("`{n}`")).collect();
            D::Error::custom(format!("unknown model `{name}`, expected one of {} (the registered models, models/)", names.join(", ")))
        })
    }
}

/// The models' tables of the config, `[methods.<name>]`: every registered model with fields, each
/// table complete (its defaults where the config says nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTables(pub BTreeMap<String, Value>);

impl Default for ModelTables {
    fn default() -> Self {
        ModelTables(ModelKind::ALL.iter().filter_map(|m| m.model().default_table().map(|t| (m.name().to_string(), t))).collect())
    }
}

impl ModelTables {
    /// The table of model `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Field `field` of model `name`'s table (`methods.<name>.<field>`).
    pub fn field(&self, name: &str, field: &str) -> Option<&Value> {
        self.0.get(name).and_then(|t| t.get(field))
    }
}

impl Serialize for ModelTables {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// One `[methods.<name>]` table, read as the model's types.
struct Table(&'static Model);

impl<'de> DeserializeSeed<'de> for Table {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let raw = toml::Value::deserialize(d)?;
        self.0.parse(raw).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ModelTables {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tables;
        impl<'de> Visitor<'de> for Tables {
            type Value = ModelTables;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("tables [methods.<name>] of registered models")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelTables, A::Error> {
                let mut tables = ModelTables::default();
                while let Some(name) = map.next_key::<String>()? {
                    let Some(model) = ModelKind::find(&name).map(ModelKind::model).filter(|m| m.default_table().is_some()) else {
                        let with: Vec<&str> = tables.0.keys().map(String::as_str).collect();
                        let why = if ModelKind::find(&name).is_some() { "has no fields" } else { "is not a registered model" };
                        return Err(A::Error::custom(format!(
                            "`{name}` {why}; the models with a [methods.<name>] table are: {}",
                            with.join(", ")
                        )));
                    };
                    let table = map.next_value_seed(Table(model))?;
                    // Fields not written keep their defaults.
                    if let (Some(Value::Object(all)), Value::Object(written)) = (tables.0.get_mut(&name), table) {
                        all.extend(written);
                    }
                }
                Ok(tables)
            }
        }
        d.deserialize_map(Tables)
    }
}

/// Model `name`'s part `P` (its shape or weights) from its table as a stage is given it (the
/// `methods.<name>` fields of the stage's params, `None` when it is given none). Fails naming the
/// fields of `P` the stage was not given.
pub fn read<P: Hyperparameters>(table: Option<&BTreeMap<String, Value>>, name: &str) -> anyhow::Result<P> {
    let wanted = match serde_json::to_value(P::default())? {
        Value::Object(fields) => fields.keys().cloned().collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let missing: Vec<String> =
        wanted.iter().filter(|f| !table.is_some_and(|t| t.contains_key(*f))).map(|f| format!("{KEY}.{name}.{f}")).collect();
    if !missing.is_empty() {
        anyhow::bail!("the {name} model reads {} of the config, which the stage does not declare", missing.join(", "));
    }
    let given: serde_json::Map<String, Value> =
        table.into_iter().flatten().filter(|(k, _)| wanted.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    P::deserialize(Value::Object(given)).map_err(|e| anyhow::anyhow!("the [{KEY}.{name}] table of the stage's params: {e}"))
}

pub use crate::models::ALL;

/// A shape of one field, `z`: the size of a head's shared or latent space (`methods.<model>.z`,
/// default 64), for a model's description: `shape: Some(own::<Latent>())`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Latent {
    pub z: i64,
}

impl Default for Latent {
    fn default() -> Self {
        Latent { z: 64 }
    }
}

impl Hyperparameters for Latent {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.z >= 1, "z", &self.z, "at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, String> {
        oodpipe_engine::config_file::parse::<Config>(text, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_model_is_named_once_and_the_first_is_the_baseline() {
        let names = ModelKind::names();
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(ModelKind::ALL[0].name(), "softmax");
        for m in ModelKind::ALL {
            assert!(!m.label().is_empty() && !m.model().version.is_empty(), "{m:?}");
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(m.name()));
            assert_eq!(serde_json::from_value::<ModelKind>(serde_json::json!(m.name())).unwrap(), *m);
        }
        let err = serde_json::from_value::<ModelKind>(serde_json::json!("nope")).unwrap_err().to_string();
        assert!(err.contains("unknown model `nope`") && err.contains("`softmax`"), "{err}");
    }

    /// The paper's tables, keys and defaults, as they were when the tables were typed structs in
    /// the config (so configs and caches stay valid).
    #[test]
    fn the_papers_tables_keep_their_keys_and_defaults() {
        let c = load("").unwrap();
        assert_eq!(
            serde_json::to_value(&c.methods).unwrap(),
            serde_json::json!({
                "bin": {"zeta": 0.05},
                "binc": {"zeta": 0.05, "lambda": 0.5, "z": 64},
                "vib": {"beta": 0.005, "z": 64},
                "viby": {"beta": 0.01, "z": 64},
            })
        );
        let c = load("[methods.binc]\nz = 8\n").unwrap();
        assert_eq!(c.methods.get("binc").unwrap(), &serde_json::json!({"zeta": 0.05, "lambda": 0.5, "z": 8}));
    }

    #[test]
    fn unknown_fields_models_and_tables_without_fields_are_refused() {
        let err = load("[methods.binc]\nbeta = 3.0\n").unwrap_err();
        assert!(err.contains("c.toml:") && err.contains("methods.binc") && err.contains("unknown field `beta`"), "{err}");
        let err = load("[methods.nope]\nz = 3\n").unwrap_err();
        assert!(err.contains("`nope` is not a registered model"), "{err}");
        let err = load("[methods.softmax]\nz = 3\n").unwrap_err();
        assert!(err.contains("`softmax` has no fields"), "{err}");
        let err = load("[methods.vib]\nz = 1.5\n").unwrap_err();
        assert!(err.contains("methods.vib"), "{err}");
        let err = load("models = [\"softmax\", \"nope\"]\n").unwrap_err();
        assert!(err.contains("unknown model `nope`"), "{err}");
    }

    #[test]
    fn values_out_of_range_are_refused_naming_each_key() {
        let c = load("[methods.binc]\nz = 0\nlambda = -1.0\n[methods.bin]\nzeta = 0.0\n").unwrap();
        let problems = c.validate().unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["methods.bin.zeta", "methods.binc.z", "methods.binc.lambda"], "{problems:?}");
        assert!(problems[1].message.contains("at least 1") && problems[2].message.contains("non-negative"), "{problems:?}");
        assert!(load("[methods.binc]\nz = 8\n").unwrap().validate().is_ok());
    }

    #[test]
    fn a_part_is_read_from_a_stages_params_and_a_missing_field_is_named() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        struct Shape {
            z: i64,
        }
        impl Default for Shape {
            fn default() -> Self {
                Shape { z: 64 }
            }
        }
        impl Hyperparameters for Shape {
            fn check(&self, problems: &mut Problems) {
                problems.check(self.z >= 1, "z", &self.z, "at least 1");
            }
        }
        let table: BTreeMap<String, Value> = [("z".to_string(), serde_json::json!(8)), ("zeta".into(), serde_json::json!(0.1))].into();
        assert_eq!(read::<Shape>(Some(&table), "m").unwrap(), Shape { z: 8 });
        let err = read::<Shape>(None, "m").unwrap_err().to_string();
        assert!(err.contains("methods.m.z"), "{err}");
    }
}
