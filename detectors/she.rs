//! SHE, Simplified Hopfield Energy (Zhang et al., ICLR 2023), as OpenOOD v1.5's `she`
//! postprocessor with its default `inner_product` metric: each class's stored pattern is the
//! mean pooled penultimate feature of the CIFAR-10 training images of that class that the
//! softmax network classifies correctly; the score of an image is the inner product of its
//! feature with the pattern of its predicted class. Predictions are the argmax of the head applied
//! to the features (in f64), the same argmax as the network's logits but for exact ties.
//!
//! Where the spec leaves it open: a class with no correctly classified training image (an
//! undertrained network) has no pattern in OpenOOD (a mean of nothing, NaN scores); here it takes
//! the mean of all its training images instead, and the fit's file counts such classes
//! (`fallback_classes`). A class with no training image at all is refused. No hyper-parameters.
//! Its stage `fit.she.cifar10` computes the patterns once for every OOD set.

use crate::detector::*;

pub const DETECTOR: Detector = Detector {
    name: "she",
    label: "SHE",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Beyond,
    version: "she-1",
    prepare: Some(ExtraStage { kind: "fit", version: "she-1", reads: &[], network: false }),
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
        /// `prepared.safetensors`: `patterns` f64 [classes, D] and `fallback_classes` i64 [1].
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let (weight, bias) = s.head()?;
            let (patterns, fallbacks) = fit(&s.features(CIFAR10, "train")?, &s.labels("train")?, &weight, &bias)?;
            if fallbacks > 0 {
                s.report_progress(1, 1, &format!("{fallbacks} class(es) without a correctly classified training image: their pattern is the mean of all their images"));
            }
            crate::tensors::write(&s.output_path(files::PREPARED), &[("patterns", &patterns), ("fallback_classes", &Tensor::from_slice(&[fallbacks]))])
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let patterns = crate::tensors::read_one(s.prepared(files::PREPARED)?, "patterns")?;
            let (weight, bias) = s.head()?;
            s.score_each(|set| score(&s.features(set, s.split)?, &weight, &bias, &patterns))
        }
    }

    /// Each class's pattern [classes, D] (f64) from the training features [N, D] and labels [N],
    /// and how many classes fell back to the mean of all their images.
    pub fn fit(train: &Tensor, labels: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<(Tensor, i64)> {
        let f = stats::f64s(train);
        let labels = labels.to_kind(Kind::Int64);
        let predicted = stats::linear(&f, weight, bias).argmax(1, false);
        let classes = weight.size()[0];
        let mut patterns = Vec::new();
        let mut fallbacks = 0;
        for c in 0..classes {
            let of_class = labels.eq(c);
            let correct = of_class.logical_and(&predicted.eq(c));
            let rows = if correct.any().int64_value(&[]) != 0 {
                correct.nonzero().squeeze_dim(1)
            } else {
                fallbacks += 1;
                of_class.nonzero().squeeze_dim(1)
            };
            if rows.size()[0] == 0 {
                bail!("class {c} has no training image: its pattern is undefined");
            }
            patterns.push(f.index_select(0, &rows).mean_dim([0i64].as_slice(), false, Kind::Double));
        }
        Ok((Tensor::stack(&patterns, 0), fallbacks))
    }

    /// `f . pattern[argmax(W f + b)]` of each row of `features` [N, D], in f64.
    pub fn score(features: &Tensor, weight: &Tensor, bias: &Tensor, patterns: &Tensor) -> Result<Vec<f64>> {
        let f = stats::f64s(features);
        let predicted = stats::linear(&f, weight, bias).argmax(1, false);
        let chosen = patterns.index_select(0, &predicted);
        stats::to_vec(&(f * chosen).sum_dim_intlist([1i64].as_slice(), false, Kind::Double))
    }
}
