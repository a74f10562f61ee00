//! ODIN (Liang et al., 2018): the maximum softmax probability at temperature T of the input
//! perturbed by epsilon against the gradient of that score (SPEC.md "ODIN"). T and epsilon are
//! tuned per OOD set on the validation splits; the CIFAR-10 side of the grid is computed once, by
//! the shared stage `tune.odin.cifar10`.

use crate::detector::*;

/// What the grid's stages read: `eval.batch_size`, `tune.temperatures` and `tune.odin_epsilons`.
const GRID: &[Reads] = &[reads::<EvalBatch>(), reads::<Grid>()];

/// The grid of `tune.temperatures` x `tune.odin_epsilons`.
#[derive(Serialize, Deserialize)]
pub struct Grid {
    pub tune: GridFields,
}

#[derive(Serialize, Deserialize)]
pub struct GridFields {
    pub temperatures: Vec<f64>,
    pub odin_epsilons: Vec<f64>,
}

pub const DETECTOR: Detector = Detector {
    name: "odin",
    label: "ODIN",
    model: ModelKind::of(&models::softmax::MODEL),
    table: ReportTable::Paper,
    version: "score-2",
    reads: &[reads::<EvalBatch>()],
    network: true,
    tuning: Some(ExtraStage { kind: "tune", version: "tune-1", reads: GRID, network: true }),
    prepare: Some(ExtraStage { kind: "tune", version: "tune-1", reads: GRID, network: true }),
    ..Detector::FROM_OUTPUTS
};

#[cfg(oodpipe_compute)]
pub mod code {
    use crate::detector::*;
    use crate::methods::odin;

    pub struct Code;
    impl Compute for Code {
        /// Every (T, epsilon) of the grid on CIFAR-10's validation split.
        fn prepare(&self, s: &DetectorStage) -> Result<()> {
            let tune = s.config::<super::Grid>()?.tune;
            odin::cifar10_grid(s, &tune.temperatures, &tune.odin_epsilons, s.config::<EvalBatch>()?.eval.batch_size)
        }

        fn tune(&self, s: &DetectorStage) -> Result<Vec<GridPoint>> {
            let tune = s.config::<super::Grid>()?.tune;
            let in_grid = crate::tensors::read_one(s.prepared(files::ODIN_GRID)?, ids::tensors::GRID_SCORES)?;
            let net = s.network()?;
            let out_grid = odin::grid_scores(
                &net,
                &s.images(s.ood(), VAL)?,
                &tune.temperatures,
                &tune.odin_epsilons,
                s.config::<EvalBatch>()?.eval.batch_size,
                s.progress(),
            );
            let mut grid = Vec::new();
            for (ti, &t) in tune.temperatures.iter().enumerate() {
                for (ei, &e) in tune.odin_epsilons.iter().enumerate() {
                    let in_scores = Vec::<f64>::try_from(in_grid.get(ti as i64).get(ei as i64))
                        .context("reading the CIFAR-10 validation grid")?;
                    grid.push(GridPoint { temperature: t, epsilon: Some(e), fpr_at_95_tpr: fpr(&in_scores, &out_grid[ti][ei])? });
                }
            }
            Ok(grid)
        }

        fn score(&self, s: &DetectorStage) -> Result<Scored> {
            let chosen = s.tuned()?;
            let eps = chosen.epsilon.context("ODIN's tuning chose no epsilon")?;
            let net = s.network()?;
            let batch = s.config::<EvalBatch>()?.eval.batch_size;
            s.score_each(|set| Ok(odin::scores(&net, &s.images(set, s.split)?, chosen.temperature, eps, batch))).map(|scored| scored.with("temperature", chosen.temperature).with("epsilon", eps))
        }
    }
}
