//! The operator API of a kiln worker (MANAGER_CA approval records), as the Approvals page
//! calls it: `GET /approvals`, `POST /approvals` (register an image converted elsewhere),
//! `POST /approvals/{id}/approve` and `/revoke`, each with `Authorization: Bearer <token>`
//! of an API token with the `admin` scope (docs/attestation.md).
//!
//! The wire types are the engine's own, so field names match the worker's serialisation
//! exactly: a record is [`ApprovalRecord`] (`id, mrenclave, mrenclave2, mrsigner,
//! isvProdId, isvSvn, image, allowedSubjects, status, createdAt, updatedAt`), a registration
//! [`NewEnclave`] or a `kiln verify --json` report ([`RegisterForm::to_body`]), an
//! error [`ApiError`] (`{errorType, reason}`). The pure parts (URLs, the registration
//! form, the error text, filters) build and test natively; [`client`] does the HTTP
//! (wasm32).
//!
//! The token is only ever held by the caller (the page keeps it in memory) and put in the
//! `Authorization` header; it is never part of a URL, and [`error_text`] removes it from
//! any text shown, should a server or the browser ever quote it.

pub use kiln_engine::api::ApiError;
pub use kiln_engine::attest::approvals::NewEnclave;
pub use kiln_engine::attest::issue::{ApprovalRecord, ApprovalStatus};
use serde::{Deserialize, Serialize};

/// `GET /approvals`: every record, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalList {
    /// The records.
    pub records: Vec<ApprovalRecord>,
}

/// What a record's buttons do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pending → approved: MANAGER_CA issues certificates to the enclaves.
    Approve,
    /// Revoke (final): no more certificates.
    Revoke,
}

impl Action {
    /// The path segment (`approve` / `revoke`).
    pub fn segment(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Revoke => "revoke",
        }
    }
}

/// Which records the page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Every record.
    #[default]
    All,
    /// Only records in this status.
    Only(ApprovalStatus),
}

impl StatusFilter {
    /// The filter named by a `<select>` value (`all`, `pending`, `approved`, `revoked`).
    pub fn from_value(v: &str) -> Self {
        match v {
            "pending" => StatusFilter::Only(ApprovalStatus::Pending),
            "approved" => StatusFilter::Only(ApprovalStatus::Approved),
            "revoked" => StatusFilter::Only(ApprovalStatus::Revoked),
            _ => StatusFilter::All,
        }
    }

    /// Whether `r` is listed.
    pub fn keeps(self, r: &ApprovalRecord) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Only(s) => r.status == s,
        }
    }
}

/// A status as the wire and the page spell it.
pub fn status_name(s: ApprovalStatus) -> &'static str {
    match s {
        ApprovalStatus::Pending => "pending",
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Revoked => "revoked",
    }
}

/// The edge URL's origin (`http(s)://host[:port]`), or an error naming the field. A path
/// is refused rather than dropped (the API lives at the origin's root).
pub fn edge_origin(input: &str) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err(
            "edge URL: required (the kiln worker's address, e.g. https://kiln.example.workers.dev)"
                .into(),
        );
    }
    let u = url::Url::parse(t).map_err(|e| format!("edge URL: not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "edge URL: expected http:// or https://, got {}:",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("edge URL: must not carry a user or password".into());
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err("edge URL: expected only scheme, host and port (no path or query)".into());
    }
    Ok(u.origin().ascii_serialization())
}

/// Checks the API token before it goes into a header: 1-4096 visible ASCII characters.
/// (A header value the browser refuses would make it quote the value in its error.) The
/// token is never part of the message.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err(
            "API token: required (a token with the admin scope, from KILN_API_TOKENS)".into(),
        );
    }
    if token.len() > 4096 {
        return Err(format!(
            "API token: longer than 4096 characters ({})",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "API token: only visible ASCII characters (no spaces, line breaks or other characters)"
                .into(),
        );
    }
    Ok(())
}

/// `{origin}/approvals`.
pub fn list_url(origin: &str) -> String {
    format!("{}/approvals", origin.trim_end_matches('/'))
}

