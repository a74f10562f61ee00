//! The guard on code versions: a stage's key carries its kind's code version (the salts in
//! plan/src/table.rs, each detector's and each OOD set kind's versions in its file), and the cache trusts it. If the code
//! of a kind changes while its version does not, every cached result of that kind is silently
//! stale. This test hashes each kind's source files (comments and whitespace removed, so a
//! comment or a reformat does not count) and compares with the record in `code_versions.txt`.
//! A kind's files are derived from the code, not listed: from the kind's entry point, every file of
//! the stages, metrics and html crates its code reaches by path (`crate::`, `super::`, `self::`,
//! `oodpipe_metrics::`, `oodpipe_html::`, named child modules), transitively ([`closure`]); so a shared file a kind
//! starts to call joins its group without anyone remembering to add it.
//! - the code changed, the version did not: fails, naming the versions to bump and the changed
//!   files (a refactor that computes the same bytes is recorded without a bump: a deliberate,
//!   reviewable line in the diff);
//! - the code or the version changed and the record is old: fails, asking to record it with
//!   `OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions` (after bumping).

use oodpipe_stages::config::ModelKind;
use oodpipe_stages::detectors::ALL;
use oodpipe_stages::table::salt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Source text without comments and whitespace; string and char literals kept as they are.
pub fn normalise(src: &str) -> String {
    scrub(src, false)
}

/// Source text without comments (whitespace kept when `keep_whitespace`); literals as they are.
fn scrub(src: &str, keep_whitespace: bool) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !s.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r#"..."#: copied up to its closing quote and hashes.
            let mut j = i + 1;
            while s.get(j) == Some(&'#') {
                j += 1;
            }
            if s.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let mut k = j + 1;
            while k < s.len() && !(s[k] == '"' && (1..=hashes).all(|h| s.get(k + h) == Some(&'#'))) {
                k += 1;
            }
            let end = (k + 1 + hashes).min(s.len());
            out.extend(&s[i..end]);
            i = end;
        } else if c == '"' {
            let mut k = i + 1;
            while k < s.len() && s[k] != '"' {
                k += if s[k] == '\\' { 2 } else { 1 };
            }
            let end = (k + 1).min(s.len());
            out.extend(&s[i..end]);
            i = end;
        } else if c == '\'' && (s.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x', '\n', '\''); otherwise a lifetime.
            let mut k = i + 1;
            if s[k] == '\\' {
                k += 2;
            }
            while k < s.len() && s[k] != '\'' {
                k += 1;
            }
            let end = (k + 1).min(s.len());
            out.extend(&s[i..end]);
            i = end;
        } else {
            if keep_whitespace || !c.is_whitespace() {
                out.push(c);
            }
            i += 1;
        }
    }
    out
}

/// The crate a source file belongs to, for what `crate::` means in it.
#[derive(Clone, Copy, PartialEq)]
enum Crate {
    Stages,
    Metrics,
    Html,
}

fn crate_of(file: &str) -> Crate {
    if file.starts_with("metrics/") {
        Crate::Metrics
    } else if file.starts_with("html/") {
        Crate::Html
    } else {
        Crate::Stages
    }
}

/// The file of module `path` in `krate` (the longest prefix of `path` that is a module with a file
/// of its own), or None: a path into another crate (`crate::config` is `oodpipe_plan`'s) or the
/// crate root, which only declares modules.
fn module_file(krate: Crate, path: &[&str]) -> Option<String> {
    for n in (1..=path.len()).rev() {
        let p = &path[..n];
        let candidates: Vec<String> = match (krate, p) {
            (Crate::Stages, ["detectors"]) => vec!["detectors/mod.rs".into()],
            (Crate::Stages, ["detectors", name, ..]) if n == 2 => vec![format!("detectors/{name}.rs")],
            (Crate::Stages, ["ood_kinds"]) => vec!["ood_kinds/mod.rs".into()],
            (Crate::Stages, ["ood_kinds", name, ..]) if n == 2 => vec![format!("ood_kinds/{name}.rs")],
            (Crate::Stages, ["models"]) => vec!["models/mod.rs".into()],
            (Crate::Stages, ["models", name, ..]) if n == 2 => vec![format!("models/{name}.rs")],
            (Crate::Stages, _) => vec![format!("stages/src/{}.rs", p.join("/")), format!("stages/src/{}/mod.rs", p.join("/"))],
            (Crate::Metrics, _) => vec![format!("metrics/src/{}.rs", p.join("/")), format!("metrics/src/{}/mod.rs", p.join("/"))],
            (Crate::Html, _) => vec![format!("html/src/{}.rs", p.join("/")), format!("html/src/{}/mod.rs", p.join("/"))],
        };
        if let Some(f) = candidates.into_iter().find(|f| root().join(f).is_file()) {
            return Some(f);
        }
    }
    None
}

