//! `oodpipe runs`: the recorded runs, newest first.

use oodpipe_engine::run_record::RunRecord;
use std::path::Path;
use std::process::ExitCode;

pub fn run(cache: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let records = RunRecord::list(cache);
    if as_json {
        println!("{}", serde_json::to_string(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("no runs recorded in {}", cache.display());
    }
    for r in &records {
        let commit = match (&r.git_commit, r.git_dirty) {
            (Some(c), Some(true)) => format!("{}+dirty", &c[..c.len().min(10)]),
            (Some(c), _) => c[..c.len().min(10)].to_string(),
            (None, _) => "no git".into(),
        };
        let config = std::iter::once(r.config_path.display().to_string())
            .chain(super::diff::override_args(&r.overrides, &r.sweep))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{}  {commit:<16} {config}  executed {:>3}, cached {:>3}{}  {:.1}s",
            r.id,
            r.executed.len(),
            r.cached.len(),
            if r.failed.is_empty() { String::new() } else { format!(", FAILED {}", r.failed.len()) },
            r.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}
