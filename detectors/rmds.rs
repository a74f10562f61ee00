//! RMDS, the Relative Mahalanobis Distance Score (Ren et al., 2021), as OpenOOD v1.5's `rmds`
//! postprocessor: on the softmax network's pooled penultimate features of CIFAR-10's training
//! split, the class means `mu_c` with one shared covariance of the class-centred features (as
//! Mahalanobis), and the whole split's mean `mu_0` and covariance; the score of an image is
//! `max_c [ -(f - mu_c)^T P (f - mu_c) + (f - mu_0)^T P_0 (f - mu_0) ]`: the class's squared
//! distance relative to the background's. Covariances are the maximum-likelihood ones (1 / N) and
//! P, P_0 their pseudo-inverses as scipy's `pinvh` (scikit-learn's `EmpiricalCovariance`), in f64
//! (OpenOOD fits them in f32). No hyper-parameters. Its stage `fit.rmds.cifar10` fits both once
//! for every OOD set.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "rmds",
    label: "RMDS",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "rmds-1",
    prepare: Some(ExtraStage { kind: "fit", version: "rmds-1", reads: &[], network: false }),
    features: true,
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;
    use tch::Kind;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `means` [classes, D], `precision` [D, D], `whole_mean` [D],
        /// `whole_precision` [D, D], all f64.
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let f = fit(&s.features(CIFAR10, "train")?, &s.labels("train")?)?;
            crate::tensors::write(
                &s.output_path(files::PREPARED),
                &[("means", &f.means), ("precision", &f.precision), ("whole_mean", &f.whole_mean), ("whole_precision", &f.whole_precision)],
            )
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let prepared = s.prepared(files::PREPARED)?;
            let read = |name: &str| crate::tensors::read_one(prepared, name);
            let f = Fitted { means: read("means")?, precision: read("precision")?, whole_mean: read("whole_mean")?, whole_precision: read("whole_precision")? };
            s.score_each(|set| score(&s.features(set, s.split)?, &f))
        }
    }

    /// What RMDS fits on the training features.
    #[derive(Debug)]
    pub struct Fitted {
        pub means: Tensor,
        pub precision: Tensor,
        pub whole_mean: Tensor,
        pub whole_precision: Tensor,
    }

    /// The class and background statistics of `train` [N, D] with `labels` [N] (every class of
    /// 0..=max must occur).
    pub fn fit(train: &Tensor, labels: &Tensor) -> Result<Fitted> {
        let classes = labels.max().int64_value(&[]) + 1;
        let (means, centred) = stats::class_means(train, labels, classes)?;
        let f = stats::f64s(train);
        let whole_mean = f.mean_dim([0i64].as_slice(), false, Kind::Double);
        let whole_precision = stats::pinvh(&stats::covariance(&(&f - whole_mean.view([1, -1]))));
        Ok(Fitted { means, precision: stats::pinvh(&stats::covariance(&centred)), whole_mean, whole_precision })
    }

    /// `max_c [-d_c(f) + d_0(f)]` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, fitted: &Fitted) -> Result<Vec<f64>> {
        let background = stats::squared_mahalanobis(features, &fitted.whole_mean, &fitted.whole_precision);
        let per_class: Vec<Tensor> = (0..fitted.means.size()[0])
            .map(|c| -stats::squared_mahalanobis(features, &fitted.means.get(c), &fitted.precision) + &background)
            .collect();
        stats::to_vec(&Tensor::stack(&per_class, 1).amax([1i64].as_slice(), false))
    }
}
