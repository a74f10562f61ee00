//! The out-of-distribution sets, declared in the config as `[ood.<name>]` tables.
//!
//! It exists so that a researcher adds an OOD set by writing a table, with no code: noise
//! (`kind = "gaussian"` or `"uniform"`) or a folder of JPEG/PNG images of any size
//! (`kind = "image_folder"`, made 32 x 32 by `transform = "crop"` or `"resize"`). The default config
//! declares the paper's three sets this way ([`paper_sets`]). A kind is a file in `ood_kinds/`
//! and a line in its registry: its description ([`SetKind`]: its keys with their types and
//! defaults, its checks, its version) is all this module and the stage table know of it; its
//! code is compiled in `oodpipe-stages` only.
//!
//! A set's size, validation split and seed default to `data.ood_count`, `data.ood_val` and
//! `data.ood_seed`, shared by every set; a table may set its own `count`, `val`, `seed`.
//!
//! Keys ([`OodSet::key_params`]): a data stage's key covers every field of its set's definition,
//! with one rule that keeps the caches of configs written before sets were configurable: a field
//! whose value is that of the paper's set of the same name (`gaussian`, `tin_crop`, `tin_resize`)
//! is left out (its value is implied by the stage id, as it was before). Inherited sizes and seed
//! are keyed under the `data.ood_*` field they come from. The definition itself reaches the worker
//! in the stage's task, not through the config, so what the worker sees is exactly what is keyed
//! (a test changes every field and checks the key changes).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One `[ood.<name>]` table as written: the fields every set has, and its kind's own keys
/// (`params`, checked against the kind's description by [`OodSetConfig::problems`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodSetConfig {
    /// A registered kind's name (`ood_kinds/mod.rs`).
    pub kind: String,
    /// The set's name in tables and figures (default: the table's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Images in the set (default `data.ood_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// How many of them form the validation split (default `data.ood_val`); the rest are the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<usize>,
    /// Seed of the set's random choices (default `data.ood_seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The kind's own keys, as written (`mean`, `transform`, ...).
    #[serde(flatten)]
    pub params: BTreeMap<String, Value>,
}

/// A kind of OOD set: what an `[ood.<name>]` table of `kind = "<name>"` may hold beyond the shared
/// fields, and the version of what its data stage makes. One per file in `ood_kinds/`.
pub struct SetKind {
    /// `kind = "<name>"`; its file is `ood_kinds/<name>.rs`.
    pub name: &'static str,
    /// Its own keys, with their types and defaults.
    pub params: &'static [Param],
    /// Checks beyond each key's type (a range, two keys against each other), on the resolved
    /// values: each problem as (key, value as shown, what is expected).
    pub check: fn(&Generator) -> Vec<(&'static str, String, String)>,
    /// The code version of its data stages: bump it when what the kind makes changes.
    pub version: &'static str,
}

/// One key of a kind.
pub struct Param {
    pub name: &'static str,
    pub value: ParamValue,
}

/// A key's type and default.
pub enum ParamValue {
    /// A finite number (an integer in the file counts as one), with its default.
    Float(f64),
    Bool(bool),
    /// One of these strings; with a default, or required when `None`.
    Choice(&'static [&'static str], Option<&'static str>),
    /// A folder of files that the set is made from: a source of the data stage (its content is
    /// keyed, not its path). Default: Tiny ImageNet's test images. At most one per kind.
    Folder,
}

impl ParamValue {
    /// The key's value when the table gives `given` (`None`: absent), or `None` if that is not
    /// of this type (or absent and required). A folder is not resolved here (see [`OodSet::resolve`]).
    fn resolve(&self, given: Option<&Value>) -> Option<Value> {
        match (self, given) {
            (ParamValue::Float(_), Some(v)) => v.as_f64().filter(|x| x.is_finite()).map(|x| json!(x)),
            (ParamValue::Float(d), None) => Some(json!(d)),
            (ParamValue::Bool(_), Some(v)) => v.as_bool().map(|b| json!(b)),
            (ParamValue::Bool(d), None) => Some(json!(d)),
            (ParamValue::Choice(options, _), Some(v)) => v.as_str().filter(|s| options.contains(s)).map(|s| json!(s)),
            (ParamValue::Choice(_, default), None) => default.map(|d| json!(d)),
            (ParamValue::Folder, Some(v)) => v.as_str().filter(|s| !s.is_empty()).map(|s| json!(s)),
            (ParamValue::Folder, None) => Some(Value::Null),
        }
    }

