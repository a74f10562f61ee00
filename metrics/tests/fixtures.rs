//! The metrics against independent oracles: scikit-learn's answers on the shared fixtures and on
//! the cases of `scripts/sklearn_metric_cases.py`, closed forms, and invariances.

use std::fs;
use std::path::{Path, PathBuf};

use oodpipe_metrics::{MetricsError, OodMetrics, ScoreList, ood_metrics, roc_curve};

const TOLERANCE: f64 = 1e-9;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_scores(path: &Path) -> Vec<f64> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.parse().unwrap_or_else(|e| panic!("{}: {line:?}: {e}", path.display())))
        .collect()
}

/// Checks every case folder (`in.txt`, `out.txt`, `expected.json`) under `dir` and returns how many
/// there were.
fn check_oracle_cases(dir: &Path) -> usize {
    let mut case_dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    case_dirs.sort();
    let mut failures = Vec::new();
    for case in &case_dirs {
        let name = case.file_name().unwrap().to_string_lossy();
        let expected: serde_json::Value = serde_json::from_str(&fs::read_to_string(case.join("expected.json")).unwrap()).unwrap();
        let actual =
            ood_metrics(&read_scores(&case.join("in.txt")), &read_scores(&case.join("out.txt"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual = serde_json::to_value(actual).unwrap();
        let expected = expected.as_object().unwrap();
        // Every metric we produce must be in the oracle's answer, and the other way round.
        let mut actual_keys: Vec<_> = actual.as_object().unwrap().keys().collect();
        let mut expected_keys: Vec<_> = expected.keys().collect();
        actual_keys.sort();
        expected_keys.sort();
        assert_eq!(actual_keys, expected_keys, "{name}: metric names");
        for (key, want) in expected {
            let (want, got) = (want.as_f64().unwrap(), actual[key].as_f64().unwrap());
            if (want - got).abs() > TOLERANCE {
                failures.push(format!("{name}/{key}: expected {want}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    case_dirs.len()
}

#[test]
fn shared_fixtures_match_sklearn() {
    // A copy of ../shared/fixtures/metrics kept in the repository (tests/data/README.md).
    let n = check_oracle_cases(&manifest_path("../tests/data/metrics_shared"));
    assert!(n >= 8, "only {n} shared fixture cases found");
}

#[test]
fn generated_sklearn_cases_match() {
    let n = check_oracle_cases(&manifest_path("../tests/data/metrics_sklearn"));
    assert!(n >= 30, "only {n} generated cases found; run scripts/sklearn_metric_cases.py");
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= TOLERANCE, "{what}: expected {want}, got {got}");
}

#[test]
fn perfectly_separated() {
    let in_scores: Vec<f64> = (0..100).map(|i| 10.0 + i as f64).collect();
    let ood_scores: Vec<f64> = (0..40).map(|i| -(i as f64)).collect();
    let m = ood_metrics(&in_scores, &ood_scores).unwrap();
    assert_eq!(m.auroc, 1.0);
    assert_eq!(m.aupr_in, 1.0);
    assert_eq!(m.aupr_out, 1.0);
    assert_eq!(m.fpr_at_95_tpr, 0.0);
    assert_eq!(m.tpr_at_threshold, 0.95);
    assert_close(m.detection_error, 0.025, "detection error");
}

#[test]
fn perfectly_inverted() {
    let in_scores = [0.0, 0.1, 0.2, 0.3];
    let ood_scores = [1.0, 2.0];
    let m = ood_metrics(&in_scores, &ood_scores).unwrap();
    assert_eq!(m.auroc, 0.0);
    // Every OOD sample ranks above every in-distribution one: TPR 95% needs TPR 100%, FPR 100%.
    assert_eq!((m.fpr_at_95_tpr, m.tpr_at_threshold), (1.0, 1.0));
    assert_close(m.detection_error, 0.5, "detection error");
    // AUPR-In: recall steps of 1/4 at precisions 1/3, 2/4, 3/5, 4/6.
    assert_close(m.aupr_in, (1.0 / 3.0 + 2.0 / 4.0 + 3.0 / 5.0 + 4.0 / 6.0) / 4.0, "AUPR-In");
    // AUPR-Out, OOD positive with negated scores: the two OOD samples rank last, at 1/5 and 2/6.
    assert_close(m.aupr_out, (1.0 / 5.0 + 2.0 / 6.0) / 2.0, "AUPR-Out");
}

#[test]
fn identical_scores_are_chance() {
    let (n_in, n_ood) = (30, 70);
    let m = ood_metrics(&vec![0.25; n_in], &vec![0.25; n_ood]).unwrap();
    let in_fraction = n_in as f64 / (n_in + n_ood) as f64;
    assert_eq!(m.auroc, 0.5);
    assert_eq!((m.fpr_at_95_tpr, m.tpr_at_threshold), (1.0, 1.0));
    assert_eq!(m.detection_error, 0.5);
    // One threshold accepting everything: precision is each class's share.
    assert_close(m.aupr_in, in_fraction, "AUPR-In");
    assert_close(m.aupr_out, 1.0 - in_fraction, "AUPR-Out");
}

#[test]
fn auroc_counts_ties_one_half() {
    // Pairs (in, ood): 2 > 1 wins; 2 vs 2 ties; 1 vs 1 ties; 1 < 2 loses. AUROC = (1 + 1/2 + 1/2) / 4.
    let m = ood_metrics(&[2.0, 1.0], &[1.0, 2.0]).unwrap();
    assert_eq!(m.auroc, 0.5);
    let m = ood_metrics(&[3.0, 2.0, 1.0], &[2.0]).unwrap();
    assert_close(m.auroc, (1.0 + 0.5 + 0.0) / 3.0, "AUROC");
}

#[test]
fn signed_zeros_are_one_threshold() {
    let m = ood_metrics(&[0.0, 1.0], &[-0.0]).unwrap();
    assert_eq!(m.auroc, 0.75);
    assert_eq!(roc_curve(&[0.0, 1.0], &[-0.0]).unwrap(), vec![(0.0, 0.0), (0.0, 0.5), (1.0, 1.0)]);
}

#[test]
fn fpr_is_read_where_tpr_first_reaches_95_percent() {
    // 20 in-distribution scores 1..=20 and one OOD sample between the lowest two: TPR reaches
    // 19/20 = 0.95 exactly at score 2, just above the OOD sample, so FPR there is 0.
    let in_scores: Vec<f64> = (1..=20).map(f64::from).collect();
    let m = ood_metrics(&in_scores, &[1.5]).unwrap();
    assert_eq!((m.fpr_at_95_tpr, m.tpr_at_threshold), (0.0, 0.95));
    // With the OOD sample tied with score 2, the 95% threshold accepts it.
    let m = ood_metrics(&in_scores, &[2.0]).unwrap();
    assert_eq!((m.fpr_at_95_tpr, m.tpr_at_threshold), (1.0, 0.95));
}

#[test]
fn roc_curve_has_one_point_per_distinct_score() {
    let points = roc_curve(&[0.9, 0.8, 0.8, 0.3], &[0.8, 0.1]).unwrap();
    assert_eq!(points, vec![(0.0, 0.0), (0.0, 0.25), (0.5, 0.75), (0.5, 1.0), (1.0, 1.0)]);
}

/// A small xorshift generator, so the test needs no dependency and is the same on every machine.
fn xorshift_scores(seed: u64, n: usize, offset: f64, decimals: i32) -> Vec<f64> {
    let mut state = seed;
    let scale = 10f64.powi(decimals);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            ((offset + unit) * scale).round() / scale
        })
        .collect()
}

#[test]
fn permuting_the_inputs_changes_nothing() {
    let in_scores = xorshift_scores(1, 3000, 0.3, 2);
    let ood_scores = xorshift_scores(2, 2000, 0.0, 2);
    let reference = ood_metrics(&in_scores, &ood_scores).unwrap();
    let mut rotated_in = in_scores.clone();
    rotated_in.rotate_left(1234);
    let mut reversed_ood = ood_scores.clone();
    reversed_ood.reverse();
    let mut sorted_in = in_scores.clone();
    sorted_in.sort_by(f64::total_cmp);
    for (a, b) in [(&rotated_in, &reversed_ood), (&sorted_in, &ood_scores), (&in_scores, &reversed_ood)] {
        assert_eq!(ood_metrics(a, b).unwrap(), reference);
    }
}

#[test]
fn swapping_the_classes_mirrors_the_metrics() {
    // OOD as positive with negated scores is the same ranking problem seen from the other side.
    let in_scores = xorshift_scores(3, 500, 0.2, 1);
    let ood_scores = xorshift_scores(4, 800, 0.0, 1);
    let m = ood_metrics(&in_scores, &ood_scores).unwrap();
    let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<_>>();
    let swapped = ood_metrics(&neg(&ood_scores), &neg(&in_scores)).unwrap();
    assert_close(swapped.auroc, m.auroc, "AUROC");
    assert_close(swapped.aupr_in, m.aupr_out, "AUPR-In of the swap");
    assert_close(swapped.aupr_out, m.aupr_in, "AUPR-Out of the swap");
}

#[test]
fn metrics_are_fractions() {
    let m: OodMetrics = ood_metrics(&xorshift_scores(5, 1000, 0.1, 3), &xorshift_scores(6, 1000, 0.0, 3)).unwrap();
    for v in [m.fpr_at_95_tpr, m.detection_error, m.auroc, m.aupr_in, m.aupr_out, m.tpr_at_threshold] {
        assert!((0.0..=1.0).contains(&v), "{m:?}");
    }
}

#[test]
fn empty_lists_are_errors() {
    assert_eq!(ood_metrics(&[], &[1.0]), Err(MetricsError::Empty { list: ScoreList::InDistribution }));
    assert_eq!(ood_metrics(&[1.0], &[]), Err(MetricsError::Empty { list: ScoreList::Ood }));
    assert_eq!(roc_curve(&[1.0], &[]), Err(MetricsError::Empty { list: ScoreList::Ood }));
    assert_eq!(MetricsError::Empty { list: ScoreList::InDistribution }.to_string(), "the in-distribution score list is empty");
}

#[test]
fn non_finite_scores_are_errors_naming_list_and_index() {
    let e = ood_metrics(&[0.0, 1.0, f64::INFINITY], &[0.5]).unwrap_err();
    assert_eq!(e, MetricsError::NonFinite { list: ScoreList::InDistribution, index: 2, value: f64::INFINITY });
    assert_eq!(e.to_string(), "in-distribution score at index 2 is inf, expected a finite number");

    let e = ood_metrics(&[0.0], &[0.5, f64::NAN]).unwrap_err();
    assert!(matches!(e, MetricsError::NonFinite { list: ScoreList::Ood, index: 1, value } if value.is_nan()));
    assert_eq!(e.to_string(), "OOD score at index 1 is NaN, expected a finite number");
    let _: &dyn std::error::Error = &e;
}
