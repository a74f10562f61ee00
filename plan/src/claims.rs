//! The paper's claims, as data: `configs/claims.toml` (config key `report.claims`).
//!
//! A paper is judged on the sentences of its results section more than on any one cell, so the
//! report checks them (`claims.md`, computed in the stages crate). Each claim is a passage of the
//! paper in parts, one per thing it says (`[[claim.part]]`, `says`), each with the comparisons that
//! test it: `odin > baseline_t` (the first is better on each metric: higher AUROC, lower FPR) or
//! `binc ~ softmax` (the two differ by less than `margin` points), on `metrics`, on every OOD set
//! of the config or the `sets` named. Sides are registered detectors for the OOD metrics and
//! models for `accuracy`. A part that cannot be tested says why (`untested = "..."`), and a claim
//! with such a part never reads "holds". A claim written with `compare` and `metrics` of its own
//! (no parts) is one part, the whole passage.
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
    #[serde(default)]
    hyperparameter: Vec<Hyperparameter>,
}

/// What the paper says of one of its hyper-parameters (Section 5.3), checked by a sweep of its
/// config key (`configs/tuning.toml`): the paper's value *minimizes* the validation FPR at 95%
/// TPR on every OOD set (tested, point against point, as a claim), or the paper *sets* it (not
/// tuned: the sweep shows what other values give, without a verdict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameter {
    /// The config key (`methods.vib.beta`); its default is the paper's value.
    pub key: String,
    /// The paper's sentence.
    pub paper: String,
    pub claim: HyperparameterClaim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HyperparameterClaim {
    Minimizes,
    Set,
}

/// The hyper-parameter claims of a claims file (see [`Hyperparameter`]).
pub fn load_hyperparameters(path: &Path) -> Result<Vec<Hyperparameter>, ConfigErrors> {
    let text = oodpipe_engine::config_file::read(path).map_err(|e| ConfigErrors(vec![e]))?;
    let file: ClaimsFile = oodpipe_engine::config_file::parse(&text, path).map_err(|e| ConfigErrors(vec![e]))?;
    Ok(file.hyperparameter)
}

/// A claim as written: its passage, and its parts, or (a claim of one part) the part's fields
/// inline. (The fields are spelled out twice: serde refuses unknown keys only without `flatten`.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimText {
    paper: String,
    #[serde(default)]
    part: Vec<PartText>,
    #[serde(default)]
    compare: Vec<String>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    sets: Option<Vec<String>>,
    #[serde(default)]
    margin: Option<f64>,
    #[serde(default)]
    untested: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartText {
    says: String,
    #[serde(default)]
    compare: Vec<String>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    sets: Option<Vec<String>>,
    #[serde(default)]
    margin: Option<f64>,
    #[serde(default)]
    untested: Option<String>,
}

/// A part's fields, wherever they were written.
#[derive(Debug, Clone, Default)]
struct PartFields {
    compare: Vec<String>,
    metrics: Vec<String>,
    sets: Option<Vec<String>>,
    margin: Option<f64>,
    untested: Option<String>,
}

impl ClaimText {
    fn inline(&self) -> PartFields {
        PartFields {
            compare: self.compare.clone(),
            metrics: self.metrics.clone(),
            sets: self.sets.clone(),
            margin: self.margin,
            untested: self.untested.clone(),
        }
    }
}

impl PartText {
    fn fields(&self) -> PartFields {
        PartFields {
            compare: self.compare.clone(),
            metrics: self.metrics.clone(),
            sets: self.sets.clone(),
            margin: self.margin,
            untested: self.untested.clone(),
        }
    }
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

/// A claim of the paper: its passage, in parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The paper's passage.
    pub paper: String,
    pub parts: Vec<Part>,
}

/// One thing a claim says, and how it is tested (or why it is not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// What this part says, in words (the passage itself for a claim of one part).
    pub says: String,
    pub comparisons: Vec<Comparison>,
    pub metrics: Vec<Metric>,
    /// OOD set names; None: every set of the config. Not used for `accuracy`.
    pub sets: Option<Vec<String>>,
    /// In points (percent), for `~`.
    pub margin: Option<f64>,
    /// Why it is not tested (then it has no comparisons).
    pub untested: Option<String>,
}

/// Reads and checks a claims file: every problem at once, each with the file, its line and what
/// was expected.
pub fn load(path: &Path) -> Result<Vec<Claim>, ConfigErrors> {
    load_with(path, &[])
}

/// [`load`], with the config's Python detectors (`python`, their names) as sides too.
pub fn load_with(path: &Path, python: &[&str]) -> Result<Vec<Claim>, ConfigErrors> {
    let text = oodpipe_engine::config_file::read(path).map_err(|e| ConfigErrors(vec![e]))?;
    parse_with(&text, path, python)
}

/// Parses and checks the text of a claims file read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Claim>, ConfigErrors> {
    parse_with(text, path, &[])
}