/// The module path of a file (`stages/src/model/head.rs` -> model::head).
fn module_of(file: &str) -> Vec<String> {
    let rel = ["stages/src/", "metrics/src/", "html/src/"].iter().find_map(|p| file.strip_prefix(p)).unwrap_or(file);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    rel.split('/').filter(|s| !s.is_empty() && *s != "lib").map(str::to_string).collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths below `at` in a use tree or an expression (`a::b::{c, d::e}` -> a::b::c, a::b::d::e).
fn paths_at(text: &[char], mut at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        while text.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        if text.get(at) == Some(&'{') {
            at += 1;
            loop {
                // Always a step on, whatever the braces hold (`r#name`, `a as b`).
                let next = paths_at(text, at, path.clone(), out);
                at = if next > at { next } else { at + 1 };
                while text.get(at).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    at += 1;
                }
                if text.get(at) == Some(&'}') || at >= text.len() {
                    return at + 1;
                }
            }
        }
        let start = at;
        while text.get(at).is_some_and(|c| is_ident(*c)) {
            at += 1;
        }
        if at > start {
            path.push(text[start..at].iter().collect());
        } else if text.get(at) == Some(&'*') {
            // A glob (`a::{b::*, c}`): the module it is in is the path.
            at += 1;
        }
        if text.get(at) == Some(&':') && text.get(at + 1) == Some(&':') {
            at += 2;
            continue;
        }
        out.push(path);
        return at;
    }
}

/// Files that only declare modules and list them: a line added there computes nothing.
const REGISTRIES: [&str; 4] = ["stages/src/lib.rs", "detectors/mod.rs", "ood_kinds/mod.rs", "models/mod.rs"];

