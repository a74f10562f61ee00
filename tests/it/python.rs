//! Detectors in Python (`[python.<name>]`) through the real binary, on the smoke pipeline's cache:
//! Energy and KNN written in numpy give the Rust detectors' scores and Table 3 rows; an edit of
//! the script (or of a module it imports) reruns only its stages and the report, an edit of
//! another file nothing; a package's version in a second venv reruns them; every way the Python
//! side can fail stops only its stages, with the traceback or the reason, and caches nothing; the
//! README's section runs as written. The interpreter is the checkout's venv (`make test` makes
//! it: scripts/install_python.sh), named by `$OODPIPE_PYTHON` in every command here.

use crate::cli::{Scratch, ids, last_json, ok, repo, stale_ids};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The checkout's venv's Python, or None (a skip; under CI a failure).
fn venv_python() -> Option<PathBuf> {
    let python = repo().join(".venv/bin/python");
    if !python.is_file() {
        crate::shared::skip("python::*", "the venv with numpy is missing (make test makes it: scripts/install_python.sh)");
        return None;
    }
    Some(python)
}

fn run_with(s: &Scratch, python: &Path, args: &[&str]) -> Output {
    s.command(args).env("OODPIPE_PYTHON", python).output().unwrap()
}

/// Adds `[python.<name>]` with `script` and `fields` to the scratch's config.
fn add_detector(s: &Scratch, name: &str, script: &Path, fields: &[(&str, toml::Value)]) {
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let python = config.entry("python").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
    let mut table = toml::Table::new();
    table.insert("script".into(), script.display().to_string().into());
    for (k, v) in fields {
        table.insert(k.to_string(), v.clone());
    }
    python.insert(name.into(), table.into());
    s.write_config(&config);
}

/// A safetensors file's f64 tensor `name`, read by hand (the format: an 8-byte header length, a
/// JSON header, the raw little-endian data).
fn f64s(path: &Path, name: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F64", "{}: {name}", path.display());
    let offsets = header[name]["data_offsets"].as_array().unwrap();
    let (a, b) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    bytes[8 + n + a..8 + n + b].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn scores_file(s: &Scratch, python: &Path, stage: &str) -> PathBuf {
    let shown = last_json(&run_with(s, python, &["show", stage, "--json"]));
    PathBuf::from(shown["outputs"]["scores.safetensors"].as_str().unwrap())
}

/// Table 3's cells of the row of `label` on `set` (without the label).
fn table3_row(s: &Scratch, set: &str, label: &str) -> String {
    let table = std::fs::read_to_string(s.path("reports/table3.md")).unwrap();
    let start = format!("| {set} | {label} |");
    let line = table.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no row {start} in table3.md:\n{table}"));
    line[start.len()..].to_string()
}

const SETS: [(&str, &str); 3] =
    [("gaussian", "Gaussian Noise"), ("tin_crop", "Tiny ImageNet (crop)"), ("tin_resize", "Tiny ImageNet (resize)")];

#[test]
fn energy_and_knn_in_numpy_give_the_rust_detectors_scores_and_rows() {
    let Some(python) = venv_python() else { return };
    let s = crate::shared::copy_of_built();
    let examples = repo().join("examples/python");
    add_detector(&s, "energy_np", &examples.join("energy.py"), &[("label", "Energy (numpy)".into())]);
    add_detector(&s, "knn_np", &examples.join("knn.py"), &[("label", "KNN (numpy)".into()), ("features", true.into()), ("k", 50.into())]);
    let run = last_json(&run_with(&s, &python, &["run", "--json"]));
    let executed = ids(&run["executed"]);
    let want: BTreeSet<String> = SETS
        .iter()
        .flat_map(|(set, _)| [format!("score.energy_np.{set}"), format!("score.knn_np.{set}")])
        .chain(["report".to_string()])
        .collect();
    assert_eq!(executed, want, "only the Python detectors' stages and the report run");
    for (set, label) in SETS {
        for (ours, rust, rust_label, our_label) in
            [("energy_np", "energy", "Energy", "Energy (numpy)"), ("knn_np", "knn", "KNN", "KNN (numpy)")]
        {
            let a = scores_file(&s, &python, &format!("score.{ours}.{set}"));
            let b = scores_file(&s, &python, &format!("score.{rust}.{set}"));
            for name in ["in_scores", "out_scores", "val_in_scores", "val_out_scores"] {
                let (x, y) = (f64s(&a, name), f64s(&b, name));
                assert_eq!(x.len(), y.len(), "{ours} {set} {name}");
                let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                assert!(worst <= 1e-6, "{ours} against {rust} on {set} ({name}): differ by {worst}");
            }
            assert_eq!(table3_row(&s, label, our_label), table3_row(&s, label, rust_label), "{our_label} on {label}");
        }
    }
    // A hyperparameter sweeps like any config key.
    let swept = last_json(&run_with(&s, &python, &["run", "--json", "--sweep", "python.knn_np.k=5,50"]));
    let executed = ids(&swept["executed"]);
    assert!(executed.contains("sweep") && executed.iter().any(|id| id.starts_with("score.knn_np.gaussian@")), "{executed:?}");
    let sweep_csv = std::fs::read_to_string(s.path("reports/sweeps/python.knn_np.k/sweep.csv")).unwrap();
    assert!(sweep_csv.lines().filter(|l| l.contains("KNN (numpy)")).count() >= 2, "{sweep_csv}");
    // A typo is no new hyperparameter.
    let typo = run_with(&s, &python, &["status", "--set", "python.knn_np.kk=5"]);
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("not a key of [python.knn_np] (its hyperparameters: k)"), "{typo:?}");
}

