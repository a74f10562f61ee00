//! The content-addressed store under `cache/`.
//!
//! ```text
//! cache/objects/ab/cdef...        output files, named by the blake3 of their content, read-only
//! cache/stages/<kind>/<key>.json  an entry: the key's material, output name -> object, run time
//! cache/ids/<id>.json             the key last built for a stage id (what `status` compares with)
//! cache/same/<key>                a key whose build gave the same bytes as an earlier key's: that one
//!                                 (early cutoff: dependants are keyed on it, see [`Store::canonical`])
//! cache/locks/<key>.lock          held while a stage with that key is being built (.owner: by whom)
//! cache/live/<token>.lock         held by each process that has the store open to build stages
//! cache/locks/store.lock          shared by every process writing into the store, exclusive for `gc`
//! cache/tmp/                      stages write their outputs here before they are committed
//! cache/damaged/                  objects found damaged, moved aside (`gc` removes them)
//! ```
//!
//! The order of writes is what makes the store safe to interrupt (Bazel's rule: the CAS first, the
//! action cache last): objects are moved in first, each by an atomic rename, and the entry is
//! written last, atomically. An entry therefore exists only when all its objects do; a killed run
//! leaves at most stray temporary files, which `gc` removes. An entry whose objects have gone
//! missing anyway (deleted by hand) is treated as absent rather than trusted.
//!
//! Durability: each object's data is synced before it is renamed into place, and its folder after;
//! the entry (written by [`crate::atomic_file::write`], which syncs the file and its folder) comes
//! last, so after a power cut an entry never names an empty or missing object.
//!
//! Damage: an object whose content no longer hashes to its name (a flipped byte, a truncation) is
//! found by [`Store::verify_entry`] before it is used ([`crate::executor`] checks the inputs of
//! every stage it runs and every object it publishes; `oodpipe verify` checks everything), moved
//! aside into `damaged/` with its entry removed, and rebuilt by its producer.

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
    /// Output name -> bytes: a remote's object is checked against it before and while it is
    /// downloaded. Absent in entries written before it was recorded (then only `bytes` bounds them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, u64>,
    /// Who built it, as the builder says ([`Builder`]): shown when the entry comes from a shared
    /// store. Absent in entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_by: Option<Builder>,
}

/// The machine and the code that built an entry. It is the builder's own word, written into the
/// entry it uploads: it tells an honest team where a result came from (`oodpipe show`, a fetch's
/// line), it proves nothing about a dishonest writer (see the README's trust model).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Builder {
    /// The host name of the machine that built it.
    pub host: String,
    /// The git commit of the checkout that built it, and whether its tree had changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
    /// The processor kind (model and instruction set), on which training repeats bit for bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
}

impl std::fmt::Display for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = crate::output_name::escaped(&self.host);
        write!(f, "{host}")?;
        if let Some(commit) = &self.commit {
            let commit = crate::output_name::escaped(commit);
            write!(f, " at {}{}", &commit[..commit.len().min(12)], if self.dirty == Some(true) { " (dirty)" } else { "" })?;
        }
        if let Some(p) = &self.processor {
            write!(f, ", {}", crate::output_name::escaped(p))?;
        }
        Ok(())
    }
}

impl Entry {
    /// Whether every output of this entry has a name a stage may make (see [`crate::output_name`];
    /// with `publishes`, none of the names written beside a report) and a digest of 64 lowercase
    /// hex digits, since both become paths. Any entry is checked, wherever it comes from.
    pub fn check_outputs(&self, publishes: bool) -> Result<(), String> {
        for (name, digest) in &self.outputs {
            crate::output_name::check_output(name, publishes)?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("its output `{name}` has the digest `{}`, not 64 hex digits", crate::output_name::escaped(digest)));
            }
        }
        if let Some(extra) = self.sizes.keys().find(|name| !self.outputs.contains_key(*name)) {
            return Err(format!("it gives a size for `{}`, which is not one of its outputs", crate::output_name::escaped(extra)));
        }
        Ok(())
    }

    /// The size the entry records for output `name`: its own, else at most the entry's total.
    pub fn size_bound(&self, name: &str) -> (u64, bool) {
        match self.sizes.get(name) {
            Some(&size) => (size, true),
            None => (self.bytes, false),
        }
    }
}

