//! `oodpipe status`: every stage, fresh or stale, and for a stale one each reason it would run.

use oodpipe_engine::fingerprint::staleness;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    config: &crate::pipeline::ConfigArgs,
    cache: &Path,
    targets: &[String],
    as_json: bool,
    remote: &super::remote::RemoteArgs,
) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, targets)?;
    let remote = super::remote::connect(remote, &session, true, false)?;
    // Stages a run has submitted to Slurm and that have no entry yet: where their job is.
    let jobs = oodpipe_engine::slurm::in_flight(&session.store.state_dir().join("slurm"));
    let mut rows = Vec::new();
    let mut notes: Vec<(String, Vec<String>)> = Vec::new();
    // Fresh stages whose entry says it was built on another processor kind than this machine's
    // (common with a remote store): a training repeats bit for bit only on one kind.
    let here = super::processor_kind(&session.machine);
    let mut built_on: Vec<(String, String)> = Vec::new();
    for ks in &session.stages {
        let entry = session.store.entry(&ks.material.kind, &ks.key);
        if let (Some(here), Some(theirs)) = (&here, entry.as_ref().and_then(|e| e.built_by.as_ref()).and_then(|b| b.processor.clone()))
            && &theirs != here
        {
            built_on.push((ks.spec.id.clone(), theirs));
        }
        let mut reasons: Vec<String> =
            if entry.is_some() { Vec::new() } else { staleness(&session.store, ks).iter().map(|r| r.to_string()).collect() };
        if let (false, Some(job)) = (reasons.is_empty(), jobs.get(&ks.spec.id))
            && let Some((state, _)) = oodpipe_engine::slurm::job_state(job)
        {
            let place = match state.as_str() {
                "PENDING" => "queued",
                "RUNNING" | "COMPLETING" | "CONFIGURING" => "running",
                _ => "ended",
            };
            reasons.insert(0, format!("{place} on Slurm (job {job}, {state})"));
        }
        if reasons.is_empty() && !ks.kept.is_empty() {
            // Fresh by early cutoff: say why it did not rerun.
            rows.push((ks.spec.id.clone(), Vec::new()));
            notes.push((
                ks.spec.id.clone(),
                ks.kept.iter().map(|id| format!("input {id} rebuilt with the same bytes: kept")).collect::<Vec<_>>(),
            ));
            continue;
        }
        rows.push((ks.spec.id.clone(), reasons));
    }
    // Which stale stages the remote has (a run or a pull fetches them instead of building them).
    let on_remote: Vec<bool> = match &remote {
        Some(remote) => {
            let stale: Vec<_> = session.stages.iter().zip(&rows).filter(|(_, (_, r))| !r.is_empty()).map(|(ks, _)| ks).collect();
            match remote.has_entries(&stale) {
                Ok(has) => {
                    let mut has = has.into_iter();
                    rows.iter().map(|(_, r)| !r.is_empty() && has.next().unwrap_or(false)).collect()
                }
                Err(e) => {
                    eprintln!("warning: {e}; not saying which stale stages it has");
                    vec![false; rows.len()]
                }
            }
        }
        None => vec![false; rows.len()],
    };
    if as_json {
        let stages: Vec<_> = rows
            .iter()
            .zip(&on_remote)
            .map(|((id, reasons), &on_remote)| {
                let kept = notes.iter().find(|(n, _)| n == id).map(|(_, k)| k.clone()).unwrap_or_default();
                let mut row =
                    json!({"id": id, "state": if reasons.is_empty() { "fresh" } else { "stale" }, "reasons": reasons, "kept": kept});
                if remote.is_some() {
                    row["on_remote"] = json!(on_remote);
                }
                if let Some((_, kind)) = built_on.iter().find(|(n, _)| n == id) {
                    row["built_on"] = json!(kind);
                }
                row
            })
            .collect();
        println!("{}", json!({ "stages": stages }));
    } else {
        let width = rows.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
        for ((id, reasons), &on_remote) in rows.iter().zip(&on_remote) {
            if let Some((_, kept)) = notes.iter().find(|(n, _)| n == id) {
                println!("fresh  {id:width$}  {}", kept.join("; "));
            } else if reasons.is_empty() {
                match built_on.iter().find(|(n, _)| n == id) {
                    Some((_, kind)) => println!("fresh  {id:width$}  built on {kind}, not this machine's processor kind"),
                    None => println!("fresh  {id}"),
                }
            } else {
                let remote_has = if on_remote { "; on the remote (a run fetches it)" } else { "" };
                println!("stale  {id:width$}  {}{remote_has}", reasons.join("; "));
            }
        }
        let stale = rows.iter().filter(|(_, r)| !r.is_empty()).count();
        let fetchable = match &remote {
            Some(remote) => format!(" ({} of them on the remote {})", on_remote.iter().filter(|&&b| b).count(), remote.url()),
            None => String::new(),
        };
        println!("{} stages: {} fresh, {stale} stale{fetchable}", rows.len(), rows.len() - stale);
        if let (false, Some(here)) = (built_on.is_empty(), &here) {
            println!(
                "{} fresh stages were built on another processor kind than this machine's ({here}): a training repeats bit \
                 for bit only on one kind, so building them here would give other bytes",
                built_on.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
