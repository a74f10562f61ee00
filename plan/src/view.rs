//! What a stage's code may read of the config: views, structs that mirror the config's tables with
//! only the fields a stage reads.
//!
//! A stage's key must cover every config field its result depends on, and nothing else. So what a
//! stage reads is not a list of names beside its code but the types its code reads through:
//! - The table declares a stage's reads as views ([`Reads`], made by [`reads`]); the plan selects
//!   each view from the run's config, and a view naming a field the config does not have is
//!   refused there, when the plan is built ([`Reads::select`]).
//! - The stage's params (its key, and all the config its worker is given) are the selected views'
//!   leaves, under the config's own dotted names (`train.lr`), so `status` and `show` speak the
//!   config's language.
//! - The stage's code is given views, never the config ([`from_params`], through the stage's
//!   context): reading a field its view does not have does not compile, and asking for a view
//!   wider than the stage declares fails the stage at its start, naming the fields.
//!
//! A view is any struct that serde can write and read whose fields mirror the config's paths
//! (`struct EvalBatch { eval: Batch }`, `struct Batch { batch_size: usize }`: the one field
//! `eval.batch_size`). It takes no `#[serde(default)]`: a missing field is an error, not a default.
//!
//! The training's code, given its views as the worker gives them:
//! ```
//! use oodpipe_plan::view::{self, Params};
//! fn training(params: &Params) -> anyhow::Result<(usize, i64)> {
//!     let (network, config): (view::Network, view::Training) = (view::from_params(params)?, view::from_params(params)?);
//!     Ok((config.eval.batch_size, network.model.depth))
//! }
//! let config = oodpipe_plan::Config::default();
//! let tree = view::for_model(serde_json::to_value(&config)?, oodpipe_plan::config::ModelKind::find("softmax"));
//! let mut params = view::reads::<view::Network>().select(&tree)?;
//! params.extend(view::reads::<view::Training>().select(&tree)?);
//! assert_eq!(training(&params)?, (500, 28));
//! # Ok::<(), anyhow::Error>(())
//! ```
//! The same code reading a field its views do not have (`tune.temperatures`, which the training
//! does not declare) is not a program: `error[E0609]: no field `tune` on type `Training``
//! (`plan/tests/views_compile.rs` compiles it with rustc and checks that error, on stable, beside
//! the same code reading a declared field, which must compile):
//! ```text
//! fn training(params: &Params) -> anyhow::Result<usize> {
//!     let config: view::Training = view::from_params(params)?;
//!     Ok(config.tune.temperatures.len())
//! }
//! ```

use crate::config::{ModelConfig, TrainConfig};
use crate::model::ModelKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A stage's config params: dotted leaf paths to values, as the engine keys them.
pub type Params = BTreeMap<String, Value>;

/// A view of the config (see the module's doc).
pub trait View: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> View for T {}

/// A view as a value, for the stage table and detectors' descriptions (which are constants).
#[derive(Clone, Copy)]
pub struct Reads {
    name: fn() -> &'static str,
    select: fn(&Value) -> Result<Params, String>,
    given: fn(&Params) -> anyhow::Result<()>,
}

/// The view type `V` as a [`Reads`].
pub const fn reads<V: View>() -> Reads {
    Reads { name: std::any::type_name::<V>, select: select_leaves::<V>, given: given::<V> }
}

fn given<V: View>(params: &Params) -> anyhow::Result<()> {
    from_params::<V>(params).map(|_| ())
}

impl Reads {
    /// The view's type name without its module path (`EvalBatch`).
    pub fn name(&self) -> &'static str {
        let full = (self.name)();
        full.rsplit("::").next().unwrap_or(full)
    }

    /// The view's fields in `config` (the config serialised), as params. Fails naming the field
    /// when the view has one the config does not.
    pub fn select(&self, config: &Value) -> anyhow::Result<Params> {
        let params = (self.select)(config).map_err(|e| anyhow::anyhow!("the view {} does not fit the config: {e}", self.name()))?;
        for path in params.keys() {
            if crate::config::lookup(config, path).is_none() {
                anyhow::bail!("the view {} has the field `{path}`, which the config schema does not have", self.name());
            }
        }
        Ok(params)
    }

    /// Whether a worker given `params` can read this view from them.
    pub fn given(&self, params: &Params) -> anyhow::Result<()> {
        (self.given)(params)
    }
}

impl PartialEq for Reads {
    fn eq(&self, other: &Self) -> bool {
        (self.name)() == (other.name)()
    }
}

impl Eq for Reads {}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn select_leaves<V: View>(config: &Value) -> Result<Params, String> {
    let view = V::deserialize(config).map_err(|e| e.to_string())?;
    Ok(leaves(&serde_json::to_value(&view).map_err(|e| e.to_string())?))
}

