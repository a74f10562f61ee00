//! `oodpipe forget [TARGET...] [--kind KIND]`: removes the local entries of the config's stages
//! (default: none without a target or a kind), so that the next run builds them again (or fetches
//! them from the remote store). The lever for an entry that is wrong, such as one fetched from a
//! remote that a bad writer filled: `remote-delete` removes it there, `forget` here.
//!
//! Objects stay (they are named by their content, and another entry may name them); `gc` removes
//! those nothing reaches any more.

use oodpipe_engine::bad_input::BadInput;
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    config: &crate::pipeline::ConfigArgs,
    cache: &Path,
    targets: &[String],
    kind: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    if targets.is_empty() && kind.is_none() {
        return Err(BadInput("name what to forget: stage targets (`train.softmax`, `score`) or --kind KIND".into()).into());
    }
    let session = super::open(config, cache, targets)?;
    if let Some(kind) = kind
        && !session.stages.iter().any(|ks| ks.material.kind == kind)
    {
        let kinds: std::collections::BTreeSet<&str> = session.stages.iter().map(|ks| ks.material.kind.as_str()).collect();
        return Err(BadInput(format!(
            "--kind {kind}: no stage of the config has that kind (its kinds: {})",
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    // The stages the targets name, not what they need: `forget score.odin` keeps the trainings.
    let named = session.pipeline.graph.named(targets)?;
    let verb = if dry_run { "would forget" } else { "forgot" };
    let mut n = 0;
    for ks in session.stages.iter().filter(|ks| kind.is_none_or(|k| k == ks.material.kind) && named.contains(ks.spec.id.as_str())) {
        let path = session.store.entry_path(&ks.material.kind, &ks.key);
        if !path.is_file() {
            continue;
        }
        let by =
            session.store.entry(&ks.material.kind, &ks.key).and_then(|e| e.built_by).map(|b| format!(", built by {b}")).unwrap_or_default();
        if !dry_run {
            std::fs::remove_file(&path).map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
        }
        println!("{verb} {} (key {}…{by})", ks.spec.id, &ks.key.0[..12]);
        n += 1;
    }
    println!("{verb} {n} local entries; the next run builds them (or fetches them from the remote store)");
    Ok(ExitCode::SUCCESS)
}
