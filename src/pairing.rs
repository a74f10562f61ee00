//! How the two sides of `oodpipe diff` pair up, value by value: do they share their trained
//! networks, and if so, the paired bootstrap of the change over the test images.
//!
//! Each side recorded the key of every stage (`keys` in `reports/run.json` and in the run record)
//! and its OOD sets' names and labels (`sets`). A results row names its value by labels (OOD set
//! label, method label, metric); the plan's registries turn them into stages: a method label is
//! a detector ([`oodpipe_plan::detector::ALL`]) with its model, and on the `CIFAR-10` accuracy
//! rows a model ([`ModelKind::label`]). A side's per-seed rows come first seed first, so the
//! first row's seed has the plain stage ids and every other seed `@seed<N>` (as the stage table
//! names them).
//!
//! - **The same networks**: equal `train.<model>` keys for every seed on both sides. Then both
//!   numbers come from the same networks and, when the data keys agree too, the same test images,
//!   so the change is measured by the paired bootstrap over those images: each replicate resamples
//!   the same images for both sides (the report's draws, [`oodpipe_metrics::bootstrap`], seeded by
//!   the new side's `report.bootstrap_seed`, `report.bootstrap` replicates, 1,000 when it is 0),
//!   and the replicate's change is new - old; with several seeds, the mean over seeds of the
//!   per-seed changes, each seed on the same resamples. Scores come from the store (`--cache`):
//!   a score stage's `scores.safetensors`; for an accuracy, the test logits of
//!   `outputs.<model>.cifar10` against the labels of `data.cifar10`, image by image.
//! - **Different networks**: some train key differs.
//! - **Unknown**: a side that recorded no keys (older reports), or a row the registries do not know.

use crate::safetensors_file;
use oodpipe_engine::change_test::{NoBootstrap, Pairing};
use oodpipe_engine::results_frame::RowKey;
use oodpipe_engine::stage_key::StageKey;
use oodpipe_engine::store::Store;
use oodpipe_metrics::OodMetrics;
use oodpipe_metrics::bootstrap::{Stream, bootstrap};
use oodpipe_metrics::significance::Difference;
use oodpipe_plan::config::ModelKind;
use oodpipe_plan::detector::{ALL, Detector};
use oodpipe_plan::ids::{self, CIFAR10, files};
use oodpipe_plan::metric::{Metric, OodMetric};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The `ood_set` of the accuracy rows.
const IN_DISTRIBUTION: &str = "CIFAR-10";

/// What one side recorded of the stages behind its results.
#[derive(Debug, Clone, Default)]
pub struct SideStages {
    /// Stage id -> key; empty for a side that recorded none.
    pub keys: BTreeMap<String, String>,
    /// The OOD sets: (name, label).
    pub sets: Vec<(String, String)>,
}

