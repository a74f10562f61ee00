//! The content-addressed store under `cache/`.
//!
//! ```text
//! cache/objects/ab/cdef...        output files, named by the blake3 of their content, read-only
//! cache/stages/<kind>/<key>.json  an entry: the key's material, output name -> object, run time
//! cache/ids/<id>.json             the key last built for a stage id (what `status` compares with)
//! cache/locks/<key>.lock          held while a stage with that key is being built
//! cache/tmp/                      stages write their outputs here before they are committed
//! ```
//!
//! The order of writes is what makes the store safe to interrupt (Bazel's rule: the CAS first, the
//! action cache last): objects are moved in first, each by an atomic rename, and the entry is
//! written last, atomically. An entry therefore exists only when all its objects do; a killed run
//! leaves at most stray temporary files, which `gc` removes. An entry whose objects have gone
//! missing anyway (deleted by hand) is treated as absent rather than trusted.

use crate::stage_key::{KeyMaterial, StageKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A finished stage: what it was keyed on and where its outputs are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub key: StageKey,
    pub material: KeyMaterial,
    /// Output name -> object digest.
    pub outputs: BTreeMap<String, String>,
    /// Total bytes of the outputs.
    pub bytes: u64,
    /// How long the stage ran.
    pub seconds: f64,
    /// When it finished (seconds since the Unix epoch).
    pub finished_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IdPointer {
    kind: String,
    key: StageKey,
}

/// An exclusive lock on one key; released when dropped.
pub struct KeyLock {
    _file: File,
}

pub struct Store {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        for sub in ["objects", "stages", "ids", "locks", "tmp", "state"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Store { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the source-hash memo lives.
    pub fn memo_file(&self) -> PathBuf {
        self.root.join("state").join("sources.json")
    }

    /// An object's file: named by its digest, keeping the output name's extension, because some
    /// readers (libtorch's `VarStore::load`) choose the format by extension.
    pub fn object_path(&self, digest: &str, output_name: &str) -> PathBuf {
        let ext = Path::new(output_name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        self.root.join("objects").join(&digest[..2]).join(format!("{}{ext}", &digest[2..]))
    }

    fn entry_path(&self, kind: &str, key: &StageKey) -> PathBuf {
        self.root.join("stages").join(kind).join(format!("{key}.json"))
    }

    fn id_path(&self, id: &str) -> PathBuf {
        self.root.join("ids").join(format!("{id}.json"))
    }

    /// The complete entry for `key`, if there is one and all its objects exist.
    pub fn entry(&self, kind: &str, key: &StageKey) -> Option<Entry> {
        let entry: Entry = serde_json::from_slice(&std::fs::read(self.entry_path(kind, key)).ok()?).ok()?;
        let complete = entry.key == *key && entry.outputs.iter().all(|(name, d)| self.object_path(d, name).is_file());
        complete.then_some(entry)
    }

    /// The entry last built for stage `id` (under whatever key), if it still exists.
    pub fn last_entry(&self, id: &str) -> Option<Entry> {
        let ptr: IdPointer = serde_json::from_slice(&std::fs::read(self.id_path(id)).ok()?).ok()?;
        self.entry(&ptr.kind, &ptr.key)
    }

    /// Output name -> object path of an entry.
    pub fn output_files(&self, entry: &Entry) -> BTreeMap<String, PathBuf> {
        entry.outputs.iter().map(|(name, d)| (name.clone(), self.object_path(d, name))).collect()
    }

    /// Blocks until no one else builds `key`, and holds it until the lock is dropped.
    pub fn lock(&self, key: &StageKey) -> io::Result<KeyLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("locks").join(format!("{key}.lock")))?;
        file.lock()?;
        Ok(KeyLock { _file: file })
    }

    /// A fresh, empty folder for a stage to write its outputs into.
    pub fn temp_dir(&self, key: &StageKey) -> io::Result<PathBuf> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join("tmp").join(format!("{key}.{}.{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Moves every file below `out_dir` into the objects (an output in a subfolder is named
    /// `sub/file`), then writes the entry and the id pointer.
    pub fn commit(
        &self,
        id: &str,
        material: &KeyMaterial,
        out_dir: &Path,
        seconds: f64,
    ) -> io::Result<Entry> {
        let key = material.key();
        let mut outputs = BTreeMap::new();
        let mut bytes = 0;
        let mut files = Vec::new();
        list_files(out_dir, out_dir, &mut files)?;
        files.sort();
        for (name, path) in files {
            let digest = crate::source_hash::hash_file_content(&path)?;
            bytes += std::fs::metadata(&path)?.len();
            self.put_object(&path, &self.object_path(&digest, &name))?;
            outputs.insert(name, digest);
        }
        let entry = Entry {
            id: id.to_string(),
            key: key.clone(),
            material: material.clone(),
            outputs,
            bytes,
            seconds,
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let json = serde_json::to_vec_pretty(&entry).expect("entry serialises");
        crate::atomic_file::write(&self.entry_path(&material.kind, &key), &json)?;
        let ptr = IdPointer { kind: material.kind.clone(), key };
        crate::atomic_file::write(&self.id_path(id), &serde_json::to_vec(&ptr).expect("pointer serialises"))?;
        let _ = std::fs::remove_dir_all(out_dir);
        Ok(entry)
    }

    fn put_object(&self, file: &Path, dest: &Path) -> io::Result<()> {
        if dest.is_file() {
            return std::fs::remove_file(file);
        }
        std::fs::create_dir_all(dest.parent().expect("objects have a parent"))?;
        let mut perms = std::fs::metadata(file)?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(file, perms)?;
        std::fs::rename(file, dest)
    }

    /// Every entry in the store, with its file.
    pub fn all_entries(&self) -> Vec<(PathBuf, Option<Entry>)> {
        let mut out = Vec::new();
        for kind in read_dir_sorted(&self.root.join("stages")) {
            for file in read_dir_sorted(&kind) {
                let entry = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok());
                out.push((file, entry));
            }
        }
        out
    }

    /// Every object file in the store: (digest, path).
    pub fn all_objects(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for prefix in read_dir_sorted(&self.root.join("objects")) {
            let p = prefix.file_name().unwrap().to_string_lossy().into_owned();
            for file in read_dir_sorted(&prefix) {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let rest = name.split('.').next().unwrap_or_default();
                out.push((format!("{p}{rest}"), file));
            }
        }
        out
    }

    /// Id pointer files: (stage id, path).
    pub fn all_id_pointers(&self) -> Vec<(String, PathBuf)> {
        read_dir_sorted(&self.root.join("ids"))
            .into_iter()
            .filter_map(|p| Some((p.file_name()?.to_str()?.strip_suffix(".json")?.to_string(), p)))
            .collect()
    }

    /// Leftovers of interrupted runs (temporary folders and files, lock files).
    pub fn scratch(&self) -> Vec<PathBuf> {
        let mut out = read_dir_sorted(&self.root.join("tmp"));
        out.extend(read_dir_sorted(&self.root.join("locks")));
        out
    }
}

/// The files below `dir` as (name relative to `root` with `/` separators, path); anything that is
/// neither a file nor a folder is refused, since only files can be outputs.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).expect("below root");
            let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            out.push((name, path));
        } else {
            return Err(io::Error::other(format!("`{}` in a stage's output folder is not a plain file", path.display())));
        }
    }
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}
