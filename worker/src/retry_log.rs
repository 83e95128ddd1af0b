//! One log line per registry retry (the edge API's `/convert-image`, `/verify-image`), so
//! an operator sees a conversion surviving a flaky registry in `wrangler tail` / workerd's
//! output. The line names the operation (`GET blob repo@sha256:...`: the engine keeps
//! credentials out of it), the attempt that failed, why and the wait; never a header or
//! a URL's query.

/// `kiln: retrying OPERATION after REASON (attempt N failed; next in MS ms)`.
pub fn retry_line(operation: &str, attempt: u32, delay_ms: u64, reason: &str) -> String {
    format!("kiln: retrying {operation} after {reason} (attempt {attempt} failed; next in {delay_ms} ms)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operation_attempt_reason_and_wait() {
        assert_eq!(
            retry_line("GET blob a@sha256:1", 2, 750, "HTTP 503"),
            "kiln: retrying GET blob a@sha256:1 after HTTP 503 (attempt 2 failed; next in 750 ms)"
        );
    }
}