impl SideStages {
    /// The `keys` and `sets` of a run.json or run record's JSON.
    pub fn of_json(v: &serde_json::Value) -> SideStages {
        let keys = v["keys"]
            .as_object()
            .map(|o| o.iter().filter_map(|(id, k)| Some((id.clone(), k.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let sets = serde_json::from_value(v["sets"].clone()).unwrap_or_default();
        SideStages { keys, sets }
    }

    fn set_name(&self, label: &str) -> Option<&str> {
        self.sets.iter().find(|(_, l)| l == label).map(|(n, _)| n.as_str())
    }

    /// The key of stage `id` for the seed at `position` of the side's per-seed rows.
    fn key(&self, id: &str, seeds: &[(String, f64)], position: usize) -> Option<&str> {
        let id = if position == 0 { id.to_string() } else { format!("{id}{}{}", oodpipe_plan::table::SEED_TAG, seeds[position].0) };
        self.keys.get(&id).map(String::as_str)
    }
}

/// What a results row is a value of.
enum Source {
    /// A detector's metric on an OOD set.
    Score { detector: &'static Detector, metric: OodMetric },
    /// A model's accuracy on CIFAR-10's test split.
    Accuracy { model: ModelKind },
}

fn source(key: &RowKey) -> Option<Source> {
    let (ood_set, method, metric) = key;
    if ood_set == IN_DISTRIBUTION && metric == Metric::Accuracy.name() {
        return ModelKind::ALL.iter().copied().find(|m| m.label() == method).map(|model| Source::Accuracy { model });
    }
    let detector = ALL.iter().copied().find(|d| d.label == method)?;
    OodMetric::from_name(metric).map(|metric| Source::Score { detector, metric })
}

/// One score stage's metrics on the full test sets and on every bootstrap replicate.
struct Bootstrapped {
    sizes: (usize, usize),
    full: OodMetrics,
    replicates: Vec<OodMetrics>,
}

/// Pairs the two sides of a diff; remembers what it read, so the five metrics of one score stage
/// cost one bootstrap.
pub struct Pairer<'a> {
    store: Option<Store>,
    old: &'a SideStages,
    new: &'a SideStages,
    resamples: usize,
    seed: u64,
    scores: HashMap<String, Option<Rc<Bootstrapped>>>,
    correct: HashMap<String, Option<Rc<Vec<f64>>>>,
    /// What could not be read (damaged files), said once on stderr by the caller.
    pub notes: Vec<String>,
}

impl<'a> Pairer<'a> {
    /// `store`: the local store, if there is one (a diff never creates it). `resamples` and
    /// `seed`: the bootstrap's.
    pub fn new(store: Option<Store>, old: &'a SideStages, new: &'a SideStages, resamples: usize, seed: u64) -> Pairer<'a> {
        Pairer { store, old, new, resamples, seed, scores: HashMap::new(), correct: HashMap::new(), notes: Vec::new() }
    }

    /// What is known of the two sides' networks for the value `key`, whose per-seed rows are
    /// `old` and `new` (both non-empty).
    pub fn pairing(&mut self, key: &RowKey, old: &[(String, f64)], new: &[(String, f64)]) -> Pairing {
        let Some(source) = source(key) else { return Pairing::Unknown };
        let model = match &source {
            Source::Score { detector, .. } => detector.model,
            Source::Accuracy { model } => *model,
        };
        let train = ids::train(model);
        let networks = |side: &SideStages, seeds: &[(String, f64)]| -> Option<BTreeMap<String, String>> {
            (0..seeds.len()).map(|i| Some((seeds[i].0.clone(), side.key(&train, seeds, i)?.to_string()))).collect()
        };
        let (Some(a), Some(b)) = (networks(self.old, old), networks(self.new, new)) else { return Pairing::Unknown };
        if a != b {
            return Pairing::DifferentNetworks;
        }
        Pairing::SameNetworks(self.paired_bootstrap(key, &source, old, new))
    }

    /// The paired bootstrap of new - old (in percent, as results.csv) over the test images.
    fn paired_bootstrap(
        &mut self,
        key: &RowKey,
        source: &Source,
        old: &[(String, f64)],
        new: &[(String, f64)],
    ) -> Result<Difference, NoBootstrap> {
        if self.store.is_none() {
            return Err(NoBootstrap::ScoresNotInStore);
        }
        let mut point = 0.0;
        let mut replicates = vec![0.0; self.resamples];
        for (j, (seed, _)) in new.iter().enumerate() {
            let i = old.iter().position(|(s, _)| s == seed).ok_or(NoBootstrap::ScoresNotInStore)?;
            let (d_point, d_reps) = match source {
                Source::Score { detector, metric } => self.score_difference(key, detector, *metric, (i, old), (j, new))?,
                Source::Accuracy { model } => self.accuracy_difference(*model, (i, old), (j, new))?,
            };
            point += d_point;
            replicates.iter_mut().zip(d_reps).for_each(|(r, d)| *r += d);
        }
        let n = new.len() as f64;
        Ok(Difference::paired_bootstrap(100.0 * point / n, replicates.into_iter().map(|r| 100.0 * r / n).collect()))
    }

    /// One seed's change of a detector's metric: on the full test sets and per replicate.
    fn score_difference(
        &mut self,
        key: &RowKey,
        detector: &Detector,
        metric: OodMetric,
        (i, old): (usize, &[(String, f64)]),
        (j, new): (usize, &[(String, f64)]),
    ) -> Result<(f64, Vec<f64>), NoBootstrap> {
        let label = &key.0;
        let (Some(old_set), Some(new_set)) = (self.old.set_name(label), self.new.set_name(label)) else {
            return Err(NoBootstrap::ScoresNotInStore);
        };
        // The same networks need not see the same OOD images: the set's data stage may differ.
        if self.old.keys.get(&ids::data(old_set)) != self.new.keys.get(&ids::data(new_set)) {
            return Err(NoBootstrap::ImagesDiffer);
        }
        let stage = |set: &str| ids::score(detector.name, set);
        let a_key = self.old.key(&stage(old_set), old, i).map(str::to_string);
        let b_key = self.new.key(&stage(new_set), new, j).map(str::to_string);
        let (Some(a), Some(b)) = (a_key.and_then(|k| self.scores(&k)), b_key.and_then(|k| self.scores(&k))) else {
            return Err(NoBootstrap::ScoresNotInStore);
        };
        if a.sizes != b.sizes {
            return Err(NoBootstrap::ImagesDiffer);
        }
        let m = |x: &OodMetrics| metric.of(x);
        let reps = a.replicates.iter().zip(&b.replicates).map(|(x, y)| m(y) - m(x)).collect();
        Ok((m(&b.full) - m(&a.full), reps))
    }

    /// One seed's change of a model's accuracy: per image right or wrong on both sides, the
    /// replicates resampling the same images (the streams of [`bootstrap`]'s in-distribution draws).
    fn accuracy_difference(
        &mut self,
        model: ModelKind,
        (i, old): (usize, &[(String, f64)]),
        (j, new): (usize, &[(String, f64)]),
    ) -> Result<(f64, Vec<f64>), NoBootstrap> {
        let stage = ids::outputs(model, CIFAR10);
        let data = ids::cifar10_data();
        let (Some(a_out), Some(b_out), Some(a_data), Some(b_data)) = (
            self.old.key(&stage, old, i).map(str::to_string),
            self.new.key(&stage, new, j).map(str::to_string),
            self.old.keys.get(&data).cloned(),
            self.new.keys.get(&data).cloned(),
        ) else {
            return Err(NoBootstrap::ScoresNotInStore);
        };
        if a_data != b_data {
            return Err(NoBootstrap::ImagesDiffer);
        }
        let (Some(a), Some(b)) = (self.correct(&a_out, &a_data), self.correct(&b_out, &b_data)) else {
            return Err(NoBootstrap::ScoresNotInStore);
        };
        let n = a.len();
        if b.len() != n || n == 0 {
            return Err(NoBootstrap::ImagesDiffer);
        }
        let change: Vec<f64> = a.iter().zip(b.iter()).map(|(x, y)| y - x).collect();
        let reps = (0..self.resamples)
            .map(|r| {
                let mut rng = Stream::new(self.seed, r as u64);
                (0..n).map(|_| change[rng.below(n)]).sum::<f64>() / n as f64
            })
            .collect();
        Ok((change.iter().sum::<f64>() / n as f64, reps))
    }

    /// The output file `name` of the stage of `kind` with key `key`, if the store has it.
    fn object(&self, kind: &str, key: &str, name: &str) -> Option<std::path::PathBuf> {
        let store = self.store.as_ref()?;
        let entry = store.entry(kind, &StageKey(key.to_string()))?;
        store.output_files(&entry).remove(name)
    }

    fn scores(&mut self, key: &str) -> Option<Rc<Bootstrapped>> {
        if let Some(known) = self.scores.get(key) {
            return known.clone();
        }
        let read = self.object("score", key, files::SCORES).and_then(|path| {
            let load = || -> anyhow::Result<Bootstrapped> {
                let a = safetensors_file::read(&path, ids::tensors::IN_SCORES)?.values;
                let b = safetensors_file::read(&path, ids::tensors::OUT_SCORES)?.values;
                let full = oodpipe_metrics::ood_metrics(&a, &b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let replicates = bootstrap(&a, &b, self.resamples, self.seed).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok(Bootstrapped { sizes: (a.len(), b.len()), full, replicates })
            };
            load().map_err(|e| self.notes.push(format!("{e:#}"))).ok().map(Rc::new)
        });
        self.scores.insert(key.to_string(), read.clone());
        read
    }

    /// Per test image, 1 when the network's prediction (the first largest logit) is its label.
    fn correct(&mut self, outputs_key: &str, data_key: &str) -> Option<Rc<Vec<f64>>> {
        if let Some(known) = self.correct.get(outputs_key) {
            return known.clone();
        }
        let logits = self.object("outputs", outputs_key, files::OUTPUTS);
        let labels = self.object("data", data_key, &files::data(CIFAR10));
        let read = logits.zip(labels).and_then(|(logits, labels)| {
            let load = || -> anyhow::Result<Vec<f64>> {
                let l = safetensors_file::read(&logits, "test_logits")?;
                let y = safetensors_file::read(&labels, "test_labels")?.values;
                let classes = *l.shape.last().unwrap_or(&0);
                if l.shape.len() != 2 || l.shape[0] != y.len() || classes == 0 {
                    anyhow::bail!("{}: test_logits of shape {:?} for {} labels", logits.display(), l.shape, y.len());
                }
                Ok(l.values
                    .chunks_exact(classes)
                    .zip(&y)
                    .map(|(row, &label)| {
                        let best = row.iter().enumerate().fold(0, |b, (k, &x)| if x > row[b] { k } else { b });
                        f64::from(u8::from(best as f64 == label))
                    })
                    .collect())
            };
            load().map_err(|e| self.notes.push(format!("{e:#}"))).ok().map(Rc::new)
        });
        self.correct.insert(outputs_key.to_string(), read.clone());
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodpipe_engine::stage_key::{KeyMaterial, Platform};
    use oodpipe_metrics::bootstrap::resample_indices;

    /// A safetensors file of the given tensors, laid out by hand: (name, dtype, shape, bytes).
    fn safetensors(path: &std::path::Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [data.len(), data.len() + bytes.len()]}),
            );
            data.extend_from_slice(bytes);
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend(data);
        std::fs::write(path, out).unwrap();
    }

    fn f64s(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Commits a stage of `kind` with the one output `name` written by `write` into `store`; its key.
    fn put(store: &Store, kind: &str, salt: &str, name: &str, write: impl FnOnce(&std::path::Path)) -> String {
        let material = KeyMaterial {
            id: format!("{kind}.{salt}"),
            kind: kind.into(),
            salt: salt.into(),
            params: BTreeMap::new(),
            inputs: BTreeMap::new(),
            sources: BTreeMap::new(),
            platform: Platform { libtorch: "test".into(), device: "cpu".into() },
        };
        let dir = store.temp_dir(&material.key()).unwrap();
        write(&dir.join(name));
        store.commit(&material.id, &material, &dir, 0.0, false).unwrap();
        material.key().0
    }

    /// Scores of `n_in` + `n_out` images, shifted by `shift` and wobbled by `salt`.
    fn scores(n_in: usize, n_out: usize, shift: f64, salt: usize) -> (Vec<f64>, Vec<f64>) {
        let a = (0..n_in).map(|i| ((i * 37 + salt * 11) % 101) as f64 / 10.0 + 1.0 + shift).collect();
        let b = (0..n_out).map(|i| ((i * 53 + salt * 7) % 97) as f64 / 10.0).collect();
        (a, b)
    }

    fn seeds(n: usize) -> Vec<(String, f64)> {
        (0..n).map(|i| ((i * 3).to_string(), 0.0)).collect()
    }

    #[test]
    fn the_paired_bootstrap_of_several_seeds_is_the_mean_of_the_per_seed_changes_on_the_same_resamples() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (n_in, n_out, resamples, boot_seed) = (120, 40, 300, 7);
        // Two seeds (0 and 3), the same networks, each side's scores of its own.
        let mut lists = Vec::new();
        let mut old = SideStages { sets: vec![("noise".into(), "Noise".into())], ..Default::default() };
        let mut new = old.clone();
        for (s, suffix) in [(0, ""), (1, "@seed3")] {
            for (side, shift, stages) in [(0, 0.0, &mut old), (1, 0.4, &mut new)] {
                let (a, b) = scores(n_in, n_out, shift, 2 * s + side);
                let key = put(&store, "score", &format!("{s}{side}"), files::SCORES, |p| {
                    safetensors(p, &[("in_scores", "F64", vec![n_in], f64s(&a)), ("out_scores", "F64", vec![n_out], f64s(&b))])
                });
                stages.keys.insert(format!("score.odin.noise{suffix}"), key);
                stages.keys.insert(format!("train.softmax{suffix}"), format!("net{s}"));
                stages.keys.insert("data.noise".into(), "images".into());
                lists.push((s, side, a, b));
            }
        }
        let row: RowKey = ("Noise".into(), "ODIN".into(), "auroc".into());
        let mut pairer = Pairer::new(Some(store), &old, &new, resamples, boot_seed);
        let Pairing::SameNetworks(Ok(d)) = pairer.pairing(&row, &seeds(2), &seeds(2)) else { panic!("a paired bootstrap") };
        // By hand: each replicate's change per seed on explicitly resampled lists, then the mean.
        let auroc = |a: &[f64], b: &[f64]| oodpipe_metrics::ood_metrics(a, b).unwrap().auroc;
        let side = |s: usize, side: usize| lists.iter().find(|l| l.0 == s && l.1 == side).map(|l| (&l.2, &l.3)).unwrap();
        let mut point = 0.0;
        let mut want = vec![0.0; resamples];
        for s in 0..2 {
            let ((a_in, a_out), (b_in, b_out)) = (side(s, 0), side(s, 1));
            point += 100.0 * (auroc(b_in, b_out) - auroc(a_in, a_out)) / 2.0;
            for (r, w) in want.iter_mut().enumerate() {
                let (ii, io) = resample_indices(boot_seed, r as u64, n_in, n_out);
                let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
                *w += 100.0 * (auroc(&pick(b_in, &ii), &pick(b_out, &io)) - auroc(&pick(a_in, &ii), &pick(a_out, &io))) / 2.0;
            }
        }
        assert!((d.estimate - point).abs() < 1e-9, "{} against {point}", d.estimate);
        let oodpipe_metrics::significance::Spread::Replicates(got) = &d.spread else { panic!("replicates") };
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{g} against {w}");
        }
        assert!(pairer.notes.is_empty(), "{:?}", pairer.notes);

        // Another network on one seed: different networks; a side without keys: unknown.
        let mut other = new.clone();
        other.keys.insert("train.softmax@seed3".into(), "another".into());
        assert_eq!(Pairer::new(None, &old, &other, 10, 0).pairing(&row, &seeds(2), &seeds(2)), Pairing::DifferentNetworks);
        let bare = SideStages::default();
        assert_eq!(Pairer::new(None, &old, &bare, 10, 0).pairing(&row, &seeds(2), &seeds(2)), Pairing::Unknown);
        // Other OOD images under the same networks: nothing pairs up.
        let mut moved = new.clone();
        moved.keys.insert("data.noise".into(), "other images".into());
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            Pairer::new(Some(store), &old, &moved, 10, 0).pairing(&row, &seeds(2), &seeds(2)),
            Pairing::SameNetworks(Err(NoBootstrap::ImagesDiffer))
        );
        // No store: the same networks, no bootstrap.
        assert_eq!(
            Pairer::new(None, &old, &new, 10, 0).pairing(&row, &seeds(2), &seeds(2)),
            Pairing::SameNetworks(Err(NoBootstrap::ScoresNotInStore))
        );
    }

