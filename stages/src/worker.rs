//! The worker's side of the engine's protocol (`oodpipe_engine::worker`): build one stage from a
//! request, or answer the engine's probe of this machine's runtime.
//!
//! `oodpipe-worker run` reads a [`WorkerInput`] on stdin (the stage's declared config fields among
//! it; the stage reads them through its views), matches its [`Task`] to the function that computes it, and reports
//! progress and errors as `@progress` / `@error` lines on stdout. A panic, an abort or a crash ends
//! this process only; the engine reports it as the stage's failure.

use crate::stage::StageContext;
use crate::table::{Task, plain_id};
use crate::{data, detector, features, import, outputs, python, report, runtime, sweep, train};
use anyhow::{Context, Result};
use oodpipe_engine::stage_spec::InputFiles;
use oodpipe_engine::worker::{ERROR, PROGRESS, StageRequest, WorkerError, WorkerInput};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The machine settings the engine passes to each worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    /// "cpu" or "cuda", already resolved from the config's "auto".
    pub device: String,
    /// libtorch's intra-op threads (0: libtorch's default, one per core).
    pub threads: usize,
}

/// The worker's main: `run` (a stage from stdin), `zygote` (fork a `run` per request of the
/// engine, see `oodpipe_engine::zygote`) or `probe`.
pub fn main(args: &[String]) -> std::process::ExitCode {
    match args.first().map(String::as_str) {
        Some("probe") => {
            println!("{}", probe());
            std::process::ExitCode::SUCCESS
        }
        Some("run") => oodpipe_engine::zygote::exit_at_once(run()),
        // A network file checked against the contract before a run builds anything with it.
        Some("check-network") if args.len() == 3 => {
            match crate::model::ScriptNetwork::load(std::path::Path::new(&args[1]), &args[2], tch::Device::Cpu) {
                Ok(net) => {
                    println!("{}", serde_json::json!({ "feature_dim": net.feature_dim }));
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    std::process::ExitCode::from(2)
                }
            }
        }
        // libtorch is loaded (its initialisers ran before main) and nothing else is: each child
        // starts from where a fresh `run` would.
        Some("zygote") => std::process::ExitCode::from(oodpipe_engine::zygote::serve(run) as u8),
        _ => {
            eprintln!(
                "oodpipe-worker: builds one stage for the `oodpipe` command, which starts it.\n\
                 usage: oodpipe-worker run     (a stage request as JSON on stdin)\n       \
                 oodpipe-worker probe   (this machine's runtime, as JSON)\n       \
                 oodpipe-worker check-network FILE HEAD  (a TorchScript network against the contract)\n       \
                 oodpipe-worker zygote  (the engine's fork server: forks a `run` per request on its control socket)"
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// `run`: the stage on stdin; its exit code (0 built, 1 failed with an `@error` line).
fn run() -> i32 {
    match run_from_stdin() {
        Ok(()) => 0,
        Err(e) => {
            let report = WorkerError { message: format!("{e:#}"), bad_input: oodpipe_engine::bad_input::is_bad_input(&e) };
            println!("{ERROR}{}", serde_json::to_string(&report).expect("an error serialises"));
            1
        }
    }
}

/// What the engine must know of this machine to key stages and record runs, without loading
/// libtorch itself: libtorch's version, the GPUs, the processor and the instruction set ATen uses.
pub fn probe() -> serde_json::Value {
    let cuda = tch::Cuda::is_available();
    serde_json::json!({
        "libtorch": runtime::libtorch_version(),
        "cuda_available": cuda,
        "cuda_devices": if cuda { tch::Cuda::device_count() } else { 0 },
        "platform_cpu": runtime::platform_details("cpu"),
        "platform_cuda": if cuda { serde_json::to_value(runtime::platform_details("cuda")).unwrap() } else { serde_json::Value::Null },
        "default_threads": tch::get_num_threads(),
    })
}

fn run_from_stdin() -> Result<()> {
    // What this process sees, for its log: the names only (the engine gives a stage no credentials).
    let mut names: Vec<String> = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()).collect();
    names.sort();
    eprintln!("worker: pid {}, environment variables: {}", std::process::id(), names.join(" "));
    let input: WorkerInput = serde_json::from_reader(std::io::stdin().lock()).context("reading the stage request on stdin")?;
    let runtime: Runtime = serde_json::from_value(input.runtime).context("the request's runtime settings")?;
    // The stage's declared threads if it declares a number, else the config's `threads`.
    runtime::set_threads(if input.stage.threads > 0 { input.stage.threads } else { runtime.threads });
    let progress = |done: u64, total: u64, message: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{PROGRESS}{done} {total} {}", message.replace('\n', " "));
        let _ = out.flush();
    };
    execute(&input.stage, &runtime.device, &progress)
}

/// Builds the stage of `request` in this process.
pub fn execute(request: &StageRequest, device: &str, progress: &dyn Fn(u64, u64, &str)) -> Result<()> {
    let task: Task = serde_json::from_value(request.task.clone())
        .with_context(|| format!("stage {}: a task this worker does not know: {}", request.id, request.task))?;
    // A seed's (or a sweep variant's) stage names its inputs by their plain ids; its inputs are all
    // of one seed and one variant (or shared).
    let plain: InputFiles;
    let inputs = if task.is_per_seed() {
        plain = request.inputs.iter().map(|(k, v)| (plain_id(k).to_string(), v.clone())).collect();
        &plain
    } else {
        &request.inputs
    };
    let ctx = StageContext {
        id: &request.id,
        params: &request.params,
        inputs,
        sources: &request.sources,
        out_dir: &request.out_dir,
        device,
        progress,
    };
    match task {
        Task::Cifar10 => data::cifar10::run(&ctx),
        Task::OodData { set } => data::ood_set::run(&ctx, &set),
        Task::Train { model } => train::run(&ctx, model),
        Task::Import { network, head } => import::run(&ctx, &network, &head),
        Task::Outputs { model, set } => outputs::run(&ctx, model, &set),
        Task::Features { model, set } => features::run(&ctx, model, &set),
        Task::Prepare { detector } => detector::prepare(&ctx, &detector),
        Task::Tune { detector, set } => detector::tune(&ctx, &detector, &set),
        Task::Score { detector, set } => detector::score(&ctx, &detector, &set),
        Task::Python { name, set, detector, script, interpreter } => python::score(&ctx, &name, &set, &detector, &script, &interpreter),
        Task::Report { sets, python, network } => report::run(&ctx, &sets, &python, network.as_ref()),
        Task::Sweep { sets, python, keys, points } => sweep::run(&ctx, &sets, &python, &keys, &points),
    }
}
