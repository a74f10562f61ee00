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
                // What the value can be, in percent (never cut inside the value itself).
                let (floor, ceiling): (f64, f64) = if metric == "detection_error" { (2.5, 52.5) } else { (0.0, 100.0) };
                let cut = |(a, b): (f64, f64)| (a.max(floor.min(*v)), b.min(ceiling.max(*v)));
                // FPR at 95% TPR counts OOD images; the detection error rests on that count.
                let n = scores["out_scores"].len() as f64;
                let k = (point.fpr_at_95_tpr * n).round();
                let want = match kind.as_str() {
                    "bootstrap" => {
                        let reps: Vec<f64> = replicates.iter().map(of).collect();
                        cut((100.0 * quantile(&reps, 0.025), 100.0 * quantile(&reps, 0.975)))
                    }
                    "clopper_pearson" => {
                        assert!(matches!(metric, "fpr_at_95_tpr" | "detection_error"), "{key:?}: an exact interval of no count");
                        assert!(k.min(n - k) <= 10.0, "{key:?}: an exact interval of a count of {k} of {n}");
                        let (a, b) = oodpipe_metrics::significance::clopper_pearson(k as u64, n as u64);
                        let (scale, offset) = match metric {
                            "detection_error" => (50.0, 100.0 * point.detection_error - 50.0 * point.fpr_at_95_tpr),
                            _ => (100.0, 0.0),
                        };
                        cut((offset + scale * a, offset + scale * b))
                    }
                    other => panic!("{key:?}: interval {other}"),
                };
                if kind == "bootstrap" && metric == "fpr_at_95_tpr" {
                    assert!(k.min(n - k) > 10.0, "{key:?}: a bootstrap interval of a count of {k} of {n}");
                }
                assert!(close(lo.unwrap(), want.0) && close(hi.unwrap(), want.1), "{key:?}: [{lo:?}, {hi:?}], the scores give {want:?}");
                checked += 1;
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

/// A CSV line's fields (quoted fields with commas and doubled quotes).
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.last_mut().unwrap().push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Benjamini-Yekutieli by hand: p_(i) m c(m) / i, made monotone from the largest down, capped at 1.
fn by_hand(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let c: f64 = (1..=m).map(|i| 1.0 / i as f64).sum();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].partial_cmp(&p[b]).unwrap());
    let mut out = vec![0.0; m];
    let mut smallest = f64::INFINITY;
    for rank in (1..=m).rev() {
        let i = order[rank - 1];
        smallest = smallest.min(p[i] * m as f64 * c / rank as f64);
        out[i] = smallest.min(1.0);
    }
    out
}

#[test]
fn a_real_claims_report_follows_from_its_results_and_its_p_values() {
    let s = &crate::shared::built().scratch;
    let results = results(&s.path("reports/results.csv"));
    let text = std::fs::read_to_string(s.path("reports/claims.csv")).unwrap();
    let mut lines = text.lines();
    let header = fields(lines.next().unwrap());
    let rows: Vec<BTreeMap<String, String>> = lines.map(|l| header.iter().cloned().zip(fields(l)).collect()).collect();
    assert!(rows.len() > 100, "{} rows", rows.len());
    let tested: Vec<&BTreeMap<String, String>> = rows.iter().filter(|r| !r["test"].is_empty()).collect();
    let distinct: Vec<&BTreeMap<String, String>> = tested.iter().copied().filter(|r| r["same_test_as_row"].is_empty()).collect();
    let num = |r: &BTreeMap<String, String>, k: &str| r[k].parse::<f64>().unwrap_or_else(|_| panic!("{k}: {:?}", r[k]));
    // Each difference is A minus B of the report's own values (one seed: that seed's rows).
    for r in &tested {
        let value = |side: &str| results[&(r["set"].clone(), r[side].clone(), r["metric"].clone(), "all".to_string())].0;
        assert!((num(r, "difference") - (value("a") - value("b"))).abs() < 1e-9, "{r:?}");
        assert!(num(r, "ci_low") <= num(r, "difference") && num(r, "difference") <= num(r, "ci_high"), "{r:?}");
        let bound = if r["metric"] == "detection_error" { 50.0 } else { 100.0 };
        assert!(num(r, "ci_low") >= -bound && num(r, "ci_high") <= bound, "{r:?}");
    }
    // The adjusted p-values are Benjamini-Yekutieli's over the distinct tests, computed here.
    let p: Vec<f64> = distinct.iter().map(|r| num(r, "p")).collect();
    for (r, want) in distinct.iter().zip(by_hand(&p)) {
        assert!((num(r, "p_adjusted") - want).abs() < 1e-12, "{r:?}: adjusted {want}");
    }
    // The verdicts follow the rule, and a repeated comparison carries its first test's.
    for r in &tested {
        let higher = !matches!(r["metric"].as_str(), "fpr_at_95_tpr" | "detection_error");
        let want = if num(r, "p_adjusted") > 0.05 {
            "not resolved at this noise"
        } else if r["comparison"].contains(" > ") {
            if (num(r, "difference") > 0.0) == higher { "holds" } else { "reversed" }
        } else {
            r["verdict"].as_str() // `~`: which side of the margin, from the TOST (checked in the stages' tests)
        };
        assert_eq!(r["verdict"], want, "{r:?}");
        if !r["same_test_as_row"].is_empty() {
            let first = &rows[r["same_test_as_row"].parse::<usize>().unwrap() - 1];
            assert_eq!((&first["p_adjusted"], &first["verdict"]), (&r["p_adjusted"], &r["verdict"]));
        }
        // A p at the floor is 2 / (B + 1) of the claims' resamples.
        if r["p_at_floor"] == "true" {
            assert!((num(r, "p") - 2.0 / 20_001.0).abs() < 1e-12, "{r:?}");
        }
    }
    // Claim 5's two sentences are both tested, claim 6's "slight" is not, and says so.
    let claims_md = std::fs::read_to_string(s.path("reports/claims.md")).unwrap();
    assert!(rows.iter().any(|r| r["claim"] == "5" && r["comparison"] == "odin ~ baseline_t" && r["set"] == "Gaussian Noise"));
    assert!(claims_md.contains("### 6.2 The improvement is slight\n\nnot tested: the paper gives no size"), "{claims_md}");
    assert!(!claims_md.contains("| 6 | BINC is a slight improvement over BIN. | **holds**"), "{claims_md}");
}
