//! The request as JSON and as the equivalent `curl` against the edge API, with every
//! secret (registry passwords, KMS API key) replaced by a placeholder.

use kiln_engine::api::{ConvertRequest, SigningKey};

/// Stands in for a registry password in shown JSON and curl.
pub const PASSWORD_PLACEHOLDER: &str = "<password>";
/// Stands in for a KMS API key.
pub const API_KEY_PLACEHOLDER: &str = "<api-key>";
/// Stands in for the edge API's token (`Authorization: Bearer`); the page never knows one.
pub const TOKEN_PLACEHOLDER: &str = "<your-kiln-api-token>";

/// A copy of the request with secrets replaced by placeholders.
pub fn redacted(req: &ConvertRequest) -> ConvertRequest {
    let mut r = req.clone();
    for a in [
        &mut r.input_auth_config,
        &mut r.output_auth_config,
        &mut r.auth_config,
    ]
    .into_iter()
    .flatten()
    {
        if a.password.is_some() {
            a.password = Some(PASSWORD_PLACEHOLDER.to_string());
        }
    }
    if let Some(SigningKey::Sdkms(k)) = &mut r.signing_key {
        k.api_key = API_KEY_PLACEHOLDER.to_string();
    }
    r
}

/// The request body as shown (pretty, secrets replaced).
pub fn request_json(req: &ConvertRequest) -> String {
    serde_json::to_string_pretty(&redacted(req)).unwrap_or_else(|e| format!("// {e}"))
}

/// Quotes a string for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `curl` command that sends this request to the edge API at `origin`, with the API
/// token's header (`Authorization: Bearer`, the edge's conversion endpoints need one) as
/// a placeholder to replace: [`TOKEN_PLACEHOLDER`].
pub fn curl_command(origin: &str, req: &ConvertRequest) -> String {
    let url = format!("{}/convert-image", origin.trim_end_matches('/'));
    format!(
        "curl -sS -X POST {} \\\n  -H {} \\\n  -H 'Content-Type: application/json' \\\n  --data-binary {}",
        shell_quote(&url),
        shell_quote(&format!("Authorization: Bearer {TOKEN_PLACEHOLDER}")),
        shell_quote(&request_json(req))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::api::{AuthConfig, SdkmsKey};

    fn req() -> ConvertRequest {
        ConvertRequest {
            input_image_name: "in:1".into(),
            output_image_name: "out:1".into(),
            input_auth_config: Some(AuthConfig {
                username: "u".into(),
                password: Some("hunter2".into()),
            }),
            output_auth_config: Some(AuthConfig {
                username: "o".into(),
                password: None,
            }),
            manifest_env: Some(vec!["GREETING=it's".into()]),
            signing_key: Some(SigningKey::Sdkms(SdkmsKey {
                name: "k".into(),
                api_key: "sekrit".into(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_never_shown() {
        let r = req();
        let json = request_json(&r);
        let curl = curl_command("https://kiln.example/", &r);
        for text in [&json, &curl] {
            assert!(
                !text.contains("hunter2") && !text.contains("sekrit"),
                "{text}"
            );
            assert!(text.contains(PASSWORD_PLACEHOLDER) && text.contains(API_KEY_PLACEHOLDER));
        }
        assert!(curl.starts_with("curl -sS -X POST 'https://kiln.example/convert-image'"));
        assert!(
            curl.contains("-H 'Authorization: Bearer <your-kiln-api-token>'"),
            "{curl}"
        );
        // A password that was not given stays absent.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["outputAuthConfig"].get("password").is_none());
    }

    #[test]
    fn curl_body_survives_the_shell_quoting() {
        let curl = curl_command("http://127.0.0.1:8787", &req());
        let quoted = curl.split("--data-binary ").nth(1).unwrap();
        // Undo POSIX single quoting: '...'\''...'
        let unquoted = quoted
            .trim_start_matches('\'')
            .trim_end_matches('\'')
            .replace(r"'\''", "'");
        let v: serde_json::Value = serde_json::from_str(&unquoted).unwrap();
        assert_eq!(v["manifestEnv"][0], "GREETING=it's");
    }
}
