//! `oodpipe push`, `oodpipe pull` and `oodpipe remote-delete`, and which remote store `run` and
//! `status` use.
//!
//! The remote is named by `--remote URL`, else `$OODPIPE_REMOTE`, else the config's `[remote] url`
//! (like DVC's default remote). `run` and `status` treat a remote that fails as a warning and go
//! on locally; `push`, `pull` and `remote-delete` exist to move data, so for them it is an error
//! (exit 1) naming the URL and the cause. A URL that is wrong in itself is bad input everywhere
//! (exit 2). `run` only reads from the remote unless told to upload (`--push`, `[remote] push`):
//! whoever writes to a shared store is trusted by everyone who reads it (README, "Trust").

use super::Session;
use oodpipe_engine::bad_input::BadInput;
use oodpipe_engine::fingerprint::KeyedStage;
use oodpipe_engine::remote::{Remote, RemoteError, human_bytes};
use std::path::Path;
use std::process::ExitCode;

/// `--remote URL`, on every command that talks to a remote store.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// The remote store: s3://bucket/prefix (S3 or an S3-compatible server; endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION...)
    /// or a folder on a mounted share. Default: $OODPIPE_REMOTE, else `[remote] url` in the config.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
}

/// `run`'s remote options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunRemoteArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Upload each stage this run builds to the remote store (default: only fetch from it, unless
    /// the config says `[remote] push = true`). Give this to one trusted builder, such as CI.
    #[arg(long, conflicts_with = "remote_read_only")]
    pub push: bool,
    /// Fetch from the remote store and upload nothing to it, whatever `[remote] push` says.
    #[arg(long)]
    pub remote_read_only: bool,
}

impl RunRemoteArgs {
    /// Whether the run uploads: `--push`, else `[remote] push`, never with `--remote-read-only`.
    pub fn uploads(&self, session: &Session) -> bool {
        !self.remote_read_only && (self.push || session.pipeline.config.remote.push == Some(true))
    }
}

/// The remote's URL, and where it was named (for messages).
fn url_of(args: &RemoteArgs, session: &Session) -> Option<(String, String)> {
    if let Some(url) = &args.remote {
        return Some((url.clone(), "--remote".into()));
    }
    if let Some(url) = std::env::var("OODPIPE_REMOTE").ok().filter(|v| !v.is_empty()) {
        return Some((url, "$OODPIPE_REMOTE".into()));
    }
    let url = session.pipeline.config.remote.url.clone()?;
    Some((url, format!("[remote] url in {}", session.pipeline.config_path.display())))
}

/// Opens the remote, if one is named. A wrong URL is bad input; with `strict`, a remote that cannot
/// be opened is an error, else a warning and no remote.
pub fn connect(args: &RemoteArgs, session: &Session, read_only: bool, strict: bool) -> anyhow::Result<Option<Remote>> {
    let Some((url, origin)) = url_of(args, session) else { return Ok(None) };
    match Remote::open(&url, read_only) {
        Ok(remote) => {
            if let Some(warning) = &remote.warning {
                eprintln!("warning: {warning}");
            }
            Ok(Some(remote))
        }
        Err(e) if e.bad_url => Err(BadInput(format!("{e} (named by {origin})")).into()),
        Err(e) if strict => Err(e.into()),
        Err(e) => {
            eprintln!("warning: {e}; going on without it");
            Ok(None)
        }
    }
}

fn required(args: &RemoteArgs, session: &Session) -> anyhow::Result<Remote> {
    match connect(args, session, false, true)? {
        Some(remote) => Ok(remote),
        None => Err(BadInput("no remote store: name one with --remote URL, $OODPIPE_REMOTE or `[remote] url` in the config".into()).into()),
    }
}

fn rate(bytes: u64, seconds: f64) -> String {
    format!("{}/s", human_bytes((bytes as f64 / seconds.max(1e-3)) as u64))
}