#[test]
fn an_edit_reruns_only_what_it_touches_and_a_package_version_reruns_the_python_stages() {
    let Some(python) = venv_python() else { return };
    let s = crate::shared::copy_of_built();
    let methods = s.path("methods");
    std::fs::create_dir_all(&methods).unwrap();
    std::fs::write(methods.join("scale.py"), "FACTOR = 1.0\n").unwrap();
    std::fs::write(methods.join("unrelated.py"), "X = 1\n").unwrap();
    let script = methods.join("maxlogit.py");
    std::fs::write(
        &script,
        "import numpy as np\nfrom scale import FACTOR\n\ndef score(state, x, params):\n    return FACTOR * x.logits.max(axis=1)\n",
    )
    .unwrap();
    add_detector(&s, "maxlogit_np", &script, &[]);
    ok(&run_with(&s, &python, &["run"]));
    let ours: BTreeSet<String> = SETS.iter().map(|(set, _)| format!("score.maxlogit_np.{set}")).collect();
    let ours_and_report: BTreeSet<String> = ours.iter().cloned().chain(["report".to_string()]).collect();
    let status = |s: &Scratch, python: &Path| last_json(&run_with(s, python, &["status", "--json"]));
    let reasons = |st: &serde_json::Value, id: &str| -> Vec<String> {
        let stage = st["stages"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap();
        stage["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
    };

    // Another file of the folder: nothing.
    std::fs::write(methods.join("unrelated.py"), "X = 2\n").unwrap();
    assert!(stale_ids(&status(&s, &python)).is_empty());
    // The script: its stages, then the report.
    std::fs::write(&script, std::fs::read_to_string(&script).unwrap().replace("max(axis=1)", "max(axis=1) + 0.0")).unwrap();
    let st = status(&s, &python);
    assert_eq!(stale_ids(&st), ours_and_report, "its stages, and the report that reads them");
    assert_eq!(reasons(&st, "score.maxlogit_np.gaussian"), [format!("python script {} changed", script.display())]);
    let run = last_json(&run_with(&s, &python, &["run", "--json"]));
    assert_eq!(ids(&run["executed"]), ours, "the same scores: the report is spared (early cutoff)");
    // A module it imports: its stages, and the report when the scores move.
    std::fs::write(methods.join("scale.py"), "FACTOR = 2.0\n").unwrap();
    let st = status(&s, &python);
    assert_eq!(stale_ids(&st), ours_and_report);
    assert_eq!(reasons(&st, "score.maxlogit_np.tin_crop"), [format!("python module {} changed", methods.join("scale.py").display())]);
    let run = last_json(&run_with(&s, &python, &["run", "--json"]));
    assert_eq!(
        ids(&run["executed"]),
        ours_and_report,
        "FACTOR moves every score: the report reruns (early cutoff would spare it otherwise)"
    );

    // A second venv: the project venv's packages through a .pth file, and one distribution of its own.
    let venv = s.path("venv2");
    let made = std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv).status().unwrap();
    assert!(made.success());
    let site = |root: &Path| -> PathBuf {
        let lib = root.join("lib");
        let version = std::fs::read_dir(&lib).unwrap().next().unwrap().unwrap().file_name();
        lib.join(version).join("site-packages")
    };
    std::fs::write(site(&venv).join("project.pth"), format!("{}\n", site(&repo().join(".venv")).display())).unwrap();
    let dist = |version: &str| {
        let info = site(&venv).join("oodpipe_probe-0.dist-info");
        let _ = std::fs::remove_dir_all(&info);
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("METADATA"), format!("Metadata-Version: 2.1\nName: oodpipe-probe\nVersion: {version}\n")).unwrap();
    };
    dist("1.0");
    let python2 = venv.join("bin/python");
    let st = status(&s, &python2);
    assert_eq!(stale_ids(&st), ours_and_report, "another interpreter: the Python stages (and the report after them)");
    assert!(reasons(&st, "score.maxlogit_np.gaussian").iter().any(|r| r.starts_with("python interpreter ")), "{st}");
    ok(&run_with(&s, &python2, &["run"]));
    assert!(stale_ids(&status(&s, &python2)).is_empty());
    dist("1.1");
    let st = status(&s, &python2);
    assert_eq!(stale_ids(&st), ours_and_report, "a package's version: the Python stages (and the report after them)");
    assert_eq!(reasons(&st, "score.maxlogit_np.gaussian"), ["python environment: oodpipe-probe 1.0 -> 1.1"]);
    let run = last_json(&run_with(&s, &python2, &["run", "--json"]));
    assert_eq!(ids(&run["executed"]), ours, "the same scores: the report is spared (early cutoff)");
}

