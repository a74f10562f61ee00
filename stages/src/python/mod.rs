//! The score stage of a Python detector (`[python.<name>]`, `oodpipe_plan::python`): it runs the
//! user's file through [`runner::RUNNER`] in a child Python process and writes the same files as
//! every detector's score stage (`scores.safetensors`, `metrics.json`, through
//! [`crate::detector::write_scored`]), so the report, the claims, sweeps and `diff` take its rows
//! like any other. The stage tells the runner where each array is (the stored safetensors files
//! of its inputs, named by tensor); it never copies them. Whatever goes wrong in Python (an
//! exception, a missing function, scores of the wrong shape, NaN, no numpy, no interpreter) fails
//! the stage with Python's traceback or the runner's one-line reason; the whole of Python's
//! stderr is in the stage's log (`oodpipe show`).

pub mod runner;

use crate::detector::{Scored, TEST, VAL, write_scored};
use crate::ids::{self, CIFAR10, files};
use crate::stage::StageContext;
use anyhow::{Context, Result, bail};
use oodpipe_plan::ood::OodSet;
use oodpipe_plan::python::{ENV, PythonDetector};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};

/// The `score.<name>.<set>` stage of Python detector `name`: its scores of CIFAR-10's and the
/// OOD set's test and validation splits by `script` (its absolute path), run with `interpreter`.
pub fn score(ctx: &StageContext, name: &str, set: &OodSet, detector: &PythonDetector, script: &Path, interpreter: &str) -> Result<()> {
    let shown = format!("python.{name} ({})", detector.script.display());
    let work = tempfile::tempdir().context("a temporary folder for the Python runner")?;
    let model = detector.model;
    let array = |path: &Path, tensor: String| json!([path, tensor]);
    let data = ctx.input(&ids::cifar10_data(), &files::data(CIFAR10))?;
    let features = |of: &str| -> Result<Option<&Path>> {
        if detector.features { Ok(Some(ctx.input(&ids::features(model, of), files::FEATURES)?)) } else { Ok(None) }
    };
    // The head's weight and bias are stored with CIFAR-10's features.
    let head = |arrays: &mut serde_json::Map<String, Value>| -> Result<()> {
        if let Some(f) = features(CIFAR10)? {
            arrays.insert("weight".into(), array(f, "head_weight".into()));
            arrays.insert("bias".into(), array(f, "head_bias".into()));
        }
        Ok(())
    };
    let mut train = serde_json::Map::new();
    train.insert("labels".into(), array(data, "train_labels".into()));
    if let Some(f) = features(CIFAR10)? {
        train.insert("features".into(), array(f, "train_features".into()));
    }
    head(&mut train)?;
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    for split in [TEST, VAL] {
        for (side, of, label) in [("in", CIFAR10, "CIFAR-10"), ("out", set.name.as_str(), set.label.as_str())] {
            let outputs = ctx.input(&ids::outputs(model, of), files::OUTPUTS)?;
            let logits_name = ids::tensors::of_split(split, ids::tensors::LOGITS);
            let n = crate::tensors::read_one(outputs, &logits_name)?.size()[0];
            let mut arrays = serde_json::Map::new();
            arrays.insert("logits".into(), array(outputs, logits_name));
            if of == CIFAR10 {
                arrays.insert("labels".into(), array(data, format!("{split}_labels")));
            }
            if let Some(f) = features(of)? {
                arrays.insert("features".into(), array(f, format!("{split}_features")));
            }
            head(&mut arrays)?;
            let out = work.path().join(format!("{split}_{side}.f64"));
            items.push(json!({
                "what": format!("{label}'s {split} split"),
                "set": label,
                "split": split,
                "n": n,
                "arrays": arrays,
                "out": out,
            }));
            sizes.push((out, n, format!("{label}'s {split} split")));
        }
    }
    let manifest = json!({
        "name": name,
        "shown": shown,
        "script": script,
        "params": detector.params,
        "features_hint": if detector.features { String::new() } else { format!(" (set `features = true` in [python.{name}] for the pooled features and the head's weight and bias)") },
        "train": {"what": "CIFAR-10's train split", "set": "CIFAR-10", "split": "train", "arrays": train},
        "score": items,
    });
    let manifest_path = work.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    let runner_path = work.path().join("oodpipe_runner.py");
    std::fs::write(&runner_path, runner::RUNNER)?;

    (ctx.progress)(0, 1, &format!("running {} with {interpreter}", detector.script.display()));
    let threads = "1"; // a light stage: one core (numpy's BLAS too)
    let out = Command::new(interpreter)
        .arg("-I")
        .arg(&runner_path)
        .arg(&manifest_path)
        .current_dir(script.parent().unwrap_or(Path::new(".")))
        .envs([("OMP_NUM_THREADS", threads), ("OPENBLAS_NUM_THREADS", threads), ("MKL_NUM_THREADS", threads)])
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!("{shown}: cannot run the Python interpreter `{interpreter}` (name one with ${ENV} or `[python] interpreter`)")
        })?;
    // Everything Python said goes to the stage's log.
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        let reason = match stderr.lines().rev().find_map(|l| l.strip_prefix("oodpipe: ")) {
            Some(line) => line.to_string(),
            None => format!("Python failed ({}):\n{}", out.status, tail(&stderr, 40)),
        };
        bail!("{shown}: {reason}");
    }
    let mut scores = Vec::new();
    for (path, n, what) in &sizes {
        let bytes = std::fs::read(path).with_context(|| format!("{shown}: the runner wrote no scores for {what}"))?;
        if bytes.len() != *n as usize * 8 {
            bail!("{shown}: {} scores for {what}, expected {n}", bytes.len() / 8);
        }
        let values: Vec<f64> = bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("{shown}: score {} for image {i} of {what}: expected a finite number", values[i]);
        }
        scores.push(values);
    }
    let mut scores = scores.into_iter();
    let mut next = || scores.next().expect("four splits");
    let test = Scored::new(next(), next());
    let val = Scored::new(next(), next());
    let with_params = |mut s: Scored| {
        for (k, v) in &detector.params {
            if let Some(x) = v.as_f64() {
                s = s.with(k, x);
            }
        }
        s
    };
    write_scored(ctx, &detector.label, set, &with_params(test), &with_params(val))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
