//! Fetching stages from the remote into the local store.
//!
//! Every stage's entry is asked for at once; each entry is checked against the stage's own key
//! material (so it is exactly this stage's result, whoever built it); its objects that the local
//! store lacks are downloaded into the store's temporary folder (an object over [`super::ONE_REQUEST`] in
//! parts, several at once), and each is hashed (as it arrives when it comes in one request). Only when
//! every object of a stage hashes to its name are they moved into the objects and the entry
//! written, last, under the key's lock: a fetch killed at any moment leaves temporary files (`gc`
//! removes them), never an entry without its objects. Stages are committed as soon as their
//! objects are verified, by a few threads beside the downloads (each takes every stage ready by
//! then, with one pair of file-system syncs for all), so that syncing to disk overlaps the
//! downloads of the other stages.
//! An object that is missing on the remote or does not hash to its name makes the stage
//! unusable, never half-used.

use super::meter::Meter;
use super::{PART, RemoteError, Shared};
use crate::fingerprint::KeyedStage;
use crate::store::{Entry, KeyLock, Store};
use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path as RemotePath;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A stage fetched (or, when only looking, found) on the remote.
#[derive(Debug)]
pub struct Fetched {
    pub entry: Entry,
    /// Objects downloaded (those the local store already had are not counted).
    pub objects: usize,
    pub bytes: u64,
}

/// What a fetch did, stage by stage.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// In the order asked.
    pub fetched: Vec<Fetched>,
    /// Stage ids the remote has no entry for.
    pub absent: Vec<String>,
    /// Stage ids whose copy on the remote is not used, and why (a damaged or missing object, an
    /// entry that is not this stage's).
    pub unusable: Vec<(String, String)>,
    /// Stage ids not fetched for a reason on this side (another run builds it, a full disk).
    pub local_problems: Vec<(String, String)>,
    /// The remote failed (unreachable, refused, timed out): stages fetched before are kept.
    pub failure: Option<RemoteError>,
    /// Ctrl-C (or SIGTERM) stopped the fetch: the stages fetched whole before are kept, nothing else.
    pub interrupted: bool,
    pub bytes: u64,
    pub objects: usize,
    pub seconds: f64,
}

/// A stage downloaded and verified, waiting to be committed.
struct Ready {
    entry: Entry,
    json: Vec<u8>,
    _lock: KeyLock,
    /// Its place among [`STAGES_AT_ONCE`], given back once it is committed.
    _place: tokio::sync::OwnedSemaphorePermit,
    tmp: PathBuf,
    /// (digest, output name, downloaded file)
    files: Vec<(String, String, PathBuf)>,
    bytes: u64,
}

/// Threads committing stages: moving objects in syncs each file and folder.
const COMMITS: usize = 4;

/// Stages between their entry's request and their commit at once: each holds its entry (at most
/// [`MAX_ENTRY`] bytes), its key's lock file and a temporary folder, so a pull of thousands of
/// stages holds no more than this many of them (open files, memory), whatever the store's size.
const STAGES_AT_ONCE: usize = 64;

enum Step {
    /// Downloaded and verified: handed to the committing threads.
    Ready,
    Found(Box<Entry>),
    /// Built meanwhile by another run on this machine, or stopped because the remote failed.
    Nothing,
    Absent,
    Unusable(String),
    Local(String),
    Failed(RemoteError),
}

/// Why an object could not be had.
enum Miss {
    Missing,
    /// Its size on the remote, against what its entry records ((size, exact) of [`Entry::size_bound`]).
    Size(u64, (u64, bool)),
    Remote(RemoteError),
    Truncated(u64, u64),
    Local(std::io::Error),
}

