//! A remote store that a team shares: S3 (or any S3-compatible server) or a folder on a mounted
//! share, holding the same entries and objects as the local store, so that what one machine built
//! is a cache hit on every other.
//!
//! ```text
//! <prefix>/objects/ab/cdef....safetensors   objects, named by the blake3 of their content (as locally)
//! <prefix>/stages/<kind>/<key>.json         entries, byte for byte what their builder's store wrote
//! ```
//!
//! Why it is safe to share: a key is the hash of everything a stage reads, so an entry under a key
//! is a right answer for anyone who computes that key. What a shared store adds is transport, and
//! transport can break, so nothing is trusted on the way in: an entry is used only when its
//! material is exactly the stage's (the key is recomputed from it), and every object is hashed
//! before it enters the local store (a remote object that does not hash to its name is reported
//! and never used; the stage is built here and its upload repairs the remote). An entry whose
//! objects are missing is a miss. On the way out the same order as the local store's, Bazel's
//! order: objects first, the entry last, so a transfer killed at any moment leaves nothing that
//! reads as done. Each object is one atomic put (S3's PUT, a multipart upload completed only once
//! every part is in, and object_store's local files written to a temporary name and renamed), and
//! it is uploaded only from local bytes that hash to its name. An entry is put with
//! `If-None-Match: *` where the server supports it: when two machines race on one key, the first
//! entry stays (both are right; results are those of whoever built first).
//!
//! The transport is the Apache Arrow project's `object_store` (what Polars builds on); endpoint and
//! credentials come from the standard `AWS_*` variables, which this module never prints, writes or
//! puts in an error: errors name the URL and the cause. It is async; a small tokio runtime lives
//! inside [`Remote`] and the rest of the engine stays synchronous. Requests in flight are bounded
//! (16 by default, `OODPIPE_REMOTE_TRANSFERS`), objects over 16 MiB go in parts in parallel, and
//! every request has bounded timeouts: connecting 5 s, a small request 20 s, an object or a part
//! of one 10 min, a stalled read 30 s, at most 3 retries within 20 s (the `AWS_CONNECT_TIMEOUT`, `AWS_TIMEOUT`...
//! variables of object_store override them). After the remote's first failure a command sends no
//! further request: the requests queued behind it fail at once with that error, so a server that
//! accepts connections and never answers costs one round of timeouts, not one per request.
//!
//! How a run uses it ([`Remote::prefetch`], [`Remote::upload_later`]): before anything is built,
//! every stage without a local entry is looked up (all at once), and what the remote has is
//! fetched; each stage built here is then uploaded in the background while the run goes on. A
//! remote that fails turns into one warning and a local build: the run never depends on it. `push`
//! and `pull` ([`Remote::push`], [`Remote::pull`]) move what the other side lacks and fail loudly.

mod delete;
mod fetch;
mod meter;
mod send;

pub use delete::Deleted;
pub use fetch::{FetchReport, Fetched, MAX_ENTRY};
pub use meter::human_bytes;
pub use send::SendReport;

use crate::fingerprint::KeyedStage;
use crate::progress::Reporter;
use crate::stage_key::StageKey;
use crate::store::{Entry, Store};
use object_store::ObjectStore;
use object_store::path::Path as RemotePath;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `[remote]` table of a config: where the shared store is. Not part of any key: where a
/// result was fetched from does not change what it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteOptions {
    /// `s3://bucket/prefix`, or a folder (a mounted share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether `run` uploads what it builds (default false: only `push`, or `run --push`, writes
    /// to the remote; see the README's trust model: give write access to one builder, CI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<bool>,
}

impl RemoteOptions {
    pub fn is_unset(&self) -> bool {
        self.url.is_none() && self.push.is_none()
    }
}

/// Something went wrong with the remote: which one, and why (never a credential).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    pub url: String,
    pub cause: String,
    /// The URL itself is wrong (a scheme, a bucket, credentials in it): a mistake in the input,
    /// not a remote that is down. A folder that does not exist is not one: it may be a share that
    /// is not mounted.
    pub bad_url: bool,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whatever made it, no credential and no terminal escape reaches a screen or a log.
        write!(f, "{}", crate::output_name::escaped(&crate::secrets::redact(&format!("remote {}: {}", self.url, self.cause))))
    }
}

