//! The remote store on a folder (object_store's local files), with synthetic stages: two stores
//! sharing one remote, and what the remote may do wrong (a damaged or missing object, an entry
//! that is not the stage's). The same code against a real S3 server: tests/it/remote.rs.

use oodpipe_engine::executor::{self, Progress, StageState};
use oodpipe_engine::fingerprint::{KeyedStage, key_stages};
use oodpipe_engine::graph::Graph;
use oodpipe_engine::progress::Reporter;
use oodpipe_engine::remote::Remote;
use oodpipe_engine::source_hash::{SourceMemo, hash_file_content};
use oodpipe_engine::stage_key::Platform;
use oodpipe_engine::stage_spec::StageSpec;
use oodpipe_engine::store::Store;
use oodpipe_engine::worker::StageRequest;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Keeps every line it is told, to check what a person would read.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Reporter for Lines {
    fn started(&self, _: usize, _: usize, id: &str, state: StageState) {
        self.push(format!("{id}: {state:?}"));
    }
    fn progress(&self, _: &str, _: u64, _: u64, _: &str) {}
    fn finished(&self, _: usize, _: usize, id: &str, _: f64) {
        self.push(format!("{id}: done"));
    }
    fn failed(&self, _: usize, _: usize, id: &str, error: &str) {
        self.push(format!("{id}: FAILED {error}"));
    }
    fn skipped(&self, _: usize, _: usize, _: &str, _: &str) {}
    fn note(&self, id: &str, message: &str) {
        self.push(format!("{id}: note {message}"));
    }
    fn fetched(&self, _: usize, _: usize, id: &str, detail: &str) {
        self.push(format!("{id}: fetched from remote ({detail})"));
    }
    fn warn(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }
    fn say(&self, message: &str) {
        self.push(message.to_string());
    }
}

/// Writes `<id>` repeated `size` times (a stage's "computation"), after its inputs' contents.
fn stage(id: &str, inputs: &[&str], size: usize) -> StageSpec {
    StageSpec {
        id: id.into(),
        kind: id.split('.').next().unwrap().into(),
        salt: "1".into(),
        params: Default::default(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        sources: Vec::new(),
        publish: None,
        task: json!(size),
        code: String::new(),
        uses: Default::default(),
        key_id: None,
    }
}

fn runner(request: &StageRequest, _: Progress) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    for files in request.inputs.values() {
        bytes.extend(std::fs::read(&files["out.bin"])?);
    }
    let size = request.task.as_u64().unwrap() as usize;
    bytes.extend(request.id.as_bytes().iter().cycle().take(size));
    std::fs::write(request.out_dir.join("out.bin"), bytes)?;
    std::fs::write(request.out_dir.join("small.json"), format!("{{\"id\": \"{}\"}}", request.id))?;
    Ok(())
}

/// gen.a (40 MB: above the part size, so it travels in parts) <- mid.b <- end.c, and gen.d alone.
fn stages() -> Vec<KeyedStage> {
    let graph = Graph::new(vec![
        stage("gen.a", &[], 40 << 20),
        stage("mid.b", &["gen.a"], 1000),
        stage("end.c", &["mid.b"], 10),
        stage("gen.d", &[], 0),
    ])
    .unwrap();
    key_stages(&graph.closure(&[]).unwrap(), &mut SourceMemo::default(), &Platform { libtorch: "t".into(), device: "cpu".into() }).unwrap()
}

fn run(store: &Store, remote: &Remote) -> (executor::Outcome, Vec<String>) {
    let lines = Lines::default();
    let outcome = executor::run_with_remote(store, &stages(), &runner, &lines, false, &executor::Jobs::sequential(), Some(remote));
    (outcome, lines.all())
}

/// The remote folder's file for stage `id`'s output `name` (as the store names it).
fn remote_object(remote_dir: &Path, store: &Store, id: &str, name: &str) -> PathBuf {
    let entry = store.last_entry(id).unwrap();
    let local = store.object_path(&entry.outputs[name], name);
    let rel = local.strip_prefix(store.root()).unwrap();
    remote_dir.join(rel)
}

