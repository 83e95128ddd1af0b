//! Retries of idempotent registry requests: exponential backoff with full jitter,
//! `Retry-After` honoured on 429/503, bounded in tries and in total waiting time.
//!
//! The engine has no clock, so waiting comes from the host through [`Timer`] (tokio
//! natively, `setTimeout` in the browser and the Worker). A [`RegistryClient`](super::RegistryClient)
//! retries only when given a [`Retry`] ([`RegistryClient::with_retry`](super::RegistryClient::with_retry)),
//! and then only `GET` and `HEAD` requests whose body is in memory: nothing that changes
//! the registry is re-sent blindly. When nothing fails, a retry costs one clone of the
//! request's headers (no waiting, no allocation beyond that).

use std::sync::Arc;

use crate::util::MaybeSend;

/// Waits, for the host: the engine has no clock of its own.
#[kiln_macros::async_trait]
pub trait Timer: MaybeSend {
    /// Resolves after `ms` milliseconds.
    async fn sleep_ms(&self, ms: u64);
}

/// How often and how long to retry. Settable by name ([`RetryPolicy::set`],
/// [`RETRY_NAMES`]: the CLI's `--retry NAME=VALUE`, the Worker's `KILN_RETRY_<NAME>`)
/// and as JSON (`{"maxTries":5,"baseDelayMs":500,"maxDelayMs":30000,"maxTotalMs":120000}`,
/// the web app's `/kiln-config.json` `retry`; missing fields keep their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    /// Most attempts of one request (the first included); 1 disables retries.
    pub max_tries: u32,
    /// The backoff's base: attempt `n` waits a random time in
    /// `[0, min(max_delay_ms, base_delay_ms * 2^(n-1))]` (full jitter).
    pub base_delay_ms: u64,
    /// Longest single wait (also caps a `Retry-After`).
    pub max_delay_ms: u64,
    /// Most time spent waiting for one request over all its retries; a wait that would
    /// go beyond it is not taken and the last failure is reported.
    pub max_total_ms: u64,
    /// Seed of the jitter (any value; hosts pass something random). Not part of the
    /// JSON form.
    #[serde(skip)]
    pub seed: u64,
}

/// The names [`RetryPolicy::set`] takes: `tries` (attempts of one request, the first
/// included, 1..=100), `base` (the backoff's base), `cap` (longest single wait, also
/// capping `Retry-After`), `total` (most waiting for one request). Durations as `500ms`,
/// `2s`, `1m` (at most 1 h).
pub const RETRY_NAMES: [&str; 4] = ["tries", "base", "cap", "total"];

/// The prefix of the Worker's retry bindings: `KILN_RETRY_TRIES`, `KILN_RETRY_BASE`, ...
pub const RETRY_ENV_PREFIX: &str = "KILN_RETRY_";

/// Longest duration a retry setting takes (1 h).
const SETTING_MAX_MS: u64 = 3_600_000;
/// Most tries a setting takes.
const TRIES_MAX: u32 = 100;

/// A retry setting that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetrySettingError {
    /// No such setting.
    #[error("unknown retry setting {0:?} (known: {names})", names = RETRY_NAMES.join(", "))]
    UnknownName(String),
    /// The value does not parse or is out of range.
    #[error("retry setting {name}: {value:?} is not {expected}")]
    BadValue {
        /// The setting.
        name: String,
        /// The value as given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Not of the form `NAME=VALUE`.
    #[error("retry setting {0:?} is not of the form NAME=VALUE")]
    NotAssignment(String),
}

/// `500ms`, `2s`, `1m`, `1h` in milliseconds (a unit is required), at most 1 h.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mult).filter(|ms| *ms <= SETTING_MAX_MS)
}

