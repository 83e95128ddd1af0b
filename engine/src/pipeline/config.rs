//! The converted image's config and manifest (docs/image-formats.md, "Converted image
//! (format 1)"), and the reproducible time every conversion uses.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api::ApiError;
use crate::sgx::sigstruct_date::SigstructDate;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type (the kiln layer's).
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The instant a conversion stamps on its output: `SOURCE_DATE_EPOCH` when the host
/// has it, else the input image's `created`, else the Unix epoch (negative → 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildTime {
    /// Seconds since the epoch (mtimes, history `created`).
    pub unix: u64,
}

impl BuildTime {
    /// Chooses the instant.
    pub fn choose(source_date_epoch: Option<i64>, input_config: &Value) -> Self {
        let secs = source_date_epoch
            .or_else(|| {
                input_config
                    .get("created")
                    .and_then(Value::as_str)
                    .and_then(parse_rfc3339)
            })
            .unwrap_or(0);
        BuildTime {
            unix: u64::try_from(secs).unwrap_or(0),
        }
    }

    /// The SIGSTRUCT DATE: the instant's UTC calendar date.
    pub fn sigstruct_date(self) -> Result<SigstructDate, ApiError> {
        let (y, m, d) = civil_from_days((self.unix / 86_400) as i64);
        let y = u16::try_from(y).map_err(|_| ApiError::internal("build date out of range"))?;
        SigstructDate::new(y, m, d).map_err(|e| ApiError::internal(format!("build date: {e}")))
    }

    /// RFC 3339, UTC, whole seconds.
    pub fn rfc3339(self) -> String {
        let days = (self.unix / 86_400) as i64;
        let rem = self.unix % 86_400;
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// What the output config gets from the conversion.
#[derive(Debug, Clone)]
pub struct ConfigChanges {
    /// The new ENTRYPOINT (the launcher).
    pub entrypoint: String,
    /// `ENCLAVEOS_SIGNATURE=...`, `ENCLAVEOS_SIGNATURE2=...`.
    pub env: Vec<String>,
    /// Labels (also the manifest's annotations).
    pub labels: BTreeMap<String, String>,
    /// diff_ids of the runtime layer and the kiln layer.
    pub diff_ids: Vec<String>,
    /// `created_by` of each added layer.
    pub created_by: Vec<String>,
    /// History `created`.
    pub time: BuildTime,
}

/// Whether a `StopSignal` value names SIGTERM (docker accepts `SIGTERM`, `TERM`, `15`).
fn is_sigterm(sig: &str) -> bool {
    matches!(
        sig.trim().to_ascii_uppercase().as_str(),
        "SIGTERM" | "TERM" | "15"
    )
}

/// The input's `StopSignal` when it is not SIGTERM. Gramine passes only SIGTERM from the
/// host to the app (`sys.enable_sigterm_injection`; libos/src/libos_signal.c, v1.9); any
/// other stop signal (nginx's official image sets SIGQUIT) reaches only the loader, which
/// as the container's PID 1 ignores it, so `docker stop` would wait and then SIGKILL. The
/// output config therefore stops with SIGTERM ([`output_config`]).
pub fn foreign_stop_signal(input: &Value) -> Option<String> {
    let sig = input.get("config")?.get("StopSignal")?.as_str()?;
    (!is_sigterm(sig)).then(|| sig.to_string())
}

/// The output config: the input's with [`ConfigChanges`] applied; every other key kept.
pub fn output_config(input: &Value, changes: &ConfigChanges) -> Result<Vec<u8>, ApiError> {
    let mut cfg = input.clone();
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("input image: config is not a JSON object"))?;
    let c = obj.entry("config").or_insert_with(|| json!({}));
    if c.is_null() {
        *c = json!({});
    }
    let c = c
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("input image: config.config is not an object"))?;
    c.insert("Entrypoint".into(), json!([changes.entrypoint]));
    c.remove("Cmd");
    if c.get("StopSignal")
        .and_then(Value::as_str)
        .is_some_and(|s| !is_sigterm(s))
    {
        c.insert("StopSignal".into(), json!("SIGTERM"));
    }
    let env = c.entry("Env").or_insert_with(|| json!([]));
    if env.is_null() {
        *env = json!([]);
    }
    let env = env
        .as_array_mut()
        .ok_or_else(|| ApiError::bad_request("input image: config Env is not a list"))?;
    env.retain(|e| {
        e.as_str().is_none_or(|s| {
            !s.starts_with("ENCLAVEOS_SIGNATURE=") && !s.starts_with("ENCLAVEOS_SIGNATURE2=")
        })
    });
    env.extend(changes.env.iter().map(|e| json!(e)));
    let labels = c.entry("Labels").or_insert_with(|| json!({}));
    if labels.is_null() {
        *labels = json!({});
    }
    let labels = labels
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("input image: config Labels is not an object"))?;
    for (k, v) in &changes.labels {
        labels.insert(k.clone(), json!(v));
    }
    let rootfs = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ApiError::bad_request("input image: config has no rootfs.diff_ids"))?;
    rootfs.extend(changes.diff_ids.iter().map(|d| json!(d)));
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if history.is_null() {
        *history = json!([]);
    }
    if let Some(h) = history.as_array_mut() {
        for by in &changes.created_by {
            h.push(json!({"created": changes.time.rfc3339(), "created_by": by}));
        }
    }
    serde_json::to_vec(&cfg).map_err(|e| ApiError::internal(format!("config: {e}")))
}