impl std::error::Error for RemoteError {}

/// Objects over [`ONE_REQUEST`] travel in parts of this size, four at once.
pub(crate) const PART: u64 = 16 << 20;

/// Objects up to this size travel in one request each way (rclone's `--s3-upload-cutoff` and
/// `--multi-thread-cutoff` do the same): on a server near by one request is faster than parts, as
/// many objects travel at once anyway. Measured on SeaweedFS on loopback (two cores): a 185 MB
/// object downloaded in one stream 0.85-1.2 s, in 16 MB ranges 1.6 s; the default store uploaded
/// (median of 7) in 3.08 s with every object in one request, 3.28 s with 16 MiB parts, 3.37 s with
/// 32 MiB parts; the server spends less CPU on one request than on a multipart upload.
pub(crate) const ONE_REQUEST: u64 = 256 << 20;

/// Bytes of whole objects held in memory at once for uploading (in MiB): one request sends its
/// body from memory, so at most this much is read ahead, whatever the number of transfers.
const UPLOAD_MEMORY_MIB: u32 = 1024;

/// Requests in flight at once, unless `OODPIPE_REMOTE_TRANSFERS` says otherwise.
pub(crate) const TRANSFERS: usize = 16;

/// What a transfer task shares: the two clients, the layout, and the bound on requests in flight.
pub(crate) struct Shared {
    pub url: String,
    /// For small requests (entries, HEADs): short timeouts, so a dead server is noticed fast.
    pub meta: Arc<dyn ObjectStore>,
    /// For object bodies and their parts: a longer timeout per request.
    pub data: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    slots: tokio::sync::Semaphore,
    /// Objects up to this size travel in one request ([`ONE_REQUEST`] unless a test lowers it).
    pub one_request: u64,
    /// MiB of whole objects read into memory for uploading ([`UPLOAD_MEMORY_MIB`]).
    pub upload_memory: tokio::sync::Semaphore,
    /// The remote's first failure in this command ([`Shared::error`] records it): from then on no
    /// request is sent ([`Shared::slot`] refuses). A server that accepts connections and never
    /// answers would otherwise cost every request its own timeouts, 16 at a time: minutes.
    failed: Mutex<Option<RemoteError>>,
    /// Ctrl-C: transfers stop, a multipart upload is aborted on the server ([`Shared::cancel`]).
    cancelled: std::sync::atomic::AtomicBool,
    cancel_notify: tokio::sync::Notify,
}

