//! A sample convert-image response for the result panel until the conversion is wired
//! in. Its measurement fields are visibly placeholders, never plausible values.

use kiln_engine::api::ConvertResponse;

/// The sample response shown by "Preview the result panel" (clearly labelled as a sample).
pub fn sample_response(output_image: &str) -> ConvertResponse {
    ConvertResponse {
        new_image: if output_image.is_empty() {
            "registry.example/app-sgx:latest".into()
        } else {
            output_image.to_string()
        },
        image_sha: "sample-not-a-real-image".into(),
        image_size: 0,
        isvprodid: 0,
        isvsvn: 0,
        mrenclave: "sample: computed by the conversion".into(),
        mrenclave2: "sample: computed by the conversion".into(),
        mrsigner: "sample: the signing key's MRSIGNER".into(),
        mem_size: 268_435_456,
        digest: "sha256:sample".into(),
        warnings: vec!["This is a sample: the in-browser conversion is not wired in yet.".into()],
    }
}

/// The rows the result panel shows: (API field name, value as text), every field.
pub fn response_rows(r: &ConvertResponse) -> Vec<(&'static str, String)> {
    vec![
        ("newImage", r.new_image.clone()),
        ("imageSHA", r.image_sha.clone()),
        ("imageSize", r.image_size.to_string()),
        ("isvprodid", r.isvprodid.to_string()),
        ("isvsvn", r.isvsvn.to_string()),
        ("mrenclave", r.mrenclave.clone()),
        ("mrenclave2", r.mrenclave2.clone()),
        ("mrsigner", r.mrsigner.clone()),
        ("memSize", r.mem_size.to_string()),
        ("digest", r.digest.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_every_response_field() {
        let r = sample_response("");
        let v = serde_json::to_value(&r).unwrap();
        let rows = response_rows(&r);
        for k in v.as_object().unwrap().keys() {
            assert!(
                k == "warnings" || rows.iter().any(|(n, _)| n == k),
                "{k} not shown"
            );
        }
    }
}
