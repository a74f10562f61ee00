//! Run records: what each `oodpipe run` did, kept under `cache/runs/` so that runs can be listed
//! and compared (`oodpipe runs`, `oodpipe diff RUN_A RUN_B`).
//!
//! A record names the commit and whether the tree was dirty, the config (its key and every field),
//! what executed and what was cached, each stage's time, and the digests of the published outputs
//! (the report), which stay readable in the store for as long as `gc` keeps them, and the key of
//! every stage (with the OOD sets' names and labels), which `oodpipe diff` uses to pair the two
//! sides' values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `YYYYMMDDTHHMMSSZ-xxxxxx`: sortable by time, unique by a hash of the record.
    pub id: String,
    pub started_unix: u64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// When dirty: the changed tracked files (the run's own report folders left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_changes: Vec<String>,
    pub config_path: PathBuf,
    pub config_key: String,
    /// Every config field (dotted) -> value, defaults included.
    pub config: BTreeMap<String, serde_json::Value>,
    pub targets: Vec<String>,
    pub executed: Vec<String>,
    pub cached: Vec<String>,
    pub failed: Vec<String>,
    pub seconds: f64,
    /// Stage id -> its recorded run time.
    pub stage_seconds: BTreeMap<String, f64>,
    /// Published output name (e.g. `results.csv`) -> object path in the store.
    pub published: BTreeMap<String, PathBuf>,
    /// blake3 over the published outputs' names and digests: equal digests, equal results.
    pub results_digest: Option<String>,
    /// Processor model, the instruction set ATen used, threads, OS, libtorch, device, GPU: what
    /// bit-for-bit repeatability depends on beyond the keys. Empty in records of older versions.
    #[serde(default)]
    pub platform: BTreeMap<String, String>,
    /// Ctrl-C (or SIGTERM) stopped the run before it finished.
    #[serde(default)]
    pub interrupted: bool,
    /// The command line's config overrides (`train.epochs=3` of `--set train.epochs=3`), as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// A sweep's keys and their values, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<(String, Vec<String>)>,
    /// Stage id -> key of every stage of the run, so that `oodpipe diff` can tell whether two
    /// runs share their trained networks and find their scores in the store. Empty in records of
    /// older versions.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// The OOD sets of the report, (name, label): a results row's label -> its stages' set name.
    #[serde(default)]
    pub sets: Vec<(String, String)>,
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time, in UTC.
pub fn utc_stamp(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

fn runs_dir(cache: &Path) -> PathBuf {
    cache.join("runs")
}

impl RunRecord {
    /// Gives the record its id and writes it atomically.
    pub fn save(&mut self, cache: &Path) -> std::io::Result<()> {
        let body = serde_json::to_vec(&self).expect("record serialises");
        self.id = format!("{}-{}", utc_stamp(self.started_unix), &blake3::hash(&body).to_hex()[..6]);
        let path = runs_dir(cache).join(format!("{}.json", self.id));
        crate::atomic_file::write(&path, &serde_json::to_vec_pretty(&self).expect("record serialises"))
    }

    /// Every record, newest first.
    pub fn list(cache: &Path) -> Vec<RunRecord> {
        let mut records: Vec<RunRecord> = std::fs::read_dir(runs_dir(cache))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default();
        records.sort_by(|a, b| b.id.cmp(&a.id));
        records
    }

    /// The record with this id, or the only one whose id starts with it.
    pub fn find(cache: &Path, id: &str) -> Option<RunRecord> {
        let matches: Vec<RunRecord> = Self::list(cache).into_iter().filter(|r| r.id.starts_with(id)).collect();
        match matches.len() {
            1 => matches.into_iter().next(),
            _ => matches.into_iter().find(|r| r.id == id),
        }
    }
}

/// The digest of a set of published outputs.
pub fn results_digest(published: &BTreeMap<String, String>) -> String {
    let mut hasher = blake3::Hasher::new();
    for (name, digest) in published {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(digest.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_765_199), "20261127T073959Z");
    }
}