/// A remote on a new folder `name` in `dir`, and that folder.
fn folder_remote(dir: &Path, name: &str) -> (PathBuf, Remote) {
    let remote_dir = dir.join(name);
    std::fs::create_dir(&remote_dir).unwrap();
    let remote = Remote::open(remote_dir.to_str().unwrap(), false).unwrap();
    (remote_dir, remote)
}

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(every_file(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

#[test]
fn a_second_store_fetches_everything_the_first_built_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (remote_dir, remote) = folder_remote(dir.path(), "remote");
    // gen.a's 40 MB come in 16 MiB ranges (objects over 256 MB do in use), and are hashed after.
    let remote = remote.in_parts_above(16 << 20);

    let first = Store::open(&dir.path().join("one")).unwrap();
    let (outcome, lines) = run(&first, &remote);
    assert_eq!(outcome.executed.len(), 4, "{lines:?}");
    assert!(outcome.fetched.is_empty());
    assert!(lines.iter().any(|l| l.starts_with("uploaded 4 stages (8 objects")), "{lines:?}");
    // Objects and entries under the local store's names; nothing else (no temporary leftovers).
    let files: Vec<String> =
        every_file(&remote_dir).iter().map(|p| p.strip_prefix(&remote_dir).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files.iter().filter(|f| f.starts_with("stages/")).count(), 4, "{files:?}");
    assert_eq!(files.iter().filter(|f| f.starts_with("objects/")).count(), 8, "{files:?}");
    assert_eq!(files.len(), 12, "{files:?}");

    let second = Store::open(&dir.path().join("two")).unwrap();
    let (outcome, lines) = run(&second, &remote);
    assert!(outcome.executed.is_empty(), "{lines:?}");
    assert_eq!(outcome.fetched, ["gen.a", "mid.b", "end.c", "gen.d"], "{lines:?}");
    assert_eq!(outcome.cached.len(), 4, "fetched stages are cached ones");
    assert!(lines.iter().any(|l| l.starts_with("gen.a: fetched from remote (2 objects, 41.9 MB)")), "{lines:?}");
    for ks in stages() {
        let (a, b) = (first.entry(&ks.material.kind, &ks.key).unwrap(), second.entry(&ks.material.kind, &ks.key).unwrap());
        assert_eq!(a, b);
        for (name, path) in first.output_files(&a) {
            assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(second.output_files(&b)[&name].clone()).unwrap());
        }
        // The entry's bytes are the builder's.
        assert_eq!(
            std::fs::read(first.entry_path(&ks.material.kind, &ks.key)).unwrap(),
            std::fs::read(second.entry_path(&ks.material.kind, &ks.key)).unwrap()
        );
    }
    // Nothing left in the second store's temporary folder.
    assert!(std::fs::read_dir(second.root().join("tmp")).unwrap().next().is_none());
}

#[test]
fn a_damaged_object_on_the_remote_is_never_used_its_stage_is_built_and_the_remote_repaired() {
    // The large object in one stream, hashed as it arrives, and in ranged parts, hashed after.
    for parts_above in [None, Some(16 << 20)] {
        damaged_object_case(parts_above);
    }
}

fn damaged_object_case(parts_above: Option<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (remote_dir, remote) = folder_remote(dir.path(), "remote");
    let remote = match parts_above {
        Some(bytes) => remote.in_parts_above(bytes),
        None => remote,
    };
    let first = Store::open(&dir.path().join("one")).unwrap();
    run(&first, &remote);

    // One changed byte in the middle of the large object (same size), and a deleted object.
    let damaged = remote_object(&remote_dir, &first, "gen.a", "out.bin");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[20 << 20] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    std::fs::remove_file(remote_object(&remote_dir, &first, "gen.d", "small.json")).unwrap();

    let second = Store::open(&dir.path().join("two")).unwrap();
    let (outcome, lines) = run(&second, &remote);
    assert_eq!(outcome.executed, ["gen.a", "gen.d"], "{lines:?}");
    assert_eq!(outcome.fetched, ["mid.b", "end.c"], "{lines:?}");
    let a_note = lines.iter().find(|l| l.starts_with("gen.a: note")).unwrap();
    assert!(a_note.contains("`out.bin` on the remote is damaged: its content hashes to"), "{a_note}");
    let d_note = lines.iter().find(|l| l.starts_with("gen.d: note")).unwrap();
    assert!(d_note.contains("`small.json`") && d_note.contains("is missing on the remote"), "{d_note}");
    // The local results are the right ones (as built), and the remote was repaired by the upload.
    let a = second.last_entry("gen.a").unwrap();
    assert!(second.verify_entry(&a).is_empty());
    assert_eq!(hash_file_content(&damaged).unwrap(), a.outputs["out.bin"]);
    assert!(remote_object(&remote_dir, &first, "gen.d", "small.json").is_file());

    // So a third store fetches everything.
    let third = Store::open(&dir.path().join("three")).unwrap();
    let (outcome, lines) = run(&third, &remote);
    assert!(outcome.executed.is_empty(), "{lines:?}");
}