/// [`parse`], with the config's Python detectors (`python`, their names) as sides too.
pub fn parse_with(text: &str, path: &Path, python: &[&str]) -> Result<Vec<Claim>, ConfigErrors> {
    let file: ClaimsFile = oodpipe_engine::config_file::parse(text, path).map_err(|e| ConfigErrors(vec![e]))?;
    let mut problems = Vec::new();
    let mut problem = |needle: &str, key: String, message: String| {
        let position = text.find(needle).map(|at| {
            let before = &text[..at];
            (before.matches('\n').count() + 1, at - before.rfind('\n').map_or(0, |i| i + 1) + 1)
        });
        problems.push(ConfigError { file: path.to_path_buf(), position, key: Some(key), message });
    };
    let detectors: Vec<&str> = crate::detector::ALL.iter().map(|d| d.name).chain(python.iter().copied()).collect();
    let models: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
    let mut claims = Vec::new();
    for (i, c) in file.claim.iter().enumerate() {
        let inline = c.inline();
        if (!inline.compare.is_empty() || !inline.metrics.is_empty() || inline.untested.is_some()) && !c.part.is_empty() {
            problem(&c.paper, format!("claim[{i}]"), "give the comparisons either in the claim or in its parts, not both".into());
        }
        let texts: Vec<(String, PartFields, String)> = if c.part.is_empty() {
            vec![(c.paper.clone(), inline, format!("claim[{i}]"))]
        } else {
            c.part.iter().enumerate().map(|(j, p)| (p.says.clone(), p.fields(), format!("claim[{i}].part[{j}]"))).collect()
        };
        let mut parts = Vec::new();
        for (says, fields, at) in texts {
            parts.push(check_part(says, &fields, &at, &c.paper, &detectors, &models, &mut problem));
        }
        claims.push(Claim { paper: c.paper.clone(), parts });
    }
    if problems.is_empty() { Ok(claims) } else { Err(ConfigErrors(problems)) }
}

/// One part's fields, checked (each problem told to `problem` with its key under `at`).
fn check_part(
    says: String,
    c: &PartFields,
    at: &str,
    paper: &str,
    detectors: &[&str],
    models: &[&str],
    problem: &mut impl FnMut(&str, String, String),
) -> Part {
    let key = |field: &str| format!("{at}.{field}");
    if let Some(why) = &c.untested {
        if !c.compare.is_empty() || !c.metrics.is_empty() {
            problem(why, key("untested"), "an untested part has no `compare` or `metrics`".into());
        }
        if why.trim().is_empty() {
            problem(paper, key("untested"), "empty: say why the part is not tested".into());
        }
        return Part { says, comparisons: Vec::new(), metrics: Vec::new(), sets: None, margin: None, untested: Some(why.clone()) };
    }
    let mut metrics = Vec::new();
    for m in &c.metrics {
        match Metric::from_name(m) {
            Some(metric) => metrics.push(metric),
            None => problem(&format!("\"{m}\""), key("metrics"), format!("`{m}`: expected one of {}", Metric::names().join(", "))),
        }
    }
    if c.metrics.is_empty() {
        problem(paper, key("metrics"), "empty: expected at least one metric".into());
    }
    let accuracy = metrics.contains(&Metric::Accuracy);
    if accuracy && metrics.len() > 1 {
        problem(paper, key("metrics"), "`accuracy` compares models, the OOD metrics detectors: give them separate parts".into());
    }
    let (sides, what) =
        if accuracy { (models, "a model") } else { (detectors, "a registered detector (detectors/mod.rs) or a [python.<name>] one") };
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
        problem(paper, key("compare"), "empty: expected at least one comparison (or `untested = \"why\"`)".into());
    }
    Part { says, comparisons, metrics, sets: c.sets.clone(), margin: c.margin, untested: None }
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
        assert!(claims.iter().any(|c| c.parts[0].metrics == [Metric::Accuracy]));
        // Claim 5's two sentences are both tested; claim 6's "slight" is said to be untested.
        assert_eq!(claims[4].parts.len(), 2);
        assert!(claims[4].parts.iter().all(|p| p.untested.is_none() && !p.comparisons.is_empty()));
        assert!(claims[5].parts.iter().any(|p| p.untested.is_some()));
    }

    #[test]
    fn a_claim_in_parts_and_an_untested_part() {
        let text = "[[claim]]\npaper = \"A beats B, slightly.\"\n\
                    [[claim.part]]\nsays = \"A beats B\"\ncompare = [\"odin > baseline\"]\nmetrics = [\"auroc\"]\nsets = [\"gaussian\"]\n\
                    [[claim.part]]\nsays = \"slightly\"\nuntested = \"no size\"\n";
        let claims = parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(claims[0].parts.len(), 2);
        assert_eq!(claims[0].parts[0].sets, Some(vec!["gaussian".to_string()]));
        assert_eq!(claims[0].parts[1].untested.as_deref(), Some("no size"));
        // Inline fields and parts at once, an untested part with comparisons: refused, named.
        let both = "[[claim]]\npaper = \"P\"\ncompare = [\"odin > baseline\"]\nmetrics = [\"auroc\"]\n\
                    [[claim.part]]\nsays = \"s\"\nuntested = \"u\"\ncompare = [\"odin > baseline\"]\n";
        let err = parse(both, Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("either in the claim or in its parts") && err.contains("claim[0].part[0].untested"), "{err}");
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
