//! The tests of differences against published examples and an independent implementation:
//! R's documented `t.test` examples on Student's sleep data (Welch and paired), scipy 1.17.1
//! (`scipy.stats.ttest_ind(equal_var=False)`, `ttest_1samp`, `beta.ppf`) and statsmodels 0.15
//! (`multipletests`) for the rest, closed forms at the ends of Clopper-Pearson, and a paired
//! bootstrap computed by hand from resampled lists.

use oodpipe_metrics::bootstrap::{bootstrap, resample_indices};
use oodpipe_metrics::ood_metrics;
use oodpipe_metrics::significance::{Difference, benjamini_hochberg, benjamini_yekutieli, clopper_pearson, holm};

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: {got} against {want}");
}

/// Student's sleep data (R `datasets::sleep`): extra hours of sleep under two drugs, ten patients.
const SLEEP_1: [f64; 10] = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
const SLEEP_2: [f64; 10] = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

#[test]
fn welch_matches_rs_documented_example() {
    // R: t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939,
    // 95 percent confidence interval: -3.3654832  0.2054832.
    let d = Difference::welch(&SLEEP_1, &SLEEP_2);
    close(d.estimate, -1.58, 1e-12, "difference");
    let (lo, hi) = d.interval();
    close(lo, -3.3654832, 1e-7, "low");
    close(hi, 0.2054832, 1e-7, "high");
    close(d.p_two_sided(), 0.0793941401873583, 1e-9, "p");
    match d.spread {
        oodpipe_metrics::significance::Spread::T { df, .. } => close(df, 17.776473516178488, 1e-9, "df"),
        _ => panic!("a t spread"),
    }
}

#[test]
fn paired_t_matches_rs_documented_example() {
    // R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9,
    // p-value = 0.002833, 95 percent confidence interval: -2.4598858 -0.7001142.
    let d: Vec<f64> = SLEEP_1.iter().zip(&SLEEP_2).map(|(a, b)| a - b).collect();
    let t = Difference::paired_t(&d);
    let (lo, hi) = t.interval();
    close(lo, -2.459885763276983, 1e-9, "low");
    close(hi, -0.7001142367230175, 1e-9, "high");
    close(t.p_two_sided(), 0.002832890197384273, 1e-9, "p");
}

#[test]
fn welch_and_paired_t_on_three_seeds_match_scipy() {
    // The committed three-seed accuracies of softmax and BIN.
    let d = Difference::welch(&[82.52, 81.97, 81.78], &[75.13, 74.58, 74.38]);
    close(d.p_two_sided(), 1.9664286098092e-05, 1e-12, "p");
    let (lo, hi) = d.interval();
    close(lo, 6.517455072792392, 1e-9, "low");
    close(hi, 8.2692115938743, 1e-9, "high");
    let d = Difference::welch(&[19.1, 23.4, 18.7, 25.0, 21.3], &[14.2, 17.9, 16.1]);
    close(d.p_two_sided(), 0.016358218856601877, 1e-12, "unequal sizes p");
    let t = Difference::paired_t(&[1.5, 2.5, 0.7, 1.9]);
    close(t.p_two_sided(), 0.022151967933775073, 1e-12, "paired p");
    let (lo, hi) = t.interval();
    close(lo, 0.4486528647984447, 1e-9, "paired low");
    close(hi, 2.8513471352015554, 1e-9, "paired high");
}

#[test]
fn one_sided_and_equivalence_p_values_of_a_t_difference() {
    // estimate 1, se 0.5, df 9: P(T >= 2) and P(T <= 2) with df 9 (scipy: t.sf(2, 9)).
    let d = Difference { estimate: 1.0, spread: oodpipe_metrics::significance::Spread::T { se: 0.5, df: 9.0 } };
    close(d.p_above(0.0), 0.038276411885350504, 1e-9, "p_above");
    close(d.p_below(0.0), 1.0 - 0.038276411885350504, 1e-9, "p_below");
    close(d.p_two_sided(), 2.0 * 0.038276411885350504, 1e-9, "two-sided");
    // TOST within 3: max(P(T >= (1 + 3) / 0.5 = 8), P(T <= (1 - 3) / 0.5 = -4)) = P(T >= 4).
    close(d.p_equivalent(3.0), 0.0015552141551929272, 1e-9, "tost");
    // No noise at all: the sign decides.
    let exact = Difference { estimate: 0.0, spread: oodpipe_metrics::significance::Spread::T { se: 0.0, df: 2.0 } };
    assert_eq!(exact.p_two_sided(), 1.0);
}

