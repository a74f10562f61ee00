//! `oodpipe show` names the file and function that compute a stage (`Task::code`): each must exist.

use oodpipe_stages::config::{ModelKind, OodSet};
use oodpipe_stages::method::Method;
use oodpipe_stages::table::Task;

#[test]
fn every_task_names_a_file_and_a_function_that_exist() {
    let tasks = [
        Task::Cifar10,
        Task::Gaussian,
        Task::TinyImagenet { set: OodSet::TinCrop },
        Task::Train { model: ModelKind::Softmax },
        Task::Outputs { model: ModelKind::Softmax, set: "cifar10".into() },
        Task::OdinGrid,
        Task::Tune { method: Method::Odin, ood: OodSet::Gaussian },
        Task::Score { method: Method::Baseline, ood: OodSet::Gaussian },
        Task::Report,
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for task in tasks {
        let (file, path) = task.code().split_once(": ").unwrap();
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{task:?}: {file}: {e}"));
        let function = path.rsplit("::").next().unwrap();
        assert!(text.contains(&format!("pub fn {function}(")), "{task:?}: {file} has no `pub fn {function}`");
    }
}

/// A new task must be added to the list above: this match stops compiling until it is named here.
#[allow(dead_code)]
fn listed(task: &Task) {
    match task {
        Task::Cifar10
        | Task::Gaussian
        | Task::TinyImagenet { .. }
        | Task::Train { .. }
        | Task::Outputs { .. }
        | Task::OdinGrid
        | Task::Tune { .. }
        | Task::Score { .. }
        | Task::Report => {}
    }
}