/// `{origin}/approvals/{id}/{approve|revoke}`; the id is checked as the worker does
/// (1-64 hex digits), so nothing else can reach the path.
pub fn action_url(origin: &str, id: &str, action: Action) -> Result<String, String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "id: expected the record id (hex digits), got {} characters",
            id.len()
        ));
    }
    Ok(format!(
        "{}/approvals/{}/{}",
        origin.trim_end_matches('/'),
        id,
        action.segment()
    ))
}

/// The register form's fields as the user typed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterForm {
    /// MRENCLAVE (SGX1), hex.
    pub mrenclave: String,
    /// MRENCLAVE of the EDMM enclave (optional).
    pub mrenclave2: String,
    /// MRSIGNER, hex.
    pub mrsigner: String,
    /// ISVPRODID (0-65535).
    pub isv_prod_id: String,
    /// ISVSVN (0-65535).
    pub isv_svn: String,
    /// The image reference (optional).
    pub image: String,
    /// DNS names, separated by commas, spaces or lines (optional).
    pub allowed_subjects: String,
    /// A `kiln verify --json` report, pasted or read from a dropped file (optional): when
    /// given, the enclave fields are not sent; the report's are used.
    pub verify_report: String,
}

/// Largest verify report the form sends (a `kiln verify --json` report is a few KiB).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

fn u16_field(field: &str, v: &str) -> Result<u16, String> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u16>()
        .map_err(|_| format!("{field}: expected a whole number from 0 to 65535"))
}

impl RegisterForm {
    /// The `POST /approvals` body: with a verify report `{"verifyReport": <the report>,
    /// "image", "allowedSubjects"}` (the image and subjects from the form; whether the
    /// report passed and names the enclaves is checked by the API, whose `reason` names
    /// the field, e.g. `verifyReport.passed`), else the fields ([`Self::to_request`]).
    /// A report that is not a JSON object, or is larger than [`MAX_REPORT_BYTES`], is
    /// refused here naming `verifyReport`.
    pub fn to_body(&self) -> Result<serde_json::Value, String> {
        let report = self.verify_report.trim();
        if report.is_empty() {
            return serde_json::to_value(self.to_request()?).map_err(|e| e.to_string());
        }
        if report.len() > MAX_REPORT_BYTES {
            return Err(format!(
                "verifyReport: {} bytes is more than the {MAX_REPORT_BYTES} read",
                report.len()
            ));
        }
        let value: serde_json::Value = serde_json::from_str(report).map_err(|e| {
            format!("verifyReport: not JSON (line {}, column {}); paste the output of `kiln verify --json`", e.line(), e.column())
        })?;
        if !value.is_object() {
            return Err(
                "verifyReport: expected a JSON object, the output of `kiln verify --json`".into(),
            );
        }
        let fields = self.to_request_subjects();
        Ok(serde_json::json!({
            "verifyReport": value,
            "image": self.image.trim(),
            "allowedSubjects": fields,
        }))
    }

    fn to_request_subjects(&self) -> Vec<String> {
        self.allowed_subjects
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The `POST /approvals` body. Only the numbers are checked here (the JSON needs
    /// them as numbers); the hex fields and the names are checked by the API, whose
    /// `reason` names the field. Empty ISV ids are 0.
    pub fn to_request(&self) -> Result<NewEnclave, String> {
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(NewEnclave {
            mrenclave: self.mrenclave.trim().to_string(),
            mrenclave2: opt(&self.mrenclave2),
            mrsigner: self.mrsigner.trim().to_string(),
            isv_prod_id: u16_field("isvProdId", &self.isv_prod_id)?,
            isv_svn: u16_field("isvSvn", &self.isv_svn)?,
            image: self.image.trim().to_string(),
            allowed_subjects: self.to_request_subjects(),
        })
    }
}

/// The text shown for a failed call: the API's `reason` (which names the field) with its
/// HTTP status and `errorType`, or the status alone when the body is not an API error.
/// `token` is cut out of the text wherever it appears.
pub fn error_text(status: u16, body: &str, token: &str) -> String {
    let text = match serde_json::from_str::<ApiError>(body) {
        Ok(e) => format!("{status} {}: {}", e.error_type.as_str(), e.reason),
        Err(_) => format!("HTTP {status} (the answer is not a kiln API error)"),
    };
    redact(&text, token)
}

/// `text` with every occurrence of `token` replaced by `[token]`.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, "[token]")
    }
}

