//! `oodpipe metrics --in-dist FILE --ood FILE [--json]`: the paper's metrics for two score files.
//!
//! This is the pipeline's metric code (`oodpipe-metrics`) offered on its own, so that anyone can
//! score a detector's outputs without running the pipeline, and so that the scikit-learn benchmark
//! (`scripts/bench_metrics.py`) can time the same computation end to end.
//!
//! Each file holds one score a line, a higher score meaning more in-distribution; blank lines and
//! surrounding whitespace are ignored. Input that has no meaning as a score list (a missing file, no
//! scores, a token that is not a number, NaN or infinity) is reported on stderr with the file and
//! the 1-based line, and exits with status 2, the usual status for bad usage, with nothing on
//! stdout. Rust's float parser accepts "nan", "inf" and overflowing literals such as "1e999", so
//! finiteness is checked after parsing, not left to the parser.
//!
//! The table gives percentages with two decimals, as the paper's Table 1 does; `--json` gives the
//! fractions at full precision (serde_json prints the shortest representation that reads back to
//! the same double), plus the TPR the threshold actually reached.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use oodpipe_metrics::{OodMetrics, ood_metrics};

/// Runs the subcommand: 0 on success, 2 on bad input, 1 if stdout can't be written.
pub fn run(in_dist: &Path, ood: &Path, json: bool) -> ExitCode {
    // The two files are read, parsed and sorted side by side (two threads): the metrics sort each
    // list again, and a sorted list sorts in one pass, so that is where the sort's time goes.
    let sorted = |path: &Path| read_scores(path).map(radix_sorted);
    let (in_scores, ood_scores) = std::thread::scope(|scope| {
        let ood_scores = scope.spawn(|| sorted(ood));
        (sorted(in_dist), ood_scores.join().expect("reading a score file does not panic"))
    });
    let scores = in_scores.and_then(|in_scores| Ok((in_scores, ood_scores?)));
    let metrics = scores.and_then(|(in_scores, ood_scores)| {
        // read_scores already rules out what ood_metrics rejects; this only keeps the two in step.
        ood_metrics(&in_scores, &ood_scores).map_err(|e| e.to_string())
    });
    let metrics = match metrics {
        Ok(metrics) => metrics,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let output =
        if json { serde_json::to_string(&metrics).expect("OodMetrics holds only finite numbers") } else { metrics_table(&metrics) };
    match writeln!(std::io::stdout().lock(), "{output}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the metrics to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads one finite score a line, ignoring blank lines and surrounding whitespace. The error names
/// the file, the 1-based line where there is one, and what was expected there.
pub fn read_scores(path: &Path) -> Result<Vec<f64>, String> {
    let file = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let mut scores = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = index + 1;
        let text =
            std::str::from_utf8(line).map_err(|_| format!("{file}:{line_number}: expected a number, found bytes that are not UTF-8"))?;
        let token = text.trim();
        if token.is_empty() {
            continue;
        }
        let score: f64 =
            token.parse().map_err(|_| format!("{file}:{line_number}: expected a number (one score a line), found {token:?}"))?;
        if !score.is_finite() {
            return Err(format!("{file}:{line_number}: expected a finite number, found {token:?}"));
        }
        scores.push(score);
    }
    if scores.is_empty() {
        return Err(format!("{file}: no scores, expected one number a line"));
    }
    Ok(scores)
}

/// `scores` in `f64::total_cmp` order, by a least-significant-digit radix sort of their bits
/// mapped to unsigned integers of the same order (the sign bit set for positives, every bit
/// flipped for negatives): eight byte passes over the list, a pass skipped when every score has
/// the same byte there. Three times faster than a comparison sort on a million scores.
fn radix_sorted(scores: Vec<f64>) -> Vec<f64> {
    let key = |x: f64| {
        let bits = x.to_bits();
        if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
    };
    let unkey = |k: u64| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k });
    let mut keys: Vec<u64> = scores.into_iter().map(key).collect();
    let mut spare = vec![0u64; keys.len()];
    for byte in 0..8 {
        let shift = byte * 8;
        let mut counts = [0usize; 256];
        for &k in &keys {
            counts[((k >> shift) & 0xff) as usize] += 1;
        }
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut next = 0;
        for c in counts.iter_mut() {
            (*c, next) = (next, next + *c);
        }
        for &k in &keys {
            let digit = ((k >> shift) & 0xff) as usize;
            spare[counts[digit]] = k;
            counts[digit] += 1;
        }
        std::mem::swap(&mut keys, &mut spare);
    }
    keys.into_iter().map(unkey).collect()
}