/// `oodpipe push [TARGET...]`: sends the entries and objects of the config's stages (those built
/// here) that the remote lacks.
pub fn push(config: &crate::pipeline::ConfigArgs, cache: &Path, targets: &[String], args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, targets)?;
    let remote = required(args, &session)?;
    oodpipe_engine::interrupt::install();
    let mut entries = Vec::new();
    let mut unbuilt = Vec::new();
    for ks in &session.stages {
        match session.store.entry(&ks.material.kind, &ks.key) {
            Some(entry) => entries.push(entry),
            None => unbuilt.push(ks.spec.id.as_str()),
        }
    }
    let report = remote.push(&session.store, &entries, true);
    for problem in &report.local_problems {
        eprintln!("  {problem}");
    }
    if report.interrupted {
        eprintln!("interrupted: {} stages were pushed whole; nothing of the rest is visible on the remote", report.entries_sent);
        return Ok(ExitCode::from(130));
    }
    if let Some(e) = report.failure {
        return Err(e.into());
    }
    println!(
        "pushed {} stages ({} objects, {}) to {} in {:.2}s ({}); already there: {} stages, {} objects; not built here: {} stages{}",
        report.entries_sent,
        report.objects_sent,
        human_bytes(report.bytes_sent),
        remote.url(),
        report.seconds,
        rate(report.bytes_sent, report.seconds),
        report.entries_there,
        report.objects_there,
        unbuilt.len(),
        listed(&unbuilt),
    );
    if !report.local_problems.is_empty() {
        eprintln!("error: {} problems in the local store kept some stages from being pushed (above)", report.local_problems.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `oodpipe pull [TARGET...]`: fetches the entries and objects of the config's stages that are not
/// built here and that the remote has, checking every object's digest.
pub fn pull(config: &crate::pipeline::ConfigArgs, cache: &Path, targets: &[String], args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let session = super::open(config, cache, targets)?;
    let remote = required(args, &session)?;
    oodpipe_engine::interrupt::install();
    let wanted: Vec<&KeyedStage> = session.stages.iter().filter(|ks| session.store.entry(&ks.material.kind, &ks.key).is_none()).collect();
    let here = session.stages.len() - wanted.len();
    let report = if wanted.is_empty() { Default::default() } else { remote.pull(&session.store, &wanted, true) };
    for (id, why) in &report.unusable {
        eprintln!("  {id}: the remote's copy is not used: {why}");
    }
    for (id, why) in &report.local_problems {
        eprintln!("  {id}: not pulled: {why}");
    }
    if report.interrupted {
        eprintln!("interrupted: {} stages were pulled whole and kept; nothing else entered the store", report.fetched.len());
        return Ok(ExitCode::from(130));
    }
    if let Some(e) = report.failure {
        if !report.fetched.is_empty() {
            eprintln!("pulled {} stages before the remote failed (kept)", report.fetched.len());
        }
        return Err(e.into());
    }
    let absent: Vec<&str> = report.absent.iter().map(String::as_str).collect();
    println!(
        "pulled {} stages ({} objects, {}) from {} in {:.2}s ({}); already here: {} stages; not on the remote: {} stages{}",
        report.fetched.len(),
        report.objects,
        human_bytes(report.bytes),
        remote.url(),
        report.seconds,
        rate(report.bytes, report.seconds),
        here,
        absent.len(),
        listed(&absent),
    );
    let problems = report.unusable.len() + report.local_problems.len();
    if problems > 0 {
        let e = RemoteError {
            url: remote.url().to_string(),
            cause: format!("{problems} stages could not be pulled (above); a run builds them here"),
            bad_url: false,
        };
        eprintln!("error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `oodpipe remote-delete [TARGET...] [--kind KIND]`: deletes the remote's entries of the config's
/// stages (default: all; under their current keys), or every entry of one stage kind whatever its
/// key. (`oodpipe forget` does the same in the local store.)
pub fn delete(
    config: &crate::pipeline::ConfigArgs,
    cache: &Path,
    targets: &[String],
    delete: &DeleteArgs,
    args: &RemoteArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(kind) = &delete.kind
        && (kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err(BadInput(format!("--kind {kind}: expected a stage kind such as `train` or `score`")).into());
    }
    if delete.kind.is_some() && !targets.is_empty() {
        return Err(BadInput("give either stage targets or --kind, not both".into()).into());
    }
    let session = super::open(config, cache, targets)?;
    let remote = required(args, &session)?;
    // The stages the targets name, not what they need (their inputs' entries stay).
    let named = session.pipeline.graph.named(targets)?;
    let stages: Vec<&KeyedStage> = session.stages.iter().filter(|ks| named.contains(ks.spec.id.as_str())).collect();
    let found = remote.delete(&stages, delete.kind.as_deref(), delete.dry_run)?;
    let verb = if delete.dry_run { "would delete" } else { "deleted" };
    for d in &found {
        let by = d.built_by.as_ref().map(|b| format!(", built by {b}")).unwrap_or_default();
        let id = d.id.as_deref().map(oodpipe_engine::output_name::escaped).unwrap_or_else(|| "not an entry".into());
        println!("{verb} {} ({id}{by})", d.path);
    }
    println!("{verb} {} entries on {}; objects are kept (named by content, nothing reads one without an entry)", found.len(), remote.url());
    Ok(ExitCode::SUCCESS)
}

/// `remote-delete`'s own options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DeleteArgs {
    /// Every entry of this stage kind on the remote (`train`, `score`, ...), whatever its key.
    #[arg(long)]
    pub kind: Option<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// ` (a, b, c, ...)` for a short list of stage ids; nothing for none.
fn listed(ids: &[&str]) -> String {
    match ids.len() {
        0 => String::new(),
        1..=5 => format!(" ({})", ids.join(", ")),
        n => format!(" ({}, ... {} more)", ids[..4].join(", "), n - 4),
    }
}