#[test]
fn every_python_failure_fails_only_its_stages_with_the_reason_and_caches_nothing() {
    let Some(python) = venv_python() else { return };
    let s = crate::shared::copy_of_built();
    let dir = s.path("methods");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("raises", "def score(state, x, params):\n    raise ValueError('the detector broke')\n", "ValueError: the detector broke"),
        ("syntax", "def score(state, x params):\n    return 0\n", "SyntaxError"),
        ("no_score", "def fit(train, params):\n    return None\n", "defines no function `score(state, x, params)`"),
        (
            "shape",
            "def score(state, x, params):\n    return x.logits\n",
            "returned shape (200, 10) for CIFAR-10's test split (200 images): expected one score per image, shape (200,)",
        ),
        (
            "nan",
            "import numpy as np\ndef score(state, x, params):\n    s = x.logits.max(axis=1).astype(float)\n    s[3] = np.nan\n    return s\n",
            "returned 1 values that are NaN or infinite for CIFAR-10's test split (the first for image 3: nan)",
        ),
    ];
    for (name, code, _) in &cases {
        let script = dir.join(format!("{name}.py"));
        std::fs::write(&script, code).unwrap();
        add_detector(&s, name, &script, &[]);
    }
    let out = run_with(&s, &python, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, _, reason) in &cases {
        assert!(stderr.contains(&format!("python.{name} (")) && stderr.contains(reason), "{name}: {reason:?} not in:\n{stderr}");
    }
    assert!(stderr.contains("Traceback"), "the exception's traceback: {stderr}");
    let st = last_json(&run_with(&s, &python, &["status", "--json"]));
    let stale = stale_ids(&st);
    for (name, _, _) in &cases {
        for (set, _) in SETS {
            assert!(stale.contains(&format!("score.{name}.{set}")), "{name} on {set} was cached");
        }
    }
    // Every other stage is built: only the Python stages and the report (which reads them) wait.
    assert_eq!(stale.len(), cases.len() * SETS.len() + 1, "{stale:?}");
    // `show` gives the traceback of the last attempt.
    let shown = ok(&run_with(&s, &python, &["show", "score.raises.gaussian"]));
    assert!(shown.contains("Traceback") && shown.contains("ValueError: the detector broke"), "{shown}");

    // No interpreter, and an interpreter without numpy, for a detector whose code is fine.
    let good = dir.join("good.py");
    std::fs::write(&good, "def score(state, x, params):\n    return x.logits.max(axis=1)\n").unwrap();
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    config.remove("python");
    s.write_config(&config);
    add_detector(&s, "good", &good, &[]);
    let missing = s.path("no/such/python");
    let out = run_with(&s, &missing, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot run the Python interpreter `{}`", missing.display())), "{stderr}");
    let bare = s.path("bare");
    assert!(std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&bare).status().unwrap().success());
    let out = run_with(&s, &bare.join("bin/python"), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("python.good (") && stderr.contains("numpy cannot be imported by the Python interpreter"), "{stderr}");
    let st = last_json(&run_with(&s, &bare.join("bin/python"), &["status", "--json"]));
    assert!(SETS.iter().all(|(set, _)| stale_ids(&st).contains(&format!("score.good.{set}"))), "nothing cached");
    // With numpy it runs.
    ok(&run_with(&s, &python, &["run"]));
}