/// An object of an entry that is missing or whose content does not match its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub output: String,
    pub path: PathBuf,
    pub problem: String,
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
    /// This store's liveness token and the lock that proves its run alive, taken when it first
    /// makes a temporary folder (see [`Store::live_token`]).
    live: std::sync::OnceLock<(String, File)>,
    /// The store's lock, held shared from the first temporary folder on (see [`Store::lock_exclusive`]).
    writing: std::sync::OnceLock<File>,
    /// Who builds the entries this store commits: asked once, at the first commit (it may start
    /// git), from what [`Store::built_by`] was given.
    builder: std::sync::OnceLock<Option<Builder>>,
    builder_source: Option<BuilderSource>,
}

/// What says who builds a store's entries (see [`Store::built_by`]).
pub type BuilderSource = Box<dyn Fn() -> Builder + Send + Sync>;

impl Drop for Store {
    fn drop(&mut self) {
        if let Some((token, _)) = self.live.get() {
            let _ = std::fs::remove_file(self.live_lock(token));
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        for sub in ["objects", "stages", "ids", "locks", "tmp", "state", "damaged", "live"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            live: std::sync::OnceLock::new(),
            writing: Default::default(),
            builder: Default::default(),
            builder_source: None,
        })
    }

    /// Records `source()` as the builder of every entry this store commits from now on (asked once,
    /// when the first stage is committed; a command that builds nothing never asks).
    pub fn built_by(mut self, source: BuilderSource) -> Store {
        self.builder_source = Some(source);
        self
    }

    fn builder(&self) -> Option<Builder> {
        self.builder.get_or_init(|| self.builder_source.as_ref().map(|source| source())).clone()
    }

    /// This store's liveness token, taken on first use: a lock `live/<token>.lock` held for as long
    /// as the Store lives. Every temporary folder is named with it, so that `gc` knows a run is alive
    /// by the lock it holds, not by a process id that the system may have given to another process.
    fn live_token(&self) -> io::Result<&str> {
        if let Some((token, _)) = self.live.get() {
            return Ok(token);
        }
        // A process that writes holds the store's lock shared: `gc` (which takes it exclusively)
        // never removes an object committed a moment before its entry.
        let store_lock = File::options().create(true).truncate(false).write(true).open(self.store_lock())?;
        if let Err(std::fs::TryLockError::WouldBlock) = store_lock.try_lock_shared() {
            eprintln!("waiting for `oodpipe gc` on {} to finish", self.root.display());
            store_lock.lock_shared()?;
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}-{nanos}-{n}", std::process::id());
        let file = File::options().create(true).truncate(false).write(true).open(self.live_lock(&token))?;
        file.lock()?;
        let _ = self.live.set((token, file));
        let _ = self.writing.set(store_lock);
        Ok(&self.live.get().expect("just set").0)
    }

    fn store_lock(&self) -> PathBuf {
        self.root.join("locks").join("store.lock")
    }