    /// What a value of this type is, for messages.
    fn expected(&self, kind: &str) -> String {
        match self {
            ParamValue::Float(_) => "a finite number".into(),
            ParamValue::Bool(_) => "true or false".into(),
            ParamValue::Choice(options, _) => {
                let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
                format!("one of {} (kind = \"{kind}\" needs it)", quoted.join(", "))
            }
            ParamValue::Folder => "a folder's path".into(),
        }
    }

    /// A valid value, standing in for a bad one while the other keys are checked.
    fn stand_in(&self) -> Value {
        match self {
            ParamValue::Float(d) => json!(d),
            ParamValue::Bool(d) => json!(d),
            ParamValue::Choice(options, _) => json!(options[0]),
            ParamValue::Folder => Value::Null,
        }
    }
}

impl SetKind {
    /// The registered kind called `name`.
    pub fn find(name: &str) -> Option<&'static SetKind> {
        crate::ood_kinds::ALL.iter().copied().find(|k| k.name == name)
    }

    /// The names of the registered kinds, quoted, for messages.
    pub fn names() -> String {
        crate::ood_kinds::ALL.iter().map(|k| format!("\"{}\"", k.name)).collect::<Vec<_>>().join(", ")
    }

    fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Its folder key, if it reads one.
    fn folder_param(&self) -> Option<&'static str> {
        self.params.iter().find(|p| matches!(p.value, ParamValue::Folder)).map(|p| p.name)
    }
}

/// How a set's images are made: its kind and every key of the kind (but a folder) resolved, as
/// JSON values (`{"kind": "gaussian", "mean": 0.5, "std": 1.0, "clip": true}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    pub kind: String,
    #[serde(flatten)]
    pub params: BTreeMap<String, Value>,
}

impl Generator {
    fn get(&self, key: &str) -> anyhow::Result<&Value> {
        self.params.get(key).ok_or_else(|| anyhow::anyhow!("OOD set kind `{}` has no resolved key `{key}`", self.kind))
    }

    /// The number `key` (declared [`ParamValue::Float`]).
    pub fn float(&self, key: &str) -> anyhow::Result<f64> {
        self.get(key)?.as_f64().ok_or_else(|| anyhow::anyhow!("key `{key}` of kind `{}`: expected a number", self.kind))
    }

    /// The switch `key` (declared [`ParamValue::Bool`]).
    pub fn bool(&self, key: &str) -> anyhow::Result<bool> {
        self.get(key)?.as_bool().ok_or_else(|| anyhow::anyhow!("key `{key}` of kind `{}`: expected true or false", self.kind))
    }

    /// The choice `key` (declared [`ParamValue::Choice`]).
    pub fn choice(&self, key: &str) -> anyhow::Result<&str> {
        self.get(key)?.as_str().ok_or_else(|| anyhow::anyhow!("key `{key}` of kind `{}`: expected a string", self.kind))
    }
}

/// A configured OOD set, every value resolved: what its data stage's task carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodSet {
    /// The table's name: `data.<name>`, `score.odin.<name>`, `<name>.safetensors`.
    pub name: String,
    pub label: String,
    pub count: usize,
    pub val: usize,
    pub seed: u64,
    pub generator: Generator,
    /// A kind that reads a folder: the label of the folder among the stage's sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_source: Option<String>,
    /// A kind that reads a folder: the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
}

/// The label of Tiny ImageNet's test images among a data stage's sources.
pub const TINY_IMAGENET_SOURCE: &str = "tiny-imagenet-200/test/images";

/// The paper's three sets (SPEC.md "Out-of-distribution sets"), as the default config declares them.
pub fn paper_sets() -> Vec<(String, OodSetConfig)> {
    let table = |kind: &str, label: &str, params: &[(&str, &str)]| OodSetConfig {
        kind: kind.into(),
        label: Some(label.into()),
        count: None,
        val: None,
        seed: None,
        params: params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect(),
    };
    vec![
        ("gaussian".into(), table("gaussian", "Gaussian Noise", &[])),
        ("tin_crop".into(), table("image_folder", "Tiny ImageNet (crop)", &[("transform", "crop")])),
        ("tin_resize".into(), table("image_folder", "Tiny ImageNet (resize)", &[("transform", "resize")])),
    ]
}

