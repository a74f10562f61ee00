//! `oodpipe-worker`: builds one stage per process for the `oodpipe` command, which starts it. It is
//! the only binary that loads libtorch (see `oodpipe_stages::worker`).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    oodpipe_stages::worker::main(&args)
}