impl Shared {
    /// Stops every transfer of this command: each gives up at its next step (an upload in parts
    /// aborts its multipart upload on the server, so nothing of it stays, even unseen).
    pub fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel_notify.notify_waiters();
    }

    /// Resolves once [`Shared::cancel`] has been called.
    pub async fn until_cancelled(&self) {
        loop {
            let notified = self.cancel_notify.notified();
            if self.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    fn path(&self, rest: &[&str]) -> RemotePath {
        RemotePath::from_iter(self.prefix.iter().map(String::as_str).chain(rest.iter().copied()))
    }

    pub fn entry_path(&self, kind: &str, key: &StageKey) -> RemotePath {
        self.path(&["stages", kind, &format!("{key}.json")])
    }

    /// As the local store names objects: by digest, keeping the output's extension.
    pub fn object_path(&self, digest: &str, output_name: &str) -> RemotePath {
        let ext = std::path::Path::new(output_name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        self.path(&["objects", &digest[..2], &format!("{}{ext}", &digest[2..])])
    }

    /// The remote failed (a request was refused, timed out, or got an error): the error, named by
    /// URL, recorded as this command's first failure if it is the first.
    pub fn error(&self, e: &(dyn std::error::Error + 'static)) -> RemoteError {
        let error = RemoteError { url: self.url.clone(), cause: cause(e), bad_url: false };
        self.failed.lock().unwrap().get_or_insert_with(|| error.clone());
        error
    }

    /// A slot for one request (at most [`TRANSFERS`] in flight), or the remote's first failure once
    /// it has failed: checked after the wait, so that requests queued behind a failing one are not
    /// sent either.
    pub async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, RemoteError> {
        let permit = self.slots.acquire().await.expect("never closed");
        match &*self.failed.lock().unwrap() {
            Some(error) => Err(error.clone()),
            None => Ok(permit),
        }
    }
}

/// `work`'s output, or None if `stop` resolves first (`work` is then dropped).
pub(crate) async fn race<F: std::future::Future>(work: F, stop: impl std::future::Future<Output = ()>) -> Option<F::Output> {
    futures_util::pin_mut!(work, stop);
    match futures_util::future::select(work, stop).await {
        futures_util::future::Either::Left((out, _)) => Some(out),
        futures_util::future::Either::Right(_) => None,
    }
}

/// Resolves once Ctrl-C (or SIGTERM) has arrived (see [`crate::interrupt`]), looking every 50 ms.
pub(crate) async fn interrupted() {
    while !crate::interrupt::requested() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `work`'s output, or None if Ctrl-C arrives first (`work` is then dropped).
pub(crate) async fn unless_interrupted<F: std::future::Future>(work: F) -> Option<F::Output> {
    race(work, interrupted()).await
}

/// A stage's entry and the local files of its objects, ready to be sent.
pub(crate) struct Parcel {
    pub id: String,
    pub entry_path: RemotePath,
    pub json: Vec<u8>,
    /// (digest, remote path, local file)
    pub objects: Vec<(String, RemotePath, std::path::PathBuf)>,
    /// Replace the remote's entry (it was found unusable) instead of keeping the first one.
    pub overwrite: bool,
}

/// The remote store, open for one command.
pub struct Remote {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    read_only: bool,
    /// The first failure of a run: from then on the run does not ask the remote again.
    broken: Mutex<Option<RemoteError>>,
    /// Background uploads of stages built by this run.
    uploads: Mutex<Vec<tokio::task::JoinHandle<SendReport>>>,
    /// Stages whose copy on the remote was found unusable: their upload replaces it.
    heal: Mutex<BTreeSet<String>>,
    /// Counts the background uploads; shown while the run waits for them at its end.
    upload_meter: meter::Meter,
    /// Said once when the remote is used: plain http to another machine, allowed by the user.
    pub warning: Option<String>,
}

/// Why a URL cannot be used: it is wrong (true), or what it names is not there (false).
type Refusal = (bool, String);

/// Where a URL points.
#[derive(Debug, PartialEq)]
enum Location {
    S3 { bucket: String, prefix: Vec<String> },
    Folder(std::path::PathBuf),
}

fn parse(url: &str) -> Result<Location, Refusal> {
    parse_url(url).map_err(|cause| (true, cause)).and_then(|location| match location {
        Location::Folder(path) if !path.is_dir() => {
            Err((false, format!("the folder {} does not exist (create it, or mount the share it should be on)", path.display())))
        }
        Location::Folder(path) => std::path::absolute(path).map(Location::Folder).map_err(|e| (false, e.to_string())),
        s3 => Ok(s3),
    })
}

fn parse_url(url: &str) -> Result<Location, String> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') || bucket.contains(':') {
            return Err("credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
        }
        if bucket.is_empty() {
            return Err("no bucket: expected s3://bucket or s3://bucket/prefix".into());
        }
        let prefix: Vec<String> = prefix.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect();
        if prefix.iter().any(|p| p == "." || p == "..") {
            return Err("`.` and `..` are not allowed in the prefix".into());
        }
        return Ok(Location::S3 { bucket: bucket.to_string(), prefix });
    }
    let path = match url.strip_prefix("file://") {
        Some(path) => path,
        None if url.contains("://") => {
            return Err("unsupported scheme: expected s3://bucket/prefix (S3 or an S3-compatible server) or a folder".into());
        }
        None => url,
    };
    if path.is_empty() {
        return Err("empty: expected s3://bucket/prefix or a folder".into());
    }
    Ok(Location::Folder(path.into()))
}

/// How a client of the S3 API sends its bodies and over what.
struct Client<'a> {
    bucket: &'a str,
    timeout: &'a str,
    read_timeout: &'a str,
    /// Sign the body too (entries: they are not named by their content, so the signature is what
    /// stops a body altered on the way), rather than `UNSIGNED-PAYLOAD` (objects).
    signed_payload: bool,
    /// The endpoint is plain http that [`endpoint_check`] allowed.
    allow_http: bool,
}

/// Overrides the timeouts and retries below with `AWS_*` variables the user set, as object_store's
/// `from_env` would.
///
/// Objects are sent as `UNSIGNED-PAYLOAD` (the request itself is still signed) unless
/// `AWS_UNSIGNED_PAYLOAD=false`: a signed payload costs a SHA-256 of every byte on both sides, and
/// it guards nothing we do not already check: every object is named by its blake3 digest and is
/// hashed again before it enters a store. On the two-core machine of the README's benchmark,
/// where CPU bounds an upload, signing cost the client 0.2 s of CPU per push of the default store
/// (user time 0.55 against 0.35 s). Entries, which are not content-addressed, always go signed.
fn s3_client(client: Client) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::ClientConfigKey as C;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
    let Client { bucket, timeout, read_timeout, signed_payload, allow_http } = client;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_unsigned_payload(true)
        .with_config(K::Client(C::ConnectTimeout), "5s")
        .with_config(K::Client(C::Timeout), timeout)
        .with_config(K::Client(C::ReadTimeout), read_timeout)
        .with_retry(object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        });
    for (key, value) in std::env::vars_os() {
        let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else { continue };
        if key.starts_with("AWS_")
            && !value.is_empty()
            && let Ok(config) = key.to_ascii_lowercase().parse::<K>()
            && config != K::Bucket
        {
            builder = builder.with_config(config, value);
        }
    }
    if signed_payload {
        builder = builder.with_unsigned_payload(false);
    }
    if allow_http {
        builder = builder.with_allow_http(true);
    }
    // `AWS_REGION` is what the AWS tools read; object_store knows `AWS_DEFAULT_REGION` too.
    builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>).map_err(|e| cause(&e))
}

