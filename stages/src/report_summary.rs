//! The summary after Table 3: per detector, the mean of each metric over the OOD sets with its
//! 95% interval, and each detector's rank by mean AUROC, as OpenOOD v1.5 reports its near- and
//! far-OOD averages. One row per detector of either table, so the paper's methods and the
//! post-hoc detectors beyond it are ranked together.
//!
//! The interval of a mean over sets:
//! - two or more training seeds: each seed's mean over the sets, then the two-level bootstrap of
//!   those per-seed means (as every aggregate of the report, `crate::uncertainty`): replicate r
//!   draws the seeds with replacement and averages their means over the sets of replicate r, so
//!   it holds training noise and test-image noise (Student's t interval of the per-seed means
//!   when there are no replicates);
//! - one seed: the bootstrap of the mean. The report's replicate r of every set draws the same
//!   in-distribution indices (one seeded stream per replicate, `oodpipe_metrics::bootstrap`; the
//!   OOD indices too when the sets have the same size), so replicate r of the mean is the mean over
//!   the sets of their replicates r, and the interval is the percentile interval of those: how much
//!   the average depends on the test images drawn, for that one network.
//!
//! Every interval lies within what the metric can be, cut there and marked †. Plain numbers in
//! (percent), Markdown out; the report gathers the numbers.

use crate::uncertainty::{clip, half_width, two_level_bootstrap};
use oodpipe_metrics::interval::LEVEL;
use oodpipe_metrics::interval::{mean_std, percentile_interval, t_interval};
use oodpipe_plan::metric::Metric;
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
    /// Within the metric's range; which bounds were cut there.
    pub interval: Option<(f64, f64)>,
    pub cut: (bool, bool),
    /// Training seeds behind it.
    pub seeds: usize,
}

/// The mean over `sets` of `method`'s `metric`, or None when a set lacks it or the sets were
/// scored with different seeds. `seed` seeds the seeds' resampling (the report's bootstrap seed).
pub fn mean_over_sets(values: &Values, sets: &[&str], method: &str, metric: &str, seed: u64) -> Option<Mean> {
    let per_set: Vec<&Vec<SeedValue>> = sets.iter().map(|s| values.get(s, method, metric)).collect::<Option<_>>()?;
    let seeds: Vec<u64> = per_set.first()?.iter().map(|v| v.seed).collect();
    if per_set.iter().any(|vs| vs.iter().map(|v| v.seed).collect::<Vec<_>>() != seeds) {
        return None;
    }
    let n = sets.len() as f64;
    let per_seed: Vec<f64> = (0..seeds.len()).map(|i| per_set.iter().map(|vs| vs[i].value).sum::<f64>() / n).collect();
    // Each seed's replicates of its mean over the sets (replicate r: the sets' replicates r).
    let resamples = per_set[0][0].replicates.len();
    let replicated = resamples > 0 && per_set.iter().all(|vs| vs.iter().all(|v| v.replicates.len() == resamples));
    let means: Vec<Vec<f64>> = if replicated {
        (0..seeds.len()).map(|i| (0..resamples).map(|r| per_set.iter().map(|vs| vs[i].replicates[r]).sum::<f64>() / n).collect()).collect()
    } else {
        Vec::new()
    };
    let (value, interval) = if per_seed.len() >= 2 {
        let (mean, _, _) = mean_std(&per_seed);
        let refs: Vec<&[f64]> = means.iter().map(Vec::as_slice).collect();
        let interval = match two_level_bootstrap(&refs, seed) {
            Some(reps) => percentile_interval(&reps, LEVEL),
            None => t_interval(&per_seed),
        };
        (mean, Some(interval))
    } else {
        (per_seed[0], means.first().map(|m| percentile_interval(m, LEVEL)))
    };
    let range = Metric::from_name(metric).map_or((0.0, 100.0), |m| (100.0 * m.range().0, 100.0 * m.range().1));
    let (interval, cut) = match interval.map(|i| clip(i, value, range)) {
        Some((i, cut)) => (Some(i), cut),
        None => (None, (false, false)),
    };
    Some(Mean { value, interval, cut, seeds: per_seed.len() })
}

