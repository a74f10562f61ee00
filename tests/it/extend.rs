//! Extending as the README says (issue #13): in a scratch copy of the repository, add the README's
//! detector, its OOD set kind and its model with the model's detector (each its file and its
//! registry line), its OOD-set tables (an image folder, here of PNGs of several sizes, colour and
//! greyscale, and a set of the new kind) and the model in `models`, build, and run the smoke
//! config end to end, starting from the plain smoke pipeline's cache (the shared cold run) with
//! CIFAR-10's data salt bumped in the same build: only the data stage and the additions run
//! (early cutoff on the real pipeline). The code
//! blocks are taken from README.md, so the README cannot drift from what works.

use crate::cli::repo;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README's blocks marked `<!-- extend: WHAT -->`.
fn readme_blocks() -> Vec<(String, String)> {
    crate::cli::readme_blocks("extend")
}

fn block(blocks: &[(String, String)], what: &str) -> String {
    blocks.iter().find(|(w, _)| w.starts_with(what)).unwrap_or_else(|| panic!("README has no `extend: {what}` block")).1.clone()
}

/// Copies the repository's tracked files (what a clone has) into `to`.
fn copy_repository(to: &Path) {
    let out = Command::new("git").arg("-C").arg(repo()).args(["ls-files", "-z"]).output().unwrap();
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    for file in out.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(file).unwrap());
        let from = repo().join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree, not yet committed
        }
        std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&from, to.join(rel)).unwrap();
    }
    // What `make` installs: libtorch and CIFAR-10.
    for installed in [".libtorch", "data"] {
        std::os::unix::fs::symlink(repo().join(installed), to.join(installed)).unwrap();
    }
}

/// A folder of 130 PNGs of several sizes, colour and greyscale (the set's default count is the
/// smoke config's data.ood_count, 120).
fn photos(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..130u32 {
        let (w, h) = [(40, 48), (64, 64), (33, 90), (100, 70)][i as usize % 4];
        let rgb = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([((x * 5 + i) % 256) as u8, ((y * 3 + 2 * i) % 256) as u8, ((x * y + i) % 256) as u8])
        });
        let img = if i % 3 == 0 { image::DynamicImage::ImageRgb8(rgb).grayscale() } else { image::DynamicImage::ImageRgb8(rgb) };
        img.save(dir.join(format!("photo_{i}.png"))).unwrap();
    }
}

/// A target folder for the copy that starts from this build's compiled dependencies (hard links
/// of target/debug's deps, build and .fingerprint), so that only the workspace's own crates are
/// compiled; the copy's crates have another path, hence other artifact names.
fn scratch_target() -> PathBuf {
    let target = repo().join("target/extend-test");
    let debug = repo().join("target/debug");
    if !target.join("debug").exists() && debug.join("deps").is_dir() {
        std::fs::create_dir_all(target.join("debug")).unwrap();
        for part in ["deps", "build", ".fingerprint"] {
            let status = Command::new("cp").arg("-al").arg(debug.join(part)).arg(target.join("debug")).status().unwrap();
            assert!(status.success(), "cp -al {part}");
        }
    }
    target
}

