//! Detectors written in Python: the config's `[python.<name>]` tables, each a detector whose
//! score is a Python file's `score(state, x, params)` (and optional `fit(train, params)`), run by
//! the stages crate's runner in a worker process like any detector. Why a table and not a file in
//! `detectors/`: a researcher's method in Python enters the pipeline without a line of Rust.
//!
//! ```toml
//! [python]
//! interpreter = ".venv/bin/python"   # optional: $OODPIPE_PYTHON first, else this, else python3
//!
//! [python.energy_np]
//! script = "methods/energy.py"       # the file with `score` (and `fit`)
//! label = "Energy (numpy)"           # its rows' name in Table 3, results.csv and the claims
//! model = "softmax"                  # the trained model it scores (default softmax)
//! features = false                   # whether it reads the pooled features and the head
//! k = 50                             # every other key: a hyperparameter, passed in `params`
//! ```
//!
//! What its stages are keyed on, besides the inputs (the model's outputs, the CIFAR-10 labels and,
//! with `features`, the features stages): the script's bytes and every local module it imports
//! (sources, [`local_files`]), its table (label, model, features, hyperparameters), and the
//! interpreter's identity ([`Interpreter`]: its executable, its version and every installed
//! distribution with its version), found once per process.

use crate::config::ModelKind;
use crate::detector::{Detector, ReportTable};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The config key of the tables.
pub const KEY: &str = "python";
/// The environment variable that names the interpreter (before the config's `python.interpreter`).
pub const ENV: &str = "OODPIPE_PYTHON";
/// The interpreter when neither names one.
pub const DEFAULT_INTERPRETER: &str = "python3";
/// The code version of a Python detector's score stages (the runner's and the stage's code).
pub const VERSION: &str = "python-1";

/// `[python]`: the interpreter and the detectors, in config order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PythonTables {
    /// `python.interpreter`.
    pub interpreter: Option<String>,
    pub detectors: indexmap::IndexMap<String, PythonDetector>,
}

/// One `[python.<name>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonDetector {
    /// The file that defines `score` (and optionally `fit`), relative to where oodpipe runs.
    pub script: PathBuf,
    /// Its rows' name (Table 3, results.csv, claims).
    pub label: String,
    /// The trained model whose outputs it scores.
    pub model: ModelKind,
    /// Whether it reads the pooled penultimate features and the head's weight and bias.
    pub features: bool,
    /// Every other key of the table, passed to `fit` and `score` as `params`.
    pub params: BTreeMap<String, Value>,
}

impl PythonTables {
    pub fn is_empty(&self) -> bool {
        self.interpreter.is_none() && self.detectors.is_empty()
    }

    /// The interpreter to run: `$OODPIPE_PYTHON`, else `python.interpreter`, else `python3`.
    pub fn interpreter(&self) -> String {
        match std::env::var(ENV) {
            Ok(v) if !v.is_empty() => v,
            _ => self.interpreter.clone().unwrap_or_else(|| DEFAULT_INTERPRETER.into()),
        }
    }
}

impl PythonDetector {
    /// Its description as a detector (leaked: a handful per process, for the registry's
    /// `&'static` type): Table 3, no tuning, no stage of its own.
    pub fn describe(&self, name: &str) -> &'static Detector {
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        Box::leak(Box::new(Detector {
            name: leak(name),
            label: leak(&self.label),
            model: self.model,
            table: ReportTable::Beyond,
            version: VERSION,
            features: self.features,
            ..Detector::FROM_OUTPUTS
        }))
    }

    /// The table as its stages are keyed on it (the script as written; its bytes are a source).
    pub fn key_value(&self) -> Value {
        let mut table = serde_json::Map::new();
        table.insert("script".into(), Value::String(self.script.display().to_string()));
        table.insert("label".into(), Value::String(self.label.clone()));
        table.insert("model".into(), Value::String(self.model.name().into()));
        table.insert("features".into(), Value::Bool(self.features));
        table.extend(self.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(table)
    }

    fn from_value(name: &str, value: Value) -> Result<PythonDetector, String> {
        let Value::Object(mut table) = value else {
            return Err(format!("python.{name}: expected a table (script, label and the hyperparameters)"));
        };
        let text = |table: &mut serde_json::Map<String, Value>, key: &str| -> Result<Option<String>, String> {
            match table.remove(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(format!("python.{name}.{key}: {other}: expected a string")),
            }
        };
        let script = text(&mut table, "script")?.ok_or_else(|| format!("python.{name}: missing key `script` (the Python file)"))?;
        let label = text(&mut table, "label")?.unwrap_or_else(|| name.to_string());
        let model = match text(&mut table, "model")? {
            None => ModelKind::ALL[0],
            Some(m) => ModelKind::find(&m).ok_or_else(|| {
                let known: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
                format!("python.{name}.model: \"{m}\": expected a registered model: {}", known.join(", "))
            })?,
        };
        let features = match table.remove("features") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(format!("python.{name}.features: {other}: expected true or false")),
        };
        for (key, value) in &table {
            if value.is_object() {
                return Err(format!("python.{name}.{key}: a table: a hyperparameter is a number, a string, a boolean or an array"));
            }
        }
        Ok(PythonDetector { script: PathBuf::from(script), label, model, features, params: table.into_iter().collect() })
    }

    /// Its problems: (key, value, expected). `name` must be a stage-id word no registered
    /// detector has, the script a file, the model trained, the label one no detector has.
    pub fn problems(&self, name: &str, trained: &[ModelKind]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let word = !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !word {
            out.push((
                format!("python.{name}"),
                format!("\"{name}\""),
                "a name of lowercase letters, digits and _, starting with a letter".into(),
            ));
        }
        if let Some(d) = crate::detector::find(name) {
            out.push((
                format!("python.{name}"),
                format!("\"{name}\""),
                format!("a name no registered detector has (detectors/{}.rs)", d.name),
            ));
        }
        if let Some(d) = crate::detector::ALL.iter().find(|d| d.label == self.label) {
            out.push((
                format!("python.{name}.label"),
                format!("\"{}\"", self.label),
                format!("a label no other detector has ({} has it)", d.name),
            ));
        }
        if self.label.is_empty() {
            out.push((format!("python.{name}.label"), "\"\"".into(), "a non-empty label".into()));
        }
        if !self.script.is_file() {
            out.push((
                format!("python.{name}.script"),
                format!("\"{}\"", self.script.display()),
                "a Python file (relative to where oodpipe runs) defining score(state, x, params)".into(),
            ));
        }
        if !trained.contains(&self.model) {
            out.push((format!("python.{name}.model"), format!("\"{}\"", self.model.name()), "a model of the config's `models`".into()));
        }
        out
    }
}