/// `value ± half-width` when the interval is symmetric to the printed precision, else
/// `value [lo, hi]`; a bound cut at the metric's range is marked †.
fn interval_cell(value: f64, (lo, hi): (f64, f64), cut: (bool, bool)) -> String {
    let mark = |c: bool| if c { "†" } else { "" };
    if cut == (false, false) && format!("{:.2}", hi - value) == format!("{:.2}", value - lo) {
        format!("{value:.2} ± {}", half_width((hi - lo) / 2.0))
    } else {
        format!("{value:.2} [{lo:.2}{}, {hi:.2}{}]", mark(cut.0), mark(cut.1))
    }
}

/// Competition ranks ("1, 2, 2, 4") of `values`, highest first; None has no rank.
pub fn ranks(values: &[Option<f64>]) -> Vec<Option<usize>> {
    values.iter().map(|v| v.map(|v| 1 + values.iter().flatten().filter(|&&other| other > v).count())).collect()
}

/// The summary's Markdown: `methods` are (label, which table it is in), `sets` the OOD sets'
/// labels, `metrics` (name, header) in column order.
/// One method's row of the summary: its rank, label, table, and per metric its mean with the
/// cell's text (what the Markdown and the HTML page both show).
pub struct SummaryRow {
    pub rank: Option<usize>,
    pub method: String,
    pub table: String,
    pub cells: Vec<Option<(Mean, String)>>,
}

/// The summary's rows, in rank order (see [`markdown`] for the arguments).
pub fn rows(values: &Values, methods: &[(&str, &str)], sets: &[&str], metrics: &[(&str, &str)], seed: u64) -> Vec<SummaryRow> {
    let means: Vec<Vec<Option<Mean>>> =
        methods.iter().map(|(m, _)| metrics.iter().map(|(k, _)| mean_over_sets(values, sets, m, k, seed)).collect()).collect();
    let rank_col = metrics.iter().position(|(k, _)| *k == RANK_BY);
    let ranked = ranks(&means.iter().map(|row| rank_col.and_then(|c| row[c].as_ref().map(|m| m.value))).collect::<Vec<_>>());
    let mut order: Vec<usize> = (0..methods.len()).collect();
    order.sort_by_key(|&i| (ranked[i].unwrap_or(usize::MAX), i));
    order
        .into_iter()
        .map(|i| SummaryRow {
            rank: ranked[i],
            method: methods[i].0.to_string(),
            table: methods[i].1.to_string(),
            cells: means[i]
                .iter()
                .map(|m| {
                    m.clone().map(|m| {
                        let text = match m.interval {
                            Some(interval) => interval_cell(m.value, interval, m.cut),
                            None => format!("{:.2}", m.value),
                        };
                        (m, text)
                    })
                })
                .collect(),
        })
        .collect()
}