/// The output manifest (OCI): the input's layer descriptors verbatim, the runtime's,
/// the kiln layer's; the labels as annotations.
pub fn output_manifest(
    config_digest: &str,
    config_size: u64,
    layers: Vec<Value>,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ApiError> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
        "annotations": labels,
    });
    serde_json::to_vec(&m).map_err(|e| ApiError::internal(format!("manifest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T13:34:56+01:00"),
            Some(1_709_210_096)
        );
        assert_eq!(parse_rfc3339("2024-02-29"), None);
        assert_eq!(parse_rfc3339("x024-02-29T12:34:56Z"), None);
        let t = BuildTime {
            unix: 1_709_210_096,
        };
        assert_eq!(t.rfc3339(), "2024-02-29T12:34:56Z");
        assert_eq!(t.sigstruct_date().unwrap().to_string(), "2024-02-29");
        for days in [-1000i64, 0, 59, 365 * 30, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m.into(), d.into()), days);
        }
    }

    #[test]
    fn choice_of_time() {
        let cfg = json!({"created": "2001-02-03T04:05:06Z"});
        assert_eq!(BuildTime::choose(Some(5), &cfg).unix, 5);
        assert_eq!(BuildTime::choose(None, &cfg).unix, 981_173_106);
        assert_eq!(BuildTime::choose(None, &json!({})).unix, 0);
        assert_eq!(BuildTime::choose(Some(-3), &cfg).unix, 0);
    }

    #[test]
    fn config_changes_applied() {
        let input = json!({"architecture":"amd64","os":"linux",
            "config":{"Cmd":["sh"],"Env":["A=1"],"WorkingDir":"/w","User":"1:2"},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}});
        let ch = ConfigChanges {
            entrypoint: "/l".into(),
            env: vec!["ENCLAVEOS_SIGNATURE=x".into()],
            labels: [("k".to_string(), "v".to_string())].into_iter().collect(),
            diff_ids: vec!["sha256:bb".into(), "sha256:cc".into()],
            created_by: vec!["a".into(), "b".into()],
            time: BuildTime { unix: 0 },
        };
        let out: Value = serde_json::from_slice(&output_config(&input, &ch).unwrap()).unwrap();
        assert_eq!(out["config"]["Entrypoint"], json!(["/l"]));
        assert!(out["config"].get("Cmd").is_none());
        assert_eq!(
            out["config"]["Env"],
            json!(["A=1", "ENCLAVEOS_SIGNATURE=x"])
        );
        assert_eq!(out["config"]["WorkingDir"], "/w");
        assert_eq!(out["config"]["User"], "1:2");
        assert_eq!(out["config"]["Labels"]["k"], "v");
        assert_eq!(out["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
        assert_eq!(out["history"][1]["created"], "1970-01-01T00:00:00Z");
        assert!(out["config"].get("StopSignal").is_none());

        // nginx's official image stops with SIGQUIT, which Gramine does not pass on.
        let mut nginx = input.clone();
        nginx["config"]["StopSignal"] = json!("SIGQUIT");
        assert_eq!(foreign_stop_signal(&nginx).as_deref(), Some("SIGQUIT"));
        let out: Value = serde_json::from_slice(&output_config(&nginx, &ch).unwrap()).unwrap();
        assert_eq!(out["config"]["StopSignal"], "SIGTERM");
        for ok in ["SIGTERM", "TERM", "15", "sigterm"] {
            nginx["config"]["StopSignal"] = json!(ok);
            assert_eq!(foreign_stop_signal(&nginx), None, "{ok}");
            let out: Value = serde_json::from_slice(&output_config(&nginx, &ch).unwrap()).unwrap();
            assert_eq!(out["config"]["StopSignal"], ok, "kept as written");
        }
    }
}
