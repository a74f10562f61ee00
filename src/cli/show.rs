//! `oodpipe show STAGE`: what a stage was keyed on and where its outputs are.

use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// Lines of a failed attempt's log that `show` prints.
const LOG_TAIL: usize = 40;

pub fn run(config: &crate::pipeline::ConfigArgs, cache: &Path, stage: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, &[stage.to_string()])?;
    let ks = session
        .stages
        .iter()
        .find(|s| s.spec.id == stage)
        .ok_or_else(|| anyhow::anyhow!("`{stage}` is not a stage id (a prefix names several; show takes one)"))?;
    let entry = session.store.entry(&ks.material.kind, &ks.key);
    let outputs = entry.as_ref().map(|e| session.store.output_files(e)).unwrap_or_default();
    if as_json {
        let Some(entry) = &entry else {
            anyhow::bail!("{stage} has not been built with the current config; `oodpipe run {stage}` builds it");
        };
        println!(
            "{}",
            json!({"id": stage, "key": ks.key, "outputs": outputs, "seconds": entry.seconds, "code": ks.spec.code,
                   "log": session.store.log_path(stage), "built_by": entry.built_by})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("stage   {stage}");
    println!("key     {}", ks.key);
    println!("kind    {} (code version {})", ks.material.kind, ks.material.salt);
    println!("code    {}", ks.spec.code);
    println!("config read:");
    for (field, value) in &ks.material.params {
        println!("  {field} = {value}");
    }
    println!("inputs:");
    for (id, key) in &ks.material.inputs {
        println!("  {id}  {key}");
    }
    for (label, hash) in &ks.material.sources {
        println!("  source {label}  {hash}");
    }
    println!("platform: libtorch {}, {}", ks.material.platform.libtorch, ks.material.platform.device);
    match &entry {
        Some(e) => {
            println!("outputs:");
            for (name, path) in &outputs {
                println!("  {name}  {}", path.display());
            }
            println!("run time {:.2}s, {} bytes", e.seconds, e.bytes);
            if let Some(b) = &e.built_by {
                println!("built by {b} (the builder's own word: see the README's trust model)");
                let here = super::processor_kind(&session.machine);
                if let (Some(theirs), Some(here)) = (&b.processor, &here)
                    && theirs != here
                {
                    println!(
                        "note    built on another processor kind than this machine's ({here}): a training or a stage \
                         downstream of one computed here gives other bytes (bit for bit only on one kind)"
                    );
                }
            }
            let log = session.store.log_path(stage);
            if log.exists() {
                println!("log     {} (the worker's output when this machine last built it)", log.display());
            }
        }
        None => {
            println!("not built with the current config; `oodpipe run {stage}` builds it");
            // A failed attempt leaves its worker's output: what went wrong (a Python traceback).
            let log = session.store.log_path(stage);
            if let Ok(text) = std::fs::read_to_string(&log) {
                let lines: Vec<&str> = text.trim_end().lines().collect();
                println!("log     {} (the worker's output of its last attempt here; its last lines:)", log.display());
                for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                    println!("  | {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
