//! The stage graph: stages with their input edges, checked, ordered, and rendered.
//!
//! Built once from the stage specs; it refuses duplicate ids, unknown inputs and cycles, and keeps a
//! topological order (inputs first, ties in declaration order, so runs are deterministic). Targets
//! on the command line name a stage id or a dotted prefix of ids (`train` means every `train.*`),
//! or, where no stage has the id itself, its variants (`train.bin` means every `train.bin@...`).

use crate::stage_spec::StageSpec;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

#[derive(Debug)]
pub struct Graph {
    stages: Vec<StageSpec>,
    index: HashMap<String, usize>,
    /// Stage indices, inputs before the stages that read them.
    order: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

impl Graph {
    pub fn new(stages: Vec<StageSpec>) -> anyhow::Result<Graph> {
        let mut index = HashMap::new();
        for (i, s) in stages.iter().enumerate() {
            if index.insert(s.id.clone(), i).is_some() {
                anyhow::bail!("two stages share the id `{}`", s.id);
            }
        }
        for s in &stages {
            for input in &s.inputs {
                if !index.contains_key(input) {
                    anyhow::bail!("stage `{}` reads `{input}`, which is not a stage", s.id);
                }
            }
        }
        // Kahn's algorithm, always taking the earliest-declared ready stage.
        let mut remaining: Vec<usize> = stages.iter().map(|s| s.inputs.len()).collect();
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
        for (i, s) in stages.iter().enumerate() {
            for input in &s.inputs {
                readers[index[input]].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..stages.len()).filter(|&i| remaining[i] == 0).collect();
        let mut order = Vec::with_capacity(stages.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &r in &readers[i] {
                remaining[r] -= 1;
                if remaining[r] == 0 {
                    ready.insert(r);
                }
            }
        }
        if order.len() != stages.len() {
            let stuck: Vec<_> = (0..stages.len()).filter(|i| remaining[*i] > 0).map(|i| stages[i].id.as_str()).collect();
            anyhow::bail!("the stages {} depend on each other in a cycle", stuck.join(", "));
        }
        Ok(Graph { stages, index, order })
    }

    pub fn stage(&self, id: &str) -> Option<&StageSpec> {
        self.index.get(id).map(|&i| &self.stages[i])
    }

    /// All stages in topological order.
    pub fn ordered(&self) -> impl Iterator<Item = &StageSpec> {
        self.order.iter().map(|&i| &self.stages[i])
    }

    /// The ids that a target names: itself, or every id under it as a dotted prefix or with a
    /// suffix (`train.bin` names each sweep variant `train.bin@zeta=0.2`).
    fn resolve(&self, target: &str) -> anyhow::Result<Vec<usize>> {
        if let Some(&i) = self.index.get(target) {
            return Ok(vec![i]);
        }
        let (prefix, variant) = (format!("{target}."), format!("{target}@"));
        let matched: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| self.stages[i].id.starts_with(&prefix) || self.stages[i].id.starts_with(&variant))
            .collect();
        if matched.is_empty() {
            let mut known: Vec<&str> = self.stages.iter().map(|s| s.id.as_str()).collect();
            known.sort();
            anyhow::bail!("no stage `{target}`; the stages are: {}", known.join(", "));
        }
        Ok(matched)
    }

    /// The ids the targets name themselves, without what they need (`forget score.odin` forgets the
    /// ODIN scores, not the trainings under them); no targets means every stage.
    pub fn named(&self, targets: &[String]) -> anyhow::Result<BTreeSet<&str>> {
        if targets.is_empty() {
            return Ok(self.stages.iter().map(|s| s.id.as_str()).collect());
        }
        let mut named = BTreeSet::new();
        for t in targets {
            named.extend(self.resolve(t)?.into_iter().map(|i| self.stages[i].id.as_str()));
        }
        Ok(named)
    }

    /// The targets and everything they need, in topological order; no targets means every stage.
    pub fn closure(&self, targets: &[String]) -> anyhow::Result<Vec<&StageSpec>> {
        if targets.is_empty() {
            return Ok(self.ordered().collect());
        }
        let mut needed = vec![false; self.stages.len()];
        let mut stack = Vec::new();
        for t in targets {
            stack.extend(self.resolve(t)?);
        }
        while let Some(i) = stack.pop() {
            if !needed[i] {
                needed[i] = true;
                stack.extend(self.stages[i].inputs.iter().map(|id| self.index[id]));
            }
        }
        Ok(self.order.iter().filter(|&&i| needed[i]).map(|&i| &self.stages[i]).collect())
    }

    pub fn render(&self, format: DagFormat) -> String {
        let mut out = String::new();
        match format {
            DagFormat::Text => {
                for s in self.ordered() {
                    if s.inputs.is_empty() {
                        writeln!(out, "{}", s.id).unwrap();
                    } else {
                        writeln!(out, "{} <- {}", s.id, s.inputs.join(", ")).unwrap();
                    }
                }
            }
            DagFormat::Dot => {
                out.push_str("digraph oodpipe {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
                for s in self.ordered() {
                    writeln!(out, "  \"{}\";", s.id).unwrap();
                }
                for s in self.ordered() {
                    for input in &s.inputs {
                        writeln!(out, "  \"{input}\" -> \"{}\";", s.id).unwrap();
                    }
                }
                out.push_str("}\n");
            }
            DagFormat::Mermaid => {
                out.push_str("flowchart LR\n");
                let node = |id: &str| id.replace('.', "_");
                for s in self.ordered() {
                    writeln!(out, "  {}[\"{}\"]", node(&s.id), s.id).unwrap();
                }
                for s in self.ordered() {
                    for input in &s.inputs {
                        writeln!(out, "  {} --> {}", node(input), node(&s.id)).unwrap();
                    }
                }
            }
        }
        out
    }
}