#[test]
fn a_prediction_t_is_the_prediction_interval() {
    // x against [1, 2, 3]: mean 2, sd 1, se = sqrt(1 + 1/3), df 2: the 95% prediction interval
    // of a new value is 2 +- 4.302652729749462 sqrt(4/3).
    let d = Difference::prediction_t(5.0, &[1.0, 2.0, 3.0]);
    let half = 4.302652729749462 * (4.0f64 / 3.0).sqrt();
    let (lo, hi) = d.interval();
    close(lo, 3.0 - half, 1e-9, "low");
    close(hi, 3.0 + half, 1e-9, "high");
}

#[test]
fn clopper_pearson_matches_closed_forms_and_scipy() {
    // k = 0: (0, 1 - 0.025^(1/n)); k = n: (0.025^(1/n), 1).
    for n in [1u64, 10, 1000] {
        let (lo, hi) = clopper_pearson(0, n);
        assert_eq!(lo, 0.0);
        close(hi, 1.0 - 0.025f64.powf(1.0 / n as f64), 1e-12, "k = 0");
        let (lo, hi) = clopper_pearson(n, n);
        close(lo, 0.025f64.powf(1.0 / n as f64), 1e-12, "k = n");
        assert_eq!(hi, 1.0);
    }
    // scipy.stats.beta.ppf (statsmodels' proportion_confint(method='beta') agrees).
    let (lo, hi) = clopper_pearson(3, 10);
    close(lo, 0.06673951117773447, 1e-9, "3/10 low");
    close(hi, 0.6524528500599973, 1e-9, "3/10 high");
    let (lo, hi) = clopper_pearson(8252, 10000);
    close(lo, 0.8176117523386173, 1e-9, "8252/10000 low");
    close(hi, 0.8325983573058641, 1e-9, "8252/10000 high");
}

#[test]
fn corrections_match_statsmodels() {
    // statsmodels 0.14.5 multipletests (scripts/significance_fixtures.py).
    let p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.6];
    let bh = [0.03, 0.06, 0.06, 0.03, 0.24, 0.6];
    let hm = [0.05, 0.12, 0.12, 0.03, 0.4, 0.6];
    let by = [0.0735, 0.147, 0.147, 0.0735, 0.588, 1.0];
    for (got, want) in benjamini_hochberg(&p).iter().zip(bh) {
        close(*got, want, 1e-12, "BH");
    }
    for (got, want) in holm(&p).iter().zip(hm) {
        close(*got, want, 1e-12, "Holm");
    }
    for (got, want) in benjamini_yekutieli(&p).iter().zip(by) {
        close(*got, want, 1e-12, "BY");
    }
    // Ties at a bootstrap floor (2 / 1001 rounded), as the claims have them.
    let p = [0.002, 0.002, 0.002, 0.0045, 0.03, 0.2677, 0.9, 0.002, 0.011];
    let by = [
        0.012730357142857142,
        0.012730357142857142,
        0.012730357142857142,
        0.022914642857142852,
        0.1091173469387755,
        0.8519791517857142,
        1.0,
        0.012730357142857142,
        0.046677976190476186,
    ];
    let bh = [0.0045, 0.0045, 0.0045, 0.0081, 0.03857142857142857, 0.3011625, 0.9, 0.0045, 0.0165];
    for (got, want) in benjamini_yekutieli(&p).iter().zip(by) {
        close(*got, want, 1e-12, "BY, ties");
    }
    for (got, want) in benjamini_hochberg(&p).iter().zip(bh) {
        close(*got, want, 1e-12, "BH, ties");
    }
    assert!(benjamini_hochberg(&[]).is_empty() && benjamini_yekutieli(&[]).is_empty());
}

