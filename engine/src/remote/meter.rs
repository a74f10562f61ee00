//! One progress line for a whole transfer: bytes moved, bytes known so far, and the rate.
//!
//! Many objects move at once, so per-object bars would be noise; one bar says how far the whole
//! push or pull is. On a terminal it is a live bar (indicatif); elsewhere (CI, a log file) a plain
//! line at most every 30 seconds, so that a long transfer still shows it is alive.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct Meter(Option<Arc<Inner>>);

struct Inner {
    label: String,
    /// Shown: a bar on a terminal, else a line at most every 30 s. A meter that counts unseen (a
    /// run's background uploads) is shown once the command waits for it ([`Meter::reveal`]).
    shown: AtomicBool,
    bar: OnceLock<ProgressBar>,
    done: AtomicU64,
    total: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Meter {
    /// A meter that shows itself when `show` (a bar on a terminal, lines elsewhere).
    pub fn new(label: &str, show: bool) -> Meter {
        if !show {
            return Meter(None);
        }
        let meter = Meter::counting(label);
        meter.reveal();
        meter
    }

    /// A meter that counts without showing itself until [`Meter::reveal`].
    pub fn counting(label: &str) -> Meter {
        Meter(Some(Arc::new(Inner {
            label: label.to_string(),
            shown: AtomicBool::new(false),
            bar: OnceLock::new(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        })))
    }

    /// From now on the meter shows itself: a bar on a terminal, else one line now (what has moved
    /// and what is left) and one at most every 30 s.
    pub fn reveal(&self) {
        let Some(inner) = &self.0 else { return };
        if inner.shown.swap(true, Ordering::Relaxed) {
            return;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(inner.total.load(Ordering::Relaxed));
            bar.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({elapsed})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(inner.label.clone());
            bar.set_position(inner.done.load(Ordering::Relaxed));
            bar.enable_steady_tick(Duration::from_millis(200));
            let _ = inner.bar.set(bar);
        } else if inner.done.load(Ordering::Relaxed) > 0 {
            inner.line();
        }
    }

    /// More bytes are known to be coming.
    pub fn expect(&self, bytes: u64) {
        let Some(inner) = &self.0 else { return };
        let total = inner.total.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = inner.bar.get() {
            bar.set_length(total);
        }
    }

    /// `bytes` more have moved.
    pub fn advance(&self, bytes: u64) {
        let Some(inner) = &self.0 else { return };
        let done = inner.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if !inner.shown.load(Ordering::Relaxed) {
            return;
        }
        match inner.bar.get() {
            Some(bar) => bar.set_position(done),
            None => {
                let mut last = inner.last_line.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(30) {
                    *last = Instant::now();
                    drop(last);
                    inner.line();
                }
            }
        }
    }

    /// (bytes moved, bytes known) so far.
    pub fn counts(&self) -> (u64, u64) {
        self.0.as_ref().map(|i| (i.done.load(Ordering::Relaxed), i.total.load(Ordering::Relaxed))).unwrap_or_default()
    }

    pub fn finish(&self) {
        if let Some(bar) = self.0.as_ref().and_then(|i| i.bar.get()) {
            bar.finish_and_clear();
        }
    }
}

impl Inner {
    fn line(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "  {}: {} of {} ({}/s)",
            self.label,
            human_bytes(done),
            human_bytes(self.total.load(Ordering::Relaxed)),
            human_bytes((done as f64 / seconds.max(1e-9)) as u64)
        );
    }
}

/// Bytes for people, in decimal units as `du --si` and the README's tables: `268.5 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_as_du_si_prints_them() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(999), "999 B");
        assert_eq!(super::human_bytes(268_500_000), "268.5 MB");
        assert_eq!(super::human_bytes(1_250_000_000), "1.2 GB");
    }
}
