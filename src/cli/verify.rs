//! `oodpipe verify`: checks every entry and object of the store against its digest, like
//! `git fsck`, lists what is damaged, and exits 1 if anything is (`--repair` also moves the
//! damaged objects aside and removes their entries, so that the next run rebuilds them).
//!
//! An object is named by the blake3 of its content, so checking it needs nothing but the object:
//! each is hashed once, however many entries name it.

use oodpipe_engine::store::{Damage, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

pub fn run(cache: &Path, repair: bool) -> anyhow::Result<ExitCode> {
    if !cache.join("objects").is_dir() {
        anyhow::bail!("{} is not an oodpipe store (no objects/ folder)", cache.display());
    }
    let store = Store::open(cache).map_err(|e| anyhow::anyhow!("cannot open the store {}: {e}", cache.display()))?;
    let started = std::time::Instant::now();
    // Every object: does its content hash to its name?
    let mut object_ok: HashMap<String, bool> = HashMap::new();
    let (mut objects, mut bytes, mut problems) = (0usize, 0u64, 0usize);
    for (digest, path) in store.all_objects() {
        objects += 1;
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let ok = match oodpipe_engine::source_hash::hash_file_content(&path) {
            Ok(d) if d == digest => true,
            Ok(d) => {
                println!("damaged object {}: its content hashes to {}…", path.display(), &d[..12]);
                false
            }
            Err(e) => {
                println!("unreadable object {}: {e}", path.display());
                false
            }
        };
        if !ok {
            problems += 1;
        }
        object_ok.insert(digest, ok);
    }
    // Every entry: are all the objects it names there and intact?
    let mut entries = 0usize;
    for (file, entry) in store.all_entries() {
        entries += 1;
        let Some(entry) = entry else {
            println!("unreadable entry {}", file.display());
            problems += 1;
            if repair {
                std::fs::remove_file(&file)?;
                println!("  removed it");
            }
            continue;
        };
        let damage: Vec<Damage> = entry
            .outputs
            .iter()
            .filter(|(_, d)| !object_ok.get(*d).copied().unwrap_or(false))
            .map(|(name, d)| {
                let path = store.object_path(d, name);
                let problem = if object_ok.contains_key(d) { "damaged" } else { "missing" };
                Damage { output: name.clone(), path, problem: problem.into() }
            })
            .collect();
        if damage.is_empty() {
            continue;
        }
        problems += 1;
        let outputs: BTreeMap<&str, &str> = damage.iter().map(|d| (d.output.as_str(), d.problem.as_str())).collect();
        println!("damaged entry of {} ({}…): {outputs:?}", entry.id, &entry.key.0[..12]);
        if repair {
            store.quarantine(&entry, &damage)?;
            println!("  moved its damaged objects aside and removed the entry: the next run rebuilds {}", entry.id);
        }
    }
    println!(
        "checked {entries} entries and {objects} objects ({:.1} MB) in {:.2}s: {}",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        if problems == 0 { "no damage".to_string() } else { format!("{problems} damaged") }
    );
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