#[test]
fn an_entry_that_is_not_the_stages_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (remote_dir, remote) = folder_remote(dir.path(), "remote");
    let first = Store::open(&dir.path().join("one")).unwrap();
    run(&first, &remote);
    // Someone's entry under gen.d's key claims other key material.
    let ks = stages().into_iter().find(|k| k.spec.id == "gen.d").unwrap();
    let path = remote_dir.join(first.entry_path(&ks.material.kind, &ks.key).strip_prefix(first.root()).unwrap());
    let mut entry: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    entry["material"]["salt"] = json!("2");
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();

    let second = Store::open(&dir.path().join("two")).unwrap();
    let (outcome, lines) = run(&second, &remote);
    assert_eq!(outcome.executed, ["gen.d"], "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("gen.d: note the remote's copy is not used: its entry is not this stage's")), "{lines:?}");
}

#[test]
fn push_sends_what_the_remote_lacks_and_pull_fetches_it_into_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let (remote_dir, remote) = folder_remote(dir.path(), "remote");
    let read_only = Remote::open(remote_dir.to_str().unwrap(), true).unwrap();
    let first = Store::open(&dir.path().join("one")).unwrap();
    let (outcome, _) = run(&first, &read_only);
    assert_eq!(outcome.executed.len(), 4);
    assert!(every_file(&remote_dir).is_empty(), "a read-only remote is not written to");

    let entries: Vec<_> = stages().iter().map(|ks| first.entry(&ks.material.kind, &ks.key).unwrap()).collect();
    let pushed = remote.push(&first, &entries[..2], false);
    assert_eq!((pushed.entries_sent, pushed.objects_sent, pushed.entries_there, pushed.objects_there), (2, 4, 0, 0), "{pushed:?}");
    assert_eq!(pushed.bytes_sent, entries[..2].iter().map(|e| e.bytes).sum::<u64>());
    let pushed = remote.push(&first, &entries, false);
    assert_eq!((pushed.entries_sent, pushed.objects_sent, pushed.entries_there, pushed.objects_there), (2, 4, 2, 4), "{pushed:?}");
    let again = remote.push(&first, &entries, false);
    assert_eq!((again.entries_sent, again.objects_sent, again.entries_there, again.objects_there), (0, 0, 4, 8), "{again:?}");

    let second = Store::open(&dir.path().join("two")).unwrap();
    let all = stages();
    let refs: Vec<&KeyedStage> = all.iter().collect();
    let pulled = remote.pull(&second, &refs, false);
    assert_eq!(pulled.fetched.len(), 4, "{pulled:?}");
    assert_eq!(pulled.objects, 8);
    assert_eq!(pulled.bytes, entries.iter().map(|e| e.bytes).sum::<u64>());
    assert!(pulled.failure.is_none() && pulled.unusable.is_empty() && pulled.absent.is_empty());
    for ks in &all {
        let entry = second.entry(&ks.material.kind, &ks.key).unwrap();
        assert!(second.verify_entry(&entry).is_empty());
    }
    // A local object damaged after the fact is not pushed, nor its entry.
    let (third_dir, other) = folder_remote(dir.path(), "remote2");
    let d = second.last_entry("gen.d").unwrap();
    let object = second.object_path(&d.outputs["small.json"], "small.json");
    make_writable(&object);
    std::fs::write(&object, "{\"id\": \"gen.X\"}").unwrap();
    let pushed = other.push(&second, &[d], false);
    assert_eq!((pushed.entries_sent, pushed.objects_sent), (0, 1), "{pushed:?}");
    assert!(pushed.local_problems.iter().any(|p| p.contains("is damaged here")), "{pushed:?}");
    assert!(!every_file(&third_dir).iter().any(|p| p.to_string_lossy().contains("stages/")));

    // The same for a large object sent in parts: the multipart upload is aborted, nothing of it
    // is left on the remote (one changed byte in its last part, found only at the end).
    let (fourth_dir, parts) = folder_remote(dir.path(), "remote3");
    let parts = parts.in_parts_above(16 << 20);
    let a = second.last_entry("gen.a").unwrap();
    let object = second.object_path(&a.outputs["out.bin"], "out.bin");
    make_writable(&object);
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&object, &bytes).unwrap();
    let pushed = parts.push(&second, &[a], false);
    assert_eq!(pushed.entries_sent, 0, "{pushed:?}");
    assert!(pushed.local_problems.iter().any(|p| p.contains("is damaged here")), "{pushed:?}");
    let left: Vec<PathBuf> = every_file(&fourth_dir);
    assert!(!left.iter().any(|p| p.to_string_lossy().contains("stages/")), "{left:?}");
    assert!(!left.iter().any(|p| std::fs::metadata(p).unwrap().len() > 16 << 20), "no part of the large object: {left:?}");
}

/// Lets a test damage an object of a store (objects are read-only).
fn make_writable(path: &Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}