/// What the S3 endpoint allows: plain http to this machine always; to another machine only with
/// `OODPIPE_ALLOW_HTTP=true`, said once as a warning.
#[derive(Debug, PartialEq)]
struct Endpoint {
    allow_http: bool,
    warning: Option<String>,
}

/// The opt-in to plain http to another machine.
pub const ALLOW_HTTP: &str = "OODPIPE_ALLOW_HTTP";

/// Checks the endpoint that `var` names (`AWS_ENDPOINT_URL`, else `AWS_ENDPOINT`). Plain http
/// carries the requests unencrypted: an entry read over it could be altered on the way (objects
/// are checked by their digest, entries only by their key material), so it is refused for any host
/// but this machine's loopback unless the user opts in.
fn endpoint_check(var: impl Fn(&str) -> Option<String>) -> Result<Endpoint, String> {
    let Some((name, endpoint)) =
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"].into_iter().find_map(|n| var(n).filter(|v| !v.is_empty()).map(|v| (n, v)))
    else {
        return Ok(Endpoint { allow_http: false, warning: None });
    };
    let Some(rest) = endpoint.strip_prefix("http://") else { return Ok(Endpoint { allow_http: false, warning: None }) };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(Endpoint { allow_http: true, warning: None });
    }
    let shown = crate::secrets::redact(&endpoint);
    if var(ALLOW_HTTP).is_some_and(|v| v == "true" || v == "1") {
        return Ok(Endpoint {
            allow_http: true,
            warning: Some(format!(
                "the remote's endpoint {shown} ({name}) is plain http to another machine, allowed by {ALLOW_HTTP}: \
                 anyone on the way can read what is sent and alter the entries that come back"
            )),
        });
    }
    Err(format!(
        "its endpoint {shown} ({name}) is plain http to another machine ({host}): anyone on the way could read what is sent \
         and alter the entries that come back; use https, or set {ALLOW_HTTP}=true to accept that"
    ))
}