impl RetryPolicy {
    /// Sets one value by name ([`RETRY_NAMES`]; case-insensitive).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), RetrySettingError> {
        let key = name.trim().to_ascii_lowercase();
        let bad = |expected: &'static str| RetrySettingError::BadValue {
            name: key.clone(),
            value: value.to_string(),
            expected,
        };
        const DURATION: &str = "a duration like 500ms, 2s or 1m (at most 1h)";
        match key.as_str() {
            "tries" => {
                self.max_tries = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=TRIES_MAX).contains(n))
                    .ok_or_else(|| bad("a whole number from 1 to 100"))?;
            }
            "base" => self.base_delay_ms = parse_duration_ms(value).ok_or_else(|| bad(DURATION))?,
            "cap" => self.max_delay_ms = parse_duration_ms(value).ok_or_else(|| bad(DURATION))?,
            "total" => self.max_total_ms = parse_duration_ms(value).ok_or_else(|| bad(DURATION))?,
            _ => return Err(RetrySettingError::UnknownName(name.to_string())),
        }
        Ok(())
    }

    /// Applies `NAME=VALUE` (e.g. `tries=8`, `total=10m`).
    pub fn apply(&mut self, setting: &str) -> Result<(), RetrySettingError> {
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| RetrySettingError::NotAssignment(setting.to_string()))?;
        self.set(name, value)
    }

    /// Applies `KILN_RETRY_<NAME>` variables from `vars` (name, value pairs; empty
    /// values are unset); others are ignored.
    pub fn apply_env<'a>(
        &mut self,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), RetrySettingError> {
        for (k, v) in vars {
            if let Some(name) = k.strip_prefix(RETRY_ENV_PREFIX) {
                if !v.trim().is_empty() {
                    self.set(name, v)?;
                }
            }
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_total_ms: 120_000,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// One retry about to happen, for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNotice {
    /// The operation (`GET blob repo@sha256:...`), without credentials.
    pub operation: String,
    /// The attempt that failed (1 = the first).
    pub attempt: u32,
    /// How long kiln waits before the next attempt.
    pub delay_ms: u64,
    /// Why (`HTTP 503`, a transport error).
    pub reason: String,
}

/// Told about every retry (e.g. to emit a progress event).
pub trait RetryObserver: MaybeSend {
    /// A retry is about to wait `notice.delay_ms`.
    fn retrying(&self, notice: &RetryNotice);
}

/// What a client needs to retry: the policy, the host's timer, an observer.
#[derive(Clone)]
pub struct Retry {
    /// The policy.
    pub policy: RetryPolicy,
    /// The host's timer.
    pub timer: Arc<dyn Timer>,
    /// Told about each retry.
    pub observer: Option<Arc<dyn RetryObserver>>,
}

impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Retry {
    /// Before attempt `attempt + 1` of `operation` (attempt `attempt` failed for
    /// `reason`): when the policy allows another (tries, total wait in `waited`), tells
    /// the observer, waits the backoff, adds it to `waited` and returns true; else false.
    /// For the retries the client makes outside [`RegistryClient::send`](super::RegistryClient)
    /// (uploads started over in a new session, copies fetched again).
    pub async fn wait_before_next(
        &self,
        operation: &str,
        attempt: u32,
        waited: &mut u64,
        reason: String,
    ) -> bool {
        if attempt >= self.policy.max_tries {
            return false;
        }
        let delay = self.policy.delay_ms(attempt, None, salt_of(operation));
        if waited.saturating_add(delay) > self.policy.max_total_ms {
            return false;
        }
        if let Some(o) = &self.observer {
            o.retrying(&RetryNotice {
                operation: operation.to_string(),
                attempt,
                delay_ms: delay,
                reason,
            });
        }
        if delay > 0 {
            self.timer.sleep_ms(delay).await;
        }
        *waited += delay;
        true
    }
}

/// Whether a failed upload (or copy) may start over in a new upload session: the
/// registry answered 408, 429 or a 5xx gateway/overload status, or the connection
/// failed, broke or timed out. Refusals (401, 403, 400, a digest the registry
/// disputes) are final.
pub fn restartable(e: &super::RegistryError) -> bool {
    use super::RegistryError;
    use crate::image::transport::TransportErrorKind;
    match e {
        RegistryError::Failed { status, .. } | RegistryError::Rejected { status, .. } => {
            retryable_status(*status)
        }
        RegistryError::Transport { source, .. } => matches!(
            source.kind,
            TransportErrorKind::Connect | TransportErrorKind::Io | TransportErrorKind::Timeout
        ),
        _ => false,
    }
}

/// Whether a response status is worth retrying: 408, 429 and 5xx gateway/overload
/// answers (500, 502, 503, 504).
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// A `Retry-After` value in milliseconds: delta-seconds only (an HTTP-date needs a
/// clock the engine does not have; it falls back to the backoff).
pub fn retry_after_ms(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after attempt `attempt` failed: the
    /// server's `Retry-After` when given (capped at `max_delay_ms`), else full jitter.
    /// `salt` varies the jitter between requests.
    pub fn delay_ms(&self, attempt: u32, retry_after: Option<u64>, salt: u64) -> u64 {
        if let Some(ms) = retry_after {
            return ms.min(self.max_delay_ms);
        }
        let exp = attempt.saturating_sub(1).min(32);
        let cap = self
            .base_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_delay_ms);
        if cap == 0 {
            return 0;
        }
        splitmix64(self.seed ^ salt ^ u64::from(attempt).wrapping_mul(0x2545_f491_4f6c_dd1d))
            % (cap + 1)
    }
}