/// Every leaf of a tree under its dotted path, as the engine keys params.
pub use oodpipe_engine::stage_spec::flatten_all as leaves;

/// The view `V` of a stage's params (what its worker is given). Fails naming the fields when `V`
/// reads one the params do not have: the stage's code asks for more than the stage declares.
/// Params under `ood` are not config fields (an OOD set's definition travels in the task).
pub fn from_params<V: View>(params: &Params) -> anyhow::Result<V> {
    let mut tree = Value::Object(Default::default());
    for (path, value) in params.iter().filter(|(k, _)| *k != "ood" && !k.starts_with("ood.")) {
        let mut node = &mut tree;
        for part in path.split('.') {
            node = &mut node[part];
        }
        *node = value.clone();
    }
    let name = || std::any::type_name::<V>().rsplit("::").next().unwrap_or("?").to_string();
    let read = match V::deserialize(&tree) {
        Ok(view) => leaves(&serde_json::to_value(&view)?),
        // What the view would read of a whole config, to name the fields.
        Err(e) => select_leaves::<V>(&for_model(serde_json::to_value(crate::Config::default())?, None))
            .map_err(|_| anyhow::anyhow!("the code reads the view {} of the config, which does not fit it: {e}", name()))?,
    };
    // Fields with defaults (whole config tables, options) deserialise without being given: compare.
    let undeclared: Vec<&str> = read.keys().filter(|k| !params.contains_key(*k)).map(String::as_str).collect();
    if !undeclared.is_empty() {
        anyhow::bail!(
            "the code reads the config field(s) {} through the view {}, which the stage does not declare (it declares: {})",
            undeclared.join(", "),
            name(),
            if params.is_empty() { "nothing".to_string() } else { params.keys().cloned().collect::<Vec<_>>().join(", ") }
        );
    }
    V::deserialize(&tree).map_err(|e| anyhow::anyhow!("the view {} of the stage's params: {e}", name()))
}

/// The view `V` of a whole config, as a stage of `model` that runs its network would be given it
/// (for tests and tools that hold a config; stage code is given params, not a config).
pub fn of_config<V: View>(config: &crate::Config, model: Option<ModelKind>) -> anyhow::Result<V> {
    let tree = for_model(serde_json::to_value(config)?, model);
    from_params(&reads::<V>().select(&tree)?)
}

/// The view `V` of a whole config, as `model`'s training is given it (its whole table).
pub fn of_config_for_training<V: View>(config: &crate::Config, model: ModelKind) -> anyhow::Result<V> {
    let tree = for_training(serde_json::to_value(config)?, model);
    from_params(&reads::<V>().select(&tree)?)
}

/// A config as the stages of `model` that read its network see it: of the `methods` tables only
/// that model's, and of it only its shape's fields (none for softmax and BIN, none at all for
/// stages of no model), so that a model's key never covers another's fields nor, past its
/// training, its own loss weights.
pub fn for_model(tree: Value, model: Option<ModelKind>) -> Value {
    // The shape's field names, once (not once per field of the table).
    let shape = model.map(|m| m.model().shape_fields()).unwrap_or_default();
    keep_table(tree, model, |field| shape.iter().any(|f| f == field))
}

/// A config as `model`'s training sees it: of the `methods` tables only that model's, whole.
pub fn for_training(tree: Value, model: ModelKind) -> Value {
    keep_table(tree, Some(model), |_| true)
}

fn keep_table(mut tree: Value, model: Option<ModelKind>, keep: impl Fn(&str) -> bool) -> Value {
    if let Some(methods) = tree.get_mut(crate::model::KEY).and_then(Value::as_object_mut) {
        methods.retain(|name, _| model.is_some_and(|m| m.name() == name));
        if let Some(m) = model
            && let Some(Value::Object(fields)) = methods.get_mut(m.name())
        {
            fields.retain(|field, _| keep(field));
            if fields.is_empty() {
                methods.remove(m.name());
            }
        }
    }
    tree
}

// The views of the stages of the stage table, and views that detectors share.

/// `eval.batch_size`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalBatch {
    pub eval: Batch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub batch_size: usize,
}

/// `tune.temperatures`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Temperatures {
    pub tune: TemperatureGrid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemperatureGrid {
    pub temperatures: Vec<f64>,
}

/// The CIFAR-10 splits: `data.split_seed`, `data.val_size`, `data.train_limit`, `data.test_limit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cifar10Split {
    pub data: SplitFields,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitFields {
    pub split_seed: u64,
    pub val_size: usize,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
}