pub fn markdown(values: &Values, methods: &[(&str, &str)], sets: &[&str], metrics: &[(&str, &str)], seed: u64) -> String {
    let rows = rows(values, methods, sets, metrics, seed);
    let seeds = rows.iter().flat_map(|r| &r.cells).flatten().map(|(m, _)| m.seeds).max().unwrap_or(1);
    let how = if seeds >= 2 {
        format!(
            "the 95% two-level bootstrap interval of the {seeds} training seeds' means over the sets (each replicate draws the seeds \
             with replacement and averages their means over the sets on the same resampled test images: training and test-image \
             noise together; cut where it reaches beyond what the metric can be, marked †)"
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
    for row in &rows {
        let rank = row.rank.map_or("–".to_string(), |r| r.to_string());
        write!(md, "| {rank} | {} | {} |", row.method, row.table).unwrap();
        for cell in &row.cells {
            write!(md, " {} |", cell.as_ref().map_or("–", |(_, text)| text.as_str())).unwrap();
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
        let m = mean_over_sets(&v, &["A", "B"], "m", "auroc", 0).unwrap();
        assert_eq!(m.value, 85.0);
        let (lo, hi) = m.interval.unwrap();
        assert!((lo - 1.1).abs() < 1e-12 && (hi - 9.4).abs() < 1e-12, "{lo} {hi}");
        // Without replicates: the mean alone; a set missing: no mean.
        v.add("A", "n", "auroc", one(0, 70.0, &[]));
        v.add("B", "n", "auroc", one(0, 60.0, &[]));
        assert_eq!(
            mean_over_sets(&v, &["A", "B"], "n", "auroc", 0),
            Some(Mean { value: 65.0, interval: None, cut: (false, false), seeds: 1 })
        );
        assert_eq!(mean_over_sets(&v, &["A", "B", "C"], "n", "auroc", 0), None);
    }

    #[test]
    fn several_seeds_without_replicates_take_the_t_interval_of_the_per_seed_means() {
        let mut v = Values::default();
        for (seed, a, b) in [(0, 10.0, 12.0), (1, 11.0, 13.0), (2, 15.0, 11.0)] {
            v.add("A", "m", "fpr", one(seed, a, &[]));
            v.add("B", "m", "fpr", one(seed, b, &[]));
        }
        // Per-seed means 11, 12, 13: mean 12, std 1, half-width t(0.975, 2) / sqrt(3), with
        // 2 degrees of freedom in closed form: t(p, 2) = (2p - 1) sqrt(2 / (4 p (1 - p))) = 4.3026527...
        let m = mean_over_sets(&v, &["A", "B"], "m", "fpr", 0).unwrap();
        assert_eq!((m.value, m.seeds), (12.0, 3));
        let (lo, hi) = m.interval.unwrap();
        assert!(((hi - lo) / 2.0 - 0.95 * (2.0 / (4.0 * 0.975 * 0.025f64)).sqrt() / 3f64.sqrt()).abs() < 1e-9, "{lo} {hi}");
        // With replicates: the two-level bootstrap of the per-seed means (replicate r: the seeds
        // drawn by r's stream, their means over the sets of replicate r), cut at 0.
        let mut w = Values::default();
        for (seed, a) in [(0, 1.0), (1, 2.0), (2, 30.0)] {
            w.add("A", "m", "fpr", one(seed, a, &[a - 1.0, a + 1.0, a]));
            w.add("B", "m", "fpr", one(seed, a, &[a - 1.0, a + 1.0, a]));
        }
        let m = mean_over_sets(&w, &["A", "B"], "m", "fpr", 5).unwrap();
        let per_seed: Vec<Vec<f64>> = [1.0f64, 2.0, 30.0].iter().map(|a| vec![a - 1.0, a + 1.0, *a]).collect();
        let refs: Vec<&[f64]> = per_seed.iter().map(Vec::as_slice).collect();
        let want = percentile_interval(&two_level_bootstrap(&refs, 5).unwrap(), LEVEL);
        assert_eq!(m.interval.unwrap(), clip(want, 11.0, (0.0, 100.0)).0);
        // Sets scored with different seeds are not averaged.
        v.add("C", "m", "fpr", one(0, 1.0, &[]));
        assert_eq!(mean_over_sets(&v, &["A", "C"], "m", "fpr", 0), None);
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
        let md = markdown(&v, &[("Low", "3"), ("High", "1"), ("Absent", "3")], &["A", "B"], &[("fpr", "FPR"), ("auroc", "AUROC")], 0);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Rank")).collect();
        assert_eq!(rows, ["| 1 | High | 1 | 20.00 | 90.00 |", "| 2 | Low | 3 | 70.00 | 60.00 |", "| – | Absent | 3 | – | – |"], "{md}");
        assert!(md.contains("2 OOD sets (A, B)"), "{md}");
    }
}
