//! One graph from several variants of a pipeline (the points of a sweep), sharing what they share.
//!
//! Each variant is a whole pipeline planned from its own config. A stage that computes the same
//! thing in several variants (the same id, kind, code version, config fields, sources, and inputs
//! that are themselves the same) is built once and shared; a stage that differs gets one copy per
//! distinct version, its id suffixed with what distinguishes it: `train.bin@zeta=0.2`. The suffix
//! names only the swept keys that tell that stage's versions apart, by their shortest unambiguous
//! dotted tail (`zeta`, or `bin.zeta` beside `binc.zeta`).
//!
//! Keys do not change: a copy keeps the id its variant's plan gave it as its key id
//! ([`StageSpec::key_id`]), and its inputs are keyed under their key ids, so every stage of a
//! variant has exactly the key it has in a plain run of that variant's config, and the two share
//! their cache. Whether two variants' stages are the same is decided before any key exists (no
//! source is hashed, no platform is known), on everything a key is made of but the platform and the
//! sources' contents, which are the same for every variant of one run.

use crate::stage_spec::StageSpec;
use serde::Serialize;
use std::collections::BTreeMap;

/// One variant: its swept keys' values (key, value as written) and its plan, inputs first.
pub struct Variant {
    pub assignments: Vec<(String, String)>,
    pub stages: Vec<StageSpec>,
}

/// The merged graph, and for each variant the id each of its stages has in it.
pub struct Merged {
    pub stages: Vec<StageSpec>,
    /// Per variant: its plan's id -> the merged id.
    pub ids: Vec<BTreeMap<String, String>>,
}

/// What a stage is, short of its key: every part of its key material but the platform and the
/// sources' contents (their paths instead), with its inputs' identities.
#[derive(Serialize)]
struct Identity<'a> {
    id: &'a str,
    kind: &'a str,
    salt: &'a str,
    params: &'a BTreeMap<String, serde_json::Value>,
    sources: Vec<(&'a str, &'a std::path::Path)>,
    inputs: Vec<(&'a str, &'a str)>,
}

/// The shortest dotted tail of each key that no other key ends with.
fn short_names(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            let parts: Vec<&str> = key.split('.').collect();
            (1..=parts.len())
                .map(|n| parts[parts.len() - n..].join("."))
                .find(|tail| keys.iter().filter(|k| *k == tail || k.ends_with(&format!(".{tail}"))).count() == 1)
                .unwrap_or_else(|| key.clone())
        })
        .collect()
}

