//! Experiments: a config changed from the command line (`--set KEY=VALUE`) and swept over some of
//! its keys (`--sweep KEY=V1,V2,...`, or a `[sweep]` table in the config file), as DVC's
//! `exp run -S` and Hydra's multirun do.
//!
//! A value is written in TOML (`3`, `0.2`, `[0, 1]`, `"step"`); a word that is not TOML reads as a
//! string (`--set train.schedule=step`). Every assignment is checked exactly as the file is: an
//! unknown key, a wrong type, NaN or an infinity, or a value out of range is refused naming where
//! it came from (`--set`, `--sweep`, the file's `[sweep]`) and the key, and nothing runs.
//!
//! A sweep is the cross product of its keys' values, the first key varying slowest (`grid`, the
//! default), or, with `mode = "zip"` in `[sweep]` (or `--sweep-mode zip`), their i-th values taken
//! together (lists of one length): four models' weights swept side by side need three points, not
//! 81, when each model reads only its own key. Each point is the config with its assignments. The points' stage graphs are merged so that a stage
//! whose key does not depend on the swept keys is built once for all of them
//! (`oodpipe_engine::variants`).

use oodpipe_engine::config_file::{ConfigError, ConfigErrors};
use oodpipe_plan::Config;
use serde_json::Value;
use std::path::PathBuf;

/// What the command line adds to the config file.
#[derive(Debug, Clone, Default)]
pub struct Experiment {
    /// `--set KEY=VALUE`, in order (a later one wins).
    pub sets: Vec<String>,
    /// `--sweep KEY=V1,V2,...`, in order.
    pub sweeps: Vec<String>,
    /// `--sweep-mode`: `grid` or `zip`, over the file's `mode`.
    pub mode: Option<SweepMode>,
}

/// How a sweep's keys combine into points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepMode {
    /// The cross product, the first key varying slowest.
    Grid,
    /// The i-th values of every key together.
    Zip,
}

/// A key set to a value, and where that came from (for errors and records).
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub key: String,
    pub value: toml::Value,
    /// `--set train.epochs=3`, `--sweep methods.bin.zeta=...`, `pipeline.toml [sweep]`.
    pub origin: String,
}

/// The keys a sweep varies and their values, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub axes: Vec<(String, Vec<toml::Value>)>,
    /// Where the sweep was declared (for errors).
    pub origins: Vec<String>,
    pub mode: SweepMode,
}

/// A value written on the command line: TOML, else the text as a string.
pub fn parse_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// A value as the sweep's ids and tables show it: TOML's inline form.
pub fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string().replace(", ", ","),
    }
}

fn bad(origin: &str, key: Option<&str>, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { file: PathBuf::from(origin), position: None, key: key.map(str::to_string), message }])
}

/// `KEY=VALUE` of `--set`.
pub fn parse_set(arg: &str) -> Result<Assignment, ConfigErrors> {
    let origin = format!("--set {arg}");
    match arg.split_once('=') {
        Some((key, raw)) if !key.trim().is_empty() => {
            Ok(Assignment { key: key.trim().to_string(), value: parse_value(raw.trim()), origin })
        }
        _ => Err(bad(&origin, None, "expected KEY=VALUE, e.g. --set train.epochs=3".into())),
    }
}

/// Splits `V1,V2,...` at the commas outside brackets, braces and quotes.
pub fn split_values(raw: &str) -> Vec<String> {
    let (mut out, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None::<char>);
    for c in raw.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('[' | '{', None) => depth += 1,
            (']' | '}', None) => depth -= 1,
            (',', None) if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out
}