    /// The store to itself: blocks until no other process writes into it (a run building stages, a
    /// pull), telling `waiting` once if it must wait, and keeps every writer out until dropped.
    /// What `gc` holds while it decides and removes.
    pub fn lock_exclusive(&self, waiting: &dyn Fn()) -> io::Result<File> {
        let file = File::options().create(true).truncate(false).write(true).open(self.store_lock())?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            waiting();
            file.lock()?;
        }
        Ok(file)
    }

    fn live_lock(&self, token: &str) -> PathBuf {
        self.root.join("live").join(format!("{token}.lock"))
    }

    /// Whether the run that owns liveness token `token` still holds its lock. A lock that can be
    /// taken belongs to a run that is gone.
    pub fn is_live(&self, token: &str) -> bool {
        if self.live.get().is_some_and(|(t, _)| t == token) {
            return true;
        }
        let Ok(file) = File::options().write(true).open(self.live_lock(token)) else { return false };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// The liveness token of a temporary folder or live lock file's name (`<key>.<token>.<n>` or
    /// `<token>.lock`).
    pub fn token_of(name: &str) -> Option<String> {
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [token, "lock"] => Some(token.to_string()),
            [_key, token, _n] => Some(token.to_string()),
            _ => None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the worker's output for stage `id` is kept (the last build's; `oodpipe show` names it).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.log"))
    }

    /// Where the store remembers things about this machine (the source-hash memo, the worker's probe).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
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

    /// The file of the entry for `key` (whether or not it exists).
    pub fn entry_path(&self, kind: &str, key: &StageKey) -> PathBuf {
        self.root.join("stages").join(kind).join(format!("{key}.json"))
    }

    fn id_path(&self, id: &str) -> PathBuf {
        self.root.join("ids").join(format!("{id}.json"))
    }

    /// The complete entry for `key`, if there is one, its output names and digests are sound
    /// ([`Entry::check_outputs`]) and all its objects exist.
    pub fn entry(&self, kind: &str, key: &StageKey) -> Option<Entry> {
        let entry: Entry = serde_json::from_slice(&std::fs::read(self.entry_path(kind, key)).ok()?).ok()?;
        let complete = entry.key == *key
            && entry.check_outputs(false).is_ok()
            && entry.outputs.iter().all(|(name, d)| self.object_path(d, name).is_file());
        complete.then_some(entry)
    }

    /// The entry last built for stage `id` (under whatever key), if it still exists.
    pub fn last_entry(&self, id: &str) -> Option<Entry> {
        let ptr: IdPointer = serde_json::from_slice(&std::fs::read(self.id_path(id)).ok()?).ok()?;
        self.entry(&ptr.kind, &ptr.key)
    }

    /// The key dependants are keyed on in place of `key`: the earlier key whose build gave the
    /// same output bytes, when `key`'s did (recorded by [`Store::record_same`]), else `key`. So a
    /// stage rebuilt with the same bytes (a salt bump that changed nothing, a touched source file)
    /// leaves its dependants' keys, and their cache, as they were (Bazel's and Shake's early cutoff).
    pub fn canonical(&self, key: &StageKey) -> StageKey {
        match std::fs::read_to_string(self.root.join("same").join(&key.0)) {
            Ok(text) if text.trim().len() == 64 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()) => StageKey(text.trim().to_string()),
            _ => key.clone(),
        }
    }

    /// Records that `key`'s outputs are byte-identical to `earlier`'s (itself resolved to its
    /// canonical key, so chains stay one step long).
    pub fn record_same(&self, key: &StageKey, earlier: &StageKey) -> io::Result<()> {
        let canonical = self.canonical(earlier);
        if canonical == *key {
            return Ok(());
        }
        let dir = self.root.join("same");
        std::fs::create_dir_all(&dir)?;
        crate::atomic_file::write(&dir.join(&key.0), canonical.0.as_bytes())
    }

    /// Output name -> object path of an entry.
    pub fn output_files(&self, entry: &Entry) -> BTreeMap<String, PathBuf> {
        entry.outputs.iter().map(|(name, d)| (name.clone(), self.object_path(d, name))).collect()
    }

    /// Blocks until no one else builds `key`, and holds it until the lock is dropped. When
    /// another process holds it, `waiting` is told who (from the lock's `.owner` note) first.
    pub fn lock(&self, key: &StageKey, id: &str, waiting: &dyn Fn(&str)) -> io::Result<KeyLock> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let owner = path.with_extension("owner");
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = std::fs::read_to_string(&owner).unwrap_or_default();
                let who = who.trim();
                waiting(&format!(
                    "waiting for {id}, being built by {}",
                    if who.is_empty() { "another run".to_string() } else { who.to_string() }
                ));
                file.lock()?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let _ = std::fs::write(&owner, format!("pid {}\n", std::process::id()));
        Ok(KeyLock { _file: file })
    }

    /// A fresh, empty folder for a stage to write its outputs into.
    pub fn temp_dir(&self, key: &StageKey) -> io::Result<PathBuf> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let token = self.live_token()?;
        let dir = self.root.join("tmp").join(format!("{key}.{token}.{n}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Moves every file below `out_dir` into the objects (an output in a subfolder is named
    /// `sub/file`), then writes the entry and the id pointer. A file whose name a stage may not
    /// make ([`crate::output_name`]; with `publishes`, one the engine writes beside a report)
    /// fails the commit before anything is moved.
    pub fn commit(&self, id: &str, material: &KeyMaterial, out_dir: &Path, seconds: f64, publishes: bool) -> io::Result<Entry> {
        let key = material.key();
        let mut outputs = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        let mut bytes = 0;
        let mut files = Vec::new();
        list_files(out_dir, out_dir, &mut files)?;
        files.sort();
        for (name, _) in &files {
            crate::output_name::check_output(name, publishes).map_err(|why| io::Error::other(format!("the stage made {why}")))?;
        }
        for (name, path) in files {
            let digest = crate::source_hash::hash_file_content(&path)?;
            let size = std::fs::metadata(&path)?.len();
            bytes += size;
            self.put_object(&path, &self.object_path(&digest, &name))?;
            sizes.insert(name.clone(), size);
            outputs.insert(name, digest);
        }
        let entry = Entry {
            id: id.to_string(),
            key: key.clone(),
            material: material.clone(),
            outputs,
            bytes,
            seconds,
            finished_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            sizes,
            built_by: self.builder(),
        };
        let json = serde_json::to_vec_pretty(&entry).expect("entry serialises");
        self.write_entry(&entry, &json)?;
        let _ = std::fs::remove_dir_all(out_dir);
        Ok(entry)
    }

    /// Writes `entry` (whose serialised form is `json`) and its id pointer, each atomically; the
    /// caller has put all its objects in first. A stage fetched from a remote store arrives here
    /// with the bytes of the entry its builder wrote.
    pub fn write_entry(&self, entry: &Entry, json: &[u8]) -> io::Result<()> {
        crate::atomic_file::write(&self.entry_path(&entry.material.kind, &entry.key), json)?;
        let ptr = IdPointer { kind: entry.material.kind.clone(), key: entry.key.clone() };
        crate::atomic_file::write(&self.id_path(&entry.id), &serde_json::to_vec(&ptr).expect("pointer serialises"))
    }

    /// Writes many stages' entries at once (a pull), each as [`Store::write_entry`] does (the entry,
    /// then its id pointer, each renamed into place whole), but with one sync of the file system
    /// before the renames and one after, instead of four syncs per entry.
    pub fn write_entries(&self, entries: &[(&Entry, &[u8])]) -> io::Result<()> {
        let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = (|| {
            for (entry, json) in entries {
                let ptr = IdPointer { kind: entry.material.kind.clone(), key: entry.key.clone() };
                let ptr = serde_json::to_vec(&ptr).expect("pointer serialises");
                for (path, bytes) in [(self.entry_path(&entry.material.kind, &entry.key), json.to_vec()), (self.id_path(&entry.id), ptr)] {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let tmp = crate::atomic_file::temp_path_for(&path);
                    renames.push((tmp.clone(), path));
                    std::fs::write(&tmp, &bytes)?;
                }
            }
            crate::atomic_file::sync_file_system(&self.root)?;
            for (tmp, path) in &renames {
                std::fs::rename(tmp, path)?;
            }
            crate::atomic_file::sync_file_system(&self.root)
        })();
        if result.is_err() {
            for (tmp, _) in &renames {
                let _ = std::fs::remove_file(tmp);
            }
        }
        result
    }

    /// Moves `files` (digest, output name, file) into the objects, which the caller has checked
    /// each file hashes to. For many files at once (a pull): instead of two syncs a file (its data,
    /// then its folder), one sync of the file system before the renames (every file's data) and
    /// one after (the new names), so a visible object still always has its whole content.
    pub fn put_objects(&self, files: &[(String, String, PathBuf)]) -> io::Result<()> {
        crate::atomic_file::sync_file_system(&self.root)?;
        for (digest, name, file) in files {
            let dest = self.object_path(digest, name);
            if dest.is_file() {
                std::fs::remove_file(file)?;
                continue;
            }
            std::fs::create_dir_all(dest.parent().expect("objects have a parent"))?;
            let mut perms = std::fs::metadata(file)?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(file, perms)?;
            std::fs::rename(file, dest)?;
        }
        crate::atomic_file::sync_file_system(&self.root)
    }

    /// Like [`Store::lock`], but gives up at once (None) when another process builds `key`.
    pub fn try_lock(&self, key: &StageKey) -> io::Result<Option<KeyLock>> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::write(path.with_extension("owner"), format!("pid {}\n", std::process::id()));
                Ok(Some(KeyLock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn put_object(&self, file: &Path, dest: &Path) -> io::Result<()> {
        if dest.is_file() {
            return std::fs::remove_file(file);
        }
        let parent = dest.parent().expect("objects have a parent");
        std::fs::create_dir_all(parent)?;
        File::open(file)?.sync_all()?;
        let mut perms = std::fs::metadata(file)?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(file, perms)?;
        std::fs::rename(file, dest)?;
        crate::atomic_file::sync_dir(parent)
    }

    /// Checks every object of `entry` against its digest (blake3 of the content): the damaged ones.
    pub fn verify_entry(&self, entry: &Entry) -> Vec<Damage> {
        let mut out = Vec::new();
        for (name, digest) in &entry.outputs {
            let path = self.object_path(digest, name);
            let problem = match crate::source_hash::hash_file_content(&path) {
                Ok(d) if d == *digest => continue,
                Ok(d) => format!("its content hashes to {}…, not to its name {}…", &d[..12], &digest[..12]),
                Err(e) if e.kind() == io::ErrorKind::NotFound => "it is missing".to_string(),
                Err(e) => format!("it cannot be read ({e})"),
            };
            out.push(Damage { output: name.clone(), path, problem });
        }
        out
    }

    /// Moves the damaged objects of `entry` into `damaged/` and removes the entry, so that the
    /// stage is rebuilt and nothing reads the objects again. Returns where each object went.
    pub fn quarantine(&self, entry: &Entry, damage: &[Damage]) -> io::Result<Vec<PathBuf>> {
        let entry_path = self.entry_path(&entry.material.kind, &entry.key);
        match std::fs::remove_file(&entry_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut moved = Vec::new();
        for d in damage {
            if !d.path.exists() {
                continue;
            }
            let name = d.path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let dest = self.root.join("damaged").join(format!("{}-{name}.{}.{n}", entry.id, std::process::id()));
            std::fs::rename(&d.path, &dest)?;
            moved.push(dest);
        }
        Ok(moved)
    }

    /// What earlier runs moved aside.
    pub fn damaged(&self) -> Vec<PathBuf> {
        read_dir_sorted(&self.root.join("damaged"))
    }

    /// Every entry in the store, with its file. (Not the temporary files of an entry's atomic
    /// write, `.<name>.tmp.<pid>.<n>`, which a killed writer leaves: [`Store::scratch`] has them.)
    pub fn all_entries(&self) -> Vec<(PathBuf, Option<Entry>)> {
        let mut out = Vec::new();
        for kind in read_dir_sorted(&self.root.join("stages")) {
            for file in read_dir_sorted(&kind).into_iter().filter(|f| !is_temporary(f)) {
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

    /// Temporary folders of runs (live or dead), the liveness locks of runs, and the temporary
    /// files of entries and id pointers whose atomic write was cut short (a killed writer's).
    pub fn scratch(&self) -> Vec<PathBuf> {
        let mut out = read_dir_sorted(&self.root.join("tmp"));
        out.extend(read_dir_sorted(&self.root.join("live")));
        for kind in read_dir_sorted(&self.root.join("stages")) {
            out.extend(read_dir_sorted(&kind).into_iter().filter(|f| is_temporary(f)));
        }
        out.extend(read_dir_sorted(&self.root.join("ids")).into_iter().filter(|f| is_temporary(f)));
        out
    }
}

/// Whether `file` is the temporary file of an atomic write (`crate::atomic_file::temp_path_for`).
fn is_temporary(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
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
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    out.sort();
    out
}
