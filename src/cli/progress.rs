//! Progress of long runs on stderr: a live bar on a terminal; plain lines
//! at most every `E3RELAX_PROGRESS_INTERVAL` seconds (default 10) when
//! stderr is a file or a pipe (a batch job's log), so a short run prints
//! nothing and a long one shows it is alive; nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds between plain progress lines when stderr is not a terminal.
const DEFAULT_INTERVAL: f64 = 10.0;

pub struct Progress {
    what: &'static str,
    total: usize,
    start: Instant,
    bar: Option<indicatif::ProgressBar>,
    /// Plain lines: when the last one was printed (or the run started).
    plain: Option<Mutex<Instant>>,
    interval: Duration,
}

impl Progress {
    /// Progress of `total` items of work (`what`: "relax", "eval", ...).
    pub fn new(what: &'static str, total: usize, quiet: bool) -> Progress {
        let interval = std::env::var("E3RELAX_PROGRESS_INTERVAL")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(DEFAULT_INTERVAL);
        let start = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} structures, {per_sec}, {eta} left",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what);
            bar
        });
        Progress {
            what,
            total,
            start,
            bar,
            plain: (!quiet && !terminal).then(|| Mutex::new(start)),
            interval: Duration::from_secs_f64(interval),
        }
    }

    /// `done` items are finished (may be called from several threads).
    pub fn update(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
        if let Some(last) = &self.plain {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= self.interval && done < self.total {
                *last = Instant::now();
                eprintln!("{}", self.line(done));
            }
        }
    }

    /// `relax: 120/1824 structures (6.6 %), 85.3/s, ~20 s left`.
    fn line(&self, done: usize) -> String {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / seconds;
        let left = if rate > 0.0 {
            format!(", ~{:.0} s left", (self.total - done) as f64 / rate)
        } else {
            String::new()
        };
        format!(
            "{}: {done}/{} structures ({:.1} %), {rate:.1}/s{left}",
            self.what,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
        )
    }

    /// Removes the bar (the caller prints its own summary).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
