//! Networks trained elsewhere (`[networks.<name>]`) through the real binary on the smoke pipeline:
//! the smoke run's softmax network exported to TorchScript by `oodpipe export` and imported back
//! gives the native outputs' logits to 1e-4 and the same Table 1 and 3 values; a ResNet-style
//! network written in PyTorch outside oodpipe's model code runs every detector that applies and
//! its report; each file that breaks the contract is refused before any stage runs, naming the
//! file and what is wrong. PyTorch is the checkout's `.venv-torch` (`make test` makes it:
//! scripts/install_torch_python.sh), named by `$OODPIPE_TORCH_PYTHON` in every command here.

use crate::cli::{Scratch, ids, last_json, ok, repo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The checkout's PyTorch venv's Python, or None (a skip; under CI a failure).
fn torch_python() -> Option<PathBuf> {
    let python = repo().join(".venv-torch/bin/python");
    if !python.is_file() {
        crate::shared::skip("network::*", "the venv with PyTorch is missing (make test makes it: scripts/install_torch_python.sh)");
        return None;
    }
    Some(python)
}

/// Adds `[networks.<name>]` with `file` (and `label`) to the scratch's config.
fn add_network(s: &Scratch, name: &str, file: &Path, label: Option<&str>) {
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let networks = config.entry("networks").or_insert(toml::Table::new().into()).as_table_mut().unwrap();
    let mut table = toml::Table::new();
    table.insert("torchscript".into(), file.display().to_string().into());
    if let Some(label) = label {
        table.insert("label".into(), label.into());
    }
    networks.insert(name.into(), table.into());
    s.write_config(&config);
}

/// The test networks of tests/torch/make_networks.py, written into `dir`.
fn make_networks(python: &Path, dir: &Path) {
    let out = std::process::Command::new(python).arg(repo().join("tests/torch/make_networks.py")).arg(dir).output().unwrap();
    assert!(out.status.success(), "make_networks.py: {}", String::from_utf8_lossy(&out.stderr));
}

/// A safetensors file's f32 tensor `name`, read by hand (an 8-byte header length, a JSON header,
/// the raw little-endian data).
fn f32s(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F32", "{}: {name}", path.display());
    let offsets = header[name]["data_offsets"].as_array().unwrap();
    let (a, b) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    bytes[8 + n + a..8 + n + b].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn output_file(s: &Scratch, stage: &str, file: &str) -> PathBuf {
    let shown = last_json(&s.oodpipe(&["show", stage, "--json"]));
    PathBuf::from(shown["outputs"][file].as_str().unwrap_or_else(|| panic!("{stage} has no {file}: {shown}")))
}

/// `results.csv` as (ood_set, method, metric, seed) -> value.
fn results(path: &Path) -> BTreeMap<(String, String, String, String), f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (o, m, k, s, v) = (col("ood_set"), col("method"), col("metric"), col("seed"), col("value"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[o].into(), f[m].into(), f[k].into(), f[s].into()), f[v].parse().unwrap())
        })
        .collect()
}

const SETS: [&str; 4] = ["cifar10", "gaussian", "tin_crop", "tin_resize"];

