//! `oodpipe dag`: the stage graph as text, Graphviz dot or Mermaid.

use crate::pipeline::ConfigArgs;
use oodpipe_engine::graph::DagFormat;
use std::process::ExitCode;

pub fn run(config: &ConfigArgs, format: DagFormat) -> anyhow::Result<ExitCode> {
    let pipeline = crate::pipeline::load(&config.path, &config.experiment)?;
    print!("{}", pipeline.graph.render(format));
    Ok(ExitCode::SUCCESS)
}