/// A JSON value as a TOML file shows it, for messages.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl OodSetConfig {
    /// The generator with every default filled in; `Err` names the first key that is missing or
    /// of the wrong type (the config check reports them all, [`OodSetConfig::problems`]).
    fn generator(&self) -> Result<Generator, (String, String, String)> {
        let kind = SetKind::find(&self.kind)
            .ok_or_else(|| ("kind".to_string(), format!("{:?}", self.kind), format!("a registered kind: {}", SetKind::names())))?;
        let mut params = BTreeMap::new();
        for p in kind.params.iter().filter(|p| !matches!(p.value, ParamValue::Folder)) {
            let given = self.params.get(p.name);
            let value = p
                .value
                .resolve(given)
                .ok_or_else(|| (p.name.to_string(), given.map(shown).unwrap_or_else(|| "absent".into()), p.value.expected(kind.name)))?;
            params.insert(p.name.to_string(), value);
        }
        Ok(Generator { kind: kind.name.to_string(), params })
    }

    /// The set's label: `label`, else the table's name.
    pub fn label_or(&self, name: &str) -> String {
        self.label.clone().unwrap_or_else(|| name.to_string())
    }

    /// Every problem of the table, as (dotted key, value as shown, expected); `name` is the table's.
    pub fn problems(&self, name: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let key = |field: &str| format!("ood.{name}.{field}");
        let name_ok =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') && name != "cifar10";
        if !name_ok {
            out.push((
                format!("ood.{name}"),
                format!("\"{name}\""),
                "a name of lowercase letters, digits and _ other than \"cifar10\" (it becomes stage ids and file names)".into(),
            ));
        }
        match SetKind::find(&self.kind) {
            None => out.push((key("kind"), format!("{:?}", self.kind), format!("a registered kind: {}", SetKind::names()))),
            Some(kind) => {
                // A key of another kind, or of none.
                for field in self.params.keys().filter(|f| kind.param(f).is_none()) {
                    let owners: Vec<String> = crate::ood_kinds::ALL
                        .iter()
                        .filter(|k| k.param(field).is_some())
                        .map(|k| format!("kind = \"{}\"", k.name))
                        .collect();
                    let expected = if owners.is_empty() {
                        let keys: Vec<&str> = kind.params.iter().map(|p| p.name).collect();
                        format!("no `{field}`: kind = \"{}\" has the keys label, count, val, seed, {}", kind.name, keys.join(", "))
                    } else {
                        format!("no `{field}`: it applies to {} only", owners.join(" or "))
                    };
                    out.push((key(field), "present".into(), expected));
                }
                // Each of its keys of its type, one problem per key; then, if all are, the kind's
                // own checks.
                let mut table = self.clone();
                let mut typed = true;
                let generator = loop {
                    match table.generator() {
                        Ok(generator) => break generator,
                        Err((field, value, expected)) => {
                            out.push((key(&field), value, expected));
                            typed = false;
                            // Reported; a stand-in value lets the next key be checked.
                            let stand_in = kind.param(&field).expect("a problem names one of the kind's keys").value.stand_in();
                            table.params.insert(field, stand_in);
                        }
                    }
                };
                if typed {
                    out.extend((kind.check)(&generator).into_iter().map(|(field, value, expected)| (key(field), value, expected)));
                }
                if let Some(folder) = kind.folder_param()
                    && let Some(v) = self.params.get(folder)
                    && ParamValue::Folder.resolve(Some(v)).is_none()
                {
                    out.push((key(folder), shown(v), ParamValue::Folder.expected(kind.name)));
                }
            }
        }
        if let Some(c) = self.count
            && !(2..=100_000).contains(&c)
        {
            out.push((key("count"), c.to_string(), "2 to 100000".into()));
        }
        // `val` against the count is checked with the inherited values (Config::validate).
        if self.label.as_deref().is_some_and(|l| l.trim().is_empty() || l.contains(['\n', '|'])) {
            out.push((key("label"), format!("{:?}", self.label), "a one-line label without |".into()));
        }
        out
    }
}

