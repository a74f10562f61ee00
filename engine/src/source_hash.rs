//! Content hashes of source files and folders, with a memo so unchanged gigabytes are not re-read.
//!
//! A source (a CIFAR-10 batch, the Tiny ImageNet folder) is keyed by its content, not its path or
//! mtime: moving the data does not rerun anything, and an edited file does. Re-hashing 180 MB of
//! CIFAR-10 on every `status` would be slow, so, as DVC's state table does, the hash of each file
//! is remembered with its (size, mtime): while both are unchanged, the remembered hash is used.
//! A folder's hash covers the sorted relative names and hashes of every file below it.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MemoEntry {
    size: u64,
    mtime_ns: u128,
    hash: String,
}

/// The (path, size, mtime) -> hash memo, kept in one JSON file under the store.
#[derive(Debug, Default)]
pub struct SourceMemo {
    file: Option<PathBuf>,
    /// Keyed by the absolute path as text: hashing strings is much cheaper than comparing paths
    /// component by component, which matters with 10,000 images per folder.
    entries: HashMap<String, MemoEntry>,
    changed: bool,
    /// How many files were actually read (for tests and for `status` to stay fast).
    pub files_read: usize,
}

impl SourceMemo {
    /// Loads the memo from `file`; a missing or unreadable memo is an empty one.
    pub fn load(file: &Path) -> Self {
        let entries = std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        SourceMemo { file: Some(file.to_path_buf()), entries, changed: false, files_read: 0 }
    }

    /// Writes the memo back if anything changed.
    pub fn save(&self) -> std::io::Result<()> {
        match &self.file {
            Some(file) if self.changed => crate::atomic_file::write(file, &serde_json::to_vec(&self.entries).expect("memo serialises")),
            _ => Ok(()),
        }
    }

    /// The content hash of a file, or of a folder and everything below it.
    pub fn hash(&mut self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let path = &std::path::absolute(path)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(path, path, &mut files)?;
            // Ordered by path (component by component); for a flat folder that is the order of
            // the names' bytes, which is much cheaper to sort by.
            if files.iter().all(|(rel, _)| rel.components().count() == 1) {
                files.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
            } else {
                files.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let mut hasher = blake3::Hasher::new();
            for (rel, meta) in files {
                let h = self.hash_file_with(&path.join(&rel), &meta)?;
                hasher.update(rel.to_string_lossy().as_bytes());
                hasher.update(b"\0");
                hasher.update(h.as_bytes());
                hasher.update(b"\n");
            }
            Ok(hasher.finalize().to_hex().to_string())
        } else {
            self.hash_file(path)
        }
    }

    /// `path` is absolute (see [`SourceMemo::hash`]).
    fn hash_file(&mut self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        self.hash_file_with(path, &meta)
    }

    /// The hash of the file at the absolute `path`, whose metadata is `meta`.
    fn hash_file_with(&mut self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<String> {
        let mtime_ns = meta.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let abs = path.to_string_lossy().into_owned();
        if let Some(e) = self.entries.get(&abs)
            && e.size == meta.len()
            && e.mtime_ns == mtime_ns
        {
            return Ok(e.hash.clone());
        }
        let hash = hash_file_content(path)?;
        self.files_read += 1;
        self.entries.insert(abs, MemoEntry { size: meta.len(), mtime_ns, hash: hash.clone() });
        self.changed = true;
        Ok(hash)
    }
}

/// The blake3 of a file's bytes, streamed.
pub fn hash_file_content(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Every file below `dir`, relative to `root`, with its metadata. The metadata of a large folder
/// (Tiny ImageNet's 10,000 images) is read on every core, relative to the folder's handle
/// (`DirEntry::metadata`), which spares the kernel a walk of the whole path per file.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &entry.path(), out)?;
        } else {
            files.push((entry, kind.is_symlink()));
        }
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    let chunk = files.len().div_ceil(threads).max(256);
    let stat = |part: &[(std::fs::DirEntry, bool)]| -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
        part.iter()
            .map(|(entry, symlink)| {
                let path = entry.path();
                // DirEntry::metadata does not follow a symlink; the content behind one is what counts.
                let meta = if *symlink { std::fs::metadata(&path)? } else { entry.metadata()? };
                Ok((path.strip_prefix(root).expect("below root").to_path_buf(), meta))
            })
            .collect()
    };
    let parts: Vec<std::io::Result<Vec<_>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files.chunks(chunk).map(|part| scope.spawn(move || stat(part))).collect();
        handles.into_iter().map(|h| h.join().expect("a stat thread panicked")).collect()
    });
    for part in parts {
        out.extend(part?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_avoids_rereading_and_sees_edits() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.bin");
        std::fs::write(&f, b"hello").unwrap();
        let memo_file = dir.path().join("memo.json");
        let mut memo = SourceMemo::load(&memo_file);
        let h1 = memo.hash(&f).unwrap();
        assert_eq!(h1, blake3::hash(b"hello").to_hex().to_string());
        memo.save().unwrap();
        let mut memo = SourceMemo::load(&memo_file);
        assert_eq!(memo.hash(&f).unwrap(), h1);
        assert_eq!(memo.files_read, 0, "unchanged file must come from the memo");
        std::fs::write(&f, b"hellp").unwrap();
        // Same size; make sure the mtime differs even on coarse clocks.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(later).unwrap();
        assert_ne!(memo.hash(&f).unwrap(), h1);
        assert_eq!(memo.files_read, 1);
    }

    #[test]
    fn folder_hash_covers_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), b"1").unwrap();
        std::fs::write(dir.path().join("sub/b"), b"2").unwrap();
        let mut memo = SourceMemo::default();
        let h = memo.hash(dir.path()).unwrap();
        std::fs::rename(dir.path().join("a"), dir.path().join("c")).unwrap();
        let renamed = memo.hash(dir.path()).unwrap();
        assert_ne!(h, renamed);
        std::fs::rename(dir.path().join("c"), dir.path().join("a")).unwrap();
        assert_eq!(memo.hash(dir.path()).unwrap(), h);
    }
}