/// The README's blocks marked `<!-- python: WHAT -->`.
fn readme_blocks() -> Vec<(String, String)> {
    crate::cli::readme_blocks("python")
}

#[test]
fn the_readmes_python_detector_goes_from_an_empty_file_to_its_row_in_table_3() {
    let Some(python) = venv_python() else { return };
    let blocks = readme_blocks();
    let block =
        |what: &str| blocks.iter().find(|(w, _)| w == what).unwrap_or_else(|| panic!("README has no `python: {what}` block")).1.clone();
    let s = crate::shared::copy_of_built();
    // The file, as the README writes it, at the path its config block names (relative to where
    // oodpipe runs: here the scratch folder stands for the checkout).
    let (path, script) = blocks.iter().find(|(w, _)| w.ends_with(".py")).expect("a script block").clone();
    std::fs::create_dir_all(s.path(&path).parent().unwrap()).unwrap();
    std::fs::write(s.path(&path), &script).unwrap();
    let table = block("config").replace(&format!("\"{path}\""), &format!("\"{}\"", s.path(&path).display()));
    let mut config = std::fs::read_to_string(s.config()).unwrap();
    config.push('\n');
    config.push_str(&table);
    std::fs::write(s.config(), config).unwrap();
    let parsed: toml::Table = table.parse().unwrap();
    let (name, t) = parsed["python"].as_table().unwrap().iter().next().unwrap();
    let label = t["label"].as_str().unwrap();
    ok(&run_with(&s, &python, &["run"]));
    for (_, set) in SETS {
        let row = table3_row(&s, set, label);
        assert!(row.matches('|').count() == 5 && !row.contains('–'), "{name} on {set}: {row}");
    }
    let summary = std::fs::read_to_string(s.path("reports/table3.md")).unwrap();
    assert!(summary.lines().any(|l| l.contains(&format!("| {label} | 3 |"))), "its rank in the mean over the sets");
    // The README's sweep command.
    let sweep = block("sweep");
    let args: Vec<&str> = sweep.split_whitespace().skip(1).collect();
    ok(&run_with(&s, &python, &args));
}