pub(super) fn fetch(
    runtime: &tokio::runtime::Runtime,
    shared: &Arc<Shared>,
    store: &Store,
    stages: &[&KeyedStage],
    download: bool,
    show_progress: bool,
) -> FetchReport {
    let started = Instant::now();
    let meter = Meter::new("fetching", show_progress);
    let stop = AtomicBool::new(false);
    let places = Arc::new(tokio::sync::Semaphore::new(STAGES_AT_ONCE));
    let (ready, queue) = std::sync::mpsc::channel::<Box<Ready>>();
    let queue = std::sync::Mutex::new(queue);
    let (steps, committed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..COMMITS)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        // Every stage ready by now, committed together: one pair of syncs for all.
                        let batch: Vec<Box<Ready>> = {
                            let queue = queue.lock().unwrap();
                            let Ok(first) = queue.recv() else { break };
                            std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())).collect()
                        };
                        let results = commit(store, &batch);
                        // Each stage's lock and place go with its Ready here: the next stages may start.
                        for (r, result) in batch.into_iter().zip(results) {
                            let _ = std::fs::remove_dir_all(&r.tmp);
                            let fetched = Fetched { objects: r.files.len(), bytes: r.bytes, entry: r.entry };
                            out.push((fetched, result));
                        }
                    }
                    out
                })
            })
            .collect();
        // Ctrl-C drops the downloads: their tasks stop, their temporary folders go; the stages
        // already handed to the committing threads are whole and are committed.
        let fetching = Fetching { shared, store, download, meter: &meter, stop: &stop, ready: &ready, places: &places };
        let all = futures_util::future::join_all(stages.iter().map(|ks| one(&fetching, ks)));
        let steps = runtime.block_on(super::unless_interrupted(all));
        drop(ready);
        let committed: Vec<(Fetched, std::io::Result<()>)> = workers.into_iter().flat_map(|w| w.join().expect("commit thread")).collect();
        (steps, committed)
    });
    meter.finish();
    let mut report = FetchReport { interrupted: steps.is_none(), ..Default::default() };
    let steps = steps.unwrap_or_else(|| stages.iter().map(|_| Step::Nothing).collect());
    for (ks, step) in stages.iter().zip(steps) {
        let id = ks.spec.id.clone();
        match step {
            Step::Ready => {}
            Step::Found(entry) => report.fetched.push(Fetched { entry: *entry, objects: 0, bytes: 0 }),
            Step::Nothing => {}
            Step::Absent => report.absent.push(id),
            Step::Unusable(why) => report.unusable.push((id, why)),
            Step::Local(why) => report.local_problems.push((id, why)),
            Step::Failed(e) => {
                report.failure.get_or_insert(e);
            }
        }
    }
    let mut by_id: std::collections::HashMap<String, Fetched> = Default::default();
    for (f, result) in committed {
        match result {
            Ok(()) => {
                report.bytes += f.bytes;
                report.objects += f.objects;
                by_id.insert(f.entry.id.clone(), f);
            }
            Err(e) => report.local_problems.push((f.entry.id.clone(), format!("writing it into the local store: {e}"))),
        }
    }
    // In the order asked.
    for ks in stages {
        if let Some(f) = by_id.remove(&ks.spec.id) {
            report.fetched.push(f);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Moves the verified objects of `batch`'s stages into the store, then writes their entries
/// (under their keys' locks), each step with one pair of file-system syncs for the whole batch:
/// each stage's result.
fn commit(store: &Store, batch: &[Box<Ready>]) -> Vec<std::io::Result<()>> {
    let files: Vec<(String, String, PathBuf)> = batch.iter().flat_map(|r| r.files.iter().cloned()).collect();
    if let Err(e) = store.put_objects(&files) {
        return batch.iter().map(|_| Err(std::io::Error::new(e.kind(), e.to_string()))).collect();
    }
    let entries: Vec<(&Entry, &[u8])> = batch.iter().map(|r| (&r.entry, r.json.as_slice())).collect();
    match store.write_entries(&entries) {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(e) => batch.iter().map(|_| Err(std::io::Error::new(e.kind(), e.to_string()))).collect(),
    }
}

/// Whether an entry from the remote is exactly this stage's, and its outputs have names a stage
/// may make (they become paths here, and a publishing stage's in the user's work tree) and
/// digests (see [`Entry::check_outputs`]).
fn check_entry(entry: &Entry, ks: &KeyedStage) -> Result<(), String> {
    // The key is the hash of the canonical material: equal keys are equal materials.
    if entry.key != ks.key || entry.material.key() != ks.key || entry.id != ks.spec.id {
        return Err("its entry is not this stage's (its key material differs)".into());
    }
    entry.check_outputs(ks.spec.publish.is_some()).map_err(|why| format!("its entry is refused: {why}"))
}

/// Reads an entry's body, refusing one the server says, or turns out, to be over [`MAX_ENTRY`]
/// bytes: an entry is a few kilobytes, and a pull holds up to [`super::TRANSFERS`] of them at once.
pub(super) async fn read_entry(got: object_store::GetResult) -> Result<Result<Vec<u8>, String>, object_store::Error> {
    let too_big = |n: u64| format!("its entry has {n} bytes, more than an entry may have ({MAX_ENTRY})");
    if got.meta.size > MAX_ENTRY {
        return Ok(Err(too_big(got.meta.size)));
    }
    let mut body = Vec::with_capacity(got.meta.size as usize);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (body.len() + chunk.len()) as u64 > MAX_ENTRY {
            return Ok(Err(too_big((body.len() + chunk.len()) as u64)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// The most bytes an entry may have. The default pipeline's largest, the report's (some 70
/// outputs), has about 20 kB.
pub const MAX_ENTRY: u64 = 1 << 20;

/// What every stage's fetch shares.
struct Fetching<'a> {
    shared: &'a Arc<Shared>,
    store: &'a Store,
    /// False: only look the entries up.
    download: bool,
    meter: &'a Meter,
    /// Set at the remote's first failure: the stages not started yet are not asked for.
    stop: &'a AtomicBool,
    /// Where verified stages go to be committed.
    ready: &'a std::sync::mpsc::Sender<Box<Ready>>,
    places: &'a Arc<tokio::sync::Semaphore>,
}

async fn one(fetching: &Fetching<'_>, ks: &KeyedStage) -> Step {
    let Fetching { shared, store, download, meter, stop, ready, places } = *fetching;
    let place = places.clone().acquire_owned().await.expect("never closed");
    if stop.load(Ordering::Relaxed) {
        return Step::Nothing;
    }
    let failed = |e: RemoteError| {
        stop.store(true, Ordering::Relaxed);
        Step::Failed(e)
    };
    let json = {
        let _slot = match shared.slot().await {
            Ok(slot) => slot,
            Err(e) => return failed(e),
        };
        let got = match shared.meta.get(&shared.entry_path(&ks.material.kind, &ks.key)).await {
            Ok(got) => read_entry(got).await,
            Err(e) => Err(e),
        };
        match got {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(why)) => return Step::Unusable(why),
            Err(object_store::Error::NotFound { .. }) => return Step::Absent,
            Err(e) => return failed(shared.error(&e)),
        }
    };
    let entry: Entry = match serde_json::from_slice(&json) {
        Ok(entry) => entry,
        Err(e) => return Step::Unusable(format!("its entry is not an entry ({e})")),
    };
    if let Err(why) = check_entry(&entry, ks) {
        return Step::Unusable(why);
    }
    if !download {
        return Step::Found(Box::new(entry));
    }
    let lock = match store.try_lock(&ks.key) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Step::Local("another run on this machine is building it".into()),
        Err(e) => return Step::Local(format!("locking its key: {e}")),
    };
    if store.entry(&ks.material.kind, &ks.key).is_some() {
        return Step::Nothing;
    }
    let tmp = match store.temp_dir(&ks.key) {
        Ok(tmp) => TempDir(tmp),
        Err(e) => return Step::Local(format!("making a temporary folder: {e}")),
    };
    let wanted: Vec<(String, String, PathBuf)> = entry
        .outputs
        .iter()
        .filter(|(name, digest)| !store.object_path(digest, name).is_file())
        .enumerate()
        .map(|(i, (name, digest))| (digest.clone(), name.clone(), tmp.0.join(format!("{i}.part"))))
        .collect();
    let results = futures_util::future::join_all(wanted.iter().map(|(digest, name, file)| {
        // Each object on its own task: the runtime's threads share the writing and hashing. A
        // fetch given up (Ctrl-C) drops this future, which stops the task.
        let expected = entry.size_bound(name);
        let download = AbortOnDrop(tokio::spawn(download_object(
            shared.clone(),
            shared.object_path(digest, name),
            file.clone(),
            expected,
            meter.clone(),
        )));
        async move {
            let (size, hashed) = download.join().await.map_err(|e| Miss::Local(std::io::Error::other(e)))??;
            let actual = match hashed {
                Some(actual) => actual,
                None => {
                    let path = file.clone();
                    tokio::task::spawn_blocking(move || crate::source_hash::hash_file_content(&path))
                        .await
                        .map_err(|e| Miss::Local(std::io::Error::other(e)))?
                        .map_err(Miss::Local)?
                }
            };
            Ok::<_, Miss>((size, actual))
        }
    }))
    .await;
    let mut bytes = 0;
    let mut step = None;
    for ((digest, name, _), result) in wanted.iter().zip(results) {
        let problem = match result {
            Ok((size, actual)) if actual == *digest => {
                bytes += size;
                continue;
            }
            Ok((_, actual)) => Step::Unusable(format!(
                "its output `{name}` on the remote is damaged: its content hashes to {}…, not to its name {}…",
                &actual[..12],
                &digest[..12]
            )),
            Err(Miss::Missing) => Step::Unusable(format!("its output `{name}` (object {}…) is missing on the remote", &digest[..12])),
            Err(Miss::Size(remote, (recorded, exact))) => Step::Unusable(format!(
                "its output `{name}` has {remote} bytes on the remote, {} {recorded}",
                if exact { "its entry records" } else { "more than its entry's total of" }
            )),
            Err(Miss::Truncated(got, of)) => Step::Failed(RemoteError {
                url: shared.url.clone(),
                bad_url: false,
                cause: format!("the transfer of `{name}` of {} ended after {got} of {of} bytes", ks.spec.id),
            }),
            Err(Miss::Remote(e)) => failed(e),
            Err(Miss::Local(e)) => Step::Local(format!("downloading `{name}`: {e}")),
        };
        // A failure of the remote outranks a damaged object: it says why the rest is missing.
        if step.is_none() || matches!(problem, Step::Failed(_)) {
            step = Some(problem);
        }
    }
    if let Some(step) = step {
        return step;
    }
    ready
        .send(Box::new(Ready { entry, json, _lock: lock, _place: place, tmp: tmp.keep(), files: wanted, bytes }))
        .expect("the committing threads outlive the downloads");
    Step::Ready
}

/// A stage's temporary download folder, removed when the fetch of that stage ends without it
/// being handed to the committing threads (a failure, or Ctrl-C dropping the fetch).
struct TempDir(PathBuf);

impl TempDir {
    fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A spawned task that is aborted when its handle is dropped (a fetch given up drops it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Downloads one object into `dest`: all of it in one request when the size that request reports
/// is at most [`Shared::one_request`] ([`super::ONE_REQUEST`] unless a test lowers it), else its first
/// part there and the rest in parts of [`PART`], four at once. Returns its size, and its digest
/// when it came in one request (hashed as it arrived; the caller hashes the file otherwise).
///
/// `expected` is the size its entry records (exact), or the entry's total (a bound): a size the
/// server reports otherwise refuses the object before a byte is written, and no more than that
/// size is ever written. The file is created only once a transfer slot is held, so a pull of many
/// objects holds at most as many files open as it has requests in flight.
async fn download_object(
    shared: Arc<Shared>,
    path: RemotePath,
    dest: PathBuf,
    expected: (u64, bool),
    meter: Meter,
) -> Result<(u64, Option<String>), Miss> {
    let (shared, path, meter) = (&*shared, &path, &meter);
    let remote = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => Miss::Missing,
        e => Miss::Remote(shared.error(&e)),
    };
    let (size, first, file) = {
        let _slot = shared.slot().await.map_err(Miss::Remote)?;
        let got = shared.data.get(path).await.map_err(remote)?;
        let size = got.meta.size;
        let (recorded, exact) = expected;
        if (exact && size != recorded) || size > recorded {
            return Err(Miss::Size(size, expected));
        }
        let file = std::fs::File::create(&dest).map_err(Miss::Local)?;
        meter.expect(size);
        // Small enough: all of it in this request. Otherwise its first part, then parts at once.
        let first = if size <= shared.one_request { size } else { PART };
        let mut stream = got.into_stream();
        let mut written = 0u64;
        let mut hasher = (first == size).then(blake3::Hasher::new);
        while written < first {
            match stream.next().await {
                Some(Ok(bytes)) => {
                    let take = (first - written).min(bytes.len() as u64) as usize;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&bytes[..take]);
                    }
                    file.write_all_at(&bytes[..take], written).map_err(Miss::Local)?;
                    written += take as u64;
                    meter.advance(take as u64);
                }
                Some(Err(e)) => return Err(remote(e)),
                None => return Err(Miss::Truncated(written, size)),
            }
        }
        if let Some(h) = hasher {
            return Ok((size, Some(h.finalize().to_hex().to_string())));
        }
        (size, first, file)
    };
    let parts: Vec<std::ops::Range<u64>> = (first..size).step_by(PART as usize).map(|s| s..(s + PART).min(size)).collect();
    futures_util::stream::iter(parts)
        .map(|range| {
            let file = &file;
            async move {
                let _slot = shared.slot().await.map_err(Miss::Remote)?;
                let bytes = shared.data.get_range(path, range.clone()).await.map_err(remote)?;
                if bytes.len() as u64 != range.end - range.start {
                    return Err(Miss::Truncated(range.start + bytes.len() as u64, size));
                }
                file.write_all_at(&bytes, range.start).map_err(Miss::Local)?;
                meter.advance(bytes.len() as u64);
                Ok(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((size, None))
}
