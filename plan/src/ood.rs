//! The out-of-distribution sets, declared in the config as `[ood.<name>]` tables.
//!
//! It exists so that a researcher adds an OOD set by writing a table, with no code: noise
//! (`kind = "gaussian"` or `"uniform"`) or a folder of JPEG/PNG images of any size
//! (`kind = "image_folder"`, made 32 x 32 by `transform = "crop"` or `"resize"`). The default config
//! declares the paper's three sets this way ([`paper_sets`]).
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

/// One `[ood.<name>]` table as written. Which fields apply depends on `kind`; the others are
/// refused by [`crate::Config::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodSetConfig {
    pub kind: OodKind,
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
    /// gaussian: mean and standard deviation of every pixel value, in [0, 1] units (0.5, 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// gaussian: clip the values to [0, 1] (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<bool>,
    /// uniform: the range of every pixel value (0.0, 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// image_folder: the folder of images (default: Tiny ImageNet's test images, see
    /// `data.tiny_imagenet_dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
    /// image_folder: how an image becomes 32 x 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OodKind {
    Gaussian,
    Uniform,
    ImageFolder,
}

impl OodKind {
    /// The name a config gives the kind (`kind = "..."`, as serde reads it). A match without a
    /// wildcard: a new kind does not compile until it is named here.
    pub fn name(self) -> &'static str {
        match self {
            OodKind::Gaussian => "gaussian",
            OodKind::Uniform => "uniform",
            OodKind::ImageFolder => "image_folder",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// A uniformly random 32 x 32 patch (images must be at least 32 x 32).
    Crop,
    /// The whole image averaged down to 32 x 32 (area averaging; a 2 x 2 box for 64 x 64 images).
    Resize,
}

/// How a set's images are made, every value resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Generator {
    Gaussian { mean: f64, std: f64, clip: bool },
    Uniform { low: f64, high: f64 },
    ImageFolder { transform: Transform },
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
    /// image_folder: the label of the folder among the stage's sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_source: Option<String>,
    /// image_folder: the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
}

/// The label of Tiny ImageNet's test images among a data stage's sources.
pub const TINY_IMAGENET_SOURCE: &str = "tiny-imagenet-200/test/images";

/// The paper's three sets (SPEC.md "Out-of-distribution sets"), as the default config declares them.
pub fn paper_sets() -> Vec<(String, OodSetConfig)> {
    let blank = OodSetConfig {
        kind: OodKind::Gaussian,
        label: None,
        count: None,
        val: None,
        seed: None,
        mean: None,
        std: None,
        clip: None,
        low: None,
        high: None,
        folder: None,
        transform: None,
    };
    let folder = |label: &str, transform| OodSetConfig {
        kind: OodKind::ImageFolder,
        label: Some(label.into()),
        transform: Some(transform),
        ..blank.clone()
    };
    vec![
        ("gaussian".into(), OodSetConfig { label: Some("Gaussian Noise".into()), ..blank.clone() }),
        ("tin_crop".into(), folder("Tiny ImageNet (crop)", Transform::Crop)),
        ("tin_resize".into(), folder("Tiny ImageNet (resize)", Transform::Resize)),
    ]
}