impl OodSet {
    /// Resolves a table: defaults from `data.ood_*` and the kind's. `tiny_imagenet` is the folder
    /// an image_folder set without `folder` reads (Tiny ImageNet's test images).
    pub fn resolve(name: &str, table: &OodSetConfig, data: &crate::config::DataConfig, tiny_imagenet: PathBuf) -> anyhow::Result<OodSet> {
        let generator = table
            .generator()
            .map_err(|(field, value, expected)| anyhow::anyhow!("config key ood.{name}.{field}: {value}: expected {expected}"))?;
        let kind = SetKind::find(&generator.kind).expect("a resolved generator's kind is registered");
        let (folder_source, folder) = match kind.folder_param() {
            None => (None, None),
            Some(key) => match table.params.get(key).and_then(Value::as_str) {
                None => (Some(TINY_IMAGENET_SOURCE.to_string()), Some(tiny_imagenet)),
                Some(dir) => (Some(format!("ood.{name}.{key}")), Some(PathBuf::from(dir))),
            },
        };
        Ok(OodSet {
            name: name.to_string(),
            label: table.label_or(name),
            count: table.count.unwrap_or(data.ood_count),
            val: table.val.unwrap_or(data.ood_val),
            seed: table.seed.unwrap_or(data.ood_seed),
            generator,
            folder_source,
            folder,
        })
    }

    /// What a data stage's key covers of this set: its count, validation size and seed (under
    /// `data.ood_*` when inherited from there, else `ood.<name>.*`), and every field of its
    /// generator that differs from the paper's set of the same name, as `ood.<name>.<field>`.
    pub fn key_params(&self, table: &OodSetConfig) -> BTreeMap<String, Value> {
        let mut params = BTreeMap::new();
        let own = |field: &str| format!("ood.{}.{field}", self.name);
        let mut sized = |set: bool, field: &str, data_field: &str, value: Value| {
            params.insert(if set { own(field) } else { format!("data.{data_field}") }, value);
        };
        sized(table.count.is_some(), "count", "ood_count", json!(self.count));
        sized(table.val.is_some(), "val", "ood_val", json!(self.val));
        sized(table.seed.is_some(), "seed", "ood_seed", json!(self.seed));
        let reference = paper_generator(&self.name);
        let fields = serde_json::to_value(&self.generator).expect("a generator serialises");
        for (field, value) in fields.as_object().expect("a generator is an object") {
            if reference.as_ref().and_then(|r| r.get(field)) != Some(value) {
                params.insert(own(field), value.clone());
            }
        }
        params
    }

    /// What a score stage's key covers of this set: its label (written into metrics.json), unless
    /// it is the paper's label for that name.
    pub fn label_params(&self) -> BTreeMap<String, Value> {
        let paper = paper_sets().into_iter().find(|(n, _)| *n == self.name).and_then(|(_, t)| t.label);
        if paper.as_deref() == Some(self.label.as_str()) {
            BTreeMap::new()
        } else {
            [(format!("ood.{}.label", self.name), json!(self.label))].into()
        }
    }
}