/// The files of the workspace's computing crates that `file` refers to: through `crate::`,
/// `super::`, `self::`, `oodpipe_metrics::`, `oodpipe_html::`, and its own child modules that it names.
fn references(file: &str) -> Vec<String> {
    let source = scrub(&std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}")), true);
    let text: Vec<char> = source.chars().collect();
    let krate = crate_of(file);
    let here = module_of(file);
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        // A path starts at an identifier that follows no other identifier character.
        if !is_ident(text[i]) || (i > 0 && (is_ident(text[i - 1]) || text[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_ident(text[i]) {
            i += 1;
        }
        let word: String = text[start..i].iter().collect();
        if text.get(i) != Some(&':') || text.get(i + 1) != Some(&':') {
            continue;
        }
        let mut paths = Vec::new();
        let end = paths_at(&text, i + 2, Vec::new(), &mut paths);
        for p in paths {
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            let target = match word.as_str() {
                "crate" => module_file(krate, &p),
                "oodpipe_metrics" => module_file(Crate::Metrics, &p).or_else(|| Some("metrics/src/lib.rs".into())),
                // The page's frame and script (the report's and the sweep's HTML).
                "oodpipe_html" => module_file(Crate::Html, &p).or_else(|| Some("html/src/lib.rs".into())),
                // A detector's or an OOD kind's `super::` is its own file (its `mod code` sits inside it).
                "super" if file.starts_with("detectors/") || file.starts_with("ood_kinds/") => None,
                "super" => {
                    let parent: Vec<&str> =
                        here[..here.len().saturating_sub(1)].iter().map(String::as_str).chain(p.iter().copied()).collect();
                    module_file(krate, &parent)
                }
                "self" => {
                    let within: Vec<&str> = here.iter().map(String::as_str).chain(p.iter().copied()).collect();
                    module_file(krate, &within)
                }
                // A child module named by a path (`head::Head`, `pub use head::...`).
                child => {
                    let mut within: Vec<&str> = here.iter().map(String::as_str).collect();
                    within.push(child);
                    let declared = source.contains(&format!("mod {child};"));
                    if declared { module_file(krate, &within) } else { None }
                }
            };
            found.extend(target.filter(|t| t != file && !REGISTRIES.contains(&t.as_str())));
        }
        i = end.max(i);
    }
    found.sort();
    found.dedup();
    found
}

/// Every file `roots` reach through [`references`], roots included, sorted.
fn closure(roots: &[String]) -> Vec<String> {
    let mut seen: std::collections::BTreeSet<String> = roots.iter().cloned().collect();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(f) = todo.pop() {
        for r in references(&f) {
            if seen.insert(r.clone()) {
                todo.push(r);
            }
        }
    }
    seen.into_iter().collect()
}

/// Each kind of stage (and each detector): its name, the files its code is (derived from its
/// entry points by [`closure`]), and the versions that must change with them.
fn groups() -> Vec<(String, Vec<String>, String)> {
    let detector_versions = |d: &oodpipe_stages::detector::Detector| -> String {
        let mut v = vec![format!("{}={}", d.name, d.version)];
        v.extend(d.tuning.map(|t| format!("{}.tune={}", d.name, t.version)));
        v.extend(d.prepare.map(|p| format!("{}.prepare={}", d.name, p.version)));
        v.join(" ")
    };
    let roots = |names: &[&str]| names.iter().map(|s| format!("stages/src/{s}")).collect::<Vec<_>>();
    // The network code runs through the registry (models/mod.rs, not followed): the stages that
    // run a network name the model files themselves.
    let model_file = |m: &ModelKind| format!("models/{}.rs", m.name());
    let with_models = |names: &[&str]| roots(names).into_iter().chain(ModelKind::ALL.iter().map(model_file)).collect::<Vec<_>>();
    // Where the worker enters each kind (stages/src/worker.rs).
    let mut groups = vec![
        ("data".to_string(), closure(&roots(&["data/cifar10.rs"])), format!("data={}", salt::DATA)),
        ("outputs".to_string(), closure(&with_models(&["outputs.rs"])), format!("outputs={}", salt::OUTPUTS)),
        ("features".to_string(), closure(&with_models(&["features/mod.rs"])), format!("features={}", salt::FEATURES)),
        ("report".to_string(), closure(&roots(&["report.rs"])), format!("report={}", salt::REPORT)),
        ("sweep".to_string(), closure(&roots(&["sweep.rs"])), format!("sweep={}", salt::SWEEP)),
        // A Python detector's score stage: the stage, its runner, the files every score stage writes.
        ("python".to_string(), closure(&roots(&["python/mod.rs"])), format!("python={}", oodpipe_plan::python::VERSION)),
    ];
    for m in ModelKind::ALL {
        // A model's training: its file, and the training loop every model shares.
        let mut r = vec![model_file(m)];
        r.extend(roots(&["train.rs"]));
        groups.push((format!("model {}", m.name()), closure(&r), format!("{}={}", m.name(), m.model().version)));
    }
    for k in oodpipe_stages::ood_kinds::ALL {
        // The kind's file, and the stage that runs every kind.
        let mut r = vec![format!("ood_kinds/{}.rs", k.name)];
        r.extend(roots(&["data/ood_set.rs"]));
        groups.push((format!("ood kind {}", k.name), closure(&r), format!("{}={}", k.name, k.version)));
    }
    for d in ALL {
        // The detector's file, and the stage functions that run every detector.
        let mut r = vec![format!("detectors/{}.rs", d.name)];
        r.extend(roots(&["detector.rs"]));
        // A detector that runs the network runs its model's head.
        if d.network || d.tuning.is_some_and(|t| t.network) || d.prepare.is_some_and(|p| p.network) {
            r.push(model_file(&d.model));
        }
        groups.push((format!("detector {}", d.name), closure(&r), detector_versions(d)));
    }
    groups
}

fn hash_text(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// Each file's hash (comments and whitespace removed).
fn hash_file(file: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    hash_text(&normalise(&text))
}

const RECORD: &str = "stages/tests/code_versions.txt";

/// The record: per group, its versions and files; per file, its hash.
#[derive(Default, PartialEq, Debug, Clone)]
struct Record {
    groups: BTreeMap<String, (String, Vec<String>)>,
    files: BTreeMap<String, String>,
}

impl Record {
    fn now() -> Record {
        let mut r = Record::default();
        for (name, files, versions) in groups() {
            for f in &files {
                r.files.entry(f.clone()).or_insert_with(|| hash_file(f));
            }
            r.groups.insert(name, (versions, files));
        }
        r
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# written by OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions\n\
             # group\tversions\tits files (derived from its entry points)\n",
        );
        for (name, (versions, files)) in &self.groups {
            out.push_str(&format!("group\t{name}\t{versions}\t{}\n", files.join(" ")));
        }
        out.push_str("# file\tsource hash (comments and whitespace removed)\n");
        for (file, hash) in &self.files {
            out.push_str(&format!("file\t{file}\t{hash}\n"));
        }
        out
    }

    fn parse(text: &str) -> Record {
        let mut r = Record::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let parts: Vec<&str> = line.split('\t').collect();
            match parts.as_slice() {
                ["group", name, versions, files] => {
                    r.groups.insert(name.to_string(), (versions.to_string(), files.split(' ').map(str::to_string).collect()));
                }
                ["file", file, hash] => {
                    r.files.insert(file.to_string(), hash.to_string());
                }
                _ => {}
            }
        }
        r
    }
}

/// What is wrong with `now` against `recorded`: a group whose code changed while its versions
/// did not (naming the files), or anything not recorded as it is.
fn problems(recorded: &Record, now: &Record) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, (versions, files)) in &now.groups {
        let Some((old_versions, old_files)) = recorded.groups.get(name) else {
            problems.push(format!("`{name}` is new: record it"));
            continue;
        };
        let changed: Vec<&str> = files.iter().filter(|f| recorded.files.get(*f) != now.files.get(*f)).map(String::as_str).collect();
        if versions == old_versions && !changed.is_empty() {
            problems.push(format!(
                "the code of `{name}` changed ({}) but its version did not: bump {versions} (plan/src/table.rs `salt`, or the \
                 detector's file) if what it computes changed, then record; a change that computes the same bytes (a refactor) is \
                 only recorded",
                changed.join(", ")
            ));
        } else if versions != old_versions || files != old_files || !changed.is_empty() {
            problems.push(format!("`{name}` is not recorded as it is now: record it"));
        }
    }
    problems.extend(recorded.groups.keys().filter(|g| !now.groups.contains_key(*g)).map(|g| format!("`{g}` is gone: record it")));
    problems
}

