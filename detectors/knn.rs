//! KNN (Sun et al., ICML 2022), as OpenOOD v1.5's `knn` postprocessor: the pooled penultimate
//! features, each divided by its L2 norm; the score of an image is minus the squared Euclidean
//! distance from its normalised feature to the K-th nearest normalised feature of CIFAR-10's
//! training split (what faiss's `IndexFlatL2` search returns; OpenOOD's `-D[:, -1]`). Exact: every
//! distance is computed, no approximate index (an f32 GEMM finds the candidates, the K-th is
//! recomputed in f64: `stages/src/nearest.rs`). K is
//! `detector.knn.k`, default 50 (OpenOOD's default; it tunes K on its OOD validation sets, here it
//! is fixed).
//!
//! Where the spec leaves it open: OpenOOD's normaliser adds 1e-10 to every entry after dividing
//! (`x / ||x|| + 1e-10`), which shifts no distance; it is left out. A feature vector of zeros (a
//! network whose every feature is dead on an image) stays zero instead of dividing by zero, so
//! its squared distance to every training feature is 1. A K above the training split's size is
//! refused naming the key. Ties among distances do not matter: the K-th smallest value is the
//! same whichever of the tied ones is counted first.
//!
//! Its stage `fit.knn.cifar10` scores CIFAR-10's test and validation splits once for every OOD
//! set (the expensive part: 45,000 x 15,000 distances); the score stages compute only the OOD
//! set's side. See the README for the time it takes.

use crate::detector::*;

/// `[detector.knn]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Which nearest training feature's distance is the score, at least 1.
    pub k: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { k: 50 }
    }
}

impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.k >= 1, "k", &self.k, "at least 1");
    }
}

pub const DETECTOR: Detector = Detector {
    name: "knn",
    label: "KNN",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "knn-2",
    prepare: Some(ExtraStage { kind: "fit", version: "knn-2", reads: &[], network: false }),
    features: true,
    params: Some(own::<Params>()),
    ..Detector::FROM_OUTPUTS
};

/// The CIFAR-10 splits the fit scores once.
pub const CIFAR10_SPLITS: [&str; 2] = [crate::ids::splits::TEST, crate::ids::splits::VAL];

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;
    use tch::Kind;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `<split>_scores` f64 [N] of CIFAR-10's test and val splits.
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let k = s.hyperparameters::<super::Params>()?.k;
            let train = normalise(&s.features(CIFAR10, "train")?);
            let mut named = Vec::new();
            for (i, split) in super::CIFAR10_SPLITS.iter().enumerate() {
                s.report_progress(i as u64, super::CIFAR10_SPLITS.len() as u64, &format!("CIFAR-10's {split} split"));
                named.push((format!("{split}_scores"), Tensor::from_slice(&scores(&train, &s.features(CIFAR10, split)?, k)?)));
            }
            let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
            crate::tensors::write(&s.output_path(files::PREPARED), &refs)
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let split = s.split;
            let k = s.hyperparameters::<super::Params>()?.k;
            let in_scores = crate::tensors::read_one(s.prepared(files::PREPARED)?, &format!("{split}_scores"))?;
            let train = normalise(&s.features(CIFAR10, "train")?);
            let out_scores = scores(&train, &s.features(s.ood(), split)?, k)?;
            Ok(Scored::new(stats::to_vec(&in_scores)?, out_scores).with("k", k as f64))
        }
    }

    /// Each row of `features` [N, D] divided by its L2 norm (a row of zeros stays zero), in f64.
    pub fn normalise(features: &Tensor) -> Tensor {
        let f = stats::f64s(features);
        let norm = f.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double).sqrt();
        let safe = norm.where_self(&norm.gt(0.0), &norm.ones_like());
        f / safe
    }

    /// Minus the squared distance from each normalised row of `queries` [M, D] to its `k`-th
    /// nearest row of `train` [N, D] (already normalised), in f64: exact, at an f32 GEMM's speed
    /// (`stages/src/nearest.rs`).
    pub fn scores(train: &Tensor, queries: &Tensor, k: usize) -> Result<Vec<f64>> {
        let n = train.size()[0];
        if k < 1 || k as i64 > n {
            bail!("detector.knn.k = {k}: expected 1 to the training split's size, {n}");
        }
        let kth = crate::nearest::kth_squared_distances(train, &normalise(queries), k)?;
        Ok(kth.into_iter().map(|d2| -d2).collect())
    }
}