    #[test]
    fn an_accuracy_change_is_paired_image_by_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = 50;
        let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
        let data = put(&store, "data", "cifar", &files::data(CIFAR10), |p| {
            safetensors(p, &[("test_labels", "I64", vec![n], labels.iter().flat_map(|x| x.to_le_bytes()).collect())])
        });
        // Logits over three classes: the old network is right on images i % 4 != 0, the new on i % 5 != 0.
        let logits = |right: fn(usize) -> bool| -> Vec<u8> {
            (0..n)
                .flat_map(|i| {
                    let guess = if right(i) { labels[i] as usize } else { (labels[i] as usize + 1) % 3 };
                    (0..3).map(move |k| if k == guess { 2.5f32 } else { -1.0f32 })
                })
                .flat_map(|x| x.to_le_bytes())
                .collect()
        };
        let mut sides = Vec::new();
        let old_right: fn(usize) -> bool = |i| i % 4 != 0;
        let new_right: fn(usize) -> bool = |i| i % 5 != 0;
        for (salt, right) in [("old", old_right), ("new", new_right)] {
            let key =
                put(&store, "outputs", salt, files::OUTPUTS, |p| safetensors(p, &[("test_logits", "F32", vec![n, 3], logits(right))]));
            let keys = [
                ("outputs.softmax.cifar10".to_string(), key),
                ("data.cifar10".into(), data.clone()),
                ("train.softmax".into(), "net".into()),
            ];
            sides.push((SideStages { keys: keys.into_iter().collect(), sets: vec![] }, right));
        }
        let row: RowKey = ("CIFAR-10".into(), "Baseline".into(), "accuracy".into());
        let mut pairer = Pairer::new(Some(store), &sides[0].0, &sides[1].0, 200, 3);
        let Pairing::SameNetworks(Ok(d)) = pairer.pairing(&row, &seeds(1), &seeds(1)) else {
            panic!("a paired bootstrap: {:?}", pairer.notes)
        };
        // Right on 37 of 50 (old) and 40 of 50 (new): +6 points.
        assert!((d.estimate - 6.0).abs() < 1e-9, "{}", d.estimate);
        let oodpipe_metrics::significance::Spread::Replicates(got) = &d.spread else { panic!("replicates") };
        for (r, g) in got.iter().enumerate() {
            let (idx, _) = resample_indices(3, r as u64, n, 0);
            let acc = |right: fn(usize) -> bool| idx.iter().filter(|&&i| right(i)).count() as f64 / n as f64;
            let want = 100.0 * (acc(sides[1].1) - acc(sides[0].1));
            assert!((g - want).abs() < 1e-9, "replicate {r}: {g} against {want}");
        }
    }
}