/// Merges `variants` (at least one; all with the same swept keys, in the same order).
pub fn merge(variants: &[Variant]) -> Merged {
    let keys: Vec<String> = variants.first().map(|v| v.assignments.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let short = short_names(&keys);
    // Each stage's identity, per variant.
    let mut identities: Vec<BTreeMap<&str, String>> = Vec::new();
    for v in variants {
        let mut of: BTreeMap<&str, String> = BTreeMap::new();
        for s in &v.stages {
            let identity = Identity {
                id: &s.id,
                kind: &s.kind,
                salt: &s.salt,
                params: &s.params,
                sources: s.sources.iter().map(|x| (x.label.as_str(), x.path.as_path())).collect(),
                inputs: s.inputs.iter().map(|i| (i.as_str(), of.get(i.as_str()).map(String::as_str).unwrap_or(""))).collect(),
            };
            let bytes = serde_json::to_vec(&identity).expect("an identity serialises");
            of.insert(&s.id, blake3::hash(&bytes).to_hex().to_string());
        }
        identities.push(of);
    }
    // Per id: its distinct identities, in order of first appearance, with the variants of each.
    let mut versions: BTreeMap<&str, Vec<(&str, Vec<usize>)>> = BTreeMap::new();
    for (vi, of) in identities.iter().enumerate() {
        for (id, identity) in of {
            let list = versions.entry(id).or_default();
            match list.iter_mut().find(|(x, _)| x == identity) {
                Some((_, members)) => members.push(vi),
                None => list.push((identity, vec![vi])),
            }
        }
    }
    // The merged id of each (id, identity).
    let mut merged_id: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (id, list) in &versions {
        if list.len() == 1 {
            merged_id.insert((id, list[0].0), id.to_string());
            continue;
        }
        let value = |vi: usize, k: usize| variants[vi].assignments[k].1.as_str();
        // The keys constant within each version and not the same for all of them.
        let telling: Vec<usize> = (0..keys.len())
            .filter(|&k| list.iter().all(|(_, m)| m.iter().all(|&vi| value(vi, k) == value(m[0], k))))
            .filter(|&k| list.iter().any(|(_, m)| value(m[0], k) != value(list[0].1[0], k)))
            .collect();
        let label = |members: &[usize], which: &[usize]| {
            which.iter().map(|&k| format!("{}={}", short[k], value(members[0], k))).collect::<Vec<_>>().join(",")
        };
        let all: Vec<usize> = (0..keys.len()).collect();
        let labels: Vec<String> = [telling.as_slice(), all.as_slice()]
            .iter()
            .map(|which| list.iter().map(|(_, m)| label(m, which)).collect::<Vec<_>>())
            .find(|labels| {
                let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
                distinct.len() == labels.len() && labels.iter().all(|l| !l.is_empty())
            })
            .unwrap_or_else(|| list.iter().map(|(_, m)| format!("p{}", m[0])).collect());
        for ((identity, _), label) in list.iter().zip(labels) {
            merged_id.insert((id, identity), format!("{id}@{label}"));
        }
    }
    // Every variant's stages in its order, each (id, identity) once, renamed.
    let mut stages = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        let map: BTreeMap<String, String> =
            v.stages.iter().map(|s| (s.id.clone(), merged_id[&(s.id.as_str(), identities[vi][s.id.as_str()].as_str())].clone())).collect();
        for s in &v.stages {
            let new_id = &map[&s.id];
            if !seen.insert(new_id.clone()) {
                continue;
            }
            let mut spec = s.clone();
            if new_id != &s.id {
                spec.key_id = Some(s.id.clone());
                spec.id = new_id.clone();
            }
            spec.inputs = s.inputs.iter().map(|i| map[i].clone()).collect();
            stages.push(spec);
        }
        ids.push(map);
    }
    Merged { stages, ids }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(id: &str, params: &[(&str, serde_json::Value)], inputs: &[&str]) -> StageSpec {
        StageSpec {
            id: id.into(),
            key_id: None,
            kind: id.split('.').next().unwrap().into(),
            salt: "1".into(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            sources: vec![],
            publish: None,
            task: json!(null),
            code: String::new(),
            uses: Default::default(),
        }
    }

    /// data -> train.a (reads a.z) -> score.a; data -> train.b (reads b.z) -> score.b.
    fn pipeline(az: f64, bz: f64) -> Variant {
        Variant {
            assignments: vec![("m.a.z".into(), az.to_string()), ("m.b.z".into(), bz.to_string())],
            stages: vec![
                spec("data", &[], &[]),
                spec("train.a", &[("m.a.z", json!(az))], &["data"]),
                spec("score.a", &[], &["train.a"]),
                spec("train.b", &[("m.b.z", json!(bz))], &["data"]),
                spec("score.b", &[], &["train.b"]),
            ],
        }
    }

    #[test]
    fn shared_stages_once_and_variants_named_by_what_tells_them_apart() {
        let variants: Vec<Variant> = [(0.1, 1.0), (0.2, 1.0), (0.1, 2.0), (0.2, 2.0)].iter().map(|&(a, b)| pipeline(a, b)).collect();
        let merged = merge(&variants);
        let ids: Vec<&str> = merged.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "data",
                "train.a@a.z=0.1",
                "score.a@a.z=0.1",
                "train.b@b.z=1",
                "score.b@b.z=1",
                "train.a@a.z=0.2",
                "score.a@a.z=0.2",
                "train.b@b.z=2",
                "score.b@b.z=2"
            ]
        );
        // Key ids are the plain ones, inputs the merged ones.
        let score = merged.stages.iter().find(|s| s.id == "score.a@a.z=0.2").unwrap();
        assert_eq!((score.key_id.as_deref(), score.inputs.as_slice()), (Some("score.a"), ["train.a@a.z=0.2".to_string()].as_slice()));
        assert_eq!(merged.stages[0].key_id, None);
        assert_eq!(merged.ids[3]["train.b"], "train.b@b.z=2");
        assert_eq!(merged.ids[1]["data"], "data");
    }

    #[test]
    fn one_variant_is_its_own_plan() {
        let merged = merge(&[pipeline(0.1, 1.0)]);
        assert_eq!(merged.stages, pipeline(0.1, 1.0).stages);
    }

    #[test]
    fn short_names_are_the_shortest_unambiguous_tails() {
        let keys = ["methods.bin.zeta".to_string(), "methods.binc.zeta".into(), "methods.vib.beta".into()];
        assert_eq!(short_names(&keys), ["bin.zeta", "binc.zeta", "beta"]);
    }
}
