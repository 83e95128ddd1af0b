//! The offline two-step conversion (engine::pipeline::prepare / complete) against real
//! loopback registries: the prepared payloads, signed outside the engine, give exactly the
//! image `convert` gives with the same key; nothing is tagged before both signatures
//! verify; a bad signature is named.

use std::sync::Arc;

use kiln_engine::api::{AuthConfig, ConvertRequest, ErrorType, SigningKey};
use kiln_engine::image::registry::UploadMode;
use kiln_engine::pipeline::{complete, convert, prepare, ExternalSignatures, PipelineEnv};
use kiln_engine::sgx::signer::PrivateKeySigner;
use kiln_tests::images::{push_image, tag_exists};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::shell_app_image;
use kiln_tests::{require_tool, HarnessError};

const KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");

fn request(input: &str, output: &str) -> ConvertRequest {
    ConvertRequest {
        input_image_name: input.into(),
        output_image_name: output.into(),
        threads: Some(2),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_equals_convert_and_tags_only_after_verification() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    push_image(
        &client,
        "app",
        &shell_app_image("two-step")?,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let mut env = PipelineEnv::new(
        reg.transport()?,
        format!("{}/kiln/runtime:fixture", reg.host()),
    );
    env.registry = env.registry.with_insecure(&reg.host());
    let key = PrivateKeySigner::from_pem(KEY, None)?;
    let input = format!("{}/app:1", reg.host());

    // Step 1: payloads and state; nothing tagged, no secret in the state.
    let mut req = request(&input, &format!("{}/two:1", reg.host()));
    req.auth_config = Some(AuthConfig {
        username: "u".into(),
        password: Some("pw-two-step-secret".into()),
    });
    let p = prepare(req.clone(), &env).await?;
    assert!(!tag_exists(&client, "two", "1").await);
    let state_json = serde_json::to_string(&p.state)?;
    assert!(!state_json.contains("pw-two-step-secret"), "{state_json}");
    assert!(p.state.input_digest.starts_with("sha256:"));
    assert_ne!(p.sgx1_payload, p.edmm_payload);

    // A signingKey is refused: the caller signs.
    let mut keyed = req.clone();
    keyed.signing_key = Some(SigningKey::default());
    let e = prepare(keyed, &env)
        .await
        .err()
        .ok_or("signingKey accepted")?;
    assert!(e.reason.contains("signingKey"), "{e}");

    // Sign elsewhere.
    let good = ExternalSignatures {
        public_key: key.public_key_bytes(),
        sgx1: key.sign_message(&p.sgx1_payload)?,
        edmm: key.sign_message(&p.edmm_payload)?,
    };

    // A wrong EDMM signature (the SGX1 one in its place): 400 naming it, no tag.
    let swapped = ExternalSignatures {
        edmm: good.sgx1.clone(),
        ..good.clone()
    };
    let e = complete(req.clone(), &p.state, &swapped, &env)
        .await
        .err()
        .ok_or("bad signature accepted")?;
    assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
    assert!(e.reason.contains("signatures.edmm"), "{e}");
    assert!(!tag_exists(&client, "two", "1").await);

    // A state that does not match what the pipeline rebuilds is refused.
    let mut tampered = p.state.clone();
    tampered.mrenclave = "00".repeat(32);
    let e = complete(req.clone(), &tampered, &good, &env)
        .await
        .err()
        .ok_or("tampered state accepted")?;
    assert!(e.reason.contains("prepare again"), "{e}");
    // The request must be the prepared one (auth fields aside).
    let mut other = req.clone();
    other.threads = Some(3);
    let e = complete(other, &p.state, &good, &env)
        .await
        .err()
        .ok_or("changed request accepted")?;
    assert!(e.reason.contains("differs"), "{e}");
    // The MANAGER_CA manager URL is measured: complete must use the prepared one.
    let mut elsewhere = p.state.clone();
    elsewhere.manager_url = Some("https://manager.example".into());
    let e = complete(req.clone(), &elsewhere, &good, &env)
        .await
        .err()
        .ok_or("another manager URL accepted")?;
    assert!(
        e.reason
            .contains("manager URL https://manager.example, this kiln uses none"),
        "{e}"
    );
    assert!(!tag_exists(&client, "two", "1").await);

    // Step 2 with the right signatures: pushed and tagged.
    let two = complete(req, &p.state, &good, &env).await?;
    assert!(tag_exists(&client, "two", "1").await);
    assert_eq!(two.response.mrenclave, p.state.mrenclave);
    assert_eq!(two.response.mrenclave2, p.state.mrenclave2);

    // The same conversion in one step with the same key: the same image, byte for byte.
    env.default_signer = Some(Arc::new(PrivateKeySigner::from_pem(KEY, None)?));
    let one = convert(request(&input, &format!("{}/two:1", reg.host())), &env).await?;
    assert_eq!(one.response.mrsigner, two.response.mrsigner);
    assert_eq!(one.response.digest, two.response.digest);
    assert_eq!(one.manifest, two.manifest);
    assert_eq!(one.config, two.config);
    Ok(())
}