/// A small, well-mixed hash (splitmix64's finaliser): jitter needs no cryptography.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A salt for `text` (the operation), so concurrent requests do not wait in step.
pub(crate) fn salt_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_by_name_env_and_json() {
        let mut p = RetryPolicy::default();
        p.apply("tries=8").unwrap();
        p.apply("base=250ms").unwrap();
        p.apply("CAP=1m").unwrap();
        p.apply_env([
            ("KILN_RETRY_TOTAL", "10m"),
            ("OTHER", "x"),
            ("KILN_RETRY_BASE", " "),
        ])
        .unwrap();
        assert_eq!(
            (p.max_tries, p.base_delay_ms, p.max_delay_ms, p.max_total_ms),
            (8, 250, 60_000, 600_000)
        );
        for bad in [
            "tries=0",
            "tries=101",
            "base=5",
            "cap=2h",
            "total=soon",
            "tries=-1",
        ] {
            let e = p.apply(bad).unwrap_err();
            assert!(
                matches!(e, RetrySettingError::BadValue { .. }),
                "{bad}: {e}"
            );
            assert!(
                e.to_string().contains(bad.split('=').next().unwrap_or("")),
                "{e}"
            );
        }
        assert!(matches!(
            p.apply("nope=1"),
            Err(RetrySettingError::UnknownName(_))
        ));
        assert!(matches!(
            p.apply("tries"),
            Err(RetrySettingError::NotAssignment(_))
        ));
        // JSON: camelCase, missing fields default, the seed is not part of it.
        let json = serde_json::to_value(RetryPolicy::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"maxTries":5,"baseDelayMs":500,"maxDelayMs":30000,"maxTotalMs":120000})
        );
        let q: RetryPolicy = serde_json::from_str(r#"{"maxTries":2}"#).unwrap();
        assert_eq!(
            q,
            RetryPolicy {
                max_tries: 2,
                ..RetryPolicy::default()
            }
        );
    }

    #[test]
    fn full_jitter_is_bounded_and_retry_after_wins() {
        let p = RetryPolicy {
            base_delay_ms: 100,
            max_delay_ms: 1000,
            ..RetryPolicy::default()
        };
        for attempt in 1..10 {
            let cap = (100u64 << (attempt - 1)).min(1000);
            let mut seen = std::collections::BTreeSet::new();
            for salt in 0..200 {
                let d = p.delay_ms(attempt, None, salt);
                assert!(d <= cap, "{attempt}: {d} > {cap}");
                seen.insert(d);
            }
            assert!(seen.len() > 20, "jitter varies: {seen:?}");
        }
        assert_eq!(p.delay_ms(1, Some(3000), 0), 1000);
        assert_eq!(p.delay_ms(1, Some(200), 0), 200);
        assert_eq!(retry_after_ms(" 7 "), Some(7000));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert!(retryable_status(503) && retryable_status(429) && !retryable_status(404));
        assert_ne!(salt_of("a"), salt_of("b"));
    }
}