/// A safetensors file's f32 tensor, read by hand from the format (8-byte little-endian header
/// length, JSON header, data), independently of oodpipe's reader.
fn safetensors_f32(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header[name]["dtype"], "F32", "{header}");
    let offset = |i: usize| header[name]["data_offsets"][i].as_u64().unwrap() as usize;
    bytes[8 + n + offset(0)..8 + n + offset(1)].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn a_detector_an_ood_set_kind_a_model_and_an_image_folder_set_added_as_the_readme_says_run_end_to_end() {
    let blocks = readme_blocks();
    let tmp = tempfile::tempdir().unwrap();
    // The copy lives at one place, so that its crates keep their artifact names from one run to
    // the next (a new path each time would leave a new set of debug binaries behind every run).
    let copy = repo().join("target/extend-test/repo");
    if copy.exists() {
        std::fs::remove_dir_all(&copy).unwrap();
    }
    copy_repository(&copy);

    // The detector, the OOD set kind, the model and its detector: each its file and its registry
    // line, as the README says.
    for (file, registry, nth) in [
        ("detectors/neg_entropy.rs", "detectors/mod.rs", 0),
        ("ood_kinds/solid.rs", "ood_kinds/mod.rs", 0),
        ("models/cosine.rs", "models/mod.rs", 0),
        ("detectors/max_cosine.rs", "detectors/mod.rs", 1),
    ] {
        std::fs::write(copy.join(file), block(&blocks, file)).unwrap();
        let (what, line) = blocks.iter().filter(|(w, _)| w.starts_with(&format!("{registry} after"))).nth(nth).unwrap();
        let after = what.split('"').nth(1).unwrap();
        let text = std::fs::read_to_string(copy.join(registry)).unwrap();
        assert!(text.contains(&format!("{after}\n")), "{registry} has no line {after:?}");
        std::fs::write(copy.join(registry), text.replacen(&format!("{after}\n"), &format!("{after}\n{line}"), 1)).unwrap();
    }

    // The OOD sets: the README's tables appended to the smoke config (an image folder, and one
    // of the new kind), and the folder.
    let mut config = std::fs::read_to_string(copy.join("configs/smoke.toml")).unwrap();
    // The model in the config's `models`.
    let models = config.lines().find(|l| l.starts_with("models = ")).expect("configs/smoke.toml names its models").to_string();
    config = config.replacen(&models, block(&blocks, "config models").trim_end(), 1);
    for table in ["config", "config of a solid set"] {
        config.push('\n');
        config.push_str(&block(&blocks, table));
    }
    std::fs::write(copy.join("configs/smoke.toml"), config).unwrap();
    photos(&copy.join("my-photos"));

    // Early cutoff on the real pipeline, in the same build: CIFAR-10's data stage's code version
    // is bumped (salt::DATA in plan/src/table.rs) without a change to what it writes.
    let table = std::fs::read_to_string(copy.join("plan/src/table.rs")).unwrap();
    let bumped = table.replacen("pub const DATA: &str = \"data-1\";", "pub const DATA: &str = \"data-1-bumped\";", 1);
    assert_ne!(bumped, table, "plan/src/table.rs has no salt::DATA = \"data-1\"");
    std::fs::write(copy.join("plan/src/table.rs"), bumped).unwrap();

    // The cache starts as the plain smoke pipeline built by this repository's binary (the shared
    // cold run): the copy's run builds only what is new, and CIFAR-10's data stage.
    let cache = tmp.path().join("cache");
    let status = Command::new("cp").arg("-r").arg(crate::shared::built().scratch.path("cache")).arg(&cache).status().unwrap();
    assert!(status.success(), "copying the shared cache");

    // Build the copy.
    let target = scratch_target();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&copy)
        // `--test it` too: with the integration test's dev-dependencies the shared crates get the
        // features `cargo test` gave them here (bitflags/std, ...), so their compiled artifacts
        // are reused; without it polars and torch-sys would be rebuilt for the bins alone.
        .args(["build", "--bin", "oodpipe", "--bin", "oodpipe-worker", "--test", "it"])
        .env("CARGO_TARGET_DIR", &target)
        // As this build's: the dependencies' build scripts see the same libtorch and stay fresh.
        .env("LIBTORCH", repo().join(".libtorch/torch"))
        .output()
        .unwrap();
    assert!(build.status.success(), "building the copy failed:\n{}", String::from_utf8_lossy(&build.stderr));
    let oodpipe = target.join("debug/oodpipe");
    let run = |args: &[&str]| {
        Command::new(&oodpipe)
            .current_dir(&copy)
            .args(["-c", "configs/smoke.toml", "--cache"])
            .arg(&cache)
            .args(args)
            .env_remove("OODPIPE_WORKER")
            .output()
            .unwrap()
    };

    // The plan has the new stages, and CIFAR-10's data stage is stale by its code version.
    let status = String::from_utf8(run(&["status"]).stdout).unwrap();
    assert!(status.contains("stale  data.cifar10") && status.contains("code version"), "{status}");
    for id in [
        "data.my_photos",
        "score.neg_entropy.my_photos",
        "score.neg_entropy.gaussian",
        "score.baseline.my_photos",
        "outputs.vib.my_photos",
        "data.solid",
        "score.neg_entropy.solid",
        "score.odin.solid",
        "train.cosine",
        "outputs.cosine.solid",
        "score.max_cosine.my_photos",
    ] {
        assert!(status.lines().any(|l| l.split_whitespace().nth(1) == Some(id)), "status lists no {id}:\n{status}");
    }
    // They run end to end. Of what was built, only CIFAR-10's data stage reruns: it writes the same
    // bytes, so nothing downstream of it that the additions do not touch (five trainings, ...)
    // does, and the run says why.
    let out = run(&["run", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the run failed:\n{}\n{err}", String::from_utf8_lossy(&out.stdout));
    let summary: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let executed: Vec<&str> = summary["executed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let new = ["my_photos", "solid", "neg_entropy", "cosine"];
    assert!(executed.contains(&"data.cifar10") && executed.contains(&"train.cosine"), "{executed:?}");
    for id in &executed {
        assert!(*id == "data.cifar10" || *id == "report" || new.iter().any(|n| id.contains(n)), "{id} reran: {executed:?}");
    }
    assert!(err.contains("train.softmax: input data.cifar10 rebuilt with the same bytes: kept"), "{err}");
    let show = String::from_utf8(run(&["show", "score.neg_entropy.my_photos"]).stdout).unwrap();
    assert!(show.contains("detectors/neg_entropy.rs"), "{show}");
    let show = String::from_utf8(run(&["show", "data.solid"]).stdout).unwrap();
    assert!(show.contains("ood_kinds/solid.rs"), "{show}");
    let show = String::from_utf8(run(&["show", "train.cosine"]).stdout).unwrap();
    assert!(show.contains("models/cosine.rs") && show.contains("methods.cosine.scale"), "{show}");
    // What the kind made: every image one colour, each channel in [0, 0.8).
    let data = run(&["show", "data.solid", "--json"]);
    let data: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&data.stdout).lines().last().unwrap()).unwrap();
    let file = std::path::PathBuf::from(data["outputs"]["solid.safetensors"].as_str().unwrap());
    let tensors = safetensors_f32(&file, "test_images");
    assert_eq!(tensors.len() % 3072, 0);
    for image in tensors.chunks(3072) {
        for plane in image.chunks(1024) {
            assert!(plane.iter().all(|&v| v == plane[0] && (0.0..0.8).contains(&v)), "not one colour in [0, 0.8)");
        }
    }

    // Every table shows the new set after the paper's, and Table 3 the new detector.
    let reports = copy.join("reports-smoke");
    let table1 = std::fs::read_to_string(reports.join("table1.md")).unwrap();
    let table3 = std::fs::read_to_string(reports.join("table3.md")).unwrap();
    // Rows of a detector table (not of the AUPR chance table below it).
    let rows = |table: &str, set: &str| {
        table.split("AUPR depends").next().unwrap().lines().filter(|l| l.starts_with(&format!("| {set} |"))).count()
    };
    assert_eq!(rows(&table1, "My photos"), 8, "{table1}");
    assert_eq!(rows(&table1, "Solid colours"), 8, "{table1}");
    // Energy, MaxLogit, Mahalanobis, the eight post-hoc detectors of OpenOOD and the two new ones.
    assert_eq!(rows(&table3, "My photos"), 13, "{table3}");
    assert!(table3.contains("| Tiny ImageNet (resize) | Neg. entropy |") && table3.contains("| My photos | Neg. entropy |"), "{table3}");
    assert!(table3.contains("| Solid colours | Max. cosine |"), "{table3}");
    // The new model's accuracy is Table 2's last row, with its interval and no paper number.
    let table2 = std::fs::read_to_string(reports.join("table2.md")).unwrap();
    let last = table2.lines().rfind(|l| l.starts_with("| ") && !l.starts_with("| Method")).unwrap();
    assert!(last.starts_with("| Cosine | ") && !last.contains(" / "), "{table2}");
    let accuracy: f64 = last.split(" | ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{last}");

    // Its table keys the training and what runs the network, and nothing else (scale is its
    // shape, read by inference); a value out of range or an unknown field is refused.
    let changed = run(&["status", "--set", "methods.cosine.scale=8.0"]);
    let changed = String::from_utf8(changed.stdout).unwrap();
    let stale: Vec<&str> = changed.lines().filter(|l| l.starts_with("stale")).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert!(stale.contains(&"train.cosine") && stale.contains(&"outputs.cosine.gaussian"), "{changed}");
    assert!(stale.iter().all(|id| id.contains("cosine") || *id == "report"), "{changed}");
    let of_cosine = status.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|id| id.contains("cosine"))).count();
    assert_eq!(stale.len(), of_cosine + 1, "every cosine stage and the report:\n{changed}");
    let bad = run(&["status", "--set", "methods.cosine.scale=-1.0"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("methods.cosine.scale") && err.contains("a positive number"), "{err}");
    let bad = run(&["status", "--set", "methods.cosine.nope=1"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("nope") && err.contains("`scale`"), "{err}");
    let order: Vec<&str> = table1.lines().filter_map(|l| l.strip_prefix("| ")?.split(" | ").next()).collect();
    let first = |set: &str| order.iter().position(|s| *s == set).unwrap();
    assert!(first("Gaussian Noise") < first("Tiny ImageNet (resize)") && first("Tiny ImageNet (resize)") < first("My photos"));
    assert!(first("My photos") < first("Solid colours"));
    // No paper number for a set the paper does not have.
    let baseline_row = table1.lines().find(|l| l.starts_with("| My photos | Baseline |")).unwrap();
    assert!(!baseline_row.contains(" / "), "{baseline_row}");
    let results = std::fs::read_to_string(reports.join("results.csv")).unwrap();
    let auroc = results
        .lines()
        .find(|l| l.starts_with("My photos,Neg. entropy,auroc,all,"))
        .unwrap_or_else(|| panic!("no My photos / Neg. entropy row:\n{results}"));
    let value: f64 = auroc.split(',').nth(4).unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&value), "{auroc}");

    // Everything is fresh, and status says why the networks were kept.
    let status = String::from_utf8(run(&["status"]).stdout).unwrap();
    assert!(!status.lines().any(|l| l.starts_with("stale")) && status.contains(" fresh, 0 stale"), "{status}");
    assert!(
        status.lines().any(|l| l.starts_with("fresh  train.softmax") && l.contains("input data.cifar10 rebuilt with the same bytes: kept")),
        "{status}"
    );
}
