//! MANAGER_CA: the certificate issued by the manager's CA instead of self-signed. For a
//! `certificates[]` entry with a `manager` base URL ([`crate::config::CertRequest::manager`]),
//! kiln-init sends
//!
//! ```text
//! POST {manager}/certificates/issue
//! {"csr": "<PEM CERTIFICATE REQUEST>", "quote": "<base64 SGX quote>", "subject": "<subject>"}
//! ```
//!
//! where the quote's report data is SHA-256 of the CSR's SubjectPublicKeyInfo (what the
//! manager checks as `key-binding`), and on 200 takes `certificateChain` (leaf then CA,
//! PEM) from the JSON answer; the leaf must carry the CSR's key.
//!
//! Retries ([`RetryPolicy`]): connection failures, 5xx and 429 are retried with exponential
//! backoff (0.5 s doubling, at most 30 s apart; a `Retry-After` in seconds is honoured up
//! to that cap), at most 8 attempts within 120 s, one log line each (never the key or the
//! quote). Any other status is final: a 4xx is [`ManagerError::Refused`] with the answer's
//! `reason` (`{errorType, reason}`), length-capped and on one line. Redirects are not
//! followed (the URL is measured into the enclave). Answers are read up to
//! [`MAX_ANSWER_BYTES`]. Proxies come from the environment (`HTTPS_PROXY`, `NO_PROXY`, as
//! ureq reads them); https is verified against the webpki roots (Mozilla's).

use std::time::{Duration, Instant};

use base64::Engine as _;
use x509_cert::der::{DecodePem as _, Encode as _};

