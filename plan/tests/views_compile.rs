//! A stage's code cannot read a config field its views do not declare: such code does not
//! compile. Checked by compiling two snippets with rustc against this build's `oodpipe_plan`
//! (what trybuild does, without its dependency): the training's code reading a declared field
//! (`eval.batch_size`) compiles, the same code reading an undeclared one (`tune.temperatures`) fails
//! with `error[E0609]: no field `tune``. The control snippet makes sure a failure is the field's,
//! not the set-up's. (A `compile_fail,E0609` doc test checks the error code on nightly only; on
//! stable any compile error would pass it.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest `lib<name>-*.rlib` in `deps` (this test's build put it there).
fn rlib(deps: &Path, name: &str) -> PathBuf {
    let prefix = format!("lib{name}-");
    std::fs::read_dir(deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix) && p.extension().is_some_and(|e| e == "rlib"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).unwrap())
        .unwrap_or_else(|| panic!("no {prefix}*.rlib in {}", deps.display()))
}

/// rustc's verdict on a library of `body` with `oodpipe_plan` and `anyhow` from this build.
fn compile(body: &str) -> std::process::Output {
    // This test binary is target/<profile>/deps/views_compile-<hash>: its dependencies are beside it.
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("stage.rs");
    std::fs::write(&src, format!("use oodpipe_plan::view::{{self, Params}};\n{body}\n")).unwrap();
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "--crate-type", "lib", "--emit", "metadata", "--crate-name", "stage", "-o"])
        .arg(dir.path().join("stage.rmeta"))
        .arg(&src)
        .arg("--extern")
        .arg(format!("oodpipe_plan={}", rlib(&deps, "oodpipe_plan").display()))
        .arg("--extern")
        .arg(format!("anyhow={}", rlib(&deps, "anyhow").display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .output()
        .unwrap()
}

const DECLARED: &str = "pub fn training(params: &Params) -> anyhow::Result<usize> {
    let config: view::Training = view::from_params(params)?;
    Ok(config.eval.batch_size)
}";

const UNDECLARED: &str = "pub fn training(params: &Params) -> anyhow::Result<usize> {
    let config: view::Training = view::from_params(params)?;
    Ok(config.tune.temperatures.len())
}";

#[test]
fn reading_a_declared_field_compiles_and_an_undeclared_one_does_not() {
    let good = compile(DECLARED);
    assert!(good.status.success(), "the control snippet must compile: {}", String::from_utf8_lossy(&good.stderr));
    let bad = compile(UNDECLARED);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "reading tune.temperatures through the training's view compiled");
    assert!(err.contains("error[E0609]: no field `tune` on type `Training`"), "{err}");
    assert_eq!(err.matches("error[").count(), 1, "that error and no other: {err}");
}
