//! `oodpipe show` names the file and function that compute a stage (`Task::code`): each must exist.
//! And every detector file in `detectors/` and every model file in `models/` is in its registry.

use oodpipe_stages::config::{Config, ModelKind};
use oodpipe_stages::table::{Task, plan};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_task_names_a_file_and_a_function_that_exist() {
    let mut tasks = vec![
        Task::Cifar10,
        Task::Report { sets: vec![], python: vec![], network: None },
        Task::Import { network: "mine".into(), head: "fc".into() },
        Task::Sweep { sets: vec![], python: vec![], keys: vec![], points: vec![] },
    ];
    for &model in ModelKind::ALL {
        tasks.extend([
            Task::Train { model },
            Task::Outputs { model, set: "cifar10".into() },
            Task::Features { model, set: "cifar10".into() },
        ]);
    }
    // Every OOD set's and every detector's every stage, as the default plan makes them.
    for spec in plan(&Config::default()).unwrap() {
        let task: Task = serde_json::from_value(spec.task).unwrap();
        if matches!(task, Task::OodData { .. } | Task::Prepare { .. } | Task::Tune { .. } | Task::Score { .. }) {
            tasks.push(task);
        }
    }
    // A Python detector's stage, as a config with one plans it.
    let mut config = Config::default();
    let table = format!("[x]\nscript = \"{}\"\n", root().join("examples/python/energy.py").display());
    config.python = toml::from_str(&table).unwrap();
    tasks.extend(
        plan(&config)
            .unwrap()
            .into_iter()
            .map(|s| serde_json::from_value::<Task>(s.task).unwrap())
            .filter(|t| matches!(t, Task::Python { .. })),
    );
    assert!(tasks.iter().any(|t| matches!(t, Task::Python { .. })));
    for task in tasks {
        let code = task.code();
        // A model's stages also name its file.
        if let Some((_, model_file)) = code.split_once("models/") {
            let file = format!("models/{}", model_file.trim_end_matches(')'));
            assert!(root().join(&file).is_file(), "{task:?}: {file}");
        }
        let (file, path) = code.split_once(": ").unwrap();
        let path = path.split(" (").next().unwrap();
        let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{task:?}: {file}: {e}"));
        let function = path.rsplit("::").next().unwrap();
        // Stage functions are `pub fn`; a detector's code implements `fn score` etc. of its trait.
        assert!(
            text.contains(&format!("pub fn {function}(")) || text.contains(&format!("    fn {function}(")),
            "{task:?}: {file} has no `fn {function}`"
        );
    }
}

/// A new task must be added to the list above: this match stops compiling until it is named here.
#[allow(dead_code)]
fn listed(task: &Task) {
    match task {
        Task::Cifar10
        | Task::OodData { .. }
        | Task::Train { .. }
        | Task::Import { .. }
        | Task::Outputs { .. }
        | Task::Features { .. }
        | Task::Prepare { .. }
        | Task::Tune { .. }
        | Task::Score { .. }
        | Task::Python { .. }
        | Task::Report { .. }
        | Task::Sweep { .. } => {}
    }
}

/// The names of a registry folder's files (`detectors/knn.rs`: `knn`), sorted; mod.rs, the
/// registry itself, left out.
fn registry_files(folder: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(folder))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs") && n != "mod.rs")
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect();
    files.sort();
    files
}

/// A detector file left out of `registry!` would be compiled nowhere and silently missing from
/// every plan: each `detectors/*.rs` but mod.rs must be registered, under its file's name, with
/// code for every stage it declares.
#[test]
fn every_detector_file_is_registered() {
    let files = registry_files("detectors");
    let mut registered: Vec<String> = oodpipe_stages::detectors::ALL.iter().map(|d| d.name.to_string()).collect();
    registered.sort();
    assert_eq!(files, registered, "detectors/: files vs the registry in detectors/mod.rs (a detector's name must be its file's)");
    for d in oodpipe_stages::detectors::ALL {
        assert!(oodpipe_stages::detectors::code(d.name).is_some(), "{}", d.name);
        let text = std::fs::read_to_string(root().join(format!("detectors/{}.rs", d.name))).unwrap();
        assert!(text.contains("fn score("), "{}: no score code", d.name);
        assert_eq!(d.tuning.is_some(), text.contains("fn tune("), "{}: a declared tune stage needs `fn tune`, and only then", d.name);
        assert_eq!(d.prepare.is_some(), text.contains("fn prepare("), "{}: a declared prepare stage needs `fn prepare`", d.name);
    }
}

/// Likewise a model file: each `models/*.rs` but mod.rs must be registered, under its file's name,
/// with its head and loss code.
#[test]
fn every_model_file_is_registered() {
    let files = registry_files("models");
    let mut registered: Vec<String> = ModelKind::ALL.iter().map(|m| m.name().to_string()).collect();
    registered.sort();
    assert_eq!(files, registered, "models/: files vs the registry in models/mod.rs (a model's name must be its file's)");
    for m in ModelKind::ALL {
        assert!(oodpipe_stages::models::code(m.name()).is_some(), "{}", m.name());
        // This crate's compile of the file describes the model as the plan's does.
        let here = oodpipe_stages::models::find(m.name()).unwrap();
        let plan = m.model();
        assert_eq!((here.label, here.version, here.extras), (plan.label, plan.version, plan.extras), "{}", m.name());
        assert_eq!((here.default_table(), here.shape_fields()), (plan.default_table(), plan.shape_fields()), "{}", m.name());
    }
}
