//! ViM, Virtual-logit Matching (Wang et al., CVPR 2022), as OpenOOD v1.5's `vim` postprocessor.
//! With the softmax network's head `(W, b)` and the pooled penultimate features of CIFAR-10's
//! training split:
//! - the origin `u = -pinv(W) b` (numpy's `pinv`, relative cut-off 1e-15);
//! - the covariance of the training features about u, `1/N sum_i (f_i - u)(f_i - u)^T`
//!   (scikit-learn's `EmpiricalCovariance(assume_centered=True)` of `f - u`), and its eigenvectors
//!   by decreasing eigenvalue; the residual space is spanned by those after the first `dim`;
//! - `alpha` = the mean over the training images of their largest logit divided by the mean of
//!   their residual norms `||P_res (f - u)||`;
//! - the score of an image: `logsumexp(W f + b) - alpha ||P_res (f - u)||`.
//!
//! `dim` is `detector.vim.dim`, default half the feature dimension (OpenOOD's 256 for its D = 512
//! ResNet-18; unset in the config means D / 2, rounded down); it must be below D, which a stage
//! checks, naming the key. Where the spec leaves it open: the eigenvectors come from a symmetric
//! eigen-decomposition (OpenOOD calls the general `np.linalg.eig` on the symmetric covariance; the
//! residual space is the same when the `dim`-th and the next eigenvalue differ). Its stage
//! `fit.vim.cifar10` fits u, the residual basis and alpha once for every OOD set.

use crate::detector::*;

/// `[detector.vim]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Params {
    /// The dimension of the principal space; absent: half the feature dimension.
    pub dim: Option<usize>,
}


impl Hyperparameters for Params {
    fn check(&self, problems: &mut Problems) {
        problems.check(self.dim.is_none_or(|d| d >= 1), "dim", &self.dim.unwrap_or(0), "at least 1 (and below the feature dimension)");
    }
}

pub const DETECTOR: Detector = Detector {
    name: "vim",
    label: "ViM",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "vim-1",
    prepare: Some(ExtraStage { kind: "fit", version: "vim-1", reads: &[], network: false }),
    features: true,
    params: Some(own::<Params>()),
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::features::stats;
    use tch::Kind;

    pub struct Code;
    impl Compute for Code {
        /// `prepared.safetensors`: `origin` f64 [D] (u), `residual` f64 [D, D - dim] (the
        /// residual space's basis), `alpha` f64 [1].
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let (weight, bias) = s.head()?;
            let dim = s.hyperparameters::<super::Params>()?.dim;
            let fitted = fit(&s.features(CIFAR10, "train")?, &weight, &bias, dim)?;
            crate::tensors::write(
                &s.output_path(files::PREPARED),
                &[("origin", &fitted.origin), ("residual", &fitted.residual), ("alpha", &Tensor::from_slice(&[fitted.alpha]))],
            )
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let prepared = s.prepared(files::PREPARED)?;
            let read = |name: &str| crate::tensors::read_one(prepared, name);
            let fitted = Fitted { origin: read("origin")?, residual: read("residual")?, alpha: read("alpha")?.double_value(&[0]) };
            let (weight, bias) = s.head()?;
            let dim = fitted.origin.size()[0] - fitted.residual.size()[1];
            let scored = s.score_each(|set| score(&s.features(set, s.split)?, &weight, &bias, &fitted))?;
            Ok(scored.with("dim", dim as f64).with("alpha", fitted.alpha))
        }
    }

    /// What ViM fits on the training features.
    #[derive(Debug)]
    pub struct Fitted {
        /// u [D].
        pub origin: Tensor,
        /// An orthonormal basis [D, D - dim] of the residual space.
        pub residual: Tensor,
        pub alpha: f64,
    }

    /// `||P_res (f - u)||` of each row of `features` [N, D].
    fn residual_norm(features: &Tensor, fitted: &Fitted) -> Tensor {
        let centred = stats::f64s(features) - fitted.origin.view([1, -1]);
        centred.matmul(&fitted.residual).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double).sqrt()
    }

    /// u, the residual basis and alpha of the training features [N, D] with the head's weight
    /// [classes, D] and bias [classes]; `dim` None = D / 2.
    pub fn fit(train: &Tensor, weight: &Tensor, bias: &Tensor, dim: Option<usize>) -> Result<Fitted> {
        let d = train.size()[1];
        let dim = dim.map_or(d / 2, |k| k as i64);
        if dim < 1 || dim >= d {
            bail!("detector.vim.dim = {dim}: expected 1 to the feature dimension minus 1 ({})", d - 1);
        }
        let w = stats::f64s(weight);
        let origin = -w.linalg_pinv(1e-15, false).matmul(&stats::f64s(bias));
        let centred = stats::f64s(train) - origin.view([1, -1]);
        let (values, vectors) = stats::covariance(&centred).linalg_eigh("L");
        // Largest eigenvalue first; the residual space is spanned by the vectors after `dim`.
        let order = values.argsort_stable(true, 0, true);
        let residual = vectors.index_select(1, &order.narrow(0, dim, d - dim));
        let max_logit = stats::linear(train, weight, bias).amax([1i64].as_slice(), false);
        let mut fitted = Fitted { origin, residual, alpha: 0.0 };
        let norms = residual_norm(train, &fitted);
        let mean_norm = norms.mean(Kind::Double).double_value(&[]);
        if mean_norm.is_nan() || mean_norm <= 0.0 {
            bail!("ViM: the training features have no residual beyond the first {dim} principal directions (detector.vim.dim)");
        }
        fitted.alpha = max_logit.mean(Kind::Double).double_value(&[]) / mean_norm;
        Ok(fitted)
    }

    /// `logsumexp(W f + b) - alpha ||P_res (f - u)||` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, weight: &Tensor, bias: &Tensor, fitted: &Fitted) -> Result<Vec<f64>> {
        let energy = stats::logsumexp(&stats::linear(features, weight, bias));
        stats::to_vec(&(energy - residual_norm(features, fitted) * fitted.alpha))
    }
}
