//! A running job's progress: the current step, one row per layer (bytes, files, rate),
//! one line per registry retry, drawn from the job's progress events.

use leptos::prelude::*;

use super::bridge::{ProgressKind, ProgressView};

/// One layer's progress row.
#[derive(Debug, Clone, Default, PartialEq)]
struct LayerRow {
    name: String,
    bytes: u64,
    total: u64,
    files: Option<u64>,
    cached: bool,
    rate: f64,
}

/// One step: its name and, once done, its seconds.
#[derive(Debug, Clone, PartialEq)]
struct StepRow {
    name: String,
    seconds: Option<i64>,
}

/// Everything the progress panel shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressModel {
    steps: Vec<StepRow>,
    layers: Vec<LayerRow>,
    blobs: u64,
    blob_bytes: u64,
    /// One line per retry, in order (the first [`MAX_RETRY_LINES`]).
    retries: Vec<String>,
    /// Retries in all (more than the lines kept when a registry keeps failing).
    retry_count: u64,
}

/// Retry lines the panel keeps (each retry is counted even past it).
pub const MAX_RETRY_LINES: usize = 500;

impl ProgressModel {
    fn layer(&mut self, name: &str) -> Option<&mut LayerRow> {
        let i = match self.layers.iter().position(|l| l.name == name) {
            Some(i) => i,
            None => {
                self.layers.push(LayerRow {
                    name: name.to_string(),
                    ..LayerRow::default()
                });
                self.layers.len() - 1
            }
        };
        self.layers.get_mut(i)
    }

    /// Folds one event in.
    pub fn apply(&mut self, p: &ProgressView) {
        let step = p.step.clone().unwrap_or_default();
        let layer = p.layer.clone().unwrap_or_default();
        match p.kind {
            ProgressKind::StepStarted => {
                self.steps.retain(|s| s.name != step);
                self.steps.push(StepRow {
                    name: step,
                    seconds: None,
                });
            }
            ProgressKind::StepDone => {
                let seconds = Some(p.seconds.unwrap_or(0));
                match self.steps.iter_mut().find(|s| s.name == step) {
                    Some(s) => s.seconds = seconds,
                    None => self.steps.push(StepRow {
                        name: step,
                        seconds,
                    }),
                }
            }
            ProgressKind::LayerStarted | ProgressKind::LayerBytes | ProgressKind::LayerDone => {
                let Some(row) = self.layer(&layer) else {
                    return;
                };
                if let Some(t) = p.bytes_total {
                    row.total = t;
                }
                if let Some(b) = p.bytes_done {
                    row.bytes = row.bytes.max(b);
                }
                if let Some(r) = p.rate {
                    row.rate = r;
                }
                if p.kind == ProgressKind::LayerDone {
                    row.files = Some(p.files.unwrap_or(0));
                    row.cached = p.cached == Some(true);
                    row.bytes = row.bytes.max(row.total);
                }
            }
            ProgressKind::Blob => {
                self.blobs += 1;
                self.blob_bytes += p.bytes_total.unwrap_or(0);
            }
            ProgressKind::Retry => {
                self.retry_count += 1;
                if self.retries.len() < MAX_RETRY_LINES {
                    self.retries.push(p.describe());
                }
            }
        }
    }
}

/// A step in words a user knows (the engine's step names are internal: `resolve-input`);
/// unknown names are shown as they are.
pub fn step_words(name: &str) -> &str {
    match name {
        "validate" => "Checking the request",
        "resolve-input" => "Finding the input image",
        "scan-layers" => "Reading and hashing its layers",
        "read-runtime" => "Reading the kiln runtime",
        "manifests" => "Writing the enclave manifests",
        "measure" => "Measuring the enclaves (MRENCLAVE)",
        "sign" => "Signing (MRSIGNER)",
        "build-image" => "Building the new image",
        "push" => "Pushing to the output registry",
        other => other,
    }
}

/// Bytes in a human unit (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The progress panel.
#[component]
pub fn ProgressPanel(
    /// What to draw.
    #[prop(into)]
    model: Signal<ProgressModel>,
    /// Whether the job still runs.
    #[prop(into)]
    running: Signal<bool>,
) -> impl IntoView {
    let steps = move || {
        model
            .get()
            .steps
            .into_iter()
            .map(|s| {
                let current = s.seconds.is_none() && running.get();
                // Not done and the job is over: it failed or was cancelled here.
                let stopped = s.seconds.is_none() && !running.get();
                let words = step_words(&s.name);
                let text = match s.seconds {
                    Some(t) => format!("✓ {words} ({t} s)"),
                    None if current => format!("▸ {words}…"),
                    None => format!("✗ {words}: stopped here"),
                };
                let state = match (s.seconds, current) {
                    (Some(_), _) => "done",
                    (None, true) => "running",
                    (None, false) => "stopped",
                };
                view! {
                    <li class:current=current class:stopped=stopped data-step=s.name.clone() data-state=state>{text}</li>
                }
            })
            .collect_view()
    };
    let layers = move || {
        model
            .get()
            .layers
            .into_iter()
            .map(|l| {
                let pct = if l.total > 0 {
                    ((l.bytes as f64 / l.total as f64) * 100.0).min(100.0)
                } else {
                    0.0
                };
                let mut text = human_bytes(l.bytes);
                if l.total > 0 {
                    text.push_str(&format!(" of {}", human_bytes(l.total)));
                }
                if l.rate > 0.0 {
                    text.push_str(&format!(", {}/s", human_bytes(l.rate as u64)));
                }
                if let Some(f) = l.files {
                    text.push_str(&format!(", {f} files"));
                }
                if l.cached {
                    text.push_str(" (from the layer cache)");
                }
                view! {
                    <li class="layer" data-layer=l.name.clone()>
                        <code class="mono">{l.name.clone()}</code>
                        <progress max="100" value=format!("{pct:.0}")></progress>
                        <span class="muted">{text}</span>
                    </li>
                }
            })
            .collect_view()
    };
    let blobs = move || {
        let m = model.get();
        (m.blobs > 0).then(|| {
            format!(
                "{} blob{} in the output repository ({})",
                m.blobs,
                if m.blobs == 1 { "" } else { "s" },
                human_bytes(m.blob_bytes)
            )
        })
    };
    let retries = move || {
        model
            .get()
            .retries
            .into_iter()
            .map(|line| view! { <li class="retry">{line}</li> })
            .collect_view()
    };
    let more_retries = move || {
        let m = model.get();
        let shown = m.retries.len() as u64;
        (m.retry_count > shown).then(|| format!("and {} more retries", m.retry_count - shown))
    };
    view! {
        <div class="progress" data-testid="progress" aria-live="polite">
            <ol class="steps">{steps}</ol>
            <ul class="layers">{layers}</ul>
            <ul class="retries muted" data-testid="retries">{retries}</ul>
            <p class="muted" data-testid="more-retries">{more_retries}</p>
            <p class="muted" data-testid="blobs">{blobs}</p>
        </div>
    }
}
