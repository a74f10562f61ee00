//! 95% intervals: the percentile interval of bootstrap replicates, and Student's t interval of a
//! mean over training seeds.

/// The level of every interval of the pipeline.
pub const LEVEL: f64 = 0.95;

/// The `q`-quantile of ascending `sorted` values with linear interpolation between order
/// statistics (numpy's default, Hyndman and Fan's type 7): h = (n - 1) q.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "the quantile of no values");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The central percentile interval holding `level` (0.95) of `values`: their (1 - level) / 2 and
/// (1 + level) / 2 quantiles.
pub fn percentile_interval(values: &[f64], level: f64) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    (quantile(&sorted, (1.0 - level) / 2.0), quantile(&sorted, (1.0 + level) / 2.0))
}

/// Mean, sample standard deviation (n - 1 in the denominator; 0 for one value) and count.
pub fn mean_std(values: &[f64]) -> (f64, f64, usize) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0, n);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt(), n)
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom (df >= 1), exact
/// (statrs), not from a table.
pub fn t_975(df: usize) -> f64 {
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    crate::significance::t_quantile((1.0 + LEVEL) / 2.0, df as f64)
}

/// The 95% confidence interval of the mean of `values` (at least two): mean +- t_975(n - 1) *
/// std / sqrt(n).
pub fn t_interval(values: &[f64]) -> (f64, f64) {
    let (mean, std, n) = mean_std(values);
    assert!(n >= 2, "a t interval needs at least two values");
    let half = t_975(n - 1) * std / (n as f64).sqrt();
    (mean - half, mean + half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4, 10], [0.025, 0.5, 0.975]) = [1.1, 3.0, 9.4]
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!((quantile(&v, 0.025) - 1.1).abs() < 1e-12);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert!((quantile(&v, 0.975) - 9.4).abs() < 1e-12);
        assert_eq!(percentile_interval(&[5.0], 0.95), (5.0, 5.0));
    }

    #[test]
    fn t_quantiles_match_closed_forms() {
        // df = 1 is the Cauchy distribution: tan(pi (p - 1/2)); df = 2: (2p - 1) / sqrt(2 p (1 - p)).
        let p: f64 = 0.975;
        let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
        let df2 = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
        assert!((t_975(1) - cauchy).abs() < 1e-9, "{cauchy}");
        assert!((t_975(2) - df2).abs() < 1e-9, "{df2}");
        // scipy.stats.t.ppf(0.975, df) (scipy 1.17.1): the table this replaced said 1.960 from 31 on.
        for (df, want) in [(3, 3.1824463052837078), (30, 2.0422724563012378), (31, 2.039513446396408), (1000, 1.9623390808264083)] {
            assert!((t_975(df) - want).abs() < 1e-9, "df {df}: {} against {want}", t_975(df));
        }
    }

    #[test]
    fn mean_std_and_t_interval_by_hand() {
        let (m, s, n) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!((m, s, n), (2.0, 1.0, 3));
        let (lo, hi) = t_interval(&[1.0, 2.0, 3.0]);
        let half = 4.302652729749462 / 3f64.sqrt();
        assert!((lo - (2.0 - half)).abs() < 1e-9 && (hi - (2.0 + half)).abs() < 1e-9);
    }
}