impl Remote {
    /// Opens the remote at `url` (nothing is sent yet). An unusable URL is an error naming it.
    pub fn open(url: &str, read_only: bool) -> Result<Remote, RemoteError> {
        let url = &crate::secrets::redact(url);
        let fail = |cause: String| RemoteError { url: url.to_string(), cause, bad_url: false };
        let mut warning = None;
        let location = parse(url).map_err(|(bad_url, cause)| RemoteError { url: url.to_string(), cause, bad_url })?;
        let (meta, data, prefix): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, _) = match location {
            Location::S3 { bucket, prefix } => {
                let endpoint = endpoint_check(|name| std::env::var(name).ok()).map_err(|cause| RemoteError {
                    url: url.to_string(),
                    cause,
                    bad_url: true,
                })?;
                warning = endpoint.warning;
                let client = |timeout, read_timeout, signed_payload| Client {
                    bucket: &bucket,
                    timeout,
                    read_timeout,
                    signed_payload,
                    allow_http: endpoint.allow_http,
                };
                // Bodies: an object of up to 256 MB in one request has 10 min (0.45 MB/s); a
                // stalled download is noticed after 30 s without a byte.
                (s3_client(client("20s", "10s", true)).map_err(fail)?, s3_client(client("600s", "30s", false)).map_err(fail)?, prefix)
            }
            Location::Folder(path) => {
                let store: Arc<dyn ObjectStore> =
                    Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| fail(cause(&e)))?);
                (store.clone(), store, Vec::new())
            }
        };
        let transfers = std::env::var("OODPIPE_REMOTE_TRANSFERS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0);
        // rclone's --s3-upload-cutoff: objects over this many bytes travel in parts (at least one part).
        let one_request =
            std::env::var("OODPIPE_REMOTE_PARTS_ABOVE").ok().and_then(|v| v.parse::<u64>().ok()).map_or(ONE_REQUEST, |n| n.max(PART));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("oodpipe-remote")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start its I/O threads: {e}")))?;
        Ok(Remote {
            shared: Arc::new(Shared {
                url: url.to_string(),
                meta,
                data,
                prefix,
                slots: tokio::sync::Semaphore::new(transfers.unwrap_or(TRANSFERS)),
                one_request,
                upload_memory: tokio::sync::Semaphore::new(UPLOAD_MEMORY_MIB as usize),
                failed: Mutex::new(None),
                cancelled: Default::default(),
                cancel_notify: tokio::sync::Notify::new(),
            }),
            runtime,
            read_only,
            broken: Mutex::new(None),
            uploads: Mutex::new(Vec::new()),
            heal: Mutex::new(BTreeSet::new()),
            upload_meter: meter::Meter::counting("uploading"),
            warning,
        })
    }

    /// Sends and fetches objects over `bytes` (at least one part) in parts (multipart uploads,
    /// ranged downloads), instead of over 256 MB; tests lower it so that small objects take that
    /// path too.
    pub fn in_parts_above(mut self, bytes: u64) -> Remote {
        Arc::get_mut(&mut self.shared).expect("a remote just opened is not shared yet").one_request = bytes.max(PART);
        self
    }

    /// The URL as given (it holds no credentials: [`Remote::open`] refuses those).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Which of `stages` the remote has an entry for (entries only: `status` does not download).
    pub fn has_entries(&self, stages: &[&KeyedStage]) -> Result<Vec<bool>, RemoteError> {
        let paths: Vec<RemotePath> = stages.iter().map(|ks| self.shared.entry_path(&ks.material.kind, &ks.key)).collect();
        self.runtime.block_on(send::exist(&self.shared, paths))
    }

    /// Fetches the entries and objects of those of `stages` that have no local entry and that the
    /// remote has, checking each object's digest before it enters `store`. Stops at the first
    /// failure of the remote (what was fetched until then is kept).
    pub fn pull(&self, store: &Store, stages: &[&KeyedStage], show_progress: bool) -> FetchReport {
        fetch::fetch(&self.runtime, &self.shared, store, stages, true, show_progress)
    }

    /// Deletes the remote's entries of `stages` (under their current keys), or with `kind` every
    /// entry of that stage kind, whatever its key; `dry_run` only finds them. What was there.
    pub fn delete(&self, stages: &[&KeyedStage], kind: Option<&str>, dry_run: bool) -> Result<Vec<Deleted>, RemoteError> {
        match kind {
            Some(kind) => self.runtime.block_on(delete::delete_kind(&self.shared, kind, dry_run)),
            None => self.runtime.block_on(delete::delete_stages(&self.shared, stages, dry_run)),
        }
    }

    /// Sends the entries and objects of `entries` that the remote lacks, objects first.
    pub fn push(&self, store: &Store, entries: &[Entry], show_progress: bool) -> SendReport {
        let parcels = match entries.iter().map(|e| self.parcel(store, e, false)).collect::<std::io::Result<Vec<_>>>() {
            Ok(p) => p,
            Err(e) => {
                return SendReport { local_problems: vec![format!("reading the local store: {e}")], ..Default::default() };
            }
        };
        let meter = meter::Meter::new("pushing", show_progress);
        let mut handles = vec![self.runtime.spawn(send::send(self.shared.clone(), parcels, meter.clone()))];
        let sent = self.runtime.block_on(unless_interrupted(&mut handles[0]));
        meter.finish();
        match sent {
            Some(Ok(report)) => report,
            Some(Err(e)) => SendReport { local_problems: vec![format!("the upload task failed: {e}")], ..Default::default() },
            None => {
                self.cancel(handles);
                SendReport { interrupted: true, ..Default::default() }
            }
        }
    }

    fn parcel(&self, store: &Store, entry: &Entry, overwrite: bool) -> std::io::Result<Parcel> {
        let json = std::fs::read(store.entry_path(&entry.material.kind, &entry.key))?;
        let objects = entry
            .outputs
            .iter()
            .map(|(name, digest)| (digest.clone(), self.shared.object_path(digest, name), store.object_path(digest, name)))
            .collect();
        Ok(Parcel { id: entry.id.clone(), entry_path: self.shared.entry_path(&entry.material.kind, &entry.key), json, objects, overwrite })
    }

    /// The remote failed earlier in this run; the first failure.
    pub fn failure(&self) -> Option<RemoteError> {
        self.broken.lock().unwrap().clone()
    }

    /// Records the remote's first failure in this run and says so once; later ones are silent.
    fn fail(&self, error: RemoteError, reporter: &dyn Reporter) {
        let mut broken = self.broken.lock().unwrap();
        if broken.is_none() {
            reporter.warn(&format!("{error}; going on without it (stages are built here)"));
            *broken = Some(error);
        }
    }

    /// Before a run builds anything: fetches every stage of `stages` that has no local entry and
    /// that the remote has (only looks them up with `dry_run`). Says `fetched from remote` for
    /// each; returns their ids. A damaged or incomplete copy on the remote is reported and left to
    /// be built here (and replaced by this run's upload).
    pub fn prefetch(&self, store: &Store, stages: &[KeyedStage], reporter: &dyn Reporter, dry_run: bool) -> BTreeSet<String> {
        let wanted: Vec<&KeyedStage> = stages.iter().filter(|ks| store.entry(&ks.material.kind, &ks.key).is_none()).collect();
        if wanted.is_empty() || self.failure().is_some() {
            return BTreeSet::new();
        }
        let index: BTreeMap<&str, usize> = stages.iter().enumerate().map(|(i, ks)| (ks.spec.id.as_str(), i)).collect();
        let report = fetch::fetch(&self.runtime, &self.shared, store, &wanted, !dry_run, reporter.shows_progress());
        let mut ids = BTreeSet::new();
        for f in &report.fetched {
            let id = &f.entry.id;
            let by = f.entry.built_by.as_ref().map(|b| format!("; built by {b}")).unwrap_or_default();
            let detail = if dry_run {
                format!("on the remote: a run fetches it{by}")
            } else {
                format!("{} objects, {}{by}", f.objects, human_bytes(f.bytes))
            };
            reporter.fetched(index[id.as_str()] + 1, stages.len(), id, &detail);
            ids.insert(id.clone());
        }
        for (id, why) in &report.unusable {
            reporter.note(id, &format!("the remote's copy is not used: {why}; building it here"));
            self.heal.lock().unwrap().insert(id.clone());
        }
        for (id, why) in &report.local_problems {
            reporter.note(id, &format!("not fetched: {why}"));
        }
        if let Some(error) = report.failure {
            self.fail(error, reporter);
        }
        ids
    }

    /// Uploads a stage this run built, in the background (objects first, the entry last), unless
    /// the remote is read-only or has failed in this run. [`Remote::finish`] waits for it.
    pub fn upload_later(&self, store: &Store, entry: &Entry, reporter: &dyn Reporter) {
        if self.read_only || self.failure().is_some() {
            return;
        }
        let overwrite = self.heal.lock().unwrap().contains(&entry.id);
        let parcel = match self.parcel(store, entry, overwrite) {
            Ok(p) => p,
            Err(e) => {
                reporter.note(&entry.id, &format!("not uploaded: reading its entry: {e}"));
                return;
            }
        };
        let shared = self.shared.clone();
        let handle = self.runtime.spawn(send::send(shared, vec![parcel], self.upload_meter.clone()));
        self.uploads.lock().unwrap().push(handle);
    }

    /// Stops the transfers under way within a second: each gives up at its next step, an upload
    /// in parts aborts its multipart upload on the server, and what has not stopped by then is
    /// dropped. What was cut leaves at most whole objects without an entry, which nothing reads.
    fn cancel(&self, handles: Vec<tokio::task::JoinHandle<SendReport>>) {
        self.shared.cancel();
        // A finished one may have given its result already (awaiting it again would panic).
        let handles: Vec<_> = handles.into_iter().filter(|h| !h.is_finished()).collect();
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        // (The timer is made inside the runtime: tokio's timers need one.)
        let _ =
            self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), futures_util::future::join_all(handles)).await });
        aborts.iter().for_each(|a| a.abort());
    }

    /// Waits for the background uploads, showing how far they are; a failure is the run's one
    /// warning about the remote. With `abandon` (the run was interrupted), or on Ctrl-C during the
    /// wait, they are cancelled instead ([`Remote::cancel`]).
    pub fn finish(&self, reporter: &dyn Reporter, abandon: bool) {
        let handles: Vec<_> = std::mem::take(&mut *self.uploads.lock().unwrap());
        if handles.is_empty() {
            return;
        }
        if abandon {
            self.cancel(handles);
            return;
        }
        let started = std::time::Instant::now();
        let left = handles.iter().filter(|h| !h.is_finished()).count();
        if left > 0 {
            let (sent, known) = self.upload_meter.counts();
            reporter.say(&format!(
                "waiting for the uploads of {left} stages to {} ({} of {} sent so far)",
                self.url(),
                human_bytes(sent),
                human_bytes(known)
            ));
            self.upload_meter.reveal();
        }
        let mut handles = handles;
        let waited = self.runtime.block_on(unless_interrupted(futures_util::future::join_all(handles.iter_mut())));
        self.upload_meter.finish();
        let Some(results) = waited else {
            self.cancel(handles);
            reporter.warn(&format!("uploads to {} stopped by Ctrl-C; what was built here is kept", self.url()));
            return;
        };
        let reports: Vec<SendReport> = results.into_iter().filter_map(Result::ok).collect();
        let mut total = SendReport::default();
        for r in reports {
            total.add(r);
        }
        for problem in &total.local_problems {
            reporter.warn(&format!("not uploaded to {}: {problem}", self.url()));
        }
        if let Some(error) = total.failure.take() {
            self.fail(error, reporter);
        }
        if total.entries_sent > 0 {
            reporter.say(&format!(
                "uploaded {} stages ({} objects, {}) to {}; the wait at the end: {:.1}s",
                total.entries_sent,
                total.objects_sent,
                human_bytes(total.bytes_sent),
                self.url(),
                started.elapsed().as_secs_f64()
            ));
        }
    }
}

