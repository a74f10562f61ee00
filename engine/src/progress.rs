//! What a run shows while it works: one line per stage (n of m, cached or running, elapsed time)
//! and, on a terminal, a live bar for long stages.
//!
//! Progress goes to stderr so that stdout stays clean for `--json`. When stderr is not a terminal
//! (CI, `nohup`, a log file) the bar becomes plain lines, at most one every 30 seconds per stage.

use crate::executor::StageState;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Receives the executor's events.
pub trait Reporter: Sync {
    fn started(&self, n: usize, total: usize, id: &str, state: StageState);
    fn progress(&self, id: &str, done: u64, total: u64, message: &str);
    fn finished(&self, n: usize, total: usize, id: &str, seconds: f64);
    fn failed(&self, n: usize, total: usize, id: &str, error: &str);
    fn skipped(&self, n: usize, total: usize, id: &str, because: &str);
    /// Something a person should see about a stage: waiting for another run's lock, a stored
    /// output found damaged.
    fn note(&self, id: &str, message: &str) {
        eprintln!("  {id}: {message}");
    }
    /// A stage taken from the remote store instead of being built (see [`crate::remote`]).
    fn fetched(&self, n: usize, total: usize, id: &str, detail: &str) {
        eprintln!("[{n}/{total}] {id}: fetched from remote ({detail})");
    }
    /// Something wrong outside any stage, said once (a remote store that failed).
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
    /// A line outside any stage (what was uploaded to the remote store).
    fn say(&self, message: &str) {
        eprintln!("{message}");
    }
    /// Whether a transfer may show its progress (someone reads this reporter's output).
    fn shows_progress(&self) -> bool {
        false
    }
}

/// The reporter for people: a bar on a terminal, plain lines elsewhere.
pub struct ConsoleReporter {
    tty: bool,
    quiet: bool,
    state: Mutex<ConsoleState>,
}

struct ConsoleState {
    bar: Option<ProgressBar>,
    last_line: Instant,
    stage_started: Instant,
}

impl ConsoleReporter {
    pub fn new(quiet: bool) -> Self {
        ConsoleReporter {
            tty: std::io::stderr().is_terminal(),
            quiet,
            state: Mutex::new(ConsoleState { bar: None, last_line: Instant::now(), stage_started: Instant::now() }),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let state = self.state.lock().unwrap();
        match &state.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

fn elapsed(seconds: f64) -> String {
    if seconds < 60.0 { format!("{seconds:.1}s") } else { format!("{}m{:02}s", (seconds / 60.0) as u64, seconds as u64 % 60) }
}

impl Reporter for ConsoleReporter {
    fn started(&self, n: usize, total: usize, id: &str, state: StageState) {
        match state {
            StageState::Cached => self.line(&format!("[{n}/{total}] {id}: cached")),
            StageState::Running => {
                self.line(&format!("[{n}/{total}] {id}: running"));
                let mut s = self.state.lock().unwrap();
                s.stage_started = Instant::now();
                s.last_line = Instant::now();
            }
        }
    }

    fn progress(&self, id: &str, done: u64, total: u64, message: &str) {
        if self.quiet {
            return;
        }
        let mut s = self.state.lock().unwrap();
        if self.tty {
            let bar = s.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_prefix(id.to_string());
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(message.to_string());
        } else if s.last_line.elapsed() >= Duration::from_secs(30) || done == total {
            s.last_line = Instant::now();
            eprintln!("  {id}: {done}/{total} {message} ({})", elapsed(s.stage_started.elapsed().as_secs_f64()));
        }
    }

    fn finished(&self, n: usize, total: usize, id: &str, seconds: f64) {
        if let Some(bar) = self.state.lock().unwrap().bar.take() {
            bar.finish_and_clear();
        }
        self.line(&format!("[{n}/{total}] {id}: done in {}", elapsed(seconds)));
    }

    fn failed(&self, n: usize, total: usize, id: &str, error: &str) {
        if let Some(bar) = self.state.lock().unwrap().bar.take() {
            bar.finish_and_clear();
        }
        self.line(&format!("[{n}/{total}] {id}: FAILED: {error}"));
    }

    fn skipped(&self, n: usize, total: usize, id: &str, because: &str) {
        self.line(&format!("[{n}/{total}] {id}: skipped, its input {because} failed"));
    }

    fn note(&self, id: &str, message: &str) {
        self.line(&format!("  {id}: {message}"));
    }

    fn fetched(&self, n: usize, total: usize, id: &str, detail: &str) {
        self.line(&format!("[{n}/{total}] {id}: fetched from remote ({detail})"));
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    fn say(&self, message: &str) {
        self.line(message);
    }

    fn shows_progress(&self) -> bool {
        !self.quiet
    }
}
