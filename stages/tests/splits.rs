//! Which split each tuned or fitted detector reads, checked at the stage level (the stage
//! functions the worker runs, on the real smoke pipeline's upstream outputs, built here): a
//! detector tunes on the validation splits and fits on the split it documents, and never reads a
//! test split there. Metamorphic: each tune and fit stage is run three times, on its inputs as
//! built, with every test split replaced by other numbers, and with its own split replaced (the
//! Gaussian set's split by CIFAR-10's images, logits or features of that split, which moves even
//! the FPRs of the smoke network's saturated grid; every other tensor of the split by noise). Its
//! outputs must be byte for byte the same the first two times (tensors of test-split scores that
//! a fit precomputes, `test_*`, aside) and must differ the third time (so the comparison can
//! see a change at all). `tune.json` holds the whole grid's FPRs, so any read of a test split
//! would move some of them.

use oodpipe_engine::stage_spec::StageSpec;
use oodpipe_engine::worker::StageRequest;
use oodpipe_stages::config::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

type Files = BTreeMap<String, PathBuf>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The smoke config narrowed to the softmax network and the Gaussian set, its data where it is.
fn config() -> Config {
    let mut text = std::fs::read_to_string(repo().join("configs/smoke.toml")).unwrap();
    let cut = text.find("[ood.tin_crop]").unwrap();
    text.truncate(cut);
    let text = text
        .replace("models = [\"softmax\", \"bin\", \"binc\", \"vib\", \"viby\"]", "models = [\"softmax\"]")
        .replace("[data]\n", &format!("[data]\ncifar10_dir = \"{}\"\n", repo().join("data/cifar-10-batches-bin").display()))
        .replace("tiny_imagenet_dir = \"tests/data/tiny-imagenet-mini\"\n", "");
    oodpipe_engine::config_file::parse(&text, Path::new("smoke.toml")).unwrap()
}

/// Runs `spec` in this process, its inputs from `built`, into a folder of `root`: its output files.
fn build(spec: &StageSpec, built: &BTreeMap<String, Files>, root: &Path) -> Files {
    let out = root.join(format!("{}.{}", spec.id, built.len()));
    std::fs::create_dir_all(&out).unwrap();
    let request = StageRequest {
        id: spec.id.clone(),
        kind: spec.kind.clone(),
        task: spec.task.clone(),
        params: spec.params.clone(),
        inputs: spec.inputs.iter().map(|id| (id.clone(), built[id].clone())).collect(),
        sources: spec.sources.clone(),
        out_dir: out.clone(),
        threads: 1,
        gpu: None,
    };
    oodpipe_stages::worker::execute(&request, "cpu", &|_, _, _| {}).unwrap_or_else(|e| panic!("{}: {e:#}", spec.id));
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect()
}

/// A copy of `files` whose safetensors tensors of split `split` (`<split>_...`) are other numbers
/// of the same shape and kind: the first rows of `donor`'s tensor of that name where `donor` has
/// one (an OOD set's split made CIFAR-10's: its FPRs then move, however poor the smoke network),
/// else noise (images stay in 0..=255, labels in 0..=9).
fn replaced(files: &Files, donor: Option<&Files>, split: &str, root: &Path, tag: &str) -> Files {
    let donor: BTreeMap<String, Tensor> = donor
        .into_iter()
        .flat_map(|d| d.values().filter(|p| p.extension().is_some_and(|e| e == "safetensors")))
        .flat_map(|p| oodpipe_stages::tensors::read(p).unwrap())
        .collect();
    let prefix = format!("{split}_");
    files
        .iter()
        .map(|(name, path)| {
            let copy = root.join(format!("{tag}-{}", path.file_name().unwrap().to_string_lossy()));
            if name.ends_with(".safetensors") {
                let tensors = oodpipe_stages::tensors::read(path).unwrap();
                let changed: Vec<(String, Tensor)> = tensors
                    .into_iter()
                    .map(|(n, t)| {
                        if !n.starts_with(&prefix) {
                            return (n, t);
                        }
                        tch::manual_seed(7);
                        let rows = t.size()[0];
                        let other = match t.kind() {
                            _ if donor.get(&n).is_some_and(|d| d.size()[0] >= rows && d.size()[1..] == t.size()[1..]) => {
                                // CIFAR-10's images are bytes, an OOD set's may be floats in [0, 1].
                                let d = donor[&n].narrow(0, 0, rows);
                                let unit = d.kind() == Kind::Uint8 && t.kind() != Kind::Uint8;
                                if unit { (d.to_kind(Kind::Double) / 255.0).to_kind(t.kind()) } else { d.to_kind(t.kind()) }
                            }
                            Kind::Uint8 => Tensor::randint(256, t.size(), (Kind::Int64, t.device())).to_kind(Kind::Uint8),
                            Kind::Int64 => (&t + 3).remainder(10),
                            kind => (Tensor::randn(t.size(), (Kind::Double, t.device())) * 3.0 + 0.5).to_kind(kind),
                        };
                        (n, other)
                    })
                    .collect();
                let refs: Vec<(&str, &Tensor)> = changed.iter().map(|(n, t)| (n.as_str(), t)).collect();
                oodpipe_stages::tensors::write(&copy, &refs).unwrap();
            } else {
                std::fs::copy(path, &copy).unwrap();
            }
            (name.clone(), copy)
        })
        .collect()
}