/// A readable, one-line cause: the error and its sources, without repeats, whitespace collapsed,
/// cut at 600 characters (a server's error body can be long), with a hint for the usual mistakes.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    // A server's words may carry terminal escapes, an endpoint URL its credentials.
    let mut text = crate::output_name::escaped(&crate::secrets::redact(&parts.join(": ")));
    if text.chars().count() > 600 {
        text = text.chars().take(600).collect::<String>() + "…";
    }
    if text.contains("403 Forbidden") {
        text.push_str(" (the server refused the credentials, or they may not do this: see AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_the_reason() {
        assert_eq!(
            parse("s3://team-cache/oodpipe/v1/").unwrap(),
            Location::S3 { bucket: "team-cache".into(), prefix: vec!["oodpipe".into(), "v1".into()] }
        );
        assert_eq!(parse("s3://b").unwrap(), Location::S3 { bucket: "b".into(), prefix: vec![] });
        let refused = |url: &str| parse(url).unwrap_err();
        assert!(refused("s3://key:secret@bucket/x").1.contains("AWS_ACCESS_KEY_ID"));
        assert!(refused("s3:///x").1.contains("no bucket"));
        assert!(refused("s3://b/../x").1.contains(".."));
        assert!(refused("ftp://host/x").1.contains("unsupported scheme"));
        assert!(refused("s3://key:secret@bucket/x").0, "a wrong URL is bad input");
        let (bad_url, cause) = refused("/no/such/folder/here");
        assert!(!bad_url && cause.contains("does not exist"), "a missing folder may be a share not mounted");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(parse(dir.path().to_str().unwrap()).unwrap(), Location::Folder(dir.path().to_path_buf()));
        let url = format!("file://{}", dir.path().display());
        assert_eq!(parse(&url).unwrap(), Location::Folder(dir.path().to_path_buf()));
    }

    #[test]
    fn plain_http_goes_only_to_loopback_unless_the_user_opts_in() {
        let check = |vars: &[(&str, &str)]| {
            let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            endpoint_check(|name| vars.get(name).cloned())
        };
        let plain = |allow_http| Ok(Endpoint { allow_http, warning: None });
        assert_eq!(check(&[]), plain(false), "no endpoint: AWS itself, https");
        assert_eq!(check(&[("AWS_ENDPOINT_URL", "https://s3.example.org")]), plain(false));
        for loopback in ["http://127.0.0.1:18333", "http://localhost:9000/", "http://[::1]:9000", "http://127.8.0.1"] {
            assert_eq!(check(&[("AWS_ENDPOINT_URL", loopback)]), plain(true), "{loopback}");
        }
        for (name, other) in [
            ("AWS_ENDPOINT_URL", "http://10.0.0.5:9000"),
            ("AWS_ENDPOINT", "http://minio.lab:9000/x"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1.evil.org"),
        ] {
            let refused = check(&[(name, other)]).unwrap_err();
            assert!(refused.contains(ALLOW_HTTP) && refused.contains(name) && refused.contains("plain http"), "{refused}");
            let allowed = check(&[(name, other), (ALLOW_HTTP, "true")]).unwrap();
            assert!(allowed.allow_http && allowed.warning.as_ref().is_some_and(|w| w.contains(ALLOW_HTTP)), "{allowed:?}");
        }
        // Credentials in the endpoint are not repeated in the refusal.
        let refused = check(&[("AWS_ENDPOINT_URL", "http://me:hunter2secret@10.0.0.5:9000")]).unwrap_err();
        assert!(!refused.contains("hunter2secret") && refused.contains("http://***@10.0.0.5:9000"), "{refused}");
    }

    #[test]
    fn a_servers_words_reach_the_terminal_escaped_and_a_url_never_with_its_secret() {
        let e = std::io::Error::other("AccessDenied \u{1b}]0;owned\u{7}\u{1b}[2J <Message>x</Message>");
        let text = cause(&e);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text}");
        assert!(text.contains("\\u{1b}]0;owned"), "{text}");
        let refused = Remote::open("s3://AKIAEXAMPLE:wJalrXUtnFEMIK7MDENG@bucket/x", false).err().unwrap();
        let shown = refused.to_string();
        assert!(refused.bad_url && !shown.contains("wJalrXUtnFEMIK7MDENG") && shown.contains("s3://***@bucket/x"), "{shown}");
    }

    #[test]
    fn the_layout_is_the_local_stores() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::open(dir.path().to_str().unwrap(), false).unwrap();
        let digest = "ab".to_string() + &"c".repeat(62);
        assert_eq!(remote.shared.object_path(&digest, "a/b.safetensors").as_ref(), format!("objects/ab/{}.safetensors", "c".repeat(62)));
        assert_eq!(remote.shared.entry_path("train", &StageKey("k".into())).as_ref(), "stages/train/k.json");
        let s3 = Remote::open("s3://bucket/team/x", false).unwrap();
        assert_eq!(s3.shared.entry_path("train", &StageKey("k".into())).as_ref(), "team/x/stages/train/k.json");
    }
}