impl Serialize for PythonDetector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.key_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PythonDetector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PythonDetector::from_value("<name>", Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for PythonTables {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = serde_json::Map::new();
        if let Some(i) = &self.interpreter {
            map.insert("interpreter".into(), Value::String(i.clone()));
        }
        for (name, d) in &self.detectors {
            map.insert(name.clone(), d.key_value());
        }
        Value::Object(map).serialize(s)
    }
}

impl<'de> Deserialize<'de> for PythonTables {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Object(map) = Value::deserialize(d)? else {
            return Err(D::Error::custom("expected a table: `interpreter` and one [python.<name>] table per detector"));
        };
        let mut out = PythonTables::default();
        for (key, value) in map {
            if key == "interpreter" {
                match value {
                    Value::String(s) => out.interpreter = Some(s),
                    other => return Err(D::Error::custom(format!("python.interpreter: {other}: expected a path or a command name"))),
                }
            } else {
                out.detectors.insert(key.clone(), PythonDetector::from_value(&key, value).map_err(D::Error::custom)?);
            }
        }
        Ok(out)
    }
}

/// The script and every local module it imports, transitively: for `import a.b` or `from a.b
/// import c` (at any indentation), the files `a.py`, `a/__init__.py`, `a/b.py`, `a/b/__init__.py`
/// (and `a/b/c.py`) that exist beside the importing file; `from .x import y` beside it too. Sorted.
/// What is not found beside the script (numpy, the standard library) is the environment's.
pub fn local_files(script: &Path) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![script.to_path_buf()];
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for module in imported(&text) {
            let parts: Vec<&str> = module.trim_start_matches('.').split('.').filter(|p| !p.is_empty()).collect();
            let mut at = dir.clone();
            for part in parts {
                for candidate in [at.join(format!("{part}.py")), at.join(part).join("__init__.py")] {
                    if candidate.is_file() {
                        todo.push(candidate);
                    }
                }
                at = at.join(part);
            }
        }
    }
    seen.into_iter().collect()
}

/// The modules a Python source imports (`a.b` of `import a.b as c`; `a.b.c` and `a.b` of `from
/// a.b import c`; `.x` of `from .x import y`).
fn imported(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("import ") {
            for item in rest.split(',') {
                if let Some(m) = item.split_whitespace().next() {
                    out.push(m.to_string());
                }
            }
        } else if let Some(rest) = line.strip_prefix("from ") {
            let mut words = rest.split_whitespace();
            let (Some(module), Some("import")) = (words.next(), words.next()) else { continue };
            out.push(module.to_string());
            let names: String = words.collect::<Vec<_>>().join(" ");
            for name in names.trim_matches(|c| c == '(' || c == ')').split(',') {
                if let Some(n) = name.split_whitespace().next().filter(|n| *n != "*") {
                    let sep = if module.ends_with('.') { "" } else { "." };
                    out.push(format!("{module}{sep}{n}"));
                }
            }
        }
    }
    out
}

/// An interpreter's identity, what a Python detector's key holds of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpreter {
    /// `sys.executable` and the version (`/repo/.venv/bin/python (3.11.7)`).
    pub executable: String,
    /// Every installed distribution (importlib.metadata) with its version, by name (lowercase).
    pub distributions: BTreeMap<String, String>,
}