/// The generator of the paper's set called `name`, as JSON fields.
fn paper_generator(name: &str) -> Option<serde_json::Map<String, Value>> {
    let (_, table) = paper_sets().into_iter().find(|(n, _)| n == name)?;
    match serde_json::to_value(table.generator().ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataConfig;

    /// A table with `params` set (JSON values) on top of `t`'s.
    fn with(t: &OodSetConfig, params: &[(&str, Value)]) -> OodSetConfig {
        let mut t = t.clone();
        t.params.extend(params.iter().map(|(k, v)| (k.to_string(), v.clone())));
        t
    }

    #[test]
    fn every_kind_file_is_registered_and_each_name_is_its_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ood_kinds");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f != "mod.rs")
            .filter_map(|f| f.strip_suffix(".rs").map(str::to_string))
            .collect();
        files.sort();
        let mut registered: Vec<&str> = crate::ood_kinds::ALL.iter().map(|k| k.name).collect();
        registered.sort();
        assert_eq!(files, registered, "ood_kinds/: files vs the registry in ood_kinds/mod.rs (a kind's name must be its file's)");
        for kind in crate::ood_kinds::ALL {
            assert!(kind.params.iter().filter(|p| matches!(p.value, ParamValue::Folder)).count() <= 1, "{}: one folder at most", kind.name);
        }
    }

    #[test]
    fn a_kind_no_file_declares_is_refused_naming_the_registered_ones() {
        let (_, mut t) = paper_sets().remove(0);
        t.kind = "checkerboard".into();
        let problems = t.problems("mine");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "ood.mine.kind");
        assert!(problems[0].2.contains("\"gaussian\", \"uniform\", \"image_folder\""), "{problems:?}");
        let err = OodSet::resolve("mine", &t, &DataConfig::default(), "tin".into()).unwrap_err().to_string();
        assert!(err.contains("ood.mine.kind") && err.contains("checkerboard"), "{err}");
    }

    fn resolve(name: &str, t: &OodSetConfig) -> OodSet {
        OodSet::resolve(name, t, &DataConfig::default(), "tin".into()).unwrap()
    }

    #[test]
    fn the_paper_sets_key_only_the_shared_data_fields() {
        for (name, table) in paper_sets() {
            let set = resolve(&name, &table);
            let keys: Vec<String> = set.key_params(&table).into_keys().collect();
            assert_eq!(keys, ["data.ood_count", "data.ood_seed", "data.ood_val"], "{name}");
            assert!(set.label_params().is_empty());
        }
    }

    #[test]
    fn every_field_of_a_set_reaches_its_key() {
        let (_, gaussian) = paper_sets().remove(0);
        let base = resolve("gaussian", &gaussian).key_params(&gaussian);
        let uniform = OodSetConfig { kind: "uniform".into(), ..gaussian.clone() };
        let variants: Vec<OodSetConfig> = vec![
            with(&gaussian, &[("mean", json!(0.4))]),
            with(&gaussian, &[("std", json!(0.5))]),
            with(&gaussian, &[("clip", json!(false))]),
            OodSetConfig { count: Some(99), ..gaussian.clone() },
            OodSetConfig { val: Some(9), ..gaussian.clone() },
            OodSetConfig { seed: Some(9), ..gaussian.clone() },
            uniform.clone(),
        ];
        for v in variants {
            assert_ne!(resolve("gaussian", &v).key_params(&v), base, "{v:?}");
        }
        // A set of another name keys its whole generator, so that renaming a set cannot reuse a
        // stage whose data came from another definition.
        let mine = resolve("mine", &gaussian).key_params(&gaussian);
        assert!(mine.contains_key("ood.mine.kind") && mine.contains_key("ood.mine.std"), "{mine:?}");
        let (_, crop) = paper_sets().remove(1);
        let resize = with(&crop, &[("transform", json!("resize"))]);
        assert_ne!(resolve("tin_crop", &resize).key_params(&resize), resolve("tin_crop", &crop).key_params(&crop));
    }

    /// The paper's generators, as JSON, are what the closed enum of earlier versions serialised
    /// to: the data stages' keys (and every cache built before kinds were a registry) stay.
    #[test]
    fn the_paper_generators_serialise_as_before() {
        let json: Vec<Value> = paper_sets().iter().map(|(name, t)| serde_json::to_value(resolve(name, t).generator).unwrap()).collect();
        assert_eq!(json[0], json!({"kind": "gaussian", "mean": 0.5, "std": 1.0, "clip": true}));
        assert_eq!(json[1], json!({"kind": "image_folder", "transform": "crop"}));
        assert_eq!(json[2], json!({"kind": "image_folder", "transform": "resize"}));
        // An integer where a number is expected is that number.
        let (_, g) = paper_sets().remove(0);
        assert_eq!(resolve("g", &with(&g, &[("mean", json!(1))])).generator.params["mean"], json!(1.0));
    }

    #[test]
    fn misplaced_and_missing_fields_are_named() {
        let (_, t) = paper_sets().remove(0);
        let t = with(&t, &[("transform", json!("crop")), ("std", json!(0.0))]);
        let problems = t.problems("Bad-Name");
        let keys: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(keys, ["ood.Bad-Name", "ood.Bad-Name.transform", "ood.Bad-Name.std"], "{problems:?}");
        assert!(problems[1].2.contains("applies to kind = \"image_folder\" only"), "{problems:?}");
        let (_, mut folder) = paper_sets().remove(1);
        folder.params.clear();
        assert_eq!(folder.problems("x")[0].0, "ood.x.transform");
        // Wrong types, each named, and a key no kind has.
        let bad = with(&paper_sets().remove(0).1, &[("mean", json!("half")), ("clip", json!(1)), ("sigma", json!(1.0))]);
        let problems = bad.problems("g");
        let keys: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(keys, ["ood.g.sigma", "ood.g.mean", "ood.g.clip"], "{problems:?}");
        assert!(problems[0].2.contains("kind = \"gaussian\" has the keys label, count, val, seed, mean, std, clip"), "{problems:?}");
        let uniform = with(&OodSetConfig { kind: "uniform".into(), ..paper_sets().remove(0).1 }, &[("low", json!(2.0))]);
        assert_eq!(uniform.problems("u")[0].0, "ood.u.high");
    }
}