/// The sweep of the config file's `[sweep]` table (each leaf a key's list of values) and the
/// command line's `--sweep`s (which replace the file's values of the same key).
pub fn sweep(
    file_table: Option<&toml::Table>,
    file: &str,
    args: &[String],
    mode: Option<SweepMode>,
) -> Result<Option<Sweep>, ConfigErrors> {
    let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
    let mut origins: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let file_origin = format!("{file} [sweep]");
    let mut table = file_table.cloned().unwrap_or_default();
    let file_mode = match table.remove("mode") {
        None => None,
        Some(toml::Value::String(m)) if m == "grid" => Some(SweepMode::Grid),
        Some(toml::Value::String(m)) if m == "zip" => Some(SweepMode::Zip),
        Some(other) => {
            problems.extend(bad(&file_origin, Some("mode"), format!("{other}: expected \"grid\" or \"zip\"")).0);
            None
        }
    };
    let mode = mode.or(file_mode).unwrap_or(SweepMode::Grid);
    fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in table {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(t) => leaves(&key, t, out),
                other => out.push((key, other.clone())),
            }
        }
    }
    let mut from_file = Vec::new();
    leaves("", &table, &mut from_file);
    for (key, v) in from_file {
        match v {
            toml::Value::Array(values) if !values.is_empty() => {
                axes.push((key, values));
                origins.push(file_origin.clone());
            }
            _ => problems
                .extend(bad(&file_origin, Some(&key), "expected a non-empty list of the values to sweep, e.g. [0.01, 0.05]".into()).0),
        }
    }
    for arg in args {
        let origin = format!("--sweep {arg}");
        let Some((key, raw)) = arg.split_once('=').filter(|(k, r)| !k.trim().is_empty() && !r.trim().is_empty()) else {
            problems.extend(bad(&origin, None, "expected KEY=V1,V2,..., e.g. --sweep methods.bin.zeta=0.01,0.05".into()).0);
            continue;
        };
        let values: Vec<toml::Value> = split_values(raw).iter().map(|v| parse_value(v)).collect();
        let key = key.trim().to_string();
        match axes.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                axes[i].1 = values;
                origins[i] = origin;
            }
            None => {
                axes.push((key, values));
                origins.push(origin);
            }
        }
    }
    for (i, (key, values)) in axes.iter().enumerate() {
        let shown: Vec<String> = values.iter().map(show).collect();
        if let Some(twice) = shown.iter().enumerate().find(|(j, v)| shown[..*j].contains(v)) {
            problems.extend(bad(&origins[i], Some(key), format!("the value {} is listed twice", twice.1)).0);
        }
    }
    if mode == SweepMode::Zip && axes.iter().any(|(_, v)| v.len() != axes[0].1.len()) {
        let lengths: Vec<String> = axes.iter().map(|(k, v)| format!("{k}: {}", v.len())).collect();
        problems.extend(bad(&file_origin, Some("mode"), format!("\"zip\" takes lists of one length; here {}", lengths.join(", "))).0);
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    Ok((!axes.is_empty()).then_some(Sweep { axes, origins, mode }))
}

impl Sweep {
    /// Each point's assignments: the cross product of the axes, the first key varying slowest, or
    /// (zip) their i-th values together.
    pub fn points(&self) -> Vec<Vec<Assignment>> {
        if self.mode == SweepMode::Zip {
            let n = self.axes.first().map(|(_, v)| v.len()).unwrap_or(0);
            return (0..n)
                .map(|i| {
                    self.axes
                        .iter()
                        .zip(&self.origins)
                        .map(|((key, values), origin)| Assignment { key: key.clone(), value: values[i].clone(), origin: origin.clone() })
                        .collect()
                })
                .collect();
        }
        let mut points: Vec<Vec<Assignment>> = vec![Vec::new()];
        for ((key, values), origin) in self.axes.iter().zip(&self.origins) {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut p = p.clone();
                        p.push(Assignment { key: key.clone(), value: v.clone(), origin: origin.clone() });
                        p
                    })
                })
                .collect();
        }
        points
    }
}

/// Whether a TOML value holds NaN or an infinity.
fn non_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(f) => !f.is_finite(),
        toml::Value::Array(a) => a.iter().any(non_finite),
        toml::Value::Table(t) => t.values().any(non_finite),
        _ => false,
    }
}

/// Sets the value at a dotted key of a JSON tree, making the tables on the way.
fn set_dotted(tree: &mut Value, key: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!("`{}` is not a table, so `{key}` is not a key", parts[..i].join(".")));
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        node = map.entry(part.to_string()).or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Why `key` cannot be set, when it is a key of a `[python.<name>]` table the config does not
/// have: its hyperparameters are the keys the table declares.
fn unknown_python_key(config: &Config, key: &str) -> Option<String> {
    let rest = key.strip_prefix(&format!("{}.", oodpipe_plan::python::KEY))?;
    let (name, field) = rest.split_once('.')?;
    let table = config.python.detectors.get(name)?;
    let known = ["script", "label", "model", "features"].contains(&field) || table.params.contains_key(field);
    (!known).then(|| {
        let params: Vec<&str> = table.params.keys().map(String::as_str).collect();
        format!(
            "not a key of [python.{name}] (its hyperparameters: {}); a hyperparameter is declared in the table first",
            if params.is_empty() { "none".to_string() } else { params.join(", ") }
        )
    })
}

