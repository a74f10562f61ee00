//! Property tests: for arbitrary finite scores every metric lies in [0, 1], and no metric changes
//! under a strictly increasing transform of the scores (the metrics depend on the ranking only).

use oodpipe_metrics::{OodMetrics, ood_metrics};
use proptest::prelude::*;

fn in_unit_interval(m: &OodMetrics) -> bool {
    [m.fpr_at_95_tpr, m.detection_error, m.auroc, m.aupr_in, m.aupr_out, m.tpr_at_threshold].iter().all(|v| (0.0..=1.0).contains(v))
}

/// Each score replaced by the rank of its value among all distinct values of both lists: strictly
/// increasing, exact, and it keeps ties as ties.
fn ranks(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut distinct: Vec<f64> = a.iter().chain(b).copied().collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|x, y| x == y);
    let rank = |x: &f64| distinct.partition_point(|d| d < x) as f64;
    (a.iter().map(rank).collect(), b.iter().map(rank).collect())
}

/// Scores with many ties (small integers), or spread over many magnitudes.
fn scores() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec((-5i32..5).prop_map(f64::from), 1..60),
        prop::collection::vec(-1e6f64..1e6, 1..60),
        prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO, 1..60),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn metrics_lie_in_the_unit_interval(a in scores(), b in scores()) {
        let m = ood_metrics(&a, &b).unwrap();
        prop_assert!(in_unit_interval(&m), "{m:?}");
    }

    #[test]
    fn metrics_are_unchanged_by_strictly_increasing_transforms(a in scores(), b in scores(), scale in 1u32..8, shift in -50i32..50) {
        let m = ood_metrics(&a, &b).unwrap();
        let (ra, rb) = ranks(&a, &b);
        prop_assert_eq!(ood_metrics(&ra, &rb).unwrap(), m);
        // An affine map of the ranks (exact in f64 at these sizes) is strictly increasing too.
        let affine = |v: &[f64]| v.iter().map(|x| x * f64::from(scale) + f64::from(shift)).collect::<Vec<_>>();
        prop_assert_eq!(ood_metrics(&affine(&ra), &affine(&rb)).unwrap(), m);
    }
}
