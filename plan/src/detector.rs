//! What a detector is, to the stage table: its id and label, the trained model whose outputs it
//! scores, the config fields it reads, whether it is tuned, whether it brings its own stage, and
//! its code version. The detectors themselves live in `detectors/`, one file each, with their
//! score code; this crate compiles their descriptions only (the score code is compiled, with
//! libtorch, in `oodpipe-stages`, under `cfg(oodpipe_compute)`).
//!
//! Stages a detector gets, for every OOD set `<set>` (ids from [`crate::ids`]):
//! - `score.<name>.<set>` (kind `score`, salt [`Detector::version`]): inputs the model's outputs
//!   on CIFAR-10 and on the set, its tune stage if it is tuned (else its prepare stage if it has one), and, if
//!   [`Detector::network`], the trained model and both data sets; reads [`Detector::reads`] (and the
//!   network's own fields when it runs the network).
//! - `tune.<name>.<set>` if [`Detector::tuning`]: on the validation splits.
//! - one `<kind>.<name>.cifar10` if [`Detector::prepare`]: on CIFAR-10, shared by every set; an
//!   input of the tune stages (ODIN's grid), or of the score stages when there is no tuning
//!   (Mahalanobis's fit).
//!
//! With [`Detector::features`], each of these stages also gets the shared stages of the model's
//! pooled penultimate features, `features.<model>.cifar10` (training, validation and test
//! splits) and, for a set's stages, `features.<model>.<set>`: computed once per data set and
//! model, whichever detectors read them. With [`Detector::params`], each is keyed on the
//! detector's own config table `[detector.<name>]` ([`crate::detector_params`]).

pub use crate::config::ModelKind;
pub use crate::detector_params::{Hyperparameters, OwnParams, Problems, own};
/// The models a detector names (`model: ModelKind::of(&models::softmax::MODEL)`).
pub use crate::models;
pub use crate::view::{EvalBatch, Reads, Temperatures, reads};
pub use serde::{Deserialize, Serialize};

/// Which of the report's tables a detector's rows go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTable {
    /// The paper's Table 1 (its eight methods).
    Paper,
    /// Table 3, "beyond the paper".
    Beyond,
}

/// A stage a detector adds beside its score stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraStage {
    /// The stage kind (`tune`, `features`).
    pub kind: &'static str,
    /// Its code version (the key's salt).
    pub version: &'static str,
    /// The config views it reads (besides the network's when it runs the network), e.g.
    /// `&[reads::<EvalBatch>()]`; its code reads them with `stage.config::<EvalBatch>()`.
    pub reads: &'static [Reads],
    /// Whether it runs the network (then it gets the trained model and the data, and every core).
    pub network: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    /// In stage ids: `score.<name>.<set>`.
    pub name: &'static str,
    /// In the report's tables and `results.csv`.
    pub label: &'static str,
    /// The trained model it scores with.
    pub model: ModelKind,
    pub table: ReportTable,
    /// The code version of its score stages; bump it when its score code changes.
    pub version: &'static str,
    /// The config views its score stages read (besides the network's when it runs the network).
    pub reads: &'static [Reads],
    /// Whether its score stages run the network (not only read stored outputs).
    pub network: bool,
    /// Its tune stage per OOD set, if it has hyper-parameters chosen on the validation splits.
    pub tuning: Option<ExtraStage>,
    /// Its stage on CIFAR-10 shared by every OOD set, if it has one.
    pub prepare: Option<ExtraStage>,
    /// Whether its stages read its model's pooled penultimate features (see the module's doc).
    pub features: bool,
    /// Its own hyper-parameters, the config table `[detector.<name>]`: `Some(own::<Params>())`.
    pub params: Option<OwnParams>,
}

impl Detector {
    /// The common case to start from with struct update syntax: a detector that scores its model's
    /// stored outputs, reads no config view, runs no network, is not tuned, has no stage of its
    /// own, reads no features and has no hyper-parameters. `Detector { name: "x", label: "X", model: .., table: .., version: "x-1", ..Detector::FROM_OUTPUTS }`;
    /// its empty name and version never pass the registry's test.
    pub const FROM_OUTPUTS: Detector = Detector {
        name: "",
        label: "",
        model: ModelKind::of(&crate::models::softmax::MODEL),
        table: ReportTable::Beyond,
        version: "",
        reads: &[],
        network: false,
        tuning: None,
        prepare: None,
        features: false,
        params: None,
    };
}

pub use crate::detectors::ALL;

/// The registered detector called `name`.
pub fn find(name: &str) -> Option<&'static Detector> {
    ALL.iter().copied().find(|d| d.name == name)
}
