//! Experiments through the real binary on configs/smoke.toml: `--set` checked like the file, a
//! sweep sharing every stage its swept key does not reach, and its report's rows equal to a plain
//! run of the same point.

use crate::cli::{Scratch, ids, last_json, ok};
use std::collections::{BTreeMap, BTreeSet};

/// A CSV's rows as maps from column to field (no quoted commas in these files' fields but labels,
/// which hold none).
fn rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_string)).collect()).collect()
}

#[test]
fn a_bad_set_is_refused_naming_the_key_and_nothing_runs() {
    let s = Scratch::new(|_| {});
    for (arg, expected) in [
        ("train.epoch=3", "--set train.epoch=3: key `train.epoch`: unknown field"),
        ("train.epochs=many", "--set train.epochs=many: key `train.epochs`"),
        ("train.lr=nan", "--set train.lr=nan: key `train.lr`: not a finite number"),
        ("tune.temperatures=[1.0, inf]", "not a finite number"),
        ("train.epochs=0", "--set train.epochs=0: key `train.epochs`: 0: expected at least 1"),
    ] {
        let out = s.oodpipe(&["run", "--set", arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(expected), "{arg}: {err}");
        assert!(!err.contains("running"), "{arg}: a stage ran: {err}");
    }
    assert!(!s.path("cache/stages").exists(), "nothing was built");
    // A sweep's values are checked the same way.
    let out = s.oodpipe(&["status", "--sweep", "methods.bin.zeta=0.1,nan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sweep methods.bin.zeta=0.1,nan: key `methods.bin.zeta`: not a finite number"));
}

#[test]
fn a_sweep_builds_only_what_its_key_reaches_and_a_point_is_a_plain_run() {
    // smoke.toml has methods.bin.zeta = 0.1: the sweep's first point is the plain run, already
    // built (a copy of the shared cache; this run publishes its report).
    let s = crate::shared::copy_of_built();
    ok(&s.oodpipe(&["run"]));

    // The dry run lists what each point would build.
    let dry = s.oodpipe(&["run", "--dry-run", "--sweep", "methods.bin.zeta=0.1,0.3"]);
    let err = String::from_utf8_lossy(&dry.stderr);
    assert!(err.contains("point 1 (methods.bin.zeta=0.1): would build 0 of its"), "{err}");
    assert!(err.contains("point 2 (methods.bin.zeta=0.3): would build 8 of its"), "{err}");

    let sweep = last_json(&s.oodpipe(&["run", "--json", "--sweep", "methods.bin.zeta=0.1,0.3"]));
    let executed = ids(&sweep["executed"]);
    let mut expected: BTreeSet<String> =
        ["train.bin@zeta=0.3", "outputs.bin.cifar10@zeta=0.3", "sweep"].iter().map(|x| x.to_string()).collect();
    for set in ["gaussian", "tin_crop", "tin_resize"] {
        expected.insert(format!("outputs.bin.{set}@zeta=0.3"));
        expected.insert(format!("score.bin.{set}@zeta=0.3"));
    }
    assert_eq!(executed, expected, "only the new value's BIN stages (and the sweep's report) run");
    assert!(ids(&sweep["cached"]).contains("train.bin@zeta=0.1") && ids(&sweep["cached"]).contains("train.softmax"));

    // The sweep's report is in its own folder, never over the plain run's.
    let dir = s.path("reports/sweeps/methods.bin.zeta");
    let sweep_csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert!(dir.join("sweep.md").is_file() && dir.join("figures/sweep_methods_bin_zeta.svg").is_file());

    // A plain run of the second point: same keys, so only its report runs.
    let plain = last_json(&s.oodpipe(&["run", "--json", "--set", "methods.bin.zeta=0.3"]));
    assert_eq!(ids(&plain["executed"]), ["report".to_string()].into(), "{plain}");

    // The point's rows equal the plain run's: results.csv (test) and validation.csv (val).
    let point: Vec<_> = rows(&sweep_csv).into_iter().filter(|r| r["methods.bin.zeta"] == "0.3").collect();
    for (file, split) in [("results.csv", "test"), ("validation.csv", "val")] {
        let plain: Vec<_> = rows(&std::fs::read_to_string(s.path(&format!("reports/{file}"))).unwrap())
            .into_iter()
            .filter(|r| r["seed"] == "all")
            .collect();
        let mut compared = 0;
        for r in point.iter().filter(|r| r["split"] == split) {
            let p = plain
                .iter()
                .find(|p| p["ood_set"] == r["ood_set"] && p["method"] == r["method"] && p["metric"] == r["metric"])
                .unwrap_or_else(|| panic!("{file} has no row {r:?}"));
            for column in ["value", "ci_low", "ci_high"] {
                assert_eq!(p[column], r[column], "{file} {column} of {r:?}");
            }
            compared += 1;
        }
        assert!(compared > 100, "{file}: {compared} rows compared");
    }

    // The choice, recomputed from the validation rows: the lowest FPR at 95% TPR per OOD set and
    // method, ties to the first point.
    let all = rows(&sweep_csv);
    let mut best: BTreeMap<(String, String), (String, f64)> = BTreeMap::new();
    for r in all.iter().filter(|r| r["split"] == "val" && r["metric"] == "fpr_at_95_tpr") {
        let v: f64 = r["value"].parse().unwrap();
        let k = (r["ood_set"].clone(), r["method"].clone());
        if best.get(&k).is_none_or(|(_, b)| v < *b) {
            best.insert(k, (r["methods.bin.zeta"].clone(), v));
        }
    }
    for r in &all {
        let chosen = best.get(&(r["ood_set"].clone(), r["method"].clone())).is_some_and(|(p, _)| *p == r["methods.bin.zeta"]);
        assert_eq!(r["chosen"] == "true", chosen, "{r:?}");
    }
    assert!(all.iter().any(|r| r["chosen"] == "true" && r["method"] == "BIN"));

    // status, show and dag name the variants.
    let status = ok(&s.oodpipe(&["status", "--sweep", "methods.bin.zeta=0.1,0.3"]));
    assert!(status.contains("fresh  train.bin@zeta=0.3"), "{status}");
    let show = ok(&s.oodpipe(&["show", "train.bin@zeta=0.3", "--sweep", "methods.bin.zeta=0.1,0.3"]));
    assert!(show.contains("methods.bin.zeta = 0.3"), "{show}");
    // The run records name the overrides and the sweep.
    let runs = ok(&s.oodpipe(&["runs"]));
    assert!(runs.contains("--set methods.bin.zeta=0.3") && runs.contains("--sweep methods.bin.zeta=0.1,0.3"), "{runs}");
}
