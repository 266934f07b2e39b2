//! Progress of long loads: a bar (rows, bytes, rows/s) on a terminal, a line every few
//! seconds otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LINE_EVERY: Duration = Duration::from_secs(5);

struct Pass {
    label: String,
    started: Instant,
    last_line: Instant,
}

/// Progress for `refresh`.
pub struct LoadProgress {
    bar: Option<ProgressBar>,
    rows: AtomicU64,
    bytes: AtomicU64,
    pass: Mutex<Option<Pass>>,
}

impl LoadProgress {
    /// A bar when stderr is a terminal, periodic lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            pass: Mutex::new(None),
        }
    }

    fn status(&self, pass: &Pass) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let secs = pass.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{}: {rows} rows, {:.1} MB, {:.0} rows/s",
            pass.label,
            self.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            rows as f64 / secs
        )
    }
}

impl LoadProgress {
    pub fn start(&self, table: &str, pass: u8, bytes: u64) {
        self.rows.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        let what = if pass == 1 { "reading keys" } else { "loading" };
        let now = Instant::now();
        let p = Pass {
            label: format!("{table} ({what})"),
            started: now,
            last_line: now,
        };
        match &self.bar {
            Some(bar) => {
                bar.reset();
                bar.set_length(bytes);
                bar.set_message(p.label.clone());
            }
            None => eprintln!(
                "[refresh] {}: {:.1} MB to read",
                p.label,
                bytes as f64 / 1e6
            ),
        }
        if let Ok(mut current) = self.pass.lock() {
            *current = Some(p);
        }
    }

    pub fn advance(&self, records: u64, bytes: u64) {
        let rows = self.rows.fetch_add(records, Ordering::Relaxed) + records;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                bar.inc(bytes);
                if rows.is_multiple_of(16_384) {
                    if let Ok(current) = self.pass.lock() {
                        if let Some(p) = current.as_ref() {
                            bar.set_message(self.status(p));
                        }
                    }
                }
            }
            None if rows.is_multiple_of(4096) => {
                if let Ok(mut current) = self.pass.lock() {
                    if let Some(p) = current.as_mut() {
                        if p.last_line.elapsed() >= LINE_EVERY {
                            p.last_line = Instant::now();
                            eprintln!("[refresh] {}", self.status(p));
                        }
                    }
                }
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        } else if let Ok(current) = self.pass.lock() {
            if let Some(p) = current.as_ref() {
                if p.started.elapsed() >= LINE_EVERY {
                    eprintln!("[refresh] {} (done)", self.status(p));
                }
            }
        }
    }
}
