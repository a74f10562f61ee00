//! One progress line for a whole transfer: bytes moved, bytes known so far, and the rate.
//!
//! Many objects move at once, so per-object bars would be noise; one bar says how far the whole
//! push or pull is. On a terminal it is a live bar (indicatif); elsewhere (CI, a log file) a plain
//! line at most every 30 seconds, so that a long transfer still shows it is alive.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct Meter(Option<Arc<Inner>>);

struct Inner {
    label: String,
    bar: Option<ProgressBar>,
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
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({elapsed})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Meter(Some(Arc::new(Inner {
            label: label.to_string(),
            bar,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        })))
    }

    /// A meter that counts nothing and shows nothing (background uploads).
    pub fn hidden() -> Meter {
        Meter(None)
    }

    /// More bytes are known to be coming.
    pub fn expect(&self, bytes: u64) {
        let Some(inner) = &self.0 else { return };
        let total = inner.total.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &inner.bar {
            bar.set_length(total);
        }
    }

    /// `bytes` more have moved.
    pub fn advance(&self, bytes: u64) {
        let Some(inner) = &self.0 else { return };
        let done = inner.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &inner.bar {
            Some(bar) => bar.set_position(done),
            None => {
                let mut last = inner.last_line.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(30) {
                    *last = Instant::now();
                    let seconds = inner.started.elapsed().as_secs_f64();
                    eprintln!(
                        "  {}: {} of {} ({}/s)",
                        inner.label,
                        human_bytes(done),
                        human_bytes(inner.total.load(Ordering::Relaxed)),
                        human_bytes((done as f64 / seconds.max(1e-9)) as u64)
                    );
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.0.as_ref().and_then(|i| i.bar.as_ref()) {
            bar.finish_and_clear();
        }
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