#[test]
fn a_kinds_code_does_not_change_without_its_version() {
    let now = Record::now();
    if std::env::var_os("OODPIPE_BLESS").is_some() {
        // Recording is a developer's deliberate act, reviewed in the diff; under CI it would turn
        // this check into one that always passes.
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "OODPIPE_BLESS is refused under CI: record the code versions in a commit, not in a test run"
        );
        std::fs::write(root().join(RECORD), now.render()).unwrap();
        return;
    }
    let recorded = Record::parse(&std::fs::read_to_string(root().join(RECORD)).unwrap());
    let problems = problems(&recorded, &now);
    assert!(
        problems.is_empty(),
        "{}\n(record with: OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions)",
        problems.join("\n")
    );
}

/// The dependencies are read from the code: a file a kind's code reaches through a helper is in
/// its group, and a change to it is caught for exactly the groups that reach it.
#[test]
fn each_kinds_files_come_from_what_its_code_calls() {
    let now = Record::now();
    let files = |g: &str| now.groups[g].1.clone();
    // Reached through the network the stage loads, not listed by hand.
    for f in ["stages/src/model/head.rs", "stages/src/model/wrn.rs", "stages/src/outputs.rs", "stages/src/tensors.rs"] {
        assert!(files("outputs").contains(&f.to_string()), "outputs: {:?}", files("outputs"));
    }
    assert!(files("model bin").contains(&"stages/src/model/losses.rs".to_string()));
    // A model's training reaches its file and the shared loop, not another model's file; the
    // stages that run every model's network reach every model file.
    assert!(files("model vib").contains(&"models/vib.rs".to_string()) && files("model vib").contains(&"stages/src/train.rs".to_string()));
    assert!(!files("model vib").contains(&"models/viby.rs".to_string()), "{:?}", files("model vib"));
    assert!(files("outputs").contains(&"models/viby.rs".to_string()), "{:?}", files("outputs"));
    // A detector that runs the network reaches its model's file; one that reads stored outputs does not.
    assert!(files("detector odin").contains(&"models/softmax.rs".to_string()), "{:?}", files("detector odin"));
    assert!(!files("detector energy").iter().any(|f| f.starts_with("models/")), "{:?}", files("detector energy"));
    // A detector reaches its helpers, and the metrics through the stage functions.
    assert!(files("detector odin").contains(&"stages/src/methods/odin.rs".to_string()), "{:?}", files("detector odin"));
    assert!(files("detector knn").contains(&"stages/src/features/stats.rs".to_string()), "{:?}", files("detector knn"));
    assert!(files("detector energy").contains(&"metrics/src/lib.rs".to_string()), "{:?}", files("detector energy"));
    // The report's page reaches the page frame's crate (its script and style are in its output).
    assert!(files("report").contains(&"html/src/lib.rs".to_string()), "{:?}", files("report"));
    assert!(!files("detector energy").contains(&"stages/src/methods/odin.rs".to_string()), "{:?}", files("detector energy"));
    // An OOD set kind reaches the helpers its code calls, and no other kind's.
    let data = |f: &str| format!("stages/src/data/{f}");
    assert!(files("ood kind gaussian").contains(&data("noise.rs")), "{:?}", files("ood kind gaussian"));
    assert!(files("ood kind image_folder").contains(&data("image_folder.rs")), "{:?}", files("ood kind image_folder"));
    assert!(!files("ood kind gaussian").contains(&data("image_folder.rs")), "{:?}", files("ood kind gaussian"));
    assert!(!files("data").contains(&data("noise.rs")), "{:?}", files("data"));
    // Nothing of another kind's entry point.
    assert!(!files("data").contains(&"stages/src/train.rs".to_string()), "{:?}", files("data"));
    assert!(!files("outputs").iter().any(|f| f.starts_with("detectors/")), "{:?}", files("outputs"));

    // A change to a shared file names every group that reaches it, and only those.
    let mut before = now.clone();
    before.files.insert("stages/src/model/head.rs".into(), "0000000000000000".into());
    let named: Vec<String> = problems(&before, &now)
        .iter()
        .filter_map(|p| p.strip_prefix("the code of `").and_then(|r| r.split('`').next()).map(str::to_string))
        .collect();
    let reaching: Vec<String> =
        now.groups.iter().filter(|(_, (_, f))| f.contains(&"stages/src/model/head.rs".to_string())).map(|(g, _)| g.clone()).collect();
    assert_eq!(named, reaching);
    assert!(named.contains(&"model softmax".to_string()) && named.contains(&"outputs".to_string()), "{named:?}");
    assert!(!named.contains(&"data".to_string()));
}