/// `tree` without its null leaves (recursively).
fn drop_nulls(tree: &mut Value) {
    if let Value::Object(map) = tree {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(drop_nulls);
    }
}

/// The assignment an error at `key` is about: the one whose key is `key` or above or below it.
pub fn blame<'a>(assignments: &'a [Assignment], key: &str) -> Option<&'a Assignment> {
    let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}.")) || a.starts_with(&format!("{b}["));
    assignments.iter().rev().find(|a| under(key, &a.key) || under(&a.key, key))
}

/// `config` with `assignments` applied in order; every problem names the assignment's origin and
/// key. The OOD sets keep their order (new ones follow in the order they were set).
pub fn apply(config: &Config, assignments: &[Assignment]) -> Result<Config, ConfigErrors> {
    if assignments.is_empty() {
        return Ok(config.clone());
    }
    let mut tree = serde_json::to_value(config).expect("config serialises");
    let mut problems = Vec::new();
    for a in assignments {
        if non_finite(&a.value) {
            problems.extend(bad(&a.origin, Some(&a.key), "not a finite number (NaN and infinities are refused)".into()).0);
            continue;
        }
        // A Python detector's table takes any key as a hyperparameter: a typo would be a new one.
        if let Some(message) = unknown_python_key(config, &a.key) {
            problems.extend(bad(&a.origin, Some(&a.key), message).0);
            continue;
        }
        let value = serde_json::to_value(&a.value).expect("a TOML value converts to JSON");
        if let Err(message) = set_dotted(&mut tree, &a.key, value) {
            problems.extend(bad(&a.origin, Some(&a.key), message).0);
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    // An unset optional field serialises as null, which TOML has no word for (a detector's own
    // table, `detector.vim.dim`): leave it out, as the file does.
    drop_nulls(&mut tree);
    let mut out: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names an unknown field below the table it was found in.
        let key = match message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            Some(field) if path == "." || path.is_empty() => field.to_string(),
            Some(field) if path == field || path.ends_with(&format!(".{field}")) => path,
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        let origin = blame(assignments, &key).map(|a| a.origin.as_str()).unwrap_or("--set");
        bad(origin, Some(&key), message)
    })?;
    // JSON objects are sorted: put the OOD sets back in the config's order.
    let mut ood = indexmap::IndexMap::new();
    for name in config.ood.keys().chain(out.ood.keys().filter(|k| !config.ood.contains_key(*k)).collect::<Vec<_>>()) {
        if let Some(set) = out.ood.get(name) {
            ood.insert(name.clone(), set.clone());
        }
    }
    out.ood = ood;
    out.sweep = None;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(arg: &str) -> Assignment {
        parse_set(arg).unwrap()
    }

    #[test]
    fn values_are_toml_and_a_bare_word_is_a_string() {
        assert_eq!(parse_value("3"), toml::Value::Integer(3));
        assert_eq!(parse_value("[0, 1]"), toml::Value::Array(vec![toml::Value::Integer(0), toml::Value::Integer(1)]));
        assert_eq!(parse_value("step"), toml::Value::String("step".into()));
        assert_eq!(parse_value("\"a b\""), toml::Value::String("a b".into()));
        assert!(parse_value("nan").as_float().unwrap().is_nan());
        assert_eq!(split_values("0.1, 0.2,[1, 2],\"a,b\""), ["0.1", "0.2", "[1, 2]", "\"a,b\""]);
    }

    #[test]
    fn assignments_apply_like_the_file_and_keep_the_sets_order() {
        let base = Config::default();
        let c = apply(&base, &[set("train.seeds=[0,1]"), set("tune.temperatures=[1.0, 10.0]"), set("methods.bin.zeta=0.2")]).unwrap();
        assert_eq!(c.train.seeds, Some(vec![0, 1]));
        assert_eq!(c.tune.temperatures, [1.0, 10.0]);
        assert_eq!(c.methods.field("bin", "zeta"), Some(&serde_json::json!(0.2)));
        assert_eq!(c.ood.keys().collect::<Vec<_>>(), base.ood.keys().collect::<Vec<_>>());
        // Integers where floats are expected, as in the file.
        assert_eq!(apply(&base, &[set("train.lr=1")]).unwrap().train.lr, 1.0);
    }

    #[test]
    fn an_assignment_of_the_value_a_config_has_changes_nothing_detector_tables_included() {
        // The default config: its [detector.vim] holds an unset `dim` (null), which must survive.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
        let base: Config = oodpipe_engine::config_file::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert!(serde_json::to_value(&base).unwrap()["detector"]["vim"]["dim"].is_null());
        let same = apply(&base, &[set(&format!("methods.bin.zeta={}", base.methods.field("bin", "zeta").unwrap()))]).unwrap();
        assert_eq!(serde_json::to_value(&same).unwrap(), serde_json::to_value(&base).unwrap());
    }

    #[test]
    fn every_bad_assignment_names_its_origin_and_key() {
        let base = Config::default();
        let unknown = apply(&base, &[set("train.epoch=3")]).unwrap_err().to_string();
        assert!(unknown.starts_with("--set train.epoch=3: key `train.epoch`: unknown field"), "{unknown}");
        let typed = apply(&base, &[set("train.epochs=many")]).unwrap_err().to_string();
        assert!(typed.contains("--set train.epochs=many") && typed.contains("`train.epochs`"), "{typed}");
        let nan = apply(&base, &[set("train.lr=nan")]).unwrap_err().to_string();
        assert!(nan.contains("--set train.lr=nan: key `train.lr`: not a finite number"), "{nan}");
        let inf = apply(&base, &[set("tune.temperatures=[1.0, inf]")]).unwrap_err().to_string();
        assert!(inf.contains("not a finite number"), "{inf}");
        let deep = apply(&base, &[set("train.lr.x=1")]).unwrap_err().to_string();
        assert!(deep.contains("`train.lr` is not a table"), "{deep}");
        assert!(parse_set("train.epochs").is_err());
    }

    #[test]
    fn a_sweep_is_the_cross_product_with_the_first_key_slowest() {
        let mut table = toml::Table::new();
        table.insert("methods".into(), toml::Value::Table(toml::toml! { [vib] beta = [0.001, 0.005] }));
        let s = sweep(Some(&table), "c.toml", &["methods.bin.zeta=0.1,0.2".into()], None).unwrap().unwrap();
        let points: Vec<Vec<String>> =
            s.points().iter().map(|p| p.iter().map(|a| format!("{}={}", a.key, show(&a.value))).collect()).collect();
        assert_eq!(
            points,
            [
                ["methods.vib.beta=0.001", "methods.bin.zeta=0.1"],
                ["methods.vib.beta=0.001", "methods.bin.zeta=0.2"],
                ["methods.vib.beta=0.005", "methods.bin.zeta=0.1"],
                ["methods.vib.beta=0.005", "methods.bin.zeta=0.2"]
            ]
        );
        // The command line replaces the file's values of a key.
        let s = sweep(Some(&table), "c.toml", &["methods.vib.beta=0.01".into()], None).unwrap().unwrap();
        assert_eq!(s.axes.len(), 1);
        assert_eq!(s.origins[0], "--sweep methods.vib.beta=0.01");
        assert!(sweep(None, "c.toml", &["x=".into()], None).is_err());
        assert!(sweep(None, "c.toml", &["x=1,1".into()], None).unwrap_err().to_string().contains("listed twice"));
        // Zip: the i-th values together; lists of one length.
        let zipped = sweep(None, "c.toml", &["a=1,2".into(), "b=3,4".into()], Some(SweepMode::Zip)).unwrap().unwrap();
        let points: Vec<String> = zipped.points().iter().map(|p| p.iter().map(|a| show(&a.value)).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(points, ["1 3", "2 4"]);
        assert!(sweep(None, "c.toml", &["a=1,2".into(), "b=3".into()], Some(SweepMode::Zip)).is_err());
    }
}
