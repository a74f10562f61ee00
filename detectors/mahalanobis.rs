//! Mahalanobis (Lee et al., NeurIPS 2018), without input preprocessing and on the last layer
//! only: the class means and one shared covariance of the softmax network's penultimate features
//! (the pooled output of the backbone) over CIFAR-10's training split; the score of an image is
//! minus its smallest squared Mahalanobis distance to a class mean,
//! `-min_c (f - mu_c)^T Sigma^+ (f - mu_c)`, with `Sigma = 1/N sum_i (f_i - mu_{y_i})(f_i - mu_{y_i})^T`
//! and `Sigma^+` its pseudo-inverse as scipy's `pinvh` (eigenvalues up to `D eps` of the largest
//! count as zero), as the paper's code through scikit-learn's `EmpiricalCovariance`.
//! (The square root would not change any metric: they depend on the scores' order only.)
//!
//! The features come from the shared stages `features.softmax.<set>`; its own stage
//! `fit.mahalanobis.cifar10` fits the means and the precision once for every OOD set.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "mahalanobis",
    label: "Mahalanobis",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "mahalanobis-3",
    prepare: Some(ExtraStage { kind: "fit", version: "mahalanobis-3", reads: &[], network: false }),
    features: true,
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `means` f64 [classes, D] and `precision` f64 [D, D].
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let (means, precision) = fit(&s.features(CIFAR10, "train")?, &s.labels("train")?)?;
            crate::tensors::write(&s.output_path(files::PREPARED), &[("means", &means), ("precision", &precision)])
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let prepared = s.prepared(files::PREPARED)?;
            let read = |name: &str| crate::tensors::read_one(prepared, name);
            let (means, precision) = (read("means")?, read("precision")?);
            s.score_each(|set| Ok(score(&s.features(set, s.split)?, &means, &precision)))
        }
    }

    /// The class means [classes, D] and the pseudo-inverse of the shared covariance [D, D], both
    /// f64, of `features` [N, D] with `labels` [N] (0..classes; every class must occur).
    pub fn fit(features: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        let classes = labels.max().int64_value(&[]) + 1;
        let (means, centred) = stats::class_means(features, labels, classes)?;
        Ok((means, stats::pinvh(&stats::covariance(&centred))))
    }

    /// `-min_c (f - mu_c)^T P (f - mu_c)` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, means: &Tensor, precision: &Tensor) -> Vec<f64> {
        let per_class: Vec<Tensor> = (0..means.size()[0]).map(|c| stats::squared_mahalanobis(features, &means.get(c), precision)).collect();
        let nearest = Tensor::stack(&per_class, 1).amin(-1, false);
        Vec::<f64>::try_from(&(-nearest)).expect("a 1-d f64 tensor converts to Vec<f64>")
    }
}
