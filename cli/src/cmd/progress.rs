//! Progress on stderr for long commands: indicatif bars on a terminal, plain lines
//! otherwise (one per step and per layer).

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kiln_engine::pipeline::progress::{BlobPush, Event, Progress};

/// Progress on stderr.
pub struct CliProgress {
    bars: Option<MultiProgress>,
    layers: Mutex<HashMap<String, ProgressBar>>,
}

fn short(d: &str) -> &str {
    let h = d.strip_prefix("sha256:").unwrap_or(d);
    h.get(..12).unwrap_or(h)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl CliProgress {
    /// Bars when `bars`, else lines.
    pub fn new(bars: bool) -> Self {
        CliProgress {
            bars: bars.then(MultiProgress::new),
            layers: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: String) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }
}

impl Progress for CliProgress {
    fn event(&self, event: Event) {
        match event {
            Event::StepStarted(s) => self.line(format!("kiln: {} ...", s.name())),
            Event::StepDone { step, seconds } => {
                if self.bars.is_none() {
                    eprintln!("kiln: {} done ({seconds}s)", step.name());
                }
            }
            Event::LayerStarted {
                digest,
                index,
                size,
            } => {
                if let Some(m) = &self.bars {
                    let bar = m.add(ProgressBar::new(size));
                    if let Ok(style) = ProgressStyle::with_template(
                        "  layer {prefix} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_prefix(format!("{index} {}", short(&digest)));
                    if let Ok(mut l) = self.layers.lock() {
                        l.insert(digest, bar);
                    }
                } else {
                    eprintln!("kiln: layer {index} {} ({})", short(&digest), mib(size));
                }
            }
            Event::LayerBytes { digest, bytes } => {
                if self.bars.is_none() {
                    eprintln!("kiln: layer {} {} read", short(&digest), mib(bytes));
                } else if let Ok(l) = self.layers.lock() {
                    if let Some(b) = l.get(&digest) {
                        b.set_position(bytes);
                    }
                }
            }
            Event::LayerDone {
                digest,
                files,
                cached,
            } => {
                let how = if cached { "cached" } else { "scanned" };
                if let Ok(mut l) = self.layers.lock() {
                    if let Some(b) = l.remove(&digest) {
                        b.finish_with_message(format!("{files} files, {how}"));
                        return;
                    }
                }
                eprintln!("kiln: layer {} {files} files, {how}", short(&digest));
            }
            Event::Retry {
                operation,
                attempt,
                delay_ms,
                reason,
            } => self.line(format!(
                "kiln: {operation}: {reason} (attempt {attempt}), retrying in {:.1}s",
                delay_ms as f64 / 1000.0
            )),
            Event::Blob { digest, size, how } => {
                let how = match how {
                    BlobPush::Present => "already present",
                    BlobPush::Mounted => "mounted",
                    BlobPush::Copied => "copied",
                    BlobPush::Uploaded => "uploaded",
                };
                self.line(format!(
                    "kiln: blob {} ({}) {how}",
                    short(&digest),
                    mib(size)
                ));
            }
        }
    }
}
