//! The summary after Table 3: per detector, the mean of each metric over the OOD sets with its
//! 95% interval, and each detector's rank by mean AUROC, as OpenOOD v1.5 reports its near- and
//! far-OOD averages. One row per detector of either table, so the paper's methods and the
//! post-hoc detectors beyond it are ranked together.
//!
//! The interval of a mean over sets:
//! - two or more training seeds: each seed's mean over the sets, then Student's t interval of
//!   those per-seed means (as every aggregate of the report): how much the average depends on
//!   training;
//! - one seed: the bootstrap of the mean. The report's replicate r of every set draws the same
//!   in-distribution indices (one seeded stream per replicate, `oodpipe_metrics::bootstrap`; the
//!   OOD indices too when the sets have the same size), so replicate r of the mean is the mean over
//!   the sets of their replicates r, and the interval is the percentile interval of those: how much
//!   the average depends on the test images drawn, for that one network.
//!
//! Plain numbers in (percent), Markdown out; the report gathers the numbers.

use oodpipe_metrics::interval::LEVEL;
use oodpipe_metrics::interval::{mean_std, percentile_interval, t_interval};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The metric the ranking is by (higher is better).
pub const RANK_BY: &str = "auroc";

/// One seed's value of a (set, method, metric), in percent, with its bootstrap replicates (in
/// replicate order; empty when the bootstrap is off).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedValue {
    pub seed: u64,
    pub value: f64,
    pub replicates: Vec<f64>,
}

/// Every (OOD set, method, metric)'s values per seed, as the report reads them.
#[derive(Debug, Clone, Default)]
pub struct Values {
    cells: BTreeMap<(String, String, String), Vec<SeedValue>>,
}

impl Values {
    /// The OOD metrics of the report's collected test values, in percent (accuracy rows left out).
    pub fn of(collected: &[(crate::report::Key, Vec<(u64, crate::report::Measured)>)]) -> Values {
        let mut values = Values::default();
        for (key, per_seed) in collected.iter().filter(|(k, _)| k.metric != oodpipe_plan::metric::Metric::Accuracy) {
            for (seed, m) in per_seed {
                let replicates = m.replicates.iter().map(|r| r * 100.0).collect();
                values.add(&key.set_label, &key.method, key.metric.name(), SeedValue { seed: *seed, value: m.value * 100.0, replicates });
            }
        }
        values
    }

    pub fn add(&mut self, ood_set: &str, method: &str, metric: &str, value: SeedValue) {
        self.cells.entry((ood_set.into(), method.into(), metric.into())).or_default().push(value);
    }

    fn get(&self, ood_set: &str, method: &str, metric: &str) -> Option<&Vec<SeedValue>> {
        self.cells.get(&(ood_set.to_string(), method.to_string(), metric.to_string()))
    }
}

/// The mean over sets of one (method, metric), and its 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Mean {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    /// Training seeds behind it.
    pub seeds: usize,
}

/// The mean over `sets` of `method`'s `metric`, or None when a set lacks it or the sets were
/// scored with different seeds.
pub fn mean_over_sets(values: &Values, sets: &[&str], method: &str, metric: &str) -> Option<Mean> {
    let per_set: Vec<&Vec<SeedValue>> = sets.iter().map(|s| values.get(s, method, metric)).collect::<Option<_>>()?;
    let seeds: Vec<u64> = per_set.first()?.iter().map(|v| v.seed).collect();
    if per_set.iter().any(|vs| vs.iter().map(|v| v.seed).collect::<Vec<_>>() != seeds) {
        return None;
    }
    let n = sets.len() as f64;
    let per_seed: Vec<f64> = (0..seeds.len()).map(|i| per_set.iter().map(|vs| vs[i].value).sum::<f64>() / n).collect();
    if per_seed.len() >= 2 {
        let (mean, _, _) = mean_std(&per_seed);
        return Some(Mean { value: mean, interval: Some(t_interval(&per_seed)), seeds: per_seed.len() });
    }
    let resamples = per_set[0][0].replicates.len();
    let interval = (resamples > 0 && per_set.iter().all(|vs| vs[0].replicates.len() == resamples)).then(|| {
        let means: Vec<f64> = (0..resamples).map(|r| per_set.iter().map(|vs| vs[0].replicates[r]).sum::<f64>() / n).collect();
        percentile_interval(&means, LEVEL)
    });
    Some(Mean { value: per_seed[0], interval, seeds: 1 })
}