impl OodSetConfig {
    /// The generator with every default filled in (`transform` must be given for a folder).
    fn generator(&self) -> Option<Generator> {
        Some(match self.kind {
            OodKind::Gaussian => {
                Generator::Gaussian { mean: self.mean.unwrap_or(0.5), std: self.std.unwrap_or(1.0), clip: self.clip.unwrap_or(true) }
            }
            OodKind::Uniform => Generator::Uniform { low: self.low.unwrap_or(0.0), high: self.high.unwrap_or(1.0) },
            OodKind::ImageFolder => Generator::ImageFolder { transform: self.transform? },
        })
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
        let only = |present: bool, field: &str, kind: OodKind, out: &mut Vec<_>| {
            if present && self.kind != kind {
                out.push((key(field), "present".into(), format!("no `{field}`: it applies to kind = \"{}\" only", kind.name())));
            }
        };
        only(self.mean.is_some(), "mean", OodKind::Gaussian, &mut out);
        only(self.std.is_some(), "std", OodKind::Gaussian, &mut out);
        only(self.clip.is_some(), "clip", OodKind::Gaussian, &mut out);
        only(self.low.is_some(), "low", OodKind::Uniform, &mut out);
        only(self.high.is_some(), "high", OodKind::Uniform, &mut out);
        only(self.folder.is_some(), "folder", OodKind::ImageFolder, &mut out);
        only(self.transform.is_some(), "transform", OodKind::ImageFolder, &mut out);
        if self.kind == OodKind::ImageFolder && self.transform.is_none() {
            out.push((key("transform"), "absent".into(), "\"crop\" or \"resize\" for an image_folder set".into()));
        }
        if let Some(m) = self.mean
            && !m.is_finite()
        {
            out.push((key("mean"), format!("{m:?}"), "a finite number".into()));
        }
        if let Some(s) = self.std
            && !(s > 0.0 && s.is_finite())
        {
            out.push((key("std"), format!("{s:?}"), "a positive number".into()));
        }
        let (low, high) = (self.low.unwrap_or(0.0), self.high.unwrap_or(1.0));
        if !(low.is_finite() && high.is_finite() && low < high) {
            out.push((key("high"), format!("{high:?} (low {low:?})"), "finite numbers with low < high".into()));
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
            .ok_or_else(|| anyhow::anyhow!("config key ood.{name}.transform: an image_folder set needs \"crop\" or \"resize\""))?;
        let (folder_source, folder) = match (&generator, &table.folder) {
            (Generator::ImageFolder { .. }, None) => (Some(TINY_IMAGENET_SOURCE.to_string()), Some(tiny_imagenet)),
            (Generator::ImageFolder { .. }, Some(dir)) => (Some(format!("ood.{name}.folder")), Some(dir.clone())),
            _ => (None, None),
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
    match serde_json::to_value(table.generator()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataConfig;

    #[test]
    fn a_kinds_name_is_what_the_config_says() {
        for kind in [OodKind::Gaussian, OodKind::Uniform, OodKind::ImageFolder] {
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.name()));
        }
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
        let variants: Vec<OodSetConfig> = vec![
            OodSetConfig { mean: Some(0.4), ..gaussian.clone() },
            OodSetConfig { std: Some(0.5), ..gaussian.clone() },
            OodSetConfig { clip: Some(false), ..gaussian.clone() },
            OodSetConfig { count: Some(99), ..gaussian.clone() },
            OodSetConfig { val: Some(9), ..gaussian.clone() },
            OodSetConfig { seed: Some(9), ..gaussian.clone() },
            OodSetConfig { kind: OodKind::Uniform, mean: None, ..gaussian.clone() },
        ];
        for v in variants {
            assert_ne!(resolve("gaussian", &v).key_params(&v), base, "{v:?}");
        }
        // A set of another name keys its whole generator, so that renaming a set cannot reuse a
        // stage whose data came from another definition.
        let mine = resolve("mine", &gaussian).key_params(&gaussian);
        assert!(mine.contains_key("ood.mine.kind") && mine.contains_key("ood.mine.std"), "{mine:?}");
        let (_, crop) = paper_sets().remove(1);
        let resize = OodSetConfig { transform: Some(Transform::Resize), ..crop.clone() };
        assert_ne!(resolve("tin_crop", &resize).key_params(&resize), resolve("tin_crop", &crop).key_params(&crop));
    }

    #[test]
    fn misplaced_and_missing_fields_are_named() {
        let (_, mut t) = paper_sets().remove(0);
        t.transform = Some(Transform::Crop);
        t.std = Some(0.0);
        let problems = t.problems("Bad-Name");
        let keys: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(keys, ["ood.Bad-Name", "ood.Bad-Name.transform", "ood.Bad-Name.std"], "{problems:?}");
        let folder = OodSetConfig { kind: OodKind::ImageFolder, transform: None, ..paper_sets().remove(1).1 };
        assert_eq!(folder.problems("x")[0].0, "ood.x.transform");
    }
}
