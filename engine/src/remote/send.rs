//! Sending stages to the remote: what it lacks, objects first, each entry only after all its
//! objects are there.
//!
//! The remote is asked what it has with HEAD requests, all at once (an already-synced push of the
//! default store is some 300 small requests and nothing else). An object it lacks, or holds with
//! another size (a damaged copy), is uploaded from local bytes that are hashed on the way: an
//! object that no longer hashes to its name is not sent (nor its entry), so a damaged local store
//! cannot spread. An object up to [`super::ONE_REQUEST`] goes in one request, read whole into memory
//! (at most [`super::UPLOAD_MEMORY_MIB`] at once); a larger one as a multipart upload, parts of
//! [`PART`] four at once, which the server makes visible only when it is completed; a mismatch
//! aborts it. An entry the remote
//! already has is kept (the first builder's), unless the parcel says to replace it.

use super::meter::Meter;
use super::{PART, Parcel, RemoteError, Shared};
use futures_util::StreamExt;
use object_store::path::Path as RemotePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What a push (or a run's background upload) did.
#[derive(Debug, Default)]
pub struct SendReport {
    pub entries_sent: usize,
    pub entries_there: usize,
    pub objects_sent: usize,
    pub objects_there: usize,
    pub bytes_sent: u64,
    /// Local objects that do not hash to their name (and so were not sent, nor their entries).
    pub local_problems: Vec<String>,
    /// The remote failed: what was sent before stays (objects without their entry read as absent).
    pub failure: Option<RemoteError>,
    /// Ctrl-C stopped it: what was sent whole stays, multipart uploads under way were aborted.
    pub interrupted: bool,
    pub seconds: f64,
}

impl SendReport {
    pub fn add(&mut self, other: SendReport) {
        self.entries_sent += other.entries_sent;
        self.entries_there += other.entries_there;
        self.objects_sent += other.objects_sent;
        self.objects_there += other.objects_there;
        self.bytes_sent += other.bytes_sent;
        self.local_problems.extend(other.local_problems);
        if self.failure.is_none() {
            self.failure = other.failure;
        }
        self.interrupted |= other.interrupted;
        self.seconds = self.seconds.max(other.seconds);
    }
}

/// Which of `paths` exist on the remote, asked all at once.
pub(super) async fn exist(shared: &Shared, paths: Vec<RemotePath>) -> Result<Vec<bool>, RemoteError> {
    sizes(shared, paths).await.map(|s| s.into_iter().map(|s| s.is_some()).collect())
}

/// The size of each of `paths` on the remote (None: absent), asked all at once.
async fn sizes(shared: &Shared, paths: Vec<RemotePath>) -> Result<Vec<Option<u64>>, RemoteError> {
    futures_util::stream::iter(paths)
        .map(|path| async move {
            let _slot = shared.slot().await?;
            match shared.meta.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(shared.error(&e)),
            }
        })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

enum Unsent {
    /// The local file does not hash to its name, or cannot be read.
    Local(String),
    Remote(RemoteError),
    /// Ctrl-C ([`Shared::cancel`]).
    Cancelled,
}

pub(super) async fn send(shared: Arc<Shared>, parcels: Vec<Parcel>, meter: Meter) -> SendReport {
    let started = Instant::now();
    let mut report = SendReport::default();
    let result = send_into(&shared, &parcels, &meter, &mut report).await;
    match result {
        Err(Unsent::Remote(e)) => report.failure = Some(e),
        Err(Unsent::Cancelled) => report.interrupted = true,
        Err(Unsent::Local(why)) => report.local_problems.push(why),
        Ok(()) => {}
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn send_into(shared: &Shared, parcels: &[Parcel], meter: &Meter, report: &mut SendReport) -> Result<(), Unsent> {
    let has_entry = exist(shared, parcels.iter().map(|p| p.entry_path.clone()).collect()).await.map_err(Unsent::Remote)?;
    // Each object once, however many entries name it.
    let mut objects: BTreeMap<String, (String, RemotePath, PathBuf)> = BTreeMap::new();
    for p in parcels {
        for (digest, path, file) in &p.objects {
            objects.entry(path.to_string()).or_insert_with(|| (digest.clone(), path.clone(), file.clone()));
        }
    }
    let objects: Vec<_> = objects.into_values().collect();
    // A parcel that replaces an unusable copy sends its objects whatever the remote holds: a
    // damaged object there can have the right size.
    let resend: BTreeSet<String> =
        parcels.iter().filter(|p| p.overwrite).flat_map(|p| p.objects.iter().map(|(_, path, _)| path.to_string())).collect();
    let remote_sizes = sizes(shared, objects.iter().map(|(_, path, _)| path.clone()).collect()).await.map_err(Unsent::Remote)?;
    let mut bad: BTreeSet<String> = BTreeSet::new();
    let mut missing = Vec::new();
    for ((digest, path, file), remote_size) in objects.iter().zip(remote_sizes) {
        match (std::fs::metadata(file), remote_size) {
            (Err(e), _) => {
                report.local_problems.push(format!("object {} ({}): {e}", &digest[..12], file.display()));
                bad.insert(digest.clone());
            }
            (Ok(local), Some(size)) if size == local.len() && !resend.contains(&path.to_string()) => report.objects_there += 1,
            (Ok(local), _) => {
                meter.expect(local.len());
                missing.push((digest.clone(), path.clone(), file.clone(), local.len()));
            }
        }
    }
    let results: Vec<(String, Result<u64, Unsent>)> = futures_util::stream::iter(missing)
        .map(|(digest, path, file, size)| async move {
            let result = upload(shared, &digest, &path, &file, size, meter).await;
            (digest, result)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut failure = None;
    for (digest, result) in results {
        match result {
            Ok(bytes) => {
                report.objects_sent += 1;
                report.bytes_sent += bytes;
            }
            Err(Unsent::Local(why)) => {
                report.local_problems.push(why);
                bad.insert(digest);
            }
            // Cancelled outranks a failure: the user stopped it.
            Err(Unsent::Cancelled) => failure = Some(Unsent::Cancelled),
            Err(Unsent::Remote(e)) => {
                if failure.is_none() {
                    failure = Some(Unsent::Remote(e));
                }
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    for (p, there) in parcels.iter().zip(has_entry) {
        if let Some((digest, _, _)) = p.objects.iter().find(|(d, _, _)| bad.contains(d)) {
            report.local_problems.push(format!("{}: not sent, its object {}… is not sound here", p.id, &digest[..12]));
            continue;
        }
        if there && !p.overwrite {
            report.entries_there += 1;
            continue;
        }
        if put_entry(shared, p).await? {
            report.entries_sent += 1;
        } else {
            report.entries_there += 1;
        }
    }
    Ok(())
}

/// Puts an entry: if absent (`If-None-Match: *`; the first machine's entry stays), or in place of
/// the remote's when the parcel replaces an unusable one. Whether this entry was written. A put
/// is atomic: cancelled, it leaves the remote as it was.
async fn put_entry(shared: &Shared, p: &Parcel) -> Result<bool, Unsent> {
    super::race(put_entry_now(shared, p), shared.until_cancelled()).await.ok_or(Unsent::Cancelled)?.map_err(Unsent::Remote)
}

async fn put_entry_now(shared: &Shared, p: &Parcel) -> Result<bool, RemoteError> {
    let _slot = shared.slot().await?;
    let payload = || PutPayload::from(p.json.clone());
    let mode = if p.overwrite { PutMode::Overwrite } else { PutMode::Create };
    match shared.meta.put_opts(&p.entry_path, payload(), PutOptions::from(mode)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
        // A server without conditional puts: the HEAD just before said it was absent.
        Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
            shared.meta.put(&p.entry_path, payload()).await.map(|_| true).map_err(|e| shared.error(&e))
        }
        Err(e) => Err(shared.error(&e)),
    }
}

/// Uploads one object from `file`, checking on the way that its content hashes to `digest`.
async fn upload(shared: &Shared, digest: &str, path: &RemotePath, file: &std::path::Path, size: u64, meter: &Meter) -> Result<u64, Unsent> {
    let local = |e: std::io::Error| Unsent::Local(format!("object {}… ({}): {e}", &digest[..12], file.display()));
    let damaged = |actual: &str| {
        Unsent::Local(format!(
            "object {} ({}) is damaged here: its content hashes to {}…; `oodpipe verify --repair` moves it aside",
            &digest[..12],
            file.display(),
            &actual[..12]
        ))
    };
    let remote = |e: object_store::Error| Unsent::Remote(shared.error(&e));
    let _slot = shared.slot().await.map_err(Unsent::Remote)?;
    if size <= shared.one_request {
        // Whole in memory: wait for room (an object over the budget waits for all of it).
        let mib = size.div_ceil(1 << 20).clamp(1, super::UPLOAD_MEMORY_MIB as u64) as u32;
        let _memory = shared.upload_memory.acquire_many(mib).await.expect("never closed");
        let owned = file.to_path_buf();
        let (bytes, actual) = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&owned)?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            Ok::<_, std::io::Error>((bytes, actual))
        })
        .await
        .map_err(|e| local(std::io::Error::other(e)))?
        .map_err(local)?;
        if actual != digest {
            return Err(damaged(&actual));
        }
        let n = bytes.len() as u64;
        // One PUT is atomic: cancelled, it leaves nothing.
        super::race(shared.data.put(path, PutPayload::from(bytes)), shared.until_cancelled())
            .await
            .ok_or(Unsent::Cancelled)?
            .map_err(remote)?;
        meter.advance(n);
        return Ok(n);
    }
    let handle = Arc::new(std::fs::File::open(file).map_err(local)?);
    let upload = super::race(shared.data.put_multipart(path), shared.until_cancelled()).await.ok_or(Unsent::Cancelled)?.map_err(remote)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART as usize);
    let sent = super::race(send_parts(&mut writer, handle, meter, &local, &remote), shared.until_cancelled()).await;
    let (offset, actual) = match sent {
        Some(Ok(sent)) => sent,
        Some(Err(e)) => {
            abort(writer).await;
            return Err(e);
        }
        None => {
            abort(writer).await;
            return Err(Unsent::Cancelled);
        }
    };
    if actual != digest {
        abort(writer).await;
        return Err(damaged(&actual));
    }
    // Every part in (or Ctrl-C first: then the upload is aborted); completing it is one request.
    match super::race(writer.wait_for_capacity(0), shared.until_cancelled()).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            abort(writer).await;
            return Err(remote(e));
        }
        None => {
            abort(writer).await;
            return Err(Unsent::Cancelled);
        }
    }
    writer.finish().await.map_err(remote)?;
    Ok(offset)
}

/// Aborts a multipart upload on the server (its parts are dropped, nothing becomes visible),
/// giving the server a second to answer.
async fn abort(writer: WriteMultipart) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer.abort()).await;
}

/// Reads `handle` in parts of [`PART`] and hands them to `writer` (four in flight), hashing them
/// on the way: the bytes sent and their digest.
async fn send_parts(
    writer: &mut WriteMultipart,
    handle: Arc<std::fs::File>,
    meter: &Meter,
    local: &impl Fn(std::io::Error) -> Unsent,
    remote: &impl Fn(object_store::Error) -> Unsent,
) -> Result<(u64, String), Unsent> {
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    loop {
        let h = handle.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; PART as usize];
            let mut filled = 0;
            while filled < buf.len() {
                let n = h.read_at(&mut buf[filled..], offset + filled as u64)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|e| local(std::io::Error::other(e)))
        .and_then(|r| r.map_err(local));
        let chunk = chunk?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(&chunk);
        offset += chunk.len() as u64;
        writer.wait_for_capacity(4).await.map_err(remote)?;
        let n = chunk.len() as u64;
        writer.put(bytes::Bytes::from(chunk));
        meter.advance(n);
    }
    Ok((offset, hasher.finalize().to_hex().to_string()))
}
