//! One cold smoke run per test process, shared by the tests that need only a built cache to start
//! from or a reference to compare with: each cold run of the debug binary is one of the suite's
//! largest costs (issue 24, "a test suite that stays quick"). The smoke test reads what this cold
//! run executed from its `--json` summary; tests that need a cold run of another kind (killed,
//! interrupted, two jobs, through a remote or Slurm) still make their own.

use crate::cli::{Scratch, ok};
use std::sync::OnceLock;

/// The smoke config built once, `oodpipe run` with its defaults (one job), in its own scratch.
pub(crate) struct Built {
    pub(crate) scratch: Scratch,
    /// Its `--json` summary (what it executed).
    pub(crate) summary: serde_json::Value,
}

/// The shared build (made by the first test that asks; never written to afterwards).
pub(crate) fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let scratch = Scratch::new(|_| {});
        let out = scratch.oodpipe(&["run", "--json"]);
        ok(&out);
        Built { scratch, summary: crate::cli::last_json(&out) }
    })
}

/// A new scratch (the plain smoke config) whose cache is a copy of the shared build's: real
/// copies, not links, since a test may damage an object of its own.
pub(crate) fn copy_of_built() -> Scratch {
    let from = built().scratch.path("cache");
    let s = Scratch::new(|_| {});
    let status = std::process::Command::new("cp").arg("-r").arg(&from).arg(s.path("cache")).status().unwrap();
    assert!(status.success(), "cp -r {}", from.display());
    s
}

/// Narrows a smoke config to the softmax network and three of its detectors (Baseline, ODIN with
/// its tuning, Energy): 24 stages instead of 105, for tests about how runs, seeds and caches
/// behave rather than about what the full pipeline computes.
pub(crate) fn narrow(config: &mut toml::Table) {
    config.insert("models".into(), toml::Value::Array(vec!["softmax".into()]));
    config.insert("detectors".into(), toml::Value::Array(vec!["baseline".into(), "odin".into(), "energy".into()]));
}

/// The names of the safetensors objects in a scratch's store (data sets, weights, outputs,
/// scores): objects are named by the blake3 of their bytes, so equal names are equal bytes.
pub(crate) fn stored_tensors(s: &Scratch) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for shard in std::fs::read_dir(s.path("cache/objects")).unwrap() {
        for object in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let name = object.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors") {
                names.insert(name);
            }
        }
    }
    names
}

/// A test that cannot check what it is for here (`what`: no Slurm, no tmpfs): under CI (`CI` set,
/// as `.ci/run` has it) a failure; elsewhere a line in `$OODPIPE_SKIP_LOG`, which `make test`
/// counts in its closing line ("N skipped"), and on stderr.
pub(crate) fn skip(test: &str, what: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {what} (under CI every test must run)");
    }
    eprintln!("SKIPPED {test}: {what}");
    if let Some(log) = std::env::var_os("OODPIPE_SKIP_LOG") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        writeln!(file, "{test}: {what}").unwrap();
    }
}

/// Whether process `pid` exists and has not ended: a process that has ended stays in /proc as a
/// zombie (state Z) until its parent reaps it.
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|s| !s.starts_with(['Z', 'X'])))
}