/// What the identity probe prints: one JSON object.
const PROBE: &str = "import sys, json, importlib.metadata as m\n\
d = {}\n\
for x in m.distributions():\n    n = x.metadata['Name']\n    if n: d[n.lower()] = x.version\n\
print(json.dumps({'executable': sys.executable, 'version': sys.version.split()[0], 'distributions': d}))";

/// The identity of `interpreter` (a path or a command on PATH), or why it could not be found;
/// asked once per process (`-I`: isolated, as the runner runs, so PYTHONPATH and the user's site
/// do not count).
pub fn identify(interpreter: &str) -> Result<Interpreter, String> {
    static SEEN: Mutex<BTreeMap<String, Result<Interpreter, String>>> = Mutex::new(BTreeMap::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.entry(interpreter.to_string()).or_insert_with(|| probe(interpreter)).clone()
}

fn probe(interpreter: &str) -> Result<Interpreter, String> {
    let out = std::process::Command::new(interpreter)
        .args(["-I", "-c", PROBE])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the Python interpreter `{interpreter}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("the Python interpreter `{interpreter}` failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the Python interpreter `{interpreter}` printed no identity ({e}): is it Python 3.8 or later?"))?;
    let distributions = v["distributions"]
        .as_object()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    Ok(Interpreter {
        executable: format!("{} ({})", v["executable"].as_str().unwrap_or(interpreter), v["version"].as_str().unwrap_or("?")),
        distributions,
    })
}

/// The key params of the interpreter: `@python interpreter` and one `@python environment:
/// <distribution>` per installed distribution (status says `python environment: numpy 2.3.1 ->
/// 2.3.2`); when it cannot be run, `@python interpreter` says why (the stage then fails, saying so).
pub fn interpreter_params(interpreter: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    match identify(interpreter) {
        Ok(i) => {
            out.insert("@python interpreter".into(), Value::String(i.executable));
            for (name, version) in i.distributions {
                out.insert(format!("@python environment: {name}"), Value::String(version));
            }
        }
        Err(why) => {
            out.insert("@python interpreter".into(), Value::String(format!("{interpreter}: {why}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_found_in_every_form() {
        let src = "import numpy as np\nimport helpers, pkg.sub as s  # comment\nfrom .near import thing\n  from lib.inner import (a, b)\nfrom x import *\n";
        assert_eq!(imported(src), ["numpy", "helpers", "pkg.sub", ".near", ".near.thing", "lib.inner", "lib.inner.a", "lib.inner.b", "x"]);
    }

    #[test]
    fn local_modules_are_followed_and_the_environment_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("lib")).unwrap();
        std::fs::write(d.join("main.py"), "import numpy\nfrom helpers import f\nimport lib.inner\n").unwrap();
        std::fs::write(d.join("helpers.py"), "from . import deep\n").unwrap();
        std::fs::write(d.join("deep.py"), "").unwrap();
        std::fs::write(d.join("unused.py"), "").unwrap();
        std::fs::write(d.join("lib/__init__.py"), "").unwrap();
        std::fs::write(d.join("lib/inner.py"), "").unwrap();
        let found: Vec<String> = local_files(&d.join("main.py")).iter().map(|p| p.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(found, ["deep.py", "helpers.py", "lib/__init__.py", "lib/inner.py", "main.py"]);
    }

    #[test]
    fn a_table_reads_its_keys_and_refuses_what_it_cannot_be() {
        let t: PythonTables =
            toml::from_str("interpreter = \"py\"\n[mine]\nscript = \"m.py\"\nlabel = \"Mine\"\nfeatures = true\nk = 50\nks = [1, 2]\n")
                .unwrap();
        assert_eq!(t.interpreter.as_deref(), Some("py"));
        let d = &t.detectors["mine"];
        assert_eq!((d.label.as_str(), d.model, d.features), ("Mine", ModelKind::ALL[0], true));
        assert_eq!(d.params.keys().collect::<Vec<_>>(), ["k", "ks"]);
        // Round trip through the config's JSON.
        let back: PythonTables = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let err = |s: &str| toml::from_str::<PythonTables>(s).unwrap_err().to_string();
        assert!(err("[a]\nlabel = \"A\"\n").contains("python.a: missing key `script`"));
        assert!(err("[a]\nscript = \"a.py\"\nmodel = \"resnet\"\n").contains("python.a.model: \"resnet\": expected a registered model"));
        assert!(err("[a]\nscript = \"a.py\"\n[a.sub]\nx = 1\n").contains("python.a.sub: a table"));
        let problems = PythonDetector { label: "Energy".into(), ..d.clone() }.problems("energy", &[ModelKind::ALL[0]]);
        let keys: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(keys, ["python.energy", "python.energy.label", "python.energy.script"], "{problems:?}");
    }
}
