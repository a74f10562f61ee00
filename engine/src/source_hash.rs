//! Content hashes of source files and folders, with a memo so unchanged gigabytes are not re-read.
//!
//! A source (a CIFAR-10 batch, the Tiny ImageNet folder) is keyed by its content, not its path or
//! mtime: moving the data does not rerun anything, and an edited file does. Re-hashing 180 MB of
//! CIFAR-10 on every `status` would be slow, so, as DVC's state table does, the hash of each file
//! is remembered with its (size, mtime): while both are unchanged, the remembered hash is used.
//! A folder's hash covers the sorted relative names and hashes of every file below it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    entries: BTreeMap<PathBuf, MemoEntry>,
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
            Some(file) if self.changed => {
                crate::atomic_file::write(file, &serde_json::to_vec(&self.entries).expect("memo serialises"))
            }
            _ => Ok(()),
        }
    }

    /// The content hash of a file, or of a folder and everything below it.
    pub fn hash(&mut self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(path, path, &mut files)?;
            files.sort();
            let mut hasher = blake3::Hasher::new();
            for rel in files {
                let h = self.hash_file(&path.join(&rel))?;
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

    fn hash_file(&mut self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let abs = std::path::absolute(path)?;
        if let Some(e) = self.entries.get(&abs) {
            if e.size == meta.len() && e.mtime_ns == mtime_ns {
                return Ok(e.hash.clone());
            }
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

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
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
