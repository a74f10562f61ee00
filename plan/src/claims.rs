//! The paper's claims, as data: `configs/claims.toml` (config key `report.claims`).
//!
//! A paper is judged on the sentences of its results section more than on any one cell, so the
//! report checks them (`claims.md`, computed in the stages crate). Each claim is a sentence of the
//! paper with the comparisons that test it: `odin > baseline_t` (the first is better on each
//! metric: higher AUROC, lower FPR) or `binc ~ softmax` (the two differ by less than `margin`
//! points), on `metrics`, on every OOD set of the config or the `sets` named. Sides are registered
//! detectors for the OOD metrics and models for `accuracy`.
//!
//! The file is checked when the plan is built, so a typo fails `oodpipe run` at once, naming the
//! file, the line and the value, rather than the report an hour later. Sets and detectors the
//! config does not run are not errors (the default claims serve any config): their comparisons
//! are listed as not run.

use crate::config::ModelKind;
use crate::metric::Metric;
use oodpipe_engine::config_file::{ConfigError, ConfigErrors};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    #[serde(default)]
    claim: Vec<ClaimText>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimText {
    paper: String,
    compare: Vec<String>,
    metrics: Vec<String>,
    #[serde(default)]
    sets: Option<Vec<String>>,
    #[serde(default)]
    margin: Option<f64>,
}

/// How the two sides of a comparison are claimed to relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    /// `a > b`: a is better than b.
    Better,
    /// `a ~ b`: a and b differ by less than the claim's margin.
    Equivalent,
}

/// One `a > b` or `a ~ b` of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub relation: Relation,
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.relation {
            Relation::Better => ">",
            Relation::Equivalent => "~",
        };
        write!(f, "{} {op} {}", self.a, self.b)
    }
}

/// A claim of the paper, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The paper's sentence.
    pub paper: String,
    pub comparisons: Vec<Comparison>,
    pub metrics: Vec<Metric>,
    /// OOD set names; None: every set of the config. Not used for `accuracy`.
    pub sets: Option<Vec<String>>,
    /// In points (percent), for `~`.
    pub margin: Option<f64>,
}

/// Reads and checks a claims file: every problem at once, each with the file, its line and what
/// was expected.
pub fn load(path: &Path) -> Result<Vec<Claim>, ConfigErrors> {
    let text = oodpipe_engine::config_file::read(path).map_err(|e| ConfigErrors(vec![e]))?;
    parse(&text, path)
}

/// Parses and checks the text of a claims file read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Claim>, ConfigErrors> {
    let file: ClaimsFile = oodpipe_engine::config_file::parse(text, path).map_err(|e| ConfigErrors(vec![e]))?;
    let mut problems = Vec::new();
    let mut problem = |needle: &str, key: String, message: String| {
        let position = text.find(needle).map(|at| {
            let before = &text[..at];
            (before.matches('\n').count() + 1, at - before.rfind('\n').map_or(0, |i| i + 1) + 1)
        });
        problems.push(ConfigError { file: path.to_path_buf(), position, key: Some(key), message });
    };
    let detectors: Vec<&str> = crate::detector::ALL.iter().map(|d| d.name).collect();
    let models: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
    let mut claims = Vec::new();
    for (i, c) in file.claim.iter().enumerate() {
        let key = |field: &str| format!("claim[{i}].{field}");
        let mut metrics = Vec::new();
        for m in &c.metrics {
            match Metric::from_name(m) {
                Some(metric) => metrics.push(metric),
                None => problem(&format!("\"{m}\""), key("metrics"), format!("`{m}`: expected one of {}", Metric::names().join(", "))),
            }
        }
        if c.metrics.is_empty() {
            problem(&c.paper, key("metrics"), "empty: expected at least one metric".into());
        }
        let accuracy = metrics.contains(&Metric::Accuracy);
        if accuracy && metrics.len() > 1 {
            problem(&c.paper, key("metrics"), "`accuracy` compares models, the OOD metrics detectors: give them separate claims".into());
        }
        let (sides, what) = if accuracy { (&models, "a model") } else { (&detectors, "a registered detector (detectors/mod.rs)") };
        let mut comparisons = Vec::new();
        for text in &c.compare {
            match parse_comparison(text) {
                Ok(cmp) => {
                    for side in [&cmp.a, &cmp.b] {
                        if !sides.contains(&side.as_str()) {
                            problem(
                                &format!("\"{text}\""),
                                key("compare"),
                                format!("`{side}` in `{text}`: expected {what}: {}", sides.join(", ")),
                            );
                        }
                    }
                    if cmp.relation == Relation::Equivalent && c.margin.is_none_or(|m| m <= 0.0 || !m.is_finite()) {
                        problem(&format!("\"{text}\""), key("margin"), format!("`{text}` needs a positive `margin` (in points) for `~`"));
                    }
                    comparisons.push(cmp);
                }
                Err(message) => problem(&format!("\"{text}\""), key("compare"), message),
            }
        }
        if c.compare.is_empty() {
            problem(&c.paper, key("compare"), "empty: expected at least one comparison".into());
        }
        claims.push(Claim { paper: c.paper.clone(), comparisons, metrics, sets: c.sets.clone(), margin: c.margin });
    }
    if problems.is_empty() { Ok(claims) } else { Err(ConfigErrors(problems)) }
}

/// `a > b` or `a ~ b`.
fn parse_comparison(text: &str) -> Result<Comparison, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let relation = match parts.as_slice() {
        [_, ">", _] => Relation::Better,
        [_, "~", _] => Relation::Equivalent,
        _ => return Err(format!("`{text}`: expected `a > b` (a is better) or `a ~ b` (within the margin)")),
    };
    Ok(Comparison { a: parts[0].to_string(), b: parts[2].to_string(), relation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_claims_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/claims.toml");
        let claims = load(&path).unwrap();
        assert!(claims.len() >= 6);
        assert!(claims.iter().any(|c| c.metrics == [Metric::Accuracy]));
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let text = "[[claim]]\npaper = \"A\"\ncompare = [\"odin > basline\"]\nmetrics = [\"auroc\", \"aucroc\"]\n\n\
                    [[claim]]\npaper = \"B\"\ncompare = [\"bin ~ softmax\", \"bin >> softmax\"]\nmetrics = [\"accuracy\"]\n";
        let err = parse(text, Path::new("claims.toml")).unwrap_err().to_string();
        assert!(err.contains("claims.toml:3:") && err.contains("`basline`"), "{err}");
        assert!(err.contains("claims.toml:4:") && err.contains("`aucroc`"), "{err}");
        assert!(err.contains("claims.toml:8:") && err.contains("positive `margin`"), "{err}");
        assert!(err.contains("`bin >> softmax`: expected `a > b`"), "{err}");
        let unknown = parse("[[claim]]\npaper = \"A\"\ncompare = []\nmetrics = []\nnote = 1\n", Path::new("c.toml")).unwrap_err();
        assert!(unknown.to_string().contains("note"), "{unknown}");
    }
}
