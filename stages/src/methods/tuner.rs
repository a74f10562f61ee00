//! Choosing hyper-parameters on the validation splits (SPEC.md "Tuning").
//!
//! Each grid point is scored by its FPR at 95% TPR on (CIFAR-10 validation, the OOD set's
//! validation split); the lowest wins, ties going to the smaller temperature, then the smaller
//! epsilon, whatever order the config lists them in.

use serde::{Deserialize, Serialize};

/// One grid point and its validation FPR at 95% TPR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    pub temperature: f64,
    /// ODIN's perturbation; `None` for Baseline+T.
    pub epsilon: Option<f64>,
    pub fpr_at_95_tpr: f64,
}

/// The winning point of a non-empty grid.
pub fn choose(grid: &[GridPoint]) -> GridPoint {
    *grid
        .iter()
        .min_by(|a, b| {
            a.fpr_at_95_tpr
                .total_cmp(&b.fpr_at_95_tpr)
                .then(a.temperature.total_cmp(&b.temperature))
                .then(a.epsilon.unwrap_or(0.0).total_cmp(&b.epsilon.unwrap_or(0.0)))
        })
        .expect("the grid is not empty")
}

/// What a tune stage writes (`tune.json`): the choice and the whole grid behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    pub method: String,
    pub ood_set: String,
    pub chosen: GridPoint,
    pub grid: Vec<GridPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: f64, e: f64, f: f64) -> GridPoint {
        GridPoint { temperature: t, epsilon: Some(e), fpr_at_95_tpr: f }
    }

    #[test]
    fn lowest_fpr_wins() {
        let grid = [p(1.0, 0.0, 0.5), p(10.0, 0.002, 0.1), p(1000.0, 0.004, 0.3)];
        assert_eq!(choose(&grid), grid[1]);
    }

    #[test]
    fn ties_go_to_smaller_temperature_then_smaller_epsilon() {
        // Listed in descending order, so a first-minimum rule would pick the wrong one.
        let grid = [p(1000.0, 0.0, 0.2), p(10.0, 0.004, 0.2), p(10.0, 0.001, 0.2), p(100.0, 0.0, 0.2)];
        assert_eq!(choose(&grid), grid[2]);
    }

    #[test]
    fn finds_the_minimum_of_a_constructed_bowl() {
        // fpr = (log10 T - 2)^2 + (eps - 0.002)^2 * 1e4: minimum at T = 100, eps = 0.002.
        let temps = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
        let eps: Vec<f64> = (0..=20).map(|i| 0.004 * i as f64 / 20.0).collect();
        let grid: Vec<GridPoint> =
            temps.iter().flat_map(|&t| eps.iter().map(move |&e| p(t, e, (t.log10() - 2.0).powi(2) + (e - 0.002).powi(2) * 1e4))).collect();
        let best = choose(&grid);
        assert_eq!(best.temperature, 100.0);
        assert!((best.epsilon.unwrap() - 0.002).abs() < 1e-12);
    }
}
