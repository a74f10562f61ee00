//! Which test tells a changed value from noise, and its p-value: what `oodpipe diff` says of each
//! change.
//!
//! Two sides of a diff can differ in what they trained, in what they computed from the same
//! trained networks, or in both; and each side may hold one training seed or several. Which noise
//! a change must be measured against depends on which. With the same networks on both sides, both
//! numbers come from the same networks and the same test images, so training noise cancels and the
//! paired bootstrap over the test images is the test. With different networks, training noise is
//! part of the difference, and only several seeds on a side measure it; a bootstrap interval of
//! one network does not. So, per value:
//!
//! | what the two sides share | seeds (old, new) | test |
//! |---|---|---|
//! | the same trained networks (equal train keys for every seed) | any | paired bootstrap of new - old over the test images, from both sides' stored scores (several seeds: the mean over seeds of the per-seed differences, the same resamples for each seed) |
//! | the same networks, scores not in this store (or different test images) | >= 2 each | paired t of the per-seed differences |
//! | the same networks, scores not in this store (or different test images) | 1 | none ("same networks, scores not in this store") |
//! | different or unknown networks | >= 2 each | Welch's t on the per-seed values |
//! | different or unknown networks | 1 and >= 2 | prediction t: the one value against the other side's seeds |
//! | different or unknown networks | 1 and 1 | none: training noise not measured (run several seeds) |
//! | any | a side without per-seed rows (an older results.csv) | none |
//!
//! The engine does not know what a network or a score is: the caller says whether the two sides
//! share their trained networks ([`Pairing`]) and hands over the paired bootstrap when it could
//! compute one. The tests themselves are `oodpipe-metrics`' ([`Difference`]).

use oodpipe_metrics::significance::{Difference, Spread};
use serde::{Serialize, Serializer};

/// What the caller knows of the two sides' trained networks for one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Pairing {
    /// The same trained networks on both sides; with the paired bootstrap of new - old over the
    /// test images, or why there is none.
    SameNetworks(Result<Difference, NoBootstrap>),
    /// Different trained networks (different train keys).
    DifferentNetworks,
    /// Not known (a side that recorded no keys, e.g. an older report).
    Unknown,
}

/// Why the same networks got no paired bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBootstrap {
    /// A side's scores (or outputs) are not in this store (another machine's, or collected by gc).
    ScoresNotInStore,
    /// The two sides scored different test images (a changed OOD set), so nothing pairs up.
    ImagesDiffer,
}

impl NoBootstrap {
    fn words(self) -> &'static str {
        match self {
            NoBootstrap::ScoresNotInStore => "scores not in this store",
            NoBootstrap::ImagesDiffer => "different test images",
        }
    }
}

/// The test a change got, or why it got none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// The paired bootstrap over the test images, the same networks on both sides, over `seeds` seeds.
    PairedBootstrap { seeds: usize, resamples: usize },
    /// The paired t test of the per-seed differences (the same networks, no paired bootstrap).
    PairedT { seeds: usize, why: NoBootstrap },
    /// Welch's t test on the per-seed values.
    Welch { old: usize, new: usize },
    /// The prediction t test of one side's one seed against the other side's seeds.
    PredictionT { old: usize, new: usize },
    /// One seed a side, different (or unknown) networks: the difference includes training noise
    /// that one seed a side cannot measure.
    NoiseNotMeasured,
    /// The same networks and one seed, but no paired bootstrap.
    SameNetworksUntested(NoBootstrap),
    /// A side without per-seed rows (a results.csv older than seeds).
    NoPerSeedRows,
    /// The value exists on one side only.
    OneSideOnly { new: bool },
}