#[test]
fn use_trees_and_paths_are_read_whole() {
    let text: Vec<char> = "crate::model::{self, Network, head::Head}, x".chars().collect();
    let mut out = Vec::new();
    paths_at(&text, "crate::".len(), Vec::new(), &mut out);
    let out: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(out, ["model::self", "model::Network", "model::head::Head"]);
    // Globs, inside braces too, end a path and never stall the reader.
    let text: Vec<char> = "crate::ood::{Generator, ParamValue::*, SetKind};".chars().collect();
    let mut out = Vec::new();
    paths_at(&text, "crate::".len(), Vec::new(), &mut out);
    let out: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(out, ["ood::Generator", "ood::ParamValue", "ood::SetKind"]);
    assert_eq!(module_file(Crate::Stages, &["model", "head", "Head"]).as_deref(), Some("stages/src/model/head.rs"));
    assert_eq!(module_file(Crate::Stages, &["model", "Network"]).as_deref(), Some("stages/src/model/mod.rs"));
    assert_eq!(module_file(Crate::Stages, &["config", "ModelKind"]), None, "oodpipe_plan's, not tracked here");
    assert_eq!(module_file(Crate::Stages, &["detectors", "odin", "DETECTOR"]).as_deref(), Some("detectors/odin.rs"));
}

#[test]
fn comments_and_formatting_do_not_count_but_code_and_strings_do() {
    let a = "fn f() -> u8 { // one\n    1 /* two */ }\n/// doc\n";
    assert_eq!(normalise(a), normalise("fn f()->u8{1}"));
    assert_ne!(normalise(a), normalise("fn f()->u8{2}"));
    assert_ne!(normalise("let s = \"a b\";"), normalise("let s = \"ab\";"));
    assert_eq!(normalise("let s = \"// not a comment\";"), "lets=\"// not a comment\";");
    assert_eq!(normalise("let c = '\"'; // x"), "letc='\"';");
    assert_eq!(normalise("fn f<'a>(x: &'a str) {}"), "fnf<'a>(x:&'astr){}");
    assert_eq!(normalise("r#\"a // b\"# // c"), "r#\"a // b\"#");
}