/// `value ± half-width` when the interval is symmetric to the printed precision, else
/// `value [lo, hi]`; a t interval reaching beyond 0 or 100 is cut there and marked †.
fn interval_cell(value: f64, lo: f64, hi: f64) -> String {
    let cut = lo < 0.0 || hi > 100.0;
    let (lo, hi) = (lo.max(0.0), hi.min(100.0));
    let mark = if cut { "†" } else { "" };
    if format!("{:.2}", hi - value) == format!("{:.2}", value - lo) {
        format!("{value:.2} ± {:.2}{mark}", hi - value)
    } else {
        format!("{value:.2} [{lo:.2}, {hi:.2}]{mark}")
    }
}

/// Competition ranks ("1, 2, 2, 4") of `values`, highest first; None has no rank.
pub fn ranks(values: &[Option<f64>]) -> Vec<Option<usize>> {
    values.iter().map(|v| v.map(|v| 1 + values.iter().flatten().filter(|&&other| other > v).count())).collect()
}

/// The summary's Markdown: `methods` are (label, which table it is in), `sets` the OOD sets'
/// labels, `metrics` (name, header) in column order.
pub fn markdown(values: &Values, methods: &[(&str, &str)], sets: &[&str], metrics: &[(&str, &str)]) -> String {
    let means: Vec<Vec<Option<Mean>>> =
        methods.iter().map(|(m, _)| metrics.iter().map(|(k, _)| mean_over_sets(values, sets, m, k)).collect()).collect();
    let rank_col = metrics.iter().position(|(k, _)| *k == RANK_BY);
    let ranked = ranks(&means.iter().map(|row| rank_col.and_then(|c| row[c].as_ref().map(|m| m.value))).collect::<Vec<_>>());
    let mut order: Vec<usize> = (0..methods.len()).collect();
    order.sort_by_key(|&i| (ranked[i].unwrap_or(usize::MAX), i));

    let seeds = means.iter().flatten().flatten().map(|m| m.seeds).max().unwrap_or(1);
    let how = if seeds >= 2 {
        format!(
            "the 95% Student's t interval of the {seeds} training seeds' means over the sets (cut at 0 and 100 where it reaches beyond, marked †)"
        )
    } else {
        "the 95% percentile bootstrap interval of the mean (each replicate resamples the test images \
         and averages the sets' replicates, which share the in-distribution draw; it covers the test images, not training)"
            .to_string()
    };
    let mut md = format!(
        "\n## Mean over the OOD sets\n\nEach detector's mean of every metric over the {} OOD sets ({}), in percent, with {how}: `± half-width` where the interval is symmetric to the printed precision, else its bounds; \
         ranked by mean AUROC (1 = highest; equal means share a rank), as OpenOOD v1.5 reports its near- and far-OOD \
         averages. Every detector of Tables 1 and 3; a detector missing a set has no mean.\n\n| Rank | Method | Table |",
        sets.len(),
        sets.join(", ")
    );
    for (_, header) in metrics {
        write!(md, " {header} |").unwrap();
    }
    md.push_str("\n|---:|---|---|");
    md.push_str(&"---:|".repeat(metrics.len()));
    md.push('\n');
    for i in order {
        let rank = ranked[i].map_or("–".to_string(), |r| r.to_string());
        write!(md, "| {rank} | {} | {} |", methods[i].0, methods[i].1).unwrap();
        for m in &means[i] {
            let cell = match m {
                Some(Mean { value, interval: Some((lo, hi)), .. }) => interval_cell(*value, *lo, *hi),
                Some(Mean { value, interval: None, .. }) => format!("{value:.2}"),
                None => "–".into(),
            };
            write!(md, " {cell} |").unwrap();
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seed: u64, value: f64, replicates: &[f64]) -> SeedValue {
        SeedValue { seed, value, replicates: replicates.to_vec() }
    }

    #[test]
    fn one_seed_bootstraps_the_mean_of_the_sets_replicates() {
        let mut v = Values::default();
        // Replicate r's mean over the two sets is [1, 2, 3, 4, 10][r] (the sets' own replicates
        // are not in order): numpy.percentile([1, 2, 3, 4, 10], [2.5, 97.5]) = [1.1, 9.4].
        v.add("A", "m", "auroc", one(0, 80.0, &[0.0, 4.0, 1.0, 8.0, 20.0]));
        v.add("B", "m", "auroc", one(0, 90.0, &[2.0, 0.0, 5.0, 0.0, 0.0]));
        let m = mean_over_sets(&v, &["A", "B"], "m", "auroc").unwrap();
        assert_eq!(m.value, 85.0);
        let (lo, hi) = m.interval.unwrap();
        assert!((lo - 1.1).abs() < 1e-12 && (hi - 9.4).abs() < 1e-12, "{lo} {hi}");
        // Without replicates: the mean alone; a set missing: no mean.
        v.add("A", "n", "auroc", one(0, 70.0, &[]));
        v.add("B", "n", "auroc", one(0, 60.0, &[]));
        assert_eq!(mean_over_sets(&v, &["A", "B"], "n", "auroc"), Some(Mean { value: 65.0, interval: None, seeds: 1 }));
        assert_eq!(mean_over_sets(&v, &["A", "B", "C"], "n", "auroc"), None);
    }

    #[test]
    fn several_seeds_take_the_t_interval_of_the_per_seed_means() {
        let mut v = Values::default();
        for (seed, a, b) in [(0, 0.0, 2.0), (1, 1.0, 3.0), (2, 5.0, 1.0)] {
            v.add("A", "m", "fpr", one(seed, a, &[a]));
            v.add("B", "m", "fpr", one(seed, b, &[b]));
        }
        // Per-seed means 1, 2, 3: mean 2, std 1, half-width t(0.975, 2) / sqrt(3), with
        // 2 degrees of freedom in closed form: t(p, 2) = (2p - 1) sqrt(2 / (4 p (1 - p))) = 4.3026527...
        let m = mean_over_sets(&v, &["A", "B"], "m", "fpr").unwrap();
        assert_eq!((m.value, m.seeds), (2.0, 3));
        let (lo, hi) = m.interval.unwrap();
        assert!(((hi - lo) / 2.0 - 0.95 * (2.0 / (4.0 * 0.975 * 0.025f64)).sqrt() / 3f64.sqrt()).abs() < 1e-9, "{lo} {hi}");
        // Sets scored with different seeds are not averaged.
        v.add("C", "m", "fpr", one(0, 1.0, &[]));
        assert_eq!(mean_over_sets(&v, &["A", "C"], "m", "fpr"), None);
    }

    #[test]
    fn ranks_are_competition_ranks_highest_first() {
        assert_eq!(ranks(&[Some(90.0), Some(95.0), None, Some(90.0), Some(50.0)]), [Some(2), Some(1), None, Some(2), Some(4)]);
    }

    #[test]
    fn the_table_lists_every_method_by_rank() {
        let mut v = Values::default();
        for (method, auroc, fpr) in [("Low", 60.0, 70.0), ("High", 90.0, 20.0)] {
            for set in ["A", "B"] {
                v.add(set, method, "auroc", one(0, auroc, &[]));
                v.add(set, method, "fpr", one(0, fpr, &[]));
            }
        }
        let md = markdown(&v, &[("Low", "3"), ("High", "1"), ("Absent", "3")], &["A", "B"], &[("fpr", "FPR"), ("auroc", "AUROC")]);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Rank")).collect();
        assert_eq!(rows, ["| 1 | High | 1 | 20.00 | 90.00 |", "| 2 | Low | 3 | 70.00 | 60.00 |", "| – | Absent | 3 | – | – |"], "{md}");
        assert!(md.contains("2 OOD sets (A, B)"), "{md}");
    }
}