impl Test {
    /// The short name `--json` carries: `paired_bootstrap`, `paired_t`, `welch`, `prediction_t` or `none`.
    pub fn code(self) -> &'static str {
        match self {
            Test::PairedBootstrap { .. } => "paired_bootstrap",
            Test::PairedT { .. } => "paired_t",
            Test::Welch { .. } => "welch",
            Test::PredictionT { .. } => "prediction_t",
            _ => "none",
        }
    }

    /// The words a person reads in the diff's Test column.
    pub fn describe(self) -> String {
        let seeds = |n: usize| if n == 1 { "1 seed".to_string() } else { format!("{n} seeds") };
        match self {
            Test::PairedBootstrap { seeds: 1, resamples } => {
                format!("paired bootstrap over the test images, same networks ({resamples} resamples)")
            }
            Test::PairedBootstrap { seeds: n, resamples } => {
                format!("paired bootstrap over the test images, same networks (mean of {n} seeds' differences, {resamples} resamples)")
            }
            Test::PairedT { seeds: n, why } => format!("paired t of {n} seeds' differences, same networks ({})", why.words()),
            Test::Welch { old, new } => format!("Welch's t, {} against {}", seeds(old), seeds(new)),
            Test::PredictionT { old, new } => format!("prediction t, {} against {}", seeds(old), seeds(new)),
            Test::NoiseNotMeasured => "none: training noise not measured: run several seeds (train.seeds)".into(),
            Test::SameNetworksUntested(why) => format!("none: same networks, {}", why.words()),
            Test::NoPerSeedRows => "none: no per-seed rows (an older results.csv)".into(),
            Test::OneSideOnly { new: true } => "none: a new value".into(),
            Test::OneSideOnly { new: false } => "none: a removed value".into(),
        }
    }

    /// The name of the test in the summary line, for the tests that give a p-value.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Test::PairedBootstrap { .. } => Some("paired bootstrap"),
            Test::PairedT { .. } => Some("paired t"),
            Test::Welch { .. } => Some("Welch's t"),
            Test::PredictionT { .. } => Some("prediction t"),
            _ => None,
        }
    }
}

impl Serialize for Test {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A test's outcome: the test, and the difference new - old with its noise when it got one.
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    pub test: Test,
    pub difference: Option<Difference>,
}

/// `-d`: the same noise around the opposite estimate (every spread here is symmetric in sign).
fn negated(d: Difference) -> Difference {
    let spread = match d.spread {
        Spread::Replicates(r) => Spread::Replicates(r.into_iter().map(|x| -x).collect()),
        t @ Spread::T { .. } => t,
    };
    Difference { estimate: -d.estimate, spread }
}

