//! Mahalanobis (Lee et al., NeurIPS 2018), without input preprocessing and on the last layer
//! only: the class means and one shared covariance of the softmax network's penultimate features
//! (the pooled output of the backbone) over CIFAR-10's training split; the score of an image is
//! minus its smallest squared Mahalanobis distance to a class mean,
//! `-min_c (f - mu_c)^T Sigma^+ (f - mu_c)`, with `Sigma = 1/N sum_i (f_i - mu_{y_i})(f_i - mu_{y_i})^T`
//! and `Sigma^+` its pseudo-inverse (as the paper's code, sklearn's `EmpiricalCovariance`).
//! (The square root would not change any metric: they depend on the scores' order only.)
//!
//! It brings its own stage: `features.mahalanobis.cifar10` fits the means and the precision on
//! the training split's features and scores CIFAR-10's test and validation splits once for every
//! OOD set.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "mahalanobis",
    label: "Mahalanobis",
    model: ModelKind::Softmax,
    table: ReportTable::Beyond,
    version: "mahalanobis-2",
    reads: &[reads::<EvalBatch>()],
    network: true,
    tuning: None,
    prepare: Some(ExtraStage { kind: "features", version: "mahalanobis-2", reads: &[reads::<EvalBatch>()], network: true }),
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use tch::Kind;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `means` f64 [classes, D], `precision` f64 [D, D], and
        /// `test_scores`, `val_scores` f64 [N]: the scores of CIFAR-10's test and validation splits.
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let net = s.network()?;
            let batch = s.config::<EvalBatch>()?.eval.batch_size;
            s.report_progress(0, 3, "features of the training split");
            let train = net.eval_features(&s.data(CIFAR10, "train_images")?, batch);
            let labels = s.data(CIFAR10, "train_labels")?;
            let (means, precision) = fit(&train, &labels)?;
            s.report_progress(2, 3, "features of the test and validation splits");
            let scores_of = |split: &str| -> Result<Tensor> {
                let features = net.eval_features(&s.data(CIFAR10, &format!("{split}_images"))?, batch);
                Ok(Tensor::from_slice(&score(&features, &means, &precision)))
            };
            let (test, val) = (scores_of(TEST)?, scores_of(VAL)?);
            crate::tensors::write(
                &s.output_path(files::PREPARED),
                &[("means", &means), ("precision", &precision), ("test_scores", &test), ("val_scores", &val)],
            )
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let prepared = s.prepared(files::PREPARED)?;
            let read = |name: &str| crate::tensors::read_one(prepared, name);
            let (means, precision) = (read("means")?, read("precision")?);
            let in_scores = Vec::<f64>::try_from(&read(&format!("{}_scores", s.split))?)
                .with_context(|| format!("reading CIFAR-10's {} scores", s.split))?;
            let net = s.network()?;
            let features = net.eval_features(&s.images(s.ood(), s.split)?, s.config::<EvalBatch>()?.eval.batch_size);
            Ok(Scored::new(in_scores, score(&features, &means, &precision)))
        }
    }

    /// The class means [classes, D] and the pseudo-inverse of the shared covariance [D, D], both
    /// f64, of `features` [N, D] with `labels` [N] (0..classes; every class must occur).
    pub fn fit(features: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        let f = features.to_kind(Kind::Double);
        let labels = labels.to_kind(Kind::Int64);
        let classes = labels.max().int64_value(&[]) + 1;
        let mut means = Vec::new();
        let mut centred = f.zeros_like();
        for c in 0..classes {
            let rows = labels.eq(c).nonzero().squeeze_dim(1);
            if rows.size()[0] == 0 {
                bail!("class {c} has no training image: its mean is undefined");
            }
            let of_class = f.index_select(0, &rows);
            let mean = of_class.mean_dim([0i64].as_slice(), true, Kind::Double);
            centred = centred.index_copy(0, &rows, &(of_class - &mean));
            means.push(mean);
        }
        let n = f.size()[0] as f64;
        let covariance = centred.transpose(0, 1).matmul(&centred) / n;
        let precision = covariance.linalg_pinv(1e-15, true);
        Ok((Tensor::cat(&means, 0), precision))
    }

    /// `-min_c (f - mu_c)^T P (f - mu_c)` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, means: &Tensor, precision: &Tensor) -> Vec<f64> {
        let f = features.to_kind(Kind::Double);
        let per_class: Vec<Tensor> = (0..means.size()[0])
            .map(|c| {
                let d = &f - means.get(c).unsqueeze(0);
                (d.matmul(precision) * &d).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
            })
            .collect();
        let nearest = Tensor::stack(&per_class, 1).amin(-1, false);
        Vec::<f64>::try_from(&(-nearest)).expect("a 1-d f64 tensor converts to Vec<f64>")
    }
}
