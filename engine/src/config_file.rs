//! Loading a TOML file into a typed config, with errors a person can act on.
//!
//! serde's errors say what was wrong but not where. This module adds the file, the line and column
//! (from toml's spans) and the dotted key (from `serde_path_to_error`), so that a typo reads as
//! `pipeline.toml:14:1: key `tune.odin_epsilon`: unknown field ...` rather than a bare serde
//! message. The engine knows nothing of what the config means: it is generic over the type.

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// A config file that could not be read or does not fit the expected shape.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The dotted key the error is about, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem of one config file, reported together.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 1 {
            writeln!(f, "{} problems in the config:", self.0.len())?;
        }
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// The dotted paths (`train.gamma`, `tune.temperatures[2]`) where `value` has a null that
/// `default` does not: where a number was NaN or infinite, since serde_json writes those as null.
/// (`default` is the same config type with every field at its default; `Option` fields that are
/// unset by default are skipped.)
pub fn non_finite_paths(value: &serde_json::Value, default: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, d: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        use serde_json::Value::*;
        match (v, d) {
            (Null, Null) => {}
            (Null, _) => out.push(path.to_string()),
            (Object(a), Object(b)) => {
                for (k, x) in a {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(x, b.get(k).unwrap_or(&Null), &p, out);
                }
            }
            (Array(a), _) => {
                for (i, x) in a.iter().enumerate() {
                    if x.is_null() {
                        out.push(format!("{path}[{i}]"));
                    } else {
                        walk(x, &serde_json::Value::Bool(true), &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, default, "", &mut out);
    out
}

/// Reads and parses `path` into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    parse(&read(path)?, path)
}

/// The text of the config file at `path` (for [`parse`], and for [`position_of_key`] after it).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        position: None,
        key: None,
        message: format!("cannot read the config file: {e}"),
    })
}

/// Parses TOML `text` (read from `path`, named in errors) into `T`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let fail = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| ConfigError {
        file: path.to_path_buf(),
        position: span.map(|s| line_col(text, s.start)),
        key,
        message,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| fail(e.span(), None, e.message().to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != ".").then_some(key);
        let inner = e.inner();
        fail(inner.span(), key, inner.message().to_string())
    })
}

/// The 1-based line and column where the dotted `key` is written in TOML `text`, if it is
/// (for errors about a value that parsed but is not acceptable).
pub fn position_of_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *part)?;
        if i + 1 == parts.len() {
            return Some(line_col(text, k.span().start));
        }
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tune {
        temperatures: Vec<f64>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        seed: u64,
        tune: Tune,
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "seed = 1\n\n[tune]\ntemperatures = [1.0]\nodin_epsilon = [0.0]\n";
        let err = parse::<Top>(text, Path::new("pipeline.toml")).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.position.map(|p| p.0), Some(5), "{msg}");
        assert!(msg.starts_with("pipeline.toml:5:"), "{msg}");
        assert!(msg.contains("odin_epsilon"), "{msg}");
        assert!(msg.contains("tune"), "{msg}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let text = "seed = -3\n[tune]\ntemperatures = [1.0]\n";
        let err = parse::<Top>(text, Path::new("c.toml")).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("seed"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(1), "{err}");
        let text = "seed = 3\n[tune]\ntemperatures = [1.0, \"x\"]\n";
        let err = parse::<Top>(text, Path::new("c.toml")).unwrap_err();
        assert!(err.key.as_deref().unwrap().starts_with("tune.temperatures"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(3), "{err}");
    }

    #[test]
    fn keys_are_found_in_tables_and_dotted_forms() {
        let text = "seed = 1\n\n[model]\nwiden = 2\ndepth = 12\n[train]\nepochs = 3\n";
        assert_eq!(position_of_key(text, "model.depth"), Some((5, 1)));
        assert_eq!(position_of_key(text, "train.epochs"), Some((7, 1)));
        assert_eq!(position_of_key(text, "seed"), Some((1, 1)));
        assert_eq!(position_of_key(text, "model.nope"), None);
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = parse::<Top>("seed = \n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(1), "{err}");
    }
}