#[test]
fn the_smoke_softmax_network_exported_and_imported_gives_its_logits_and_tables() {
    let Some(python) = torch_python() else { return };
    let s = crate::shared::copy_of_built();
    let nets = s.path("nets/softmax");
    let export =
        s.command(&["export", "train.softmax", "--out", nets.to_str().unwrap()]).env("OODPIPE_TORCH_PYTHON", &python).output().unwrap();
    ok(&export);
    for file in ["network.pt", "network.safetensors", "oodpipe_wrn.py"] {
        assert!(nets.join(file).is_file(), "export wrote no {file}");
    }
    add_network(&s, "rt", &nets.join("network.pt"), Some("WRN-10-1, exported"));
    let run = last_json(&s.oodpipe(&["run", "--json"]));
    // Only the network's stages ran: the smoke pipeline's own keep their keys.
    let executed = ids(&run["executed"]);
    assert!(executed.contains("train.softmax@rt") && executed.contains("report@rt"), "{executed:?}");
    assert!(executed.iter().all(|id| id.ends_with("@rt")), "a stage of the plain pipeline reran: {executed:?}");
    // The native outputs' logits, to 1e-4, on every set and split.
    for set in SETS {
        let native = output_file(&s, &format!("outputs.softmax.{set}"), "outputs.safetensors");
        let imported = output_file(&s, &format!("outputs.softmax.{set}@rt"), "outputs.safetensors");
        for split in ["val", "test"] {
            let (a, b) = (f32s(&native, &format!("{split}_logits")), f32s(&imported, &format!("{split}_logits")));
            assert_eq!(a.len(), b.len());
            let gap = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(gap <= 1e-4, "{set} {split}: logits differ by {gap}");
        }
    }
    // Every value of the imported network's report is the native one's: AUROC within 0.05 points,
    // FPR at 95% TPR within 0.3, the rest as close.
    let native = results(&s.path("reports/results.csv"));
    let imported = results(&s.path("reports/networks/rt/results.csv"));
    assert!(imported.len() > 100, "{} rows", imported.len());
    for (key, value) in &imported {
        let theirs = native.get(key).unwrap_or_else(|| panic!("{key:?} is not in the native report"));
        let bound = if key.2 == "auroc" { 0.05 } else { 0.3 };
        assert!((value - theirs).abs() <= bound, "{key:?}: imported {value}, native {theirs}");
    }
    let table3 = std::fs::read_to_string(s.path("reports/networks/rt/table3.md")).unwrap();
    assert!(table3.starts_with("# Table 3") && table3.contains("network WRN-10-1, exported ([networks.rt])"), "{}", &table3[..200]);
}

#[test]
fn a_network_written_in_pytorch_runs_every_detector_that_applies_and_its_report() {
    let Some(python) = torch_python() else { return };
    let s = crate::shared::copy_of_built();
    let nets = s.path("nets");
    make_networks(&python, &nets);
    add_network(&s, "resnet", &nets.join("resnet.pt"), Some("A small ResNet"));
    let run = last_json(&s.oodpipe(&["run", "--json"]));
    let executed = ids(&run["executed"]);
    // Every detector of the softmax network, on every set; none of the other models'.
    let methods: std::collections::BTreeSet<String> =
        results(&s.path("reports/networks/resnet/results.csv")).keys().map(|k| k.1.clone()).collect();
    for label in
        ["Baseline", "Baseline+T", "ODIN", "Energy", "MaxLogit", "Mahalanobis", "ReAct", "ASH", "DICE", "KNN", "ViM", "GEN", "SHE", "RMDS"]
    {
        assert!(methods.contains(label), "no {label} rows: {methods:?}");
    }
    for label in ["BIN", "BINC", "VIB", "VIBY-I", "VIBY-II"] {
        assert!(!methods.contains(label), "{label} on an imported network");
    }
    assert!(executed.iter().all(|id| id.ends_with("@resnet")), "{executed:?}");
    let readme = std::fs::read_to_string(s.path("reports/networks/resnet/README.md")).unwrap();
    assert!(readme.contains("(BIN, BINC, VIB, VIBY) do not apply"), "{readme}");
    for file in ["table1.md", "table2.md", "table3.md", "report.html", "results.csv", "run.json"] {
        assert!(s.path("reports/networks/resnet").join(file).is_file(), "no {file}");
    }
    // The WRN's shape keys none of its stages.
    let status = ok(&s.oodpipe(&["status", "--set", "model.depth=16"]));
    assert!(status.lines().filter(|l| l.contains("@resnet")).all(|l| l.starts_with("fresh")), "{status}");
    assert!(status.lines().any(|l| l.starts_with("stale  train.softmax ")), "{status}");
    // A changed file: only the network's stages are stale, for that reason.
    std::fs::copy(nets.join("notfcinput.pt"), nets.join("resnet.pt")).unwrap();
    let status = ok(&s.oodpipe(&["status"]));
    let line = status.lines().find(|l| l.contains("train.softmax@resnet")).unwrap();
    assert!(line.contains(&format!("network file {} changed", nets.join("resnet.pt").display())), "{line}");
    assert!(status.lines().filter(|l| l.starts_with("stale")).all(|l| l.contains("@resnet")), "{status}");
}

