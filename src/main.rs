//! `oodpipe`: rebuilds an OOD-detection paper's tables as a cached DAG of stages.
//!
//! The command line only: argument parsing here, one module per subcommand in `cli/`, the engine in
//! `oodpipe-engine`, the stage table in `oodpipe-plan`. It does not link libtorch: stages are built
//! by the worker binary `oodpipe-worker` (`oodpipe-stages`), one process per stage.

mod cli;
mod experiment;
mod metrics_cmd;
mod pairing;
mod pipeline;
mod safetensors_file;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "oodpipe", version, about = "Rebuilds the OOD-detection paper's tables as a cached DAG of stages")]
struct Args {
    /// The experiment's config file.
    #[arg(short, long, global = true, default_value = "pipeline.toml")]
    config: PathBuf,
    /// The store folder (default: $OODPIPE_CACHE, else cache/).
    #[arg(long, global = true)]
    cache: Option<PathBuf>,
    /// Set a config key for this command, the value in TOML (`--set train.epochs=3`,
    /// `--set 'tune.temperatures=[1.0, 10.0]'`); repeatable, checked like the file.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Sweep a config key over values (`--sweep methods.bin.zeta=0.01,0.05,0.2`); repeatable:
    /// the cross product. Each point is the config with its values; stages that do not depend on
    /// the swept keys are shared. The sweep's report goes to <report.dir>/sweeps/<keys>/.
    #[arg(long = "sweep", global = true, value_name = "KEY=V1,V2,...")]
    sweeps: Vec<String>,
    /// How several swept keys combine: `grid` (the cross product, the default) or `zip` (their
    /// i-th values together; lists of one length). Overrides `mode` of the file's `[sweep]`.
    #[arg(long = "sweep-mode", global = true, value_enum)]
    sweep_mode: Option<experiment::SweepMode>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the targets and what they need (default: everything).
    Run {
        /// Stage ids or dotted prefixes (`train`, `score.odin`).
        targets: Vec<String>,
        /// Say what would run, run nothing.
        #[arg(long)]
        dry_run: bool,
        /// End stdout with one JSON line: {"executed": [..], "cached": [..], "seconds": ..}.
        #[arg(long)]
        json: bool,
        /// Build up to N independent stages at once, never using more cores (or GPUs) than there are.
        #[arg(short = 'j', long = "jobs")]
        jobs: Option<usize>,
        /// The GPUs to hand out, one per training or network pass (default: every visible one).
        #[arg(long, value_delimiter = ',')]
        gpus: Option<Vec<String>>,
        /// Where stages are built: worker processes here, or one Slurm job each (`sbatch`; the
        /// store must be on a filesystem the nodes share; `[executor]` in the config sets the
        /// partition, account and per-kind resources). With slurm, -j defaults to every ready stage.
        #[arg(long, value_enum, default_value_t = pipeline::Executor::Local)]
        executor: pipeline::Executor,
        #[command(flatten)]
        remote: cli::remote::RunRemoteArgs,
    },
    /// Every stage, fresh or stale, and why a stale one would run.
    Status {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Send the built stages of the config (default: all) that the remote store lacks.
    Push {
        targets: Vec<String>,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Fetch the stages of the config (default: all) that are not built here and the remote store has.
    Pull {
        targets: Vec<String>,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Delete the remote store's entries of the config's stages (default: all), or of one stage
    /// kind, so that an honest build can replace a bad one (objects are kept).
    RemoteDelete {
        targets: Vec<String>,
        #[command(flatten)]
        delete: cli::remote::DeleteArgs,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// The stage graph.
    Dag {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// A stage's key, the config it read, its inputs, outputs and run time.
    Show {
        stage: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the local entries of the targets (or of one stage kind): the next run builds them
    /// again or fetches them from the remote store. Objects stay for `gc`.
    Forget {
        targets: Vec<String>,
        /// Every stage of this kind (`train`, `score`, ...) of the config.
        #[arg(long)]
        kind: Option<String>,
        /// Say what would be forgotten, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove store entries and objects the current config no longer reaches.
    Gc {
        #[arg(long)]
        dry_run: bool,
    },
    /// A trained network out to PyTorch: TorchScript (`network.pt`, importable again as a
    /// `[networks.<name>]` table), safetensors and the WRN's PyTorch definition (`make torch` first).
    Export {
        /// The training to export: `train.softmax`, `train.bin`, `train.softmax@seed2`, ...
        target: String,
        /// The folder to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check every stored entry and object against its digest; exit 1 if anything is damaged.
    Verify {
        /// Also move damaged objects aside and remove their entries (the next run rebuilds them).
        #[arg(long)]
        repair: bool,
    },
    /// The recorded runs, newest first.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Compare the results and configs of two git revisions or runs (B: the working tree).
    Diff {
        a: String,
        b: Option<String>,
        #[arg(long)]
        json: bool,
        /// Also write the comparison as one self-contained HTML page (sortable, filterable).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Build exactly one stage into the store (its inputs must be built): what a cluster job runs.
    ExecStage { stage: String },
    /// The five OOD metrics of two score files (one score a line, higher = more in-distribution).
    Metrics {
        #[arg(long = "in-dist")]
        in_dist: PathBuf,
        #[arg(long)]
        ood: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    // Behave like other command-line tools when piped into `head`: end quietly on a closed pipe.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    let cache = args
        .cache
        .or_else(|| std::env::var_os("OODPIPE_CACHE").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cache"));
    let config = pipeline::ConfigArgs {
        path: args.config.clone(),
        experiment: experiment::Experiment { sets: args.sets.clone(), sweeps: args.sweeps.clone(), mode: args.sweep_mode },
    };
    let result = match args.command {
        Command::Metrics { in_dist, ood, json } => return metrics_cmd::run(&in_dist, &ood, json),
        Command::Run { targets, dry_run, json, jobs, gpus, executor, remote } => {
            cli::run::run(&config, &cache, &targets, dry_run, json, cli::run::Parallel { jobs, gpus, executor }, &remote)
        }
        Command::Status { targets, json, remote } => cli::status::run(&config, &cache, &targets, json, &remote),
        Command::Push { targets, remote } => cli::remote::push(&config, &cache, &targets, &remote),
        Command::Pull { targets, remote } => cli::remote::pull(&config, &cache, &targets, &remote),
        Command::RemoteDelete { targets, delete, remote } => cli::remote::delete(&config, &cache, &targets, &delete, &remote),
        Command::Dag { format } => cli::dag::run(
            &config,
            match format {
                Format::Text => oodpipe_engine::graph::DagFormat::Text,
                Format::Dot => oodpipe_engine::graph::DagFormat::Dot,
                Format::Mermaid => oodpipe_engine::graph::DagFormat::Mermaid,
            },
        ),
        Command::Show { stage, json } => cli::show::run(&config, &cache, &stage, json),
        Command::Gc { dry_run } => cli::gc::run(&config, &cache, dry_run),
        Command::Forget { targets, kind, dry_run } => cli::forget::run(&config, &cache, &targets, kind.as_deref(), dry_run),
        Command::Runs { json } => cli::runs::run(&cache, json),
        Command::ExecStage { stage } => cli::exec_stage::run(&config, &cache, &stage),
        Command::Verify { repair } => cli::verify::run(&cache, repair),
        Command::Export { target, out } => cli::export::run(&config, &cache, &target, &out),
        Command::Diff { a, b, json, html } => cli::diff::run(&args.config, &cache, &a, b.as_deref(), json, html.as_deref()),
    };
    match result {
        Ok(code) => code,
        // Exit codes: 2 for bad input (config, data, score files, revisions), 1 for a failed
        // stage (the subcommands return it), 0 otherwise.
        Err(e) => {
            // No credential and no terminal escape from anything the error quotes.
            eprintln!("error: {}", oodpipe_engine::output_name::escaped_lines(&oodpipe_engine::secrets::redact(&format!("{e:#}"))));
            if oodpipe_engine::bad_input::is_bad_input(&e) { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
