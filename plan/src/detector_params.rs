//! A detector's own hyper-parameters: the config table `[detector.<name>]`, declared in the
//! detector's file, so that a new detector with a knob needs no change to the config schema.
//!
//! A detector with hyper-parameters defines a struct of them (serde, `deny_unknown_fields`,
//! `default`, a [`Default`] with its published values) and implements [`Hyperparameters`] to
//! check their ranges; its description names it with [`own`] (`params: Some(own::<Params>())`).
//! Then:
//! - the config accepts `[detector.<name>]` with exactly those fields ([`DetectorTables`]): an
//!   unknown field, an unknown detector or one without hyper-parameters is refused like any other
//!   unknown key, a value out of range by [`crate::Config::validate`] naming the key and what was
//!   expected; every field has the detector's default;
//! - every stage of the detector (its score, tune and shared stages) is keyed on the table's
//!   fields, as `detector.<name>.<field>` params (the stage table adds them), so changing one reruns
//!   that detector's stages and nothing else;
//! - its code reads them with `stage.hyperparameters::<Params>()`, from those params alone
//!   ([`from_params`]).
//!
//! Why a table of the detector's own instead of a field per detector in [`crate::config`]: the
//! registry (`detectors/mod.rs`) is the only list of detectors, so the schema follows it.

use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The config's top-level key of the detectors' tables.
pub const KEY: &str = "detector";

/// A value the types accept but the detector does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The field within the detector's table (`k`).
    pub field: &'static str,
    /// The value as shown in the error.
    pub value: String,
    /// What was expected (`at least 1`).
    pub expected: String,
}

/// Collects [`Problem`]s: `problems.check(self.k >= 1, "k", &self.k, "at least 1")`.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn check(&mut self, ok: bool, field: &'static str, value: &dyn fmt::Debug, expected: &str) {
        if !ok {
            self.0.push(Problem { field, value: format!("{value:?}"), expected: expected.to_string() });
        }
    }

    /// A percentage strictly between 0 and 100.
    pub fn percent(&mut self, field: &'static str, value: f64) {
        self.check(value > 0.0 && value < 100.0, field, &value, "a percentage strictly between 0 and 100");
    }
}

/// A detector's hyper-parameters (see the module's doc).
pub trait Hyperparameters: Serialize + DeserializeOwned + Default {
    /// Records every value out of range.
    fn check(&self, problems: &mut Problems);
}

/// A detector's hyper-parameter type as a value, for its description (a constant).
#[derive(Clone, Copy)]
pub struct OwnParams {
    name: fn() -> &'static str,
    default: fn() -> Value,
    parse: fn(toml::Value) -> Result<Value, String>,
    problems: fn(&Value) -> Vec<Problem>,
}

/// The hyper-parameter type `P` as an [`OwnParams`].
pub const fn own<P: Hyperparameters>() -> OwnParams {
    OwnParams { name: std::any::type_name::<P>, default: default_of::<P>, parse: parse_as::<P>, problems: problems_of::<P> }
}

fn default_of<P: Hyperparameters>() -> Value {
    serde_json::to_value(P::default()).expect("hyper-parameters serialise")
}

fn parse_as<P: Hyperparameters>(table: toml::Value) -> Result<Value, String> {
    let p = P::deserialize(table).map_err(|e| e.message().to_string())?;
    serde_json::to_value(p).map_err(|e| e.to_string())
}

fn problems_of<P: Hyperparameters>(value: &Value) -> Vec<Problem> {
    match P::deserialize(value) {
        Ok(p) => {
            let mut problems = Problems::default();
            p.check(&mut problems);
            problems.0
        }
        // A number that was NaN or infinite is null here; `non_finite_paths` names it.
        Err(_) => Vec::new(),
    }
}

impl OwnParams {
    /// The defaults, as the config holds them.
    pub fn default_value(&self) -> Value {
        (self.default)()
    }

    /// Reads a table as written in a config (refusing unknown fields), as the config holds it.
    pub fn parse(&self, table: toml::Value) -> Result<Value, String> {
        (self.parse)(table)
    }

    /// The values out of range in `value` (a table as the config holds it).
    pub fn problems(&self, value: &Value) -> Vec<Problem> {
        (self.problems)(value)
    }
}

impl PartialEq for OwnParams {
    fn eq(&self, other: &Self) -> bool {
        (self.name)() == (other.name)()
    }
}

impl Eq for OwnParams {}

impl fmt::Debug for OwnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str((self.name)())
    }
}

/// The detectors' tables of the config, `[detector.<name>]`: every registered detector with
/// hyper-parameters, each table complete (its defaults where the file says nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorTables(pub BTreeMap<String, Value>);

fn with_params() -> impl Iterator<Item = (&'static str, OwnParams)> {
    crate::detector::ALL.iter().filter_map(|d| d.params.map(|p| (d.name, p)))
}

impl Default for DetectorTables {
    fn default() -> Self {
        DetectorTables(with_params().map(|(name, p)| (name.to_string(), p.default_value())).collect())
    }
}

