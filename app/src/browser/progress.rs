//! The engine's progress events as a serde-friendly view for the UI (and for the message
//! from the Web Worker to the page), with per-layer transfer rates and throttling of the
//! frequent byte counts.

use std::collections::HashMap;

use kiln_engine::pipeline::progress::{BlobPush, Event};
use serde::{Deserialize, Serialize};

/// Characters of a digest's hex shown in the UI.
pub const SHORT_DIGEST: usize = 12;

/// Milliseconds between two byte-count events of one layer (the last one always goes).
pub const BYTES_INTERVAL_MS: f64 = 200.0;

/// What a [`ProgressView`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgressKind {
    /// A step began (`step`).
    StepStarted,
    /// A step ended (`step`, `seconds`).
    StepDone,
    /// A layer scan began (`layer`, `layer_index`, `bytes_total`).
    LayerStarted,
    /// Bytes of a layer fetched (`layer`, `bytes_done`, `bytes_total`, `rate`).
    LayerBytes,
    /// A layer scanned (`layer`, `files`, `cached`).
    LayerDone,
    /// A blob is in the output repository (`layer` = its short digest, `bytes_total`, `how`).
    Blob,
    /// A registry request failed transiently and is tried again (`operation`, `attempt`,
    /// `tries`, `delay_ms`, `reason`).
    Retry,
}

/// One progress event, as the UI shows it. Fields not meaningful for `kind` are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    /// What happened.
    pub kind: ProgressKind,
    /// The step's short name (`scan-layers`), for step events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Seconds the step took, for `step-done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
    /// The layer's (or blob's) digest, shortened to [`SHORT_DIGEST`] hex characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Position among the input layers (0 = base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_index: Option<usize>,
    /// Compressed bytes fetched so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    /// The layer's (blob's) compressed size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Entries in the layer, for `layer-done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Whether the layer came from the layer cache, for `layer-done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// Bytes per second since the layer started, for `layer-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// How a blob reached the output: `present`, `mounted`, `copied`, `uploaded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// The registry request retried (`GET blob repo@sha256:0123456789ab…`: digests
    /// shortened, never credentials), for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The attempt about to be made (2 = the first retry), for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Most attempts of one request (the retry policy's `maxTries`), for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries: Option<u32>,
    /// The wait before that attempt, in milliseconds, for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Why the previous attempt failed (`HTTP 503`, a transport error), for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ProgressView {
    fn new(kind: ProgressKind) -> Self {
        ProgressView {
            kind,
            step: None,
            seconds: None,
            layer: None,
            layer_index: None,
            bytes_done: None,
            bytes_total: None,
            files: None,
            cached: None,
            rate: None,
            how: None,
            operation: None,
            attempt: None,
            tries: None,
            delay_ms: None,
            reason: None,
        }
    }

    /// A one-line description (`scan-layers: 3f2a…: 1.2 MiB of 3.4 MiB`).
    pub fn describe(&self) -> String {
        let layer = self.layer.as_deref().unwrap_or("?");
        match self.kind {
            ProgressKind::StepStarted => format!("{}…", self.step.as_deref().unwrap_or("?")),
            ProgressKind::StepDone => format!(
                "{} done ({} s)",
                self.step.as_deref().unwrap_or("?"),
                self.seconds.unwrap_or(0)
            ),
            ProgressKind::LayerStarted => format!(
                "layer {} {layer} ({})",
                self.layer_index.unwrap_or(0),
                human_bytes(self.bytes_total.unwrap_or(0))
            ),
            ProgressKind::LayerBytes => {
                let mut s = format!(
                    "layer {layer}: {}",
                    human_bytes(self.bytes_done.unwrap_or(0))
                );
                if let Some(t) = self.bytes_total {
                    s.push_str(&format!(" of {}", human_bytes(t)));
                }
                if let Some(r) = self.rate {
                    s.push_str(&format!(", {}/s", human_bytes(r as u64)));
                }
                s
            }
            ProgressKind::LayerDone => format!(
                "layer {layer}: {} files{}",
                self.files.unwrap_or(0),
                if self.cached == Some(true) {
                    " (cached)"
                } else {
                    ""
                }
            ),
            ProgressKind::Blob => format!("blob {layer}: {}", self.how.as_deref().unwrap_or("?")),
            ProgressKind::Retry => retry_words(self),
        }
    }
}