/// The path appended to the manager's base URL.
pub const ISSUE_PATH: &str = "certificates/issue";
/// Largest answer read.
pub const MAX_ANSWER_BYTES: u64 = 256 * 1024;
/// Longest `reason` quoted from a refusal, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// When and how often to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial_delay: Duration,
    /// The longest wait (also the cap on `Retry-After`).
    pub max_delay: Duration,
    /// Attempts in all (the first one included).
    pub max_attempts: u32,
    /// No attempt starts after this much time since the first.
    pub budget: Duration,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Whole-request timeout per attempt.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 8,
            budget: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): `initial_delay * 2^(attempt-1)`,
    /// or the server's `Retry-After`, at most `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .initial_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// Why no certificate came from the manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A final answer other than 200 (a 4xx other than 429, or a redirect).
    #[error("the manager at {url} refused: {reason}")]
    Refused {
        /// The manager's base URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The answer's `reason` (capped), or what the status was.
        reason: String,
    },
    /// Every attempt failed with a retryable error.
    #[error("the manager at {url} did not issue the certificate after {attempts} attempts in {secs} s: {last}")]
    GaveUp {
        /// The manager's base URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds since the first.
        secs: u64,
        /// The last failure.
        last: String,
    },
    /// The request could not be made (not retried).
    #[error("the manager at {url}: {problem}")]
    Request {
        /// The manager's base URL.
        url: String,
        /// What failed.
        problem: String,
    },
    /// A 200 answer without a usable chain for our key.
    #[error("the manager at {url} answered 200 without a usable certificate chain: {problem}")]
    BadAnswer {
        /// The manager's base URL.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The HTTP client and its retry policy. `log` gets one line per retry.
pub struct ManagerClient {
    agent: ureq::Agent,
    policy: RetryPolicy,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for ManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for ManagerClient {
    /// The binary's client: [`RetryPolicy::default`], retry lines on stderr.
    fn default() -> Self {
        Self::new(RetryPolicy::default(), |line| {
            eprintln!("kiln-init: {line}")
        })
    }
}

/// One failed attempt.
enum Attempt {
    /// Worth another try, after `retry_after` if the server said so.
    Retry {
        what: String,
        retry_after: Option<Duration>,
    },
    /// Final.
    Fail(ManagerError),
}

/// The issue URL for a base URL (one `/` between them).
pub fn issue_url(base: &str) -> String {
    format!("{}/{ISSUE_PATH}", base.trim_end_matches('/'))
}

/// `s` on one line (control characters as spaces), at most `max` characters (then `…`).
fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The `reason` of an `{errorType, reason}` answer, else a short description.
fn answer_reason(status: u16, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        reason: Option<String>,
    }
    match serde_json::from_str::<ApiError>(body) {
        Ok(ApiError {
            reason: Some(r), ..
        }) => one_line(&r, MAX_REASON_CHARS),
        Ok(ApiError {
            error_type: Some(t),
            ..
        }) => format!("HTTP {status} {}", one_line(&t, 64)),
        _ => format!("HTTP {status} (no {{errorType, reason}} answer)"),
    }
}

impl ManagerClient {
    /// A client with `policy`, sending its retry lines to `log`.
    pub fn new(policy: RetryPolicy, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(policy.connect_timeout))
            .timeout_global(Some(policy.request_timeout))
            .user_agent(concat!("kiln-init/", env!("CARGO_PKG_VERSION")))
            .build();
        ManagerClient {
            agent: ureq::Agent::new_with_config(config),
            policy,
            log: Box::new(log),
        }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Asks the manager at `base` for a certificate for the CSR's key: returns the chain
    /// (leaf then CA, PEM) whose leaf carries `spki_der`. `label` prefixes the retry lines
    /// (e.g. "certificate `app.example` (certificates\[0\])").
    pub fn issue(
        &self,
        base: &str,
        label: &str,
        csr_pem: &str,
        spki_der: &[u8],
        quote: &[u8],
        subject: &str,
    ) -> Result<String, ManagerError> {
        let url = issue_url(base);
        let body = serde_json::json!({
            "csr": csr_pem,
            "quote": base64::engine::general_purpose::STANDARD.encode(quote),
            "subject": subject,
        })
        .to_string();
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            let (what, retry_after) = match self.attempt(base, &url, &body, spki_der) {
                Ok(chain) => return Ok(chain),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { what, retry_after }) => (what, retry_after),
            };
            let delay = self.policy.delay(attempt, retry_after);
            if attempt >= self.policy.max_attempts
                || start.elapsed().saturating_add(delay) > self.policy.budget
            {
                return Err(ManagerError::GaveUp {
                    url: base.to_string(),
                    attempts: attempt,
                    secs: start.elapsed().as_secs(),
                    last: what,
                });
            }
            (self.log)(&format!(
                "{label}: the manager at {base}: attempt {attempt} of {} failed ({what}); retrying in {} s",
                self.policy.max_attempts,
                delay.as_millis() as f64 / 1000.0
            ));
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn attempt(
        &self,
        base: &str,
        url: &str,
        body: &str,
        spki_der: &[u8],
    ) -> Result<String, Attempt> {
        let fail = |problem: String| {
            Attempt::Fail(ManagerError::Request {
                url: base.to_string(),
                problem,
            })
        };
        let mut resp = match self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .send(body)
        {
            Ok(r) => r,
            Err(
                e @ (ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_)
                | ureq::Error::ConnectProxyFailed(_)
                | ureq::Error::BodyStalled),
            ) => {
                return Err(Attempt::Retry {
                    what: one_line(&e.to_string(), 200),
                    retry_after: None,
                })
            }
            Err(e) => return Err(fail(one_line(&e.to_string(), 200))),
        };
        let status = resp.status().as_u16();
        let after = retry_after(&resp);
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string();
        match status {
            200 => {
                let text = text.map_err(|e| {
                    Attempt::Fail(ManagerError::BadAnswer {
                        url: base.to_string(),
                        problem: format!(
                            "reading it (at most {MAX_ANSWER_BYTES} bytes): {}",
                            one_line(&e.to_string(), 200)
                        ),
                    })
                })?;
                check_chain(&text, spki_der).map_err(|problem| {
                    Attempt::Fail(ManagerError::BadAnswer {
                        url: base.to_string(),
                        problem,
                    })
                })
            }
            429 | 500..=599 => Err(Attempt::Retry {
                what: format!(
                    "HTTP {status}: {}",
                    one_line(
                        &answer_reason(status, text.as_deref().unwrap_or_default()),
                        200
                    )
                ),
                retry_after: after,
            }),
            _ => Err(Attempt::Fail(ManagerError::Refused {
                url: base.to_string(),
                status,
                reason: if (300..400).contains(&status) {
                    format!("HTTP {status}: redirects are not followed")
                } else {
                    answer_reason(status, text.as_deref().unwrap_or_default())
                },
            })),
        }
    }
}

