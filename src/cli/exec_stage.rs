//! `oodpipe exec-stage ID`: build exactly one stage into the store, its inputs already built.
//!
//! What a scheduler's job runs on a node (one stage per job); also a way to rebuild one stage by
//! hand. It never builds an input: a missing one is an error naming it.

use oodpipe_engine::executor;
use oodpipe_engine::progress::ConsoleReporter;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &crate::pipeline::ConfigArgs, cache: &Path, id: &str) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, &[id.to_string()])?;
    let Some(target) = session.stages.iter().find(|ks| ks.spec.id == id) else {
        anyhow::bail!("`{id}` is not a stage id (exec-stage builds one stage; `oodpipe status` lists them)");
    };
    let missing: Vec<&str> = session
        .stages
        .iter()
        .filter(|ks| target.spec.inputs.contains(&ks.spec.id) && session.store.entry(&ks.material.kind, &ks.key).is_none())
        .map(|ks| ks.spec.id.as_str())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("{id} cannot be built yet: its input(s) {} are not in the store {}", missing.join(", "), cache.display());
    }
    session.machine.check_local()?;
    oodpipe_engine::interrupt::install();
    let outcome = executor::run(&session.store, &session.stages, &session.machine.runner, &ConsoleReporter::new(false), false);
    for (stage, error) in &outcome.failed {
        eprintln!("error: stage {stage} failed: {error}");
    }
    Ok(super::exit_code(&outcome))
}