/// What defines a trained network's computation at inference: `model`, `train.channels_last` and
/// its model's shape fields in `methods.<model>` (`z`; [`for_model`] leaves only that model's
/// table, and only its shape, [`crate::model::Model::shape`]). The loss weights reach the training
/// only ([`for_training`]): the outputs, features and detectors of a network are keyed by what
/// inference reads. The model's code reads its table through its own types
/// ([`crate::model::read`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub model: ModelConfig,
    pub train: ChannelsLast,
    /// The stage's model's table (absent when it has no fields the stage reads: an empty table
    /// would be a param of its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Network {
    /// The fields of `model`'s table this view was given (`None`: none).
    pub fn table(&self, model: crate::model::ModelKind) -> Option<&BTreeMap<String, Value>> {
        self.methods.get(model.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelsLast {
    pub channels_last: bool,
}

/// A training (beside [`Network`]): every `train` field, and `eval.batch_size` (the validation
/// accuracy in `train.json` is computed in batches of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Training {
    pub train: TrainConfig,
    pub eval: Batch,
}

/// The report: `train.seed` (the first seed's stages carry plain ids), `report.bootstrap`,
/// `report.bootstrap_seed`, `report.claims_bootstrap`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub train: Seed,
    pub report: Bootstrap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seed {
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bootstrap {
    pub bootstrap: usize,
    pub bootstrap_seed: u64,
    pub claims_bootstrap: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_view_selects_its_leaves_under_the_configs_names() {
        let bin = ModelKind::find("bin").unwrap();
        let tree = for_model(serde_json::to_value(crate::Config::default()).unwrap(), Some(bin));
        let params = reads::<Network>().select(&tree).unwrap();
        let keys: Vec<&str> = params.keys().map(String::as_str).collect();
        // Inference does not read BIN's loss weight; the training does, through its own view.
        assert_eq!(keys, ["model.depth", "model.widen", "train.channels_last"]);
        assert_eq!(params["model.depth"], json!(28));
        let config = || serde_json::to_value(crate::Config::default()).unwrap();
        let methods = |tree: &Value| -> Vec<String> {
            reads::<Network>().select(tree).unwrap().into_keys().filter(|k| k.starts_with("methods")).collect()
        };
        assert_eq!(methods(&for_training(config(), bin)), ["methods.bin.zeta"]);
        let binc = ModelKind::find("binc").unwrap();
        assert_eq!(methods(&for_model(config(), Some(binc))), ["methods.binc.z"]);
        assert_eq!(methods(&for_training(config(), binc)), ["methods.binc.lambda", "methods.binc.z", "methods.binc.zeta"]);
        let softmax = for_model(tree.clone(), ModelKind::find("softmax"));
        assert!(!reads::<Network>().select(&softmax).unwrap().keys().any(|k| k.starts_with("methods")));
    }

    #[derive(Serialize, Deserialize)]
    struct Typo {
        eval: BatchTypo,
    }
    #[derive(Serialize, Deserialize)]
    struct BatchTypo {
        batchsize: usize,
    }
    #[derive(Serialize, Deserialize)]
    struct OptionalTypo {
        data: LimitTypo,
    }
    #[derive(Serialize, Deserialize)]
    struct LimitTypo {
        test_limt: Option<usize>,
    }

    #[test]
    fn a_view_with_a_field_the_config_lacks_is_refused_naming_it() {
        let tree = serde_json::to_value(crate::Config::default()).unwrap();
        let err = reads::<Typo>().select(&tree).unwrap_err().to_string();
        assert!(err.contains("Typo") && err.contains("batchsize"), "{err}");
        // An optional field deserialises as absent: caught by its path instead.
        let err = reads::<OptionalTypo>().select(&tree).unwrap_err().to_string();
        assert!(err.contains("`data.test_limt`"), "{err}");
    }

    #[test]
    fn code_asking_for_more_than_declared_is_refused_naming_the_fields() {
        let params: Params = [("eval.batch_size".to_string(), json!(7))].into();
        assert_eq!(from_params::<EvalBatch>(&params).unwrap().eval.batch_size, 7);
        let err = from_params::<Temperatures>(&params).unwrap_err().to_string();
        assert!(err.contains("Temperatures") && err.contains("temperatures"), "{err}");
        // A whole table with defaults: every leaf must be declared, not filled in by default.
        let partial: Params = [("train.lr".to_string(), json!(0.5)), ("eval.batch_size".to_string(), json!(7))].into();
        let err = from_params::<Training>(&partial).unwrap_err().to_string();
        assert!(err.contains("train.epochs") && err.contains("train.momentum"), "{err}");
        assert!(!err.contains("train.lr,"), "{err}");
    }
}