impl DetectorTables {
    /// The table of detector `name` (its defaults if the config has none), if it has one.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

impl Serialize for DetectorTables {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// One `[detector.<name>]` table, read as the detector's type.
struct Table(OwnParams);

impl<'de> DeserializeSeed<'de> for Table {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let raw = toml::Value::deserialize(d)?;
        (self.0.parse)(raw).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for DetectorTables {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tables;
        impl<'de> Visitor<'de> for Tables {
            type Value = DetectorTables;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("tables [detector.<name>] of registered detectors' hyper-parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DetectorTables, A::Error> {
                let mut tables = DetectorTables::default();
                while let Some(name) = map.next_key::<String>()? {
                    let Some(params) = crate::detector::find(&name).and_then(|d| d.params) else {
                        let with: Vec<&str> = with_params().map(|(n, _)| n).collect();
                        let why =
                            if crate::detector::find(&name).is_some() { "has no hyper-parameters" } else { "is not a registered detector" };
                        return Err(A::Error::custom(format!(
                            "`{name}` {why}; the detectors with a [detector.<name>] table are: {}",
                            with.join(", ")
                        )));
                    };
                    tables.0.insert(name, map.next_value_seed(Table(params))?);
                }
                Ok(tables)
            }
        }
        d.deserialize_map(Tables)
    }
}

/// The params that key a detector's stages: `detector.<name>.<field>` of its table in `config`
/// (the config serialised), none if it has no table.
pub fn key_params(config: &Value, name: &str) -> BTreeMap<String, Value> {
    match config.get(KEY).and_then(|t| t.get(name)) {
        Some(table) => crate::view::leaves(&serde_json::json!({ KEY: { name: table } })),
        None => BTreeMap::new(),
    }
}

/// Detector `name`'s hyper-parameters `P` from a stage's params (what its worker is given). Fails
/// naming the fields when a field of `P` is not among them (the stage does not declare them).
pub fn from_params<P: Hyperparameters>(params: &crate::view::Params, name: &str) -> anyhow::Result<P> {
    let prefix = format!("{KEY}.{name}.");
    let mut table = serde_json::Map::new();
    for (path, value) in params {
        if let Some(field) = path.strip_prefix(&prefix) {
            table.insert(field.to_string(), value.clone());
        }
    }
    let wanted = crate::view::leaves(&serde_json::json!({ KEY: { name: default_of::<P>() } }));
    let missing: Vec<&str> = wanted.keys().filter(|k| !params.contains_key(*k)).map(String::as_str).collect();
    if !missing.is_empty() {
        anyhow::bail!("the code reads {} of the config, which the stage does not declare", missing.join(", "));
    }
    P::deserialize(Value::Object(table)).map_err(|e| anyhow::anyhow!("the [{KEY}.{name}] table of the stage's params: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, String> {
        oodpipe_engine::config_file::parse::<Config>(text, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    /// A registered detector with hyper-parameters, and one of its fields (the test does not
    /// depend on which detectors exist beyond one with a table).
    fn some_table() -> (&'static str, String, Value) {
        let (name, p) = with_params().next().expect("a registered detector has hyper-parameters");
        let default = p.default_value();
        let field = default.as_object().unwrap().iter().find(|(_, v)| v.is_number()).unwrap();
        (name, field.0.clone(), field.1.clone())
    }

    #[test]
    fn every_table_defaults_and_a_written_field_is_read() {
        let c = load("").unwrap();
        assert_eq!(c.detector, DetectorTables::default());
        for (name, p) in with_params() {
            assert_eq!(c.detector.get(name), Some(&p.default_value()), "{name}");
        }
        let (name, field, default) = some_table();
        let other = if default.is_u64() {
            serde_json::json!(default.as_u64().unwrap() + 1)
        } else {
            serde_json::json!(default.as_f64().unwrap() / 2.0)
        };
        let c = load(&format!("[detector.{name}]\n{field} = {other}\n")).unwrap();
        assert_eq!(c.detector.get(name).unwrap()[&field], other);
        assert_ne!(c.detector, DetectorTables::default());
    }

    #[test]
    fn unknown_fields_detectors_and_tables_without_knobs_are_refused() {
        let (name, _, _) = some_table();
        let err = load(&format!("[detector.{name}]\nnope = 3\n")).unwrap_err();
        assert!(err.contains("c.toml:") && err.contains(&format!("detector.{name}")) && err.contains("unknown field `nope`"), "{err}");
        let err = load("[detector.no_such_detector]\nk = 3\n").unwrap_err();
        assert!(err.contains("`no_such_detector` is not a registered detector"), "{err}");
        let without = crate::detector::ALL.iter().find(|d| d.params.is_none()).unwrap().name;
        let err = load(&format!("[detector.{without}]\nk = 3\n")).unwrap_err();
        assert!(err.contains(&format!("`{without}` has no hyper-parameters")), "{err}");
    }

    #[test]
    fn stages_are_given_exactly_their_table_and_read_it_back() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        struct Knobs {
            k: usize,
            p: f64,
        }
        impl Default for Knobs {
            fn default() -> Self {
                Knobs { k: 5, p: 90.0 }
            }
        }
        impl Hyperparameters for Knobs {
            fn check(&self, problems: &mut Problems) {
                problems.check(self.k >= 1, "k", &self.k, "at least 1");
                problems.percent("p", self.p);
            }
        }
        let config = serde_json::json!({"detector": {"mine": {"k": 7, "p": 99.0}, "other": {"k": 1}}, "eval": {"batch_size": 3}});
        let params = key_params(&config, "mine");
        assert_eq!(params.keys().collect::<Vec<_>>(), ["detector.mine.k", "detector.mine.p"]);
        assert_eq!(from_params::<Knobs>(&params, "mine").unwrap(), Knobs { k: 7, p: 99.0 });
        assert!(key_params(&config, "none").is_empty());
        let err = from_params::<Knobs>(&key_params(&config, "other"), "other").unwrap_err().to_string();
        assert!(err.contains("detector.other.p"), "{err}");
        let problems = problems_of::<Knobs>(&serde_json::json!({"k": 0, "p": 100.0}));
        assert_eq!(problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["k", "p"]);
        assert_eq!(problems[1].expected, "a percentage strictly between 0 and 100");
    }
}