/// A retry in plain words: `Registry busy (HTTP 503), retrying GET blob
/// app@sha256:0123456789ab… in 1.2 s, attempt 2 of 5`.
fn retry_words(v: &ProgressView) -> String {
    let reason = v.reason.as_deref().unwrap_or("?");
    let why = if reason.contains("429") {
        format!("Registry rate limit ({reason})")
    } else if reason.contains("503") {
        format!("Registry busy ({reason})")
    } else if reason.starts_with("HTTP ") {
        format!("Registry error ({reason})")
    } else {
        format!("Registry request failed ({reason})")
    };
    let mut s = format!(
        "{why}, retrying {} in {:.1} s",
        v.operation.as_deref().unwrap_or("a request"),
        v.delay_ms.unwrap_or(0) as f64 / 1000.0
    );
    if let Some(a) = v.attempt {
        s.push_str(&format!(", attempt {a}"));
        if let Some(t) = v.tries {
            s.push_str(&format!(" of {t}"));
        }
    }
    s
}

/// `text` with every `sha256:` digest shortened to [`SHORT_DIGEST`] hex characters and `…`.
pub fn shorten_digests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(i + "sha256:".len());
        out.push_str(head);
        let hex_len = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len > SHORT_DIGEST {
            out.push_str(tail.get(..SHORT_DIGEST).unwrap_or(tail));
            out.push('…');
        } else {
            out.push_str(tail.get(..hex_len).unwrap_or(tail));
        }
        rest = tail.get(hex_len..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Bytes in binary units with one decimal (`1.5 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

/// `sha256:abcdef…` → its first [`SHORT_DIGEST`] hex characters.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(SHORT_DIGEST).collect()
}

fn how_name(how: BlobPush) -> &'static str {
    match how {
        BlobPush::Present => "present",
        BlobPush::Mounted => "mounted",
        BlobPush::Copied => "copied",
        BlobPush::Uploaded => "uploaded",
    }
}

struct LayerState {
    index: usize,
    size: u64,
    started_ms: f64,
    last_sent_ms: Option<f64>,
}

/// Turns engine events into views: remembers each layer's size and start time (for
/// totals and rates) and drops byte counts that come faster than [`BYTES_INTERVAL_MS`].
/// Every retry becomes a view (none is throttled).
#[derive(Default)]
pub struct ProgressTracker {
    layers: HashMap<String, LayerState>,
    tries: Option<u32>,
}

impl ProgressTracker {
    /// A tracker with no layer seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retry views say `attempt N of tries` (the retry policy's `max_tries`).
    pub fn with_tries(mut self, tries: u32) -> Self {
        self.tries = Some(tries);
        self
    }

    /// The view of `event` at time `now_ms` (milliseconds, any monotonic origin), or
    /// `None` when it is a byte count too soon after the previous one.
    pub fn view(&mut self, event: &Event, now_ms: f64) -> Option<ProgressView> {
        Some(match event {
            Event::StepStarted(step) => {
                let mut v = ProgressView::new(ProgressKind::StepStarted);
                v.step = Some(step.name().to_string());
                v
            }
            Event::StepDone { step, seconds } => {
                let mut v = ProgressView::new(ProgressKind::StepDone);
                v.step = Some(step.name().to_string());
                v.seconds = Some(*seconds);
                v
            }
            Event::LayerStarted {
                digest,
                index,
                size,
            } => {
                self.layers.insert(
                    digest.clone(),
                    LayerState {
                        index: *index,
                        size: *size,
                        started_ms: now_ms,
                        last_sent_ms: None,
                    },
                );
                let mut v = ProgressView::new(ProgressKind::LayerStarted);
                v.layer = Some(short_digest(digest));
                v.layer_index = Some(*index);
                v.bytes_total = Some(*size);
                v
            }
            Event::LayerBytes { digest, bytes } => {
                let mut v = ProgressView::new(ProgressKind::LayerBytes);
                v.layer = Some(short_digest(digest));
                v.bytes_done = Some(*bytes);
                if let Some(l) = self.layers.get_mut(digest) {
                    let finished = *bytes >= l.size;
                    let too_soon = l
                        .last_sent_ms
                        .is_some_and(|t| now_ms - t < BYTES_INTERVAL_MS);
                    if too_soon && !finished {
                        return None;
                    }
                    l.last_sent_ms = Some(now_ms);
                    v.layer_index = Some(l.index);
                    v.bytes_total = Some(l.size);
                    let secs = (now_ms - l.started_ms) / 1000.0;
                    if secs > 0.0 {
                        v.rate = Some(*bytes as f64 / secs);
                    }
                }
                v
            }
            Event::LayerDone {
                digest,
                files,
                cached,
            } => {
                let mut v = ProgressView::new(ProgressKind::LayerDone);
                v.layer = Some(short_digest(digest));
                v.layer_index = self.layers.get(digest).map(|l| l.index);
                v.files = Some(*files);
                v.cached = Some(*cached);
                v
            }
            Event::Retry {
                operation,
                attempt,
                delay_ms,
                reason,
            } => {
                let mut v = ProgressView::new(ProgressKind::Retry);
                v.operation = Some(shorten_digests(operation));
                v.attempt = Some(attempt.saturating_add(1));
                v.tries = self.tries;
                v.delay_ms = Some(*delay_ms);
                v.reason = Some(reason.clone());
                v
            }
            Event::Blob { digest, size, how } => {
                let mut v = ProgressView::new(ProgressKind::Blob);
                v.layer = Some(short_digest(digest));
                v.bytes_total = Some(*size);
                v.how = Some(how_name(*how).to_string());
                v
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::pipeline::progress::Step;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn steps_and_layers() {
        let mut t = ProgressTracker::new();
        let v = t.view(&Event::StepStarted(Step::ScanLayers), 0.0).unwrap();
        assert_eq!(v.kind, ProgressKind::StepStarted);
        assert_eq!(v.step.as_deref(), Some("scan-layers"));
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"kind":"step-started","step":"scan-layers"}"#);

        let start = Event::LayerStarted {
            digest: D.into(),
            index: 2,
            size: 4000,
        };
        let v = t.view(&start, 1000.0).unwrap();
        assert_eq!(v.layer.as_deref(), Some("0123456789ab"));
        assert_eq!(v.bytes_total, Some(4000));

        let bytes = |b| Event::LayerBytes {
            digest: D.into(),
            bytes: b,
        };
        let v = t.view(&bytes(1000), 2000.0).unwrap();
        assert_eq!(v.bytes_done, Some(1000));
        assert_eq!(v.bytes_total, Some(4000));
        assert_eq!(v.layer_index, Some(2));
        assert_eq!(v.rate, Some(1000.0));
        // Throttled, except the final count.
        assert!(t.view(&bytes(2000), 2050.0).is_none());
        assert!(t.view(&bytes(3000), 2300.0).is_some());
        assert!(t.view(&bytes(4000), 2310.0).is_some());

        let v = t
            .view(
                &Event::LayerDone {
                    digest: D.into(),
                    files: 17,
                    cached: true,
                },
                3000.0,
            )
            .unwrap();
        assert_eq!(v.files, Some(17));
        assert_eq!(v.layer_index, Some(2));
        assert!(v.describe().contains("(cached)"));
        let back: ProgressView = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn blobs_and_unknown_layers() {
        let mut t = ProgressTracker::new();
        let v = t
            .view(
                &Event::LayerBytes {
                    digest: D.into(),
                    bytes: 5,
                },
                0.0,
            )
            .unwrap();
        assert_eq!(v.bytes_total, None);
        assert_eq!(v.rate, None);
        let v = t
            .view(
                &Event::Blob {
                    digest: D.into(),
                    size: 3 << 20,
                    how: BlobPush::Mounted,
                },
                0.0,
            )
            .unwrap();
        assert_eq!(v.how.as_deref(), Some("mounted"));
        assert_eq!(v.describe(), "blob 0123456789ab: mounted");
    }

    #[test]
    fn every_retry_is_a_view_in_plain_words() {
        let mut t = ProgressTracker::new().with_tries(5);
        let retry = |attempt, reason: &str| Event::Retry {
            operation: format!("GET blob app@{D}"),
            attempt,
            delay_ms: 1234,
            reason: reason.into(),
        };
        let v = t.view(&retry(1, "HTTP 503"), 0.0).unwrap();
        assert_eq!(v.kind, ProgressKind::Retry);
        assert_eq!(
            v.describe(),
            "Registry busy (HTTP 503), retrying GET blob app@sha256:0123456789ab… in 1.2 s, attempt 2 of 5"
        );
        // Not throttled: the same retry again a millisecond later is shown too.
        let v = t.view(&retry(2, "HTTP 429"), 1.0).unwrap();
        assert!(
            v.describe().starts_with("Registry rate limit (HTTP 429)"),
            "{}",
            v.describe()
        );
        assert!(v.describe().ends_with("attempt 3 of 5"));
        let v = t.view(&retry(1, "connection reset"), 2.0).unwrap();
        assert!(v
            .describe()
            .starts_with("Registry request failed (connection reset)"));
        let json = serde_json::to_string(&v).unwrap();
        assert!(
            json.contains(r#""kind":"retry""#) && json.contains(r#""delayMs":1234"#),
            "{json}"
        );
        let back: ProgressView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        // Without a policy, no "of N".
        let v = ProgressTracker::new()
            .view(&retry(1, "HTTP 502"), 0.0)
            .unwrap();
        assert!(v.describe().starts_with("Registry error (HTTP 502)"));
        assert!(v.describe().ends_with("attempt 2"));
    }

    #[test]
    fn digests_are_shortened() {
        assert_eq!(
            shorten_digests(&format!("a@{D} b")),
            "a@sha256:0123456789ab… b"
        );
        assert_eq!(shorten_digests("sha256:abc"), "sha256:abc");
        assert_eq!(shorten_digests("no digest"), "no digest");
        assert_eq!(shorten_digests("sha256:"), "sha256:");
    }

    #[test]
    fn formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(short_digest("abc"), "abc");
    }
}