/// The answer's `certificateChain`, checked: PEM certificates, the first (the leaf)
/// carrying `spki_der`.
fn check_chain(answer: &str, spki_der: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        certificate_chain: String,
    }
    let a: Answer = serde_json::from_str(answer)
        .map_err(|e| format!("not JSON with a certificateChain string: {e}"))?;
    const END: &str = "-----END CERTIFICATE-----";
    let leaf_end = a
        .certificate_chain
        .find(END)
        .ok_or("certificateChain holds no PEM CERTIFICATE")?
        + END.len();
    let leaf = x509_cert::Certificate::from_pem(a.certificate_chain[..leaf_end].trim())
        .map_err(|e| format!("certificateChain's first certificate: {e}"))?;
    let leaf_spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("certificateChain's first certificate's key: {e}"))?;
    if leaf_spki != spki_der {
        return Err("certificateChain's first certificate is not for this enclave's key".into());
    }
    let mut chain = a.certificate_chain;
    if !chain.ends_with('\n') {
        chain.push('\n');
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_honour_retry_after() {
        let p = RetryPolicy::default();
        let d: Vec<f64> = (1..=8).map(|a| p.delay(a, None).as_secs_f64()).collect();
        assert_eq!(d, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(p.delay(1, Some(Duration::from_secs(7))).as_secs(), 7);
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))).as_secs(), 30);
        assert_eq!(p.delay(u32::MAX, None).as_secs(), 30);
        // Within the budget: 7 waits, 61.5 s.
        let total: f64 = d[..7].iter().sum();
        assert!(total < p.budget.as_secs_f64());
    }

    #[test]
    fn urls_and_reasons() {
        assert_eq!(
            issue_url("https://k.example"),
            "https://k.example/certificates/issue"
        );
        assert_eq!(
            issue_url("https://k.example/m/"),
            "https://k.example/m/certificates/issue"
        );
        assert_eq!(
            answer_reason(
                403,
                r#"{"errorType":"Forbidden","reason":"refused by check approval:\nx"}"#
            ),
            "refused by check approval: x"
        );
        let long = serde_json::json!({"reason": "r".repeat(5000)}).to_string();
        assert_eq!(
            answer_reason(400, &long).chars().count(),
            MAX_REASON_CHARS + 1
        );
        assert_eq!(
            answer_reason(404, "<html>"),
            "HTTP 404 (no {errorType, reason} answer)"
        );
        assert_eq!(
            answer_reason(400, r#"{"errorType":"BadRequest"}"#),
            "HTTP 400 BadRequest"
        );
    }

    #[test]
    fn a_chain_must_start_with_a_certificate_for_our_key() {
        assert!(check_chain("{}", b"k")
            .unwrap_err()
            .contains("certificateChain"));
        assert!(check_chain(r#"{"certificateChain":"x"}"#, b"k")
            .unwrap_err()
            .contains("no PEM CERTIFICATE"));
        let bad = r#"{"certificateChain":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}"#;
        assert!(check_chain(bad, b"k")
            .unwrap_err()
            .contains("first certificate"));
    }
}
