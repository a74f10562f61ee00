//! `oodpipe dag`: the stage graph as text, Graphviz dot or Mermaid.

use oodpipe_engine::graph::DagFormat;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &Path, format: DagFormat) -> anyhow::Result<ExitCode> {
    let pipeline = crate::pipeline::load(config)?;
    print!("{}", pipeline.graph.render(format));
    Ok(ExitCode::SUCCESS)
}
