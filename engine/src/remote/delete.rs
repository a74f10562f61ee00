//! Deleting entries from the remote: the lever against a bad entry.
//!
//! The first entry put under a key stays (`If-None-Match`), so an honest upload never replaces a
//! planted or wrong one. Deleting the entry makes the key absent again; the next upload of an
//! honest build (a `push`, or a `run --push`) puts its own. Objects are left: they are named by
//! their content, other entries may name them, and one without an entry is never read.

use super::{RemoteError, Shared};
use crate::fingerprint::KeyedStage;
use crate::store::{Builder, Entry};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as RemotePath;
use object_store::{ObjectStore, ObjectStoreExt};

/// An entry found on the remote (and deleted, unless only looking).
#[derive(Debug)]
pub struct Deleted {
    /// Its path on the remote, below the prefix (`stages/train/<key>.json`).
    pub path: String,
    /// The stage id and builder its body names, when it reads as an entry at all.
    pub id: Option<String>,
    pub built_by: Option<Builder>,
}

/// Finds, then (unless `dry_run`) deletes, the entries at `paths`; absent ones are skipped.
async fn delete_paths(shared: &Shared, paths: Vec<RemotePath>, dry_run: bool) -> Result<Vec<Deleted>, RemoteError> {
    let found: Vec<Option<Deleted>> = futures_util::stream::iter(paths)
        .map(|path| async move {
            let _slot = shared.slot().await?;
            let body = match shared.meta.get(&path).await {
                Ok(got) => super::fetch::read_entry(got).await.map_err(|e| shared.error(&e))?,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(shared.error(&e)),
            };
            let entry: Option<Entry> = body.ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            if !dry_run {
                shared.meta.delete(&path).await.map_err(|e| shared.error(&e))?;
            }
            let shown = path.as_ref().strip_prefix(&shared.path(&[]).to_string()).unwrap_or(path.as_ref()).trim_start_matches('/');
            Ok(Some(Deleted {
                path: shown.to_string(),
                id: entry.as_ref().map(|e| e.id.clone()),
                built_by: entry.and_then(|e| e.built_by),
            }))
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The entries of `stages` (under their current keys).
pub(super) async fn delete_stages(shared: &Shared, stages: &[&KeyedStage], dry_run: bool) -> Result<Vec<Deleted>, RemoteError> {
    delete_paths(shared, stages.iter().map(|ks| shared.entry_path(&ks.material.kind, &ks.key)).collect(), dry_run).await
}

/// Every entry of stage kind `kind` on the remote, whatever its key (other configs' too).
pub(super) async fn delete_kind(shared: &Shared, kind: &str, dry_run: bool) -> Result<Vec<Deleted>, RemoteError> {
    let folder = shared.path(&["stages", kind]);
    let store: &dyn ObjectStore = shared.meta.as_ref();
    let paths: Vec<RemotePath> = {
        let _slot = shared.slot().await?;
        store.list(Some(&folder)).map_ok(|meta| meta.location).try_collect().await.map_err(|e| shared.error(&e))?
    };
    delete_paths(shared, paths, dry_run).await
}
