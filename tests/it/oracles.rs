//! The report's numbers recomputed from what the stages stored, by code outside the report: each
//! score stage's test scores and each network's test logits are read from their safetensors files
//! (a reader of its own, here), the metrics and their bootstrap replicates come from the metrics
//! crate called directly (its metrics are checked against scikit-learn's fixtures), the quantiles
//! and the accuracies are computed here by hand. A report that reads the wrong split, seed, stage
//! or resample count, or rounds or scales on the way, differs from these.

use crate::cli::{last_json, ok};
use oodpipe_metrics::bootstrap::{bootstrap, bootstrap_mean};
use std::collections::BTreeMap;
use std::path::Path;

/// The tensors of a safetensors file as f64 (F32, F64, I64, U8 are what the stages write).
pub(crate) fn read_safetensors(path: &Path) -> BTreeMap<String, Vec<f64>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let (start, end) = (t["data_offsets"][0].as_u64().unwrap() as usize, t["data_offsets"][1].as_u64().unwrap() as usize);
        let raw = &data[start..end];
        let values: Vec<f64> = match t["dtype"].as_str().unwrap() {
            "F32" => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            "F64" => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            "I64" => raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            "U8" => raw.iter().map(|&b| b as f64).collect(),
            other => panic!("{}: tensor {name} of dtype {other}", path.display()),
        };
        out.insert(name.clone(), values);
    }
    out
}

/// numpy's default quantile (linear interpolation between the two nearest ranks).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A row of results.csv: (ood_set, method, metric, seed).
type Row = (String, String, String, String);
/// Its value, ci_low, ci_high and interval kind.
type Cell = (f64, Option<f64>, Option<f64>, String);

/// The report's rows.
fn results(path: &Path) -> BTreeMap<Row, Cell> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    let (set, method, metric, seed, value, lo, hi, kind) =
        (col("ood_set"), col("method"), col("metric"), col("seed"), col("value"), col("ci_low"), col("ci_high"), col("interval"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| f[i].parse::<f64>().ok();
            ((f[set].into(), f[method].into(), f[metric].into(), f[seed].into()), (num(value).unwrap(), num(lo), num(hi), f[kind].into()))
        })
        .collect()
}

#[test]
fn the_reports_values_and_intervals_are_what_the_stored_scores_and_logits_give() {
    let built = crate::shared::built();
    let s = &built.scratch;
    let config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let report = config.get("report").and_then(|r| r.as_table());
    let resamples = report.and_then(|r| r.get("bootstrap")).map_or(1000, |b| b.as_integer().unwrap() as usize);
    let seed = report.and_then(|r| r.get("bootstrap_seed")).map_or(0, |b| b.as_integer().unwrap() as u64);
    let train_seed = config["train"]["seed"].as_integer().unwrap().to_string();
    let rows = results(&s.path("reports/results.csv"));
    let ids: Vec<String> = ok(&s.oodpipe(&["dag"])).lines().map(|l| l.split(" <- ").next().unwrap().to_string()).collect();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let mut checked = 0;
    for id in ids.iter().filter(|id| id.starts_with("score.")) {
        let outputs = last_json(&s.oodpipe(&["show", id, "--json"]))["outputs"].clone();
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(outputs["metrics.json"].as_str().unwrap()).unwrap()).unwrap();
        let scores = read_safetensors(Path::new(outputs["scores.safetensors"].as_str().unwrap()));
        let (set, method) = (record["ood_set"].as_str().unwrap(), record["method"].as_str().unwrap());
        let point = oodpipe_metrics::ood_metrics(&scores["in_scores"], &scores["out_scores"]).unwrap();
        let replicates = bootstrap(&scores["in_scores"], &scores["out_scores"], resamples, seed).unwrap();
        for (metric, value, of) in [
            ("fpr_at_95_tpr", point.fpr_at_95_tpr, (|m: &oodpipe_metrics::OodMetrics| m.fpr_at_95_tpr) as fn(&_) -> f64),
            ("detection_error", point.detection_error, |m| m.detection_error),
            ("auroc", point.auroc, |m| m.auroc),
            ("aupr_in", point.aupr_in, |m| m.aupr_in),
            ("aupr_out", point.aupr_out, |m| m.aupr_out),
        ] {
            for row_seed in [train_seed.as_str(), "all"] {
                let key = (set.to_string(), method.to_string(), metric.to_string(), row_seed.to_string());
                let (v, lo, hi, kind) = rows.get(&key).unwrap_or_else(|| panic!("no row {key:?}"));
                assert!(close(*v, 100.0 * value), "{key:?}: the report says {v}, the scores give {}", 100.0 * value);
                if kind == "bootstrap" {
                    let reps: Vec<f64> = replicates.iter().map(of).collect();
                    let (want_lo, want_hi) = (100.0 * quantile(&reps, 0.025), 100.0 * quantile(&reps, 0.975));
                    assert!(
                        close(lo.unwrap(), want_lo) && close(hi.unwrap(), want_hi),
                        "{key:?}: [{lo:?}, {hi:?}], the scores give [{want_lo}, {want_hi}]"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} bootstrap intervals checked");

    // Table 2: each network's accuracy is the share of test images whose largest logit is their
    // label, from the stored logits and the data stage's labels; its interval the bootstrap of that share.
    let data = last_json(&s.oodpipe(&["show", "data.cifar10", "--json"]))["outputs"].clone();
    let labels = read_safetensors(Path::new(data["cifar10.safetensors"].as_str().unwrap()))["test_labels"].clone();
    for (model, label) in [("softmax", "Baseline"), ("bin", "BIN"), ("binc", "BINC"), ("vib", "VIB"), ("viby", "VIBY")] {
        let outputs = last_json(&s.oodpipe(&["show", &format!("outputs.{model}.cifar10"), "--json"]))["outputs"].clone();
        let logits = read_safetensors(Path::new(outputs["outputs.safetensors"].as_str().unwrap()))["test_logits"].clone();
        assert_eq!(logits.len(), labels.len() * 10);
        let right: Vec<f64> = logits
            .chunks_exact(10)
            .zip(&labels)
            .map(|(row, &y)| {
                let best = (0..10).fold(0, |b, c| if row[c] > row[b] { c } else { b });
                f64::from(best == y as usize)
            })
            .collect();
        let accuracy = 100.0 * right.iter().sum::<f64>() / right.len() as f64;
        let key = ("CIFAR-10".to_string(), label.to_string(), "accuracy".to_string(), "all".to_string());
        let (v, lo, hi, kind) = rows.get(&key).unwrap_or_else(|| panic!("no row {key:?}"));
        assert!(close(*v, accuracy), "{key:?}: the report says {v}, the logits give {accuracy}");
        if kind == "bootstrap" {
            let reps = bootstrap_mean(&right, resamples, seed);
            let (want_lo, want_hi) = (100.0 * quantile(&reps, 0.025), 100.0 * quantile(&reps, 0.975));
            assert!(close(lo.unwrap(), want_lo) && close(hi.unwrap(), want_hi), "{key:?}: [{lo:?}, {hi:?}] against [{want_lo}, {want_hi}]");
        }
    }
}