/// What a stage's outputs say, for comparing: each file's bytes, a safetensors file's tensors one
/// by one, leaving out the test-split scores a fit may precompute (`test_*`).
fn contents(files: &Files) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (name, path) in files {
        if name.ends_with(".safetensors") {
            for (t, tensor) in oodpipe_stages::tensors::read(path).unwrap() {
                if !t.starts_with("test_") {
                    let flat = tensor.to_kind(Kind::Double).flatten(0, -1);
                    let bytes = Vec::<f64>::try_from(&flat).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
                    out.insert(format!("{name}:{t}"), bytes);
                }
            }
        } else {
            out.insert(name.clone(), std::fs::read(path).unwrap());
        }
    }
    out
}

#[test]
fn tuning_reads_the_validation_splits_and_fits_their_own_split_never_a_test_split() {
    let root = tempfile::tempdir().unwrap();
    let specs: BTreeMap<String, StageSpec> = oodpipe_plan::table::plan(&config()).unwrap().into_iter().map(|s| (s.id.clone(), s)).collect();
    let mut built: BTreeMap<String, Files> = BTreeMap::new();
    for id in [
        "data.cifar10",
        "data.gaussian",
        "train.softmax",
        "outputs.softmax.cifar10",
        "outputs.softmax.gaussian",
        "features.softmax.cifar10",
        "features.softmax.gaussian",
        "tune.odin.cifar10",
    ] {
        let files = build(&specs[id], &built, root.path());
        built.insert(id.to_string(), files);
    }
    // Each tuned or fitted detector's stage, and the split it must read (what its file documents).
    let stages = [
        ("tune.baseline_t.gaussian", "val"),
        ("tune.odin.cifar10", "val"),
        ("tune.odin.gaussian", "val"),
        ("fit.mahalanobis.cifar10", "train"),
        ("fit.knn.cifar10", "train"),
        ("fit.react.cifar10", "val"),
        ("fit.rmds.cifar10", "train"),
        ("fit.she.cifar10", "train"),
        ("fit.vim.cifar10", "train"),
        ("fit.dice.cifar10", "train"),
    ];
    for (n, (id, own)) in stages.iter().enumerate() {
        let spec = specs.get(*id).unwrap_or_else(|| panic!("no stage {id} in the plan"));
        let inputs: BTreeMap<String, Files> = spec.inputs.iter().map(|i| (i.clone(), built[i].clone())).collect();
        // Either split: an OOD set's made CIFAR-10's, the rest noise.
        let with = |split: &str, tag: &str| -> BTreeMap<String, Files> {
            inputs
                .iter()
                .map(|(i, f)| {
                    let donor = built.get(&i.replace("gaussian", "cifar10")).filter(|_| i.ends_with("gaussian"));
                    (i.clone(), replaced(f, donor, split, root.path(), &format!("{n}-{tag}-{i}")))
                })
                .collect()
        };
        let as_built = contents(&build(spec, &inputs, root.path()));
        let other_test = contents(&build(spec, &with("test", "test"), root.path()));
        let other_own = contents(&build(spec, &with(own, "own"), root.path()));
        assert!(!as_built.is_empty(), "{id} wrote nothing");
        for (file, bytes) in &as_built {
            assert_eq!(Some(bytes), other_test.get(file), "{id}: its {file} changed with the test splits' numbers");
        }
        assert_ne!(as_built, other_own, "{id}: nothing changed with its own split's ({own}) numbers");
    }
}