#[test]
fn network_files_that_break_the_contract_are_refused_before_any_stage_runs() {
    let Some(python) = torch_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    make_networks(&python, dir.path());
    let cases = [
        ("junk.pt", "not a TorchScript file"),
        ("classes100.pt", "forward gives [4, 100]"),
        ("size64.pt", "forward fails on CIFAR-10's input, float32 [4, 3, 32, 32]"),
        ("nofeatures.pt", "has no method `features`"),
        ("notfcinput.pt", "fc(features(x)) differs from forward(x)"),
    ];
    for (file, why) in cases {
        let s = Scratch::new(|_| {});
        let path = dir.path().join(file);
        add_network(&s, "mine", &path, None);
        let out = s.oodpipe(&["run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(&format!("network file {}", path.display())) && stderr.contains(why), "{file}: {stderr}");
        // Nothing ran, nothing was stored.
        let stages = s.path("cache/stages");
        let entries = std::fs::read_dir(&stages).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 0, "{file}: entries in {}", stages.display());
    }
    // A file that is not there, and a name that reads as a seed's tag: refused with the config's key.
    let s = Scratch::new(|_| {});
    add_network(&s, "seed2", &dir.path().join("absent.pt"), None);
    let out = s.oodpipe(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("networks.seed2.torchscript") && stderr.contains("absent.pt") && stderr.contains("networks.seed2"), "{stderr}");
}

/// The README's blocks marked `<!-- network: WHAT -->`.
fn readme_blocks() -> Vec<(String, String)> {
    crate::cli::readme_blocks("network")
}

#[test]
fn the_readmes_network_goes_from_pytorch_to_its_report_and_back() {
    let Some(python) = torch_python() else { return };
    let blocks = readme_blocks();
    let block =
        |what: &str| blocks.iter().find(|(w, _)| w == what).unwrap_or_else(|| panic!("README has no `network: {what}` block")).1.clone();
    let s = crate::shared::copy_of_built();
    // The scratch folder stands for the checkout: the README's relative paths are taken from it.
    let py = |file: &str, code: &str| {
        std::fs::write(s.path(file), code).unwrap();
        let out = std::process::Command::new(&python).arg(file).current_dir(s.dir.path()).output().unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let inside = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_oodpipe"))
            .current_dir(s.dir.path())
            .args(["-c", "smoke.toml", "--cache", "cache"])
            .args(args)
            .env("OODPIPE_TORCH_PYTHON", &python)
            .output()
            .unwrap()
    };
    py("make.py", &block("make"));
    // The smoke config's Tiny ImageNet folder is relative to the checkout: made absolute.
    let mut table: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    let data = table.get_mut("data").unwrap().as_table_mut().unwrap();
    let tin = repo().join(data["tiny_imagenet_dir"].as_str().unwrap());
    data.insert("tiny_imagenet_dir".into(), tin.display().to_string().into());
    s.write_config(&table);
    let mut config = std::fs::read_to_string(s.config()).unwrap();
    config.push('\n');
    config.push_str(&block("config"));
    std::fs::write(s.config(), config).unwrap();
    let run = last_json(&inside(&["run", "--json"]));
    assert!(ids(&run["executed"]).contains("report@mynet"), "{run}");
    let table1 = std::fs::read_to_string(s.path("reports/networks/mynet/table1.md")).unwrap();
    assert!(table1.contains("network My network ([networks.mynet])"), "{}", &table1[..200]);
    let export = block("export");
    let args: Vec<&str> = export.split_whitespace().skip(1).collect();
    ok(&inside(&args));
    let shape = py("load.py", &(block("load") + "print(tuple(logits.shape))\n"));
    assert_eq!(shape.trim(), "(8, 10)");
}
