//! The guard on code versions: a stage's key carries its kind's code version (the salts in
//! plan/src/table.rs, each detector's versions in its file), and the cache trusts it. If the code
//! of a kind changes while its version does not, every cached result of that kind is silently
//! stale. This test hashes each kind's source files (comments and whitespace removed, so a
//! comment or a reformat does not count) and compares with the record in `code_versions.txt`:
//! - the code changed, the version did not: fails, naming the versions to bump (a refactor that
//!   computes the same bytes is recorded without a bump: a deliberate, reviewable line in the diff);
//! - the code or the version changed and the record is old: fails, asking to record it with
//!   `OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions` (after bumping).

use oodpipe_stages::detectors::ALL;
use oodpipe_stages::table::salt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Source text without comments and whitespace; string and char literals kept as they are.
pub fn normalise(src: &str) -> String {
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
            if !c.is_whitespace() {
                out.push(c);
            }
            i += 1;
        }
    }
    out
}

/// Each group of code: its name, its files, and the versions that must change with it.
fn groups() -> Vec<(String, Vec<String>, String)> {
    let detector_versions = |names: &[&str]| -> String {
        ALL.iter()
            .filter(|d| names.is_empty() || names.contains(&d.name))
            .map(|d| {
                let mut v = vec![format!("{}={}", d.name, d.version)];
                v.extend(d.tuning.map(|t| format!("{}.tune={}", d.name, t.version)));
                v.extend(d.prepare.map(|p| format!("{}.prepare={}", d.name, p.version)));
                v.join(" ")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let files = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let features: Vec<&str> = ALL.iter().filter(|d| d.features).map(|d| d.name).collect();
    let mut groups = vec![
        (
            "data".to_string(),
            files(&[
                "stages/src/data/mod.rs",
                "stages/src/data/cifar10.rs",
                "stages/src/data/noise.rs",
                "stages/src/data/image_folder.rs",
                "stages/src/data/ood_set.rs",
            ]),
            format!("data={}", salt::DATA),
        ),
        (
            "train".to_string(),
            files(&[
                "stages/src/train.rs",
                "stages/src/model/mod.rs",
                "stages/src/model/wrn.rs",
                "stages/src/model/head.rs",
                "stages/src/model/losses.rs",
                "stages/src/model/mmce.rs",
                "stages/src/model/memory_format.rs",
            ]),
            format!("train={} train_bce={}", salt::TRAIN, salt::TRAIN_BCE),
        ),
        ("outputs".to_string(), files(&["stages/src/outputs.rs"]), format!("outputs={}", salt::OUTPUTS)),
        // The shared features stages, and every detector that reads them.
        (
            "features".to_string(),
            files(&["stages/src/features/mod.rs"]),
            format!("features={} {}", salt::FEATURES, detector_versions(&features)),
        ),
        // The statistics the detectors on features fit (interval.rs: the percentile).
        (
            "feature statistics".to_string(),
            files(&["stages/src/features/stats.rs", "metrics/src/interval.rs"]),
            detector_versions(&features),
        ),
        (
            "report".to_string(),
            files(&[
                "stages/src/report.rs",
                "stages/src/claims.rs",
                "stages/src/report_summary.rs",
                "stages/src/figures.rs",
                "stages/src/uncertainty.rs",
                "metrics/src/bootstrap.rs",
                "metrics/src/interval.rs",
                "metrics/src/significance.rs",
            ]),
            format!("report={}", salt::REPORT),
        ),
        ("sweep".to_string(), files(&["stages/src/sweep.rs"]), format!("sweep={}", salt::SWEEP)),
        // What every detector's stages share: the stage functions and the metrics.
        ("detectors (shared)".to_string(), files(&["stages/src/detector.rs", "metrics/src/lib.rs"]), detector_versions(&[])),
        (
            "temperature scaling".to_string(),
            files(&["stages/src/methods/temperature.rs"]),
            detector_versions(&["baseline", "baseline_t", "odin"]),
        ),
        ("tuning".to_string(), files(&["stages/src/methods/tuner.rs"]), detector_versions(&["baseline_t", "odin"])),
        ("odin".to_string(), files(&["stages/src/methods/odin.rs"]), detector_versions(&["odin"])),
        ("sigmoid".to_string(), files(&["stages/src/methods/sigmoid.rs"]), detector_versions(&["bin", "binc"])),
        ("kl".to_string(), files(&["stages/src/methods/kl.rs"]), detector_versions(&["vib", "viby_i", "viby_ii"])),
    ];
    for d in ALL {
        groups.push((format!("detector {}", d.name), vec![format!("detectors/{}.rs", d.name)], detector_versions(&[d.name])));
    }
    groups
}

fn hash_files(files: &[String]) -> String {
    let mut all = String::new();
    for f in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        all.push_str(f);
        all.push('\0');
        all.push_str(&normalise(&text));
        all.push('\0');
    }
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(all.as_bytes()))[..16].to_string()
}

const RECORD: &str = "stages/tests/code_versions.txt";

#[test]
fn a_kinds_code_does_not_change_without_its_version() {
    let now: Vec<(String, String, String)> =
        groups().into_iter().map(|(name, files, versions)| (name, hash_files(&files), versions)).collect();
    let render = |rows: &[(String, String, String)]| -> String {
        let mut out = String::from(
            "# group\tsource hash (comments and whitespace removed)\tversions; written by OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions\n",
        );
        for (name, hash, versions) in rows {
            out.push_str(&format!("{name}\t{hash}\t{versions}\n"));
        }
        out
    };
    if std::env::var_os("OODPIPE_BLESS").is_some() {
        std::fs::write(root().join(RECORD), render(&now)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(root().join(RECORD)).unwrap();
    let recorded: BTreeMap<&str, (&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            Some((parts.next()?, (parts.next()?, parts.next()?)))
        })
        .collect();
    let mut problems = Vec::new();
    for (name, hash, versions) in &now {
        match recorded.get(name.as_str()) {
            Some((h, v)) if h == hash && v == versions => {}
            Some((h, v)) if h != hash && v == versions => problems.push(format!(
                "the code of `{name}` changed but its version did not: bump {versions} (plan/src/table.rs `salt`, or the detector's file) \
                 if what it computes changed, then record; a change that computes the same bytes (a refactor) is only recorded"
            )),
            _ => problems.push(format!("`{name}` is not recorded as it is now: record it")),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(record with: OODPIPE_BLESS=1 cargo test -p oodpipe-stages --test code_versions)",
        problems.join("\n")
    );
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