/// A record time (Unix seconds) as the page shows it, in UTC: `2026-12-07 20:55Z`;
/// `not recorded` for 0 (records stored before records had times).
pub fn utc_time(secs: u64) -> String {
    if secs == 0 {
        return "not recorded".into();
    }
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// A measurement shortened for a table cell: the first and last 8 hex digits.
pub fn abbreviate(hex: &str) -> String {
    if hex.len() <= 20 || !hex.is_ascii() {
        return hex.to_string();
    }
    format!("{}…{}", &hex[..8], &hex[hex.len() - 8..])
}

/// The worker's HTTP client for these calls (wasm32).
#[cfg(target_arch = "wasm32")]
pub mod client {
    use super::{action_url, check_token, error_text, list_url, redact, Action};
    use super::{ApprovalList, ApprovalRecord};
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    /// One call: method, URL, optional JSON body; the answer's text on 200, else the
    /// error text ([`error_text`]).
    async fn call(
        method: &str,
        url: &str,
        token: &str,
        body: Option<String>,
    ) -> Result<String, String> {
        check_token(token)?;
        let fail = |e: wasm_bindgen::JsValue| {
            redact(
                &format!("{method} {url}: {}", crate::webcrypto::js_error(&e)),
                token,
            )
        };
        let headers = web_sys::Headers::new().map_err(fail)?;
        headers
            .set("authorization", &format!("Bearer {token}"))
            .map_err(fail)?;
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_headers(&headers);
        init.set_cache(web_sys::RequestCache::NoStore);
        init.set_credentials(web_sys::RequestCredentials::Omit);
        if let Some(b) = body {
            headers
                .set("content-type", "application/json")
                .map_err(fail)?;
            init.set_body(&wasm_bindgen::JsValue::from_str(&b));
        }
        let req = web_sys::Request::new_with_str_and_init(url, &init).map_err(fail)?;
        let window = web_sys::window().ok_or("no window")?;
        let resp: web_sys::Response = JsFuture::from(window.fetch_with_request(&req))
            .await
            .map_err(fail)?
            .dyn_into()
            .map_err(|_| format!("{method} {url}: not a Response"))?;
        let text = JsFuture::from(resp.text().map_err(fail)?)
            .await
            .map_err(fail)?
            .as_string()
            .unwrap_or_default();
        if resp.status() == 200 {
            Ok(text)
        } else {
            Err(error_text(resp.status(), &text, token))
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| format!("{what}: unexpected answer ({e})"))
    }

    /// `GET /approvals`.
    pub async fn list(origin: &str, token: &str) -> Result<Vec<ApprovalRecord>, String> {
        let text = call("GET", &list_url(origin), token, None).await?;
        Ok(parse::<ApprovalList>("GET /approvals", &text)?.records)
    }

    /// `POST /approvals` with a body of [`super::RegisterForm::to_body`]: the new (or
    /// merged) record.
    pub async fn register(
        origin: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<ApprovalRecord, String> {
        let body = serde_json::to_string(body).map_err(|e| e.to_string())?;
        let text = call("POST", &list_url(origin), token, Some(body)).await?;
        parse("POST /approvals", &text)
    }

    /// `POST /approvals/{id}/approve|revoke`: the record after the change.
    pub async fn act(
        origin: &str,
        token: &str,
        id: &str,
        action: Action,
    ) -> Result<ApprovalRecord, String> {
        let url = action_url(origin, id, action)?;
        let text = call("POST", &url, token, None).await?;
        parse(
            &format!("POST /approvals/{{id}}/{}", action.segment()),
            &text,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str) -> ApprovalRecord {
        serde_json::from_value(serde_json::json!({
            "id": "ab".repeat(16), "mrenclave": "11".repeat(32), "mrenclave2": "ee".repeat(32),
            "mrsigner": "22".repeat(32), "isvProdId": 1, "isvSvn": 2, "image": "r.example/a:1",
            "allowedSubjects": ["app.example"], "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_workers_list() {
        // The worker answers `serde_json::to_value(&Approvals)`: the engine's own type.
        let mut records = kiln_engine::attest::approvals::Approvals::default();
        let new = NewEnclave {
            mrenclave: "11".repeat(32),
            mrenclave2: None,
            mrsigner: "22".repeat(32),
            isv_prod_id: 3,
            isv_svn: 4,
            image: String::new(),
            allowed_subjects: vec!["a.example".into()],
        };
        records.record_pending(&new, 1_796_000_000).unwrap();
        let text = serde_json::to_string(&records).unwrap();
        let list: ApprovalList = serde_json::from_str(&text).unwrap();
        assert_eq!(list.records.len(), 1);
        assert_eq!(list.records[0].status, ApprovalStatus::Pending);
        assert_eq!(list.records[0].isv_prod_id, 3);
        assert!(text.contains("\"isvProdId\":3") && text.contains("\"allowedSubjects\""));
        assert_eq!(list.records[0].created_at, 1_796_000_000);
        assert_eq!(utc_time(list.records[0].updated_at), "2026-11-30 00:53Z");
    }

    #[test]
    fn filters_by_status() {
        let rs = [record("pending"), record("approved"), record("revoked")];
        let kept = |v: &str| {
            rs.iter()
                .filter(|r| StatusFilter::from_value(v).keeps(r))
                .count()
        };
        assert_eq!(
            (
                kept("all"),
                kept("pending"),
                kept("approved"),
                kept("revoked")
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(kept("anything else"), 3);
        assert_eq!(status_name(rs[2].status), "revoked");
    }

    #[test]
    fn edge_origin_takes_an_origin_only() {
        assert_eq!(
            edge_origin(" http://127.0.0.1:8787/ ").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            edge_origin("https://kiln.example").unwrap(),
            "https://kiln.example"
        );
        for (bad, why) in [
            ("", "required"),
            ("kiln.example", "not a URL"),
            ("ftp://kiln.example", "http:// or https://"),
            ("https://u:p@kiln.example", "user or password"),
            ("https://kiln.example/approvals", "no path"),
            ("https://kiln.example/?t=1", "no path"),
        ] {
            let e = edge_origin(bad).unwrap_err();
            assert!(e.starts_with("edge URL:") && e.contains(why), "{bad}: {e}");
            assert!(!e.contains("u:p"), "{e}");
        }
    }

    #[test]
    fn tokens_are_checked_without_quoting_them() {
        assert!(check_token("tok-ABC_123.x~").is_ok());
        for bad in ["", "has space", "line\nbreak", "é-token", &"x".repeat(4097)] {
            let e = check_token(bad).unwrap_err();
            assert!(e.starts_with("API token:"), "{e}");
            if bad.len() > 3 {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }

    #[test]
    fn urls() {
        assert_eq!(list_url("http://o:1/"), "http://o:1/approvals");
        let id = "ab".repeat(16);
        assert_eq!(
            action_url("http://o:1", &id, Action::Revoke).unwrap(),
            format!("http://o:1/approvals/{id}/revoke")
        );
        for bad in ["", "../x", "ab/approve", &"a".repeat(65)] {
            let e = action_url("http://o", bad, Action::Approve).unwrap_err();
            assert!(e.starts_with("id:"), "{e}");
        }
    }

    #[test]
    fn register_form_to_request() {
        let form = RegisterForm {
            mrenclave: " AB ".into(),
            mrenclave2: "  ".into(),
            mrsigner: "cd".into(),
            isv_prod_id: "7".into(),
            isv_svn: "".into(),
            image: "r.example/x:1".into(),
            allowed_subjects: "a.example, b.example\nc.example".into(),
            verify_report: String::new(),
        };
        let req = form.to_request().unwrap();
        assert_eq!(req.mrenclave, "AB");
        assert_eq!(req.mrenclave2, None);
        assert_eq!((req.isv_prod_id, req.isv_svn), (7, 0));
        assert_eq!(
            req.allowed_subjects,
            ["a.example", "b.example", "c.example"]
        );
        // The JSON the worker reads (deny_unknown_fields there): camelCase names.
        let v = serde_json::to_value(&req).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "allowedSubjects",
                "image",
                "isvProdId",
                "isvSvn",
                "mrenclave",
                "mrenclave2",
                "mrsigner"
            ]
        );
        for (field, value) in [("isvProdId", "65536"), ("isvSvn", "-1"), ("isvSvn", "two")] {
            let mut f = form.clone();
            if field == "isvProdId" {
                f.isv_prod_id = value.into();
            } else {
                f.isv_svn = value.into();
            }
            let e = f.to_request().unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{e}");
        }
    }

    #[test]
    fn errors_show_the_reason_never_the_token() {
        let body = r#"{"errorType":"BadRequest","reason":"mrsigner: expected 64 hex digits, got 2 characters"}"#;
        assert_eq!(
            error_text(400, body, "tok"),
            "400 BadRequest: mrsigner: expected 64 hex digits, got 2 characters"
        );
        let body = r#"{"errorType":"Unauthorized","reason":"unknown token s3cr3t-tok"}"#;
        let t = error_text(401, body, "s3cr3t-tok");
        assert!(
            t.starts_with("401 Unauthorized: ") && !t.contains("s3cr3t"),
            "{t}"
        );
        assert_eq!(
            error_text(502, "<html>bad gateway</html>", "x"),
            "HTTP 502 (the answer is not a kiln API error)"
        );
    }

    #[test]
    fn register_by_a_verify_report() {
        let report = serde_json::json!({
            "format": "kiln", "manifestDigest": "sha256:00", "passed": true,
            "mrenclaves": [["sgx1", "11".repeat(32)]], "mrsigner": "22".repeat(32),
            "isvProdId": 1, "isvSvn": 2, "checks": [],
        });
        let form = RegisterForm {
            mrenclave: "ignored".into(),
            image: " r.example/x:1 ".into(),
            allowed_subjects: "a.example b.example".into(),
            verify_report: format!("\n{report}\n"),
            ..Default::default()
        };
        let body = form.to_body().unwrap();
        assert_eq!(body["verifyReport"], report);
        assert_eq!(body["image"], "r.example/x:1");
        assert_eq!(
            body["allowedSubjects"],
            serde_json::json!(["a.example", "b.example"])
        );
        assert!(body.get("mrenclave").is_none());
        // The engine reads it as the worker does.
        let reg: kiln_engine::attest::approvals::ReportRegistration =
            serde_json::from_value(body).unwrap();
        assert_eq!(reg.new_enclave().unwrap().mrenclave, "11".repeat(32));
        // Without a report: the fields.
        let fields = RegisterForm {
            verify_report: "  ".into(),
            ..form.clone()
        };
        assert_eq!(fields.to_body().unwrap()["mrenclave"], "ignored");
        for (bad, why) in [
            ("{not json", "not JSON (line 1"),
            ("[1, 2]", "expected a JSON object"),
        ] {
            let f = RegisterForm {
                verify_report: bad.into(),
                ..form.clone()
            };
            let e = f.to_body().unwrap_err();
            assert!(e.starts_with("verifyReport: ") && e.contains(why), "{e}");
        }
        let big = RegisterForm {
            verify_report: format!("\"{}\"", "x".repeat(MAX_REPORT_BYTES)),
            ..form
        };
        let e = big.to_body().unwrap_err();
        assert!(
            e.starts_with("verifyReport: ") && e.contains("1048576"),
            "{e}"
        );
    }

    #[test]
    fn times_in_utc() {
        assert_eq!(utc_time(0), "not recorded");
        assert_eq!(utc_time(1), "1970-01-01 00:00Z");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00Z");
        assert_eq!(utc_time(1_796_676_900), "2026-12-07 20:55Z");
        assert_eq!(utc_time(4_102_444_799), "2099-12-31 23:59Z");
    }

    #[test]
    fn abbreviates_measurements() {
        let m = format!("{}{}", "0123456789abcdef".repeat(3), "fedcba9876543210");
        assert_eq!(abbreviate(&m), "01234567…76543210");
        assert_eq!(abbreviate("short"), "short");
    }
}