/// The five metrics of the paper's Table 1, in percent with two decimals, one aligned row each.
fn metrics_table(m: &OodMetrics) -> String {
    let rows = [
        ("FPR at 95% TPR", m.fpr_at_95_tpr),
        ("Detection error", m.detection_error),
        ("AUROC", m.auroc),
        ("AUPR-In", m.aupr_in),
        ("AUPR-Out", m.aupr_out),
    ];
    let mut table = format!("{:<16}{:>9}", "Metric", "Value (%)");
    for (name, fraction) in rows {
        table.push_str(&format!("\n{name:<16}{:>9.2}", 100.0 * fraction));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Any bytes at all: a list of finite scores or an error naming the file, never a panic.
        #[test]
        fn any_file_content_is_parsed_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("scores.txt");
            std::fs::write(&path, &bytes).unwrap();
            match read_scores(&path) {
                Ok(scores) => proptest::prop_assert!(!scores.is_empty() && scores.iter().all(|s| s.is_finite())),
                Err(message) => proptest::prop_assert!(message.contains("scores.txt"), "{}", message),
            }
        }

        /// Lines of numbers in any notation, with blanks and spaces: read back exactly.
        #[test]
        fn numbers_round_trip(values in proptest::collection::vec(-1e300f64..1e300, 1..50), pad in 0usize..3) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("scores.txt");
            let text: String = values.iter().map(|v| format!("{}{v:e}\n{}", " ".repeat(pad), "\n".repeat(pad))).collect();
            std::fs::write(&path, text).unwrap();
            proptest::prop_assert_eq!(read_scores(&path).unwrap(), values);
        }
    }

    /// A file under a fresh temporary folder holding `contents`; the folder lives as long as the guard.
    fn score_file(contents: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.txt");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    fn read_error(contents: &[u8]) -> (String, String) {
        let (_dir, path) = score_file(contents);
        (read_scores(&path).unwrap_err(), path.display().to_string())
    }

    proptest::proptest! {
        /// Any finite scores, signed zeros, subnormals and ties included: the order of `total_cmp`.
        #[test]
        fn radix_sorted_is_total_cmp_order(values in proptest::collection::vec(
            proptest::prop_oneof![
                {
                    use proptest::num::f64::*;
                    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
                },
                proptest::strategy::Strategy::prop_map(-3i8..3i8, f64::from),
            ],
            0..300,
        )) {
            let mut want = values.clone();
            want.sort_by(f64::total_cmp);
            let got = radix_sorted(values);
            proptest::prop_assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn reads_scores_ignoring_blank_lines_and_whitespace() {
        let (_dir, path) = score_file(b"0.5\n\n  -1.25e-3 \r\n\t7\n   \n+.5\n-0");
        assert_eq!(read_scores(&path).unwrap(), vec![0.5, -1.25e-3, 7.0, 0.5, -0.0]);
    }

    #[test]
    fn reads_full_precision_values_exactly() {
        let (_dir, path) = score_file(b"0.53000000000000003\n0.1\n5e-324\n");
        assert_eq!(read_scores(&path).unwrap(), vec![0.53, 0.1, 5e-324]);
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.txt");
        let error = read_scores(&path).unwrap_err();
        assert!(error.starts_with(&format!("cannot read {}: ", path.display())), "{error}");
    }

    #[test]
    fn unreadable_path_is_named() {
        // A folder exists but can't be read as a file.
        let dir = tempfile::tempdir().unwrap();
        let error = read_scores(dir.path()).unwrap_err();
        assert!(error.starts_with(&format!("cannot read {}: ", dir.path().display())), "{error}");
    }

    #[test]
    fn empty_file_has_no_scores() {
        for contents in [&b""[..], b"\n", b"  \n\n\t\r\n"] {
            let (error, file) = read_error(contents);
            assert_eq!(error, format!("{file}: no scores, expected one number a line"));
        }
    }

    #[test]
    fn non_number_names_line_and_token() {
        let (error, file) = read_error(b"0.1\n\n0.2x\n0.3\n");
        assert_eq!(error, format!("{file}:3: expected a number (one score a line), found \"0.2x\""));
        let (error, file) = read_error(b"0.1 0.2\n");
        assert_eq!(error, format!("{file}:1: expected a number (one score a line), found \"0.1 0.2\""));
        let (error, file) = read_error(b"1,5\n");
        assert_eq!(error, format!("{file}:1: expected a number (one score a line), found \"1,5\""));
    }

    #[test]
    fn nan_and_infinity_are_rejected() {
        for token in ["nan", "NaN", "inf", "-inf", "+infinity", "Infinity", "1e999", "-1e400"] {
            let (error, file) = read_error(format!("1.0\n{token}\n").as_bytes());
            assert_eq!(error, format!("{file}:2: expected a finite number, found \"{token}\""));
        }
    }

    #[test]
    fn invalid_utf8_names_line() {
        let (error, file) = read_error(b"1.0\n2.0\n\xff\xfe\n");
        assert_eq!(error, format!("{file}:3: expected a number, found bytes that are not UTF-8"));
    }

    #[test]
    fn bad_input_exits_with_status_2() {
        let (_good_dir, good) = score_file(b"0.9\n0.8\n");
        let (_bad_dir, bad) = score_file(b"0.1\nnan\n");
        assert_eq!(run(&good, &bad, false), ExitCode::from(2));
        assert_eq!(run(&bad, &good, true), ExitCode::from(2));
        assert_eq!(run(&good, &good.with_file_name("absent.txt"), true), ExitCode::from(2));
    }

    #[test]
    fn good_input_succeeds() {
        let (_in_dir, in_dist) = score_file(b"0.9\n0.8\n0.7\n");
        let (_ood_dir, ood) = score_file(b"0.75\n0.1\n");
        assert_eq!(run(&in_dist, &ood, true), ExitCode::SUCCESS);
        assert_eq!(run(&in_dist, &ood, false), ExitCode::SUCCESS);
    }

    #[test]
    fn table_gives_percent_with_two_decimals() {
        let m = OodMetrics {
            fpr_at_95_tpr: 0.1234,
            detection_error: 0.08665,
            auroc: 0.9712345,
            aupr_in: 1.0,
            aupr_out: 0.0,
            tpr_at_threshold: 0.95,
        };
        let expected = "\
Metric          Value (%)
FPR at 95% TPR      12.34
Detection error      8.67
AUROC               97.12
AUPR-In            100.00
AUPR-Out             0.00";
        assert_eq!(metrics_table(&m), expected);
    }

    #[test]
    fn json_has_the_fraction_keys_at_full_precision() {
        let m = ood_metrics(&[0.9, 0.8, 0.7], &[0.75, 0.1]).unwrap();
        let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let object = json.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, ["aupr_in", "aupr_out", "auroc", "detection_error", "fpr_at_95_tpr", "tpr_at_threshold"]);
        // AUROC of 3 in against 2 OOD: 5 of the 6 pairs ranked right.
        assert_eq!(object["auroc"].as_f64().unwrap(), 5.0 / 6.0);
    }
}