/// The test of a value present on both sides, from each side's per-seed values (seed, value) and
/// what is known of their networks: the module doc's table. Differences are new - old.
pub fn choose(old: &[(String, f64)], new: &[(String, f64)], pairing: Pairing) -> Tested {
    let untested = |test| Tested { test, difference: None };
    if old.is_empty() || new.is_empty() {
        return untested(Test::NoPerSeedRows);
    }
    let values = |side: &[(String, f64)]| side.iter().map(|(_, v)| *v).collect::<Vec<f64>>();
    let (a, b) = (values(old), values(new));
    match pairing {
        Pairing::SameNetworks(Ok(d)) => {
            let resamples = match &d.spread {
                Spread::Replicates(r) => r.len(),
                Spread::T { .. } => 0,
            };
            Tested { test: Test::PairedBootstrap { seeds: new.len(), resamples }, difference: Some(d) }
        }
        Pairing::SameNetworks(Err(why)) => {
            // Equal train keys mean equal seeds: pair the rows by seed.
            let d: Vec<f64> = new.iter().filter_map(|(s, y)| old.iter().find(|(t, _)| t == s).map(|(_, x)| y - x)).collect();
            if d.len() >= 2 && d.len() == new.len() && d.len() == old.len() {
                Tested { test: Test::PairedT { seeds: d.len(), why }, difference: Some(Difference::paired_t(&d)) }
            } else {
                untested(Test::SameNetworksUntested(why))
            }
        }
        Pairing::DifferentNetworks | Pairing::Unknown => match (a.len(), b.len()) {
            (1, 1) => untested(Test::NoiseNotMeasured),
            (1, n) => Tested { test: Test::PredictionT { old: 1, new: n }, difference: Some(negated(Difference::prediction_t(a[0], &b))) },
            (n, 1) => Tested { test: Test::PredictionT { old: n, new: 1 }, difference: Some(Difference::prediction_t(b[0], &a)) },
            (n, m) => Tested { test: Test::Welch { old: n, new: m }, difference: Some(Difference::welch(&b, &a)) },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(values: &[f64]) -> Vec<(String, f64)> {
        values.iter().enumerate().map(|(i, v)| (i.to_string(), *v)).collect()
    }

    #[test]
    fn the_table_of_tests() {
        let one = seeds(&[80.0]);
        let three = seeds(&[80.0, 81.0, 83.0]);
        let other = seeds(&[82.0, 84.0, 85.0]);
        let test = |a: &[(String, f64)], b: &[(String, f64)], p: Pairing| choose(a, b, p).test;
        assert_eq!(test(&one, &seeds(&[82.0]), Pairing::DifferentNetworks), Test::NoiseNotMeasured);
        assert_eq!(test(&one, &seeds(&[82.0]), Pairing::Unknown), Test::NoiseNotMeasured);
        assert_eq!(test(&three, &other, Pairing::DifferentNetworks), Test::Welch { old: 3, new: 3 });
        assert_eq!(test(&three, &other, Pairing::Unknown), Test::Welch { old: 3, new: 3 });
        assert_eq!(test(&one, &other, Pairing::DifferentNetworks), Test::PredictionT { old: 1, new: 3 });
        assert_eq!(test(&three, &one, Pairing::Unknown), Test::PredictionT { old: 3, new: 1 });
        let missing = NoBootstrap::ScoresNotInStore;
        assert_eq!(test(&three, &other, Pairing::SameNetworks(Err(missing))), Test::PairedT { seeds: 3, why: missing });
        assert_eq!(test(&one, &seeds(&[82.0]), Pairing::SameNetworks(Err(missing))), Test::SameNetworksUntested(missing));
        assert_eq!(Test::SameNetworksUntested(missing).describe(), "none: same networks, scores not in this store");
        let boot = Difference::paired_bootstrap(1.0, vec![0.5, 1.5, 1.0]);
        assert_eq!(test(&one, &seeds(&[81.0]), Pairing::SameNetworks(Ok(boot))), Test::PairedBootstrap { seeds: 1, resamples: 3 });
        assert_eq!(test(&[], &other, Pairing::DifferentNetworks), Test::NoPerSeedRows);
    }

    #[test]
    fn differences_are_new_minus_old() {
        // Welch of (82, 84, 85) against (80, 81, 83): mean difference 7/3.
        let w = choose(&seeds(&[80.0, 81.0, 83.0]), &seeds(&[82.0, 84.0, 85.0]), Pairing::Unknown).difference.unwrap();
        assert!((w.estimate - 7.0 / 3.0).abs() < 1e-12);
        // One old value above three new ones: a negative difference, its interval negated with it.
        let p = choose(&seeds(&[90.0]), &seeds(&[80.0, 81.0, 82.0]), Pairing::Unknown).difference.unwrap();
        assert!((p.estimate + 9.0).abs() < 1e-12);
        let (lo, hi) = p.interval();
        let half = 4.302652729749462 * (4.0f64 / 3.0).sqrt(); // t(0.975, 2) sd sqrt(1 + 1/3), sd = 1
        assert!((lo - (-9.0 - half)).abs() < 1e-9 && (hi - (-9.0 + half)).abs() < 1e-9, "{lo} {hi}");
        // Paired by seed label, not by position.
        let old = vec![("2".to_string(), 10.0), ("0".to_string(), 20.0)];
        let new = vec![("0".to_string(), 21.0), ("2".to_string(), 13.0)];
        let t = choose(&old, &new, Pairing::SameNetworks(Err(NoBootstrap::ScoresNotInStore))).difference.unwrap();
        assert!((t.estimate - 2.0).abs() < 1e-12, "mean of 1 and 3");
    }
}