#[test]
fn equivalence_tests_match_statsmodels_ttost() {
    // statsmodels 0.14.5 ttost_paired / ttost_ind(usevar="unequal") within (-m, m): the larger of
    // the two one-sided p-values (scripts/significance_fixtures.py).
    let a = [82.52, 81.97, 81.78];
    let b = [75.13, 74.58, 74.38];
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    close(Difference::paired_t(&d).p_equivalent(8.0), 1.5094111790446413e-05, 1e-12, "paired, within 8");
    let d = [1.5, 2.5, 0.7];
    close(Difference::paired_t(&d).p_equivalent(5.0), 0.01111756252874234, 1e-12, "paired, within 5");
    close(Difference::paired_t(&d).p_equivalent(3.0), 0.05525701796603484, 1e-12, "paired, within 3");
    let w = Difference::welch(&[19.1, 23.4, 18.7, 25.0, 21.3], &[14.2, 17.9, 16.1]);
    close(w.p_equivalent(9.0), 0.03586923680170559, 1e-12, "Welch, within 9");
    // The smallest margin TOST passes at 0.05: statsmodels' ttost_paired within it gives 0.05.
    let t = Difference::paired_t(&[1.5, 2.5, 0.7]);
    let bound = t.equivalence_bound(0.05).unwrap();
    close(bound, 3.087054428840652, 1e-9, "bound");
    close(t.p_equivalent(bound), 0.05, 1e-12, "TOST p at the bound");
}

#[test]
fn a_bootstrap_equivalence_bound_is_where_the_tost_p_crosses_alpha() {
    // 199 replicates: alpha = 0.05 allows 9 of them beyond a margin on either side.
    let reps: Vec<f64> = (0..199).map(|i| ((i * 73) % 199) as f64 / 10.0 - 8.0).collect();
    let d = Difference::paired_bootstrap(2.0, reps);
    let bound = d.equivalence_bound(0.05).unwrap();
    assert!(d.p_equivalent(bound + 1e-9) <= 0.05, "{}", d.p_equivalent(bound + 1e-9));
    assert!(d.p_equivalent(bound - 1e-9) > 0.05, "{}", d.p_equivalent(bound - 1e-9));
    // Too few replicates for the level: no margin passes.
    assert_eq!(Difference::paired_bootstrap(0.0, vec![0.0; 10]).equivalence_bound(0.05), None);
}

#[test]
fn the_paired_bootstrap_is_the_difference_on_the_same_resampled_images() {
    // Two "detectors" scoring the same images: b is a close to a with noise of its own.
    let n_in = 300;
    let n_out = 100;
    let a_in: Vec<f64> = (0..n_in).map(|i| ((i * 37) % 101) as f64 / 10.0 + 1.0).collect();
    let a_out: Vec<f64> = (0..n_out).map(|i| ((i * 53) % 97) as f64 / 10.0).collect();
    let b_in: Vec<f64> = a_in.iter().enumerate().map(|(i, x)| x + ((i % 7) as f64 - 3.0) * 0.3).collect();
    let b_out: Vec<f64> = a_out.iter().enumerate().map(|(i, x)| x + ((i % 5) as f64 - 2.0) * 0.4).collect();
    let (seed, reps) = (99, 200);
    let ra = bootstrap(&a_in, &a_out, reps, seed).unwrap();
    let rb = bootstrap(&b_in, &b_out, reps, seed).unwrap();
    let diffs: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x.auroc - y.auroc).collect();
    // Each replicate's difference is the two detectors' AUROCs on one explicitly resampled list of
    // images, the same images for both.
    assert_eq!(diffs.len(), reps);
    for (r, &diff) in diffs.iter().enumerate() {
        let (ii, io) = resample_indices(seed, r as u64, n_in, n_out);
        let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let want = ood_metrics(&pick(&a_in, &ii), &pick(&a_out, &io)).unwrap().auroc
            - ood_metrics(&pick(&b_in, &ii), &pick(&b_out, &io)).unwrap().auroc;
        close(diff, want, 1e-15, "replicate");
    }
    let point = ood_metrics(&a_in, &a_out).unwrap().auroc - ood_metrics(&b_in, &b_out).unwrap().auroc;
    let d = Difference::paired_bootstrap(point, diffs.clone());
    // The two-sided percentile p by hand: 2 min(#{<= 0} + 1, #{>= 0} + 1) / (B + 1).
    let below = diffs.iter().filter(|&&x| x <= 0.0).count() as f64;
    let above = diffs.iter().filter(|&&x| x >= 0.0).count() as f64;
    close(d.p_two_sided(), (2.0 * (below + 1.0).min(above + 1.0) / (reps as f64 + 1.0)).min(1.0), 1e-15, "p");
    // All replicates on one side: p = 2 / (B + 1), never 0.
    let one_sided = Difference::paired_bootstrap(1.0, vec![0.5; 99]);
    close(one_sided.p_two_sided(), 2.0 / 100.0, 1e-15, "smallest p");
}
