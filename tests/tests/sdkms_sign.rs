//! `signingKey.sdkms` end to end: kiln's DSM signer (engine::kms::sdkms) over the native
//! HTTP transport against the stand-in DSM (kiln_tests::dsm_server), alone and inside a
//! whole `pipeline::convert` between real registries on loopback.

use std::sync::Arc;

use kiln_engine::api::{ApiError, ConvertRequest, ErrorType, SdkmsKey, SigningKey};
use kiln_engine::image::registry::UploadMode;
use kiln_engine::kms::sdkms::SdkmsFactory;
use kiln_engine::pipeline::{convert, PipelineEnv, SdkmsSignerFactory};
use kiln_engine::sgx::signer::{sign, SignError};
use kiln_engine::sgx::sigstruct::Sigstruct;
use kiln_native::HttpTransport;
use kiln_tests::dsm_server::DsmServer;
use kiln_tests::images::{push_image, tag_exists};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::shell_app_image;
use kiln_tests::{require_tool, HarnessError};

const SIG1: &[u8] = include_bytes!("../../engine/testdata/sgxs/sig1.sigstruct.bin");

fn factory(dsm: &DsmServer) -> Result<SdkmsFactory, HarnessError> {
    Ok(SdkmsFactory::new(
        Arc::new(HttpTransport::new()?),
        &dsm.url(),
    )?)
}

fn api_error<T>(r: Result<T, SignError>) -> Result<ApiError, HarnessError> {
    match r {
        Err(e @ SignError::Remote(_)) => Ok(kiln_engine::pipeline::errors::signing(
            e,
            "signingKey",
            "test",
        )),
        Err(e) => Err(format!("expected an API error, got {e}").into()),
        Ok(_) => Err("signed".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_a_sigstruct_with_the_dsm_key() -> Result<(), HarnessError> {
    let dsm = DsmServer::start()?;
    let signer = factory(&dsm)?.signer(DsmServer::SGX_KEY, DsmServer::API_KEY)?;
    let body = Sigstruct::parse(SIG1)?.body;
    let s = sign(body.clone(), signer.as_ref()).await?;
    s.verify()?;
    assert_eq!(hex::encode(s.mrsigner()), dsm.sgx_mrsigner_hex());
    assert_eq!(s.body, body);
    // The session and the public key are reused.
    sign(body, signer.as_ref()).await?;
    let paths: Vec<String> = dsm.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            "/sys/v1/session/auth",
            "/crypto/v1/keys/info",
            "/crypto/v1/sign",
            "/crypto/v1/sign"
        ]
    );
    assert!(!dsm.saw_bad_credentials());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsm_refusals_are_api_errors_without_the_key() -> Result<(), HarnessError> {
    let dsm = DsmServer::start()?;
    let f = factory(&dsm)?;
    let body = Sigstruct::parse(SIG1)?.body;

    let wrong = "d3JvbmctYXBwOndyb25nLXNlY3JldC0xMjM=";
    let e = api_error(sign(body.clone(), f.signer(DsmServer::SGX_KEY, wrong)?.as_ref()).await)?;
    assert_eq!(e.error_type, ErrorType::Unauthorized, "{e}");
    assert_eq!(e.status, 401);
    assert!(e.reason.contains("signingKey.sdkms.apiKey"), "{e}");
    assert!(!e.reason.contains(wrong), "{e}");
    assert!(dsm.saw_bad_credentials());

    let e = api_error(sign(body.clone(), f.signer("nope", DsmServer::API_KEY)?.as_ref()).await)?;
    assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
    assert!(
        e.reason.contains("signingKey.sdkms.name") && e.reason.contains("\"nope\""),
        "{e}"
    );

    for (name, what) in [
        (DsmServer::WRONG_SIZE_KEY, "RSA-2048"),
        (DsmServer::WRONG_EXPONENT_KEY, "65537"),
    ] {
        let e = api_error(sign(body.clone(), f.signer(name, DsmServer::API_KEY)?.as_ref()).await)?;
        assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
        assert!(e.reason.contains(name) && e.reason.contains(what), "{e}");
    }
    assert_eq!(dsm.signatures(), 0);

    // Nothing listening: 502.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let f = SdkmsFactory::new(
        Arc::new(HttpTransport::new()?),
        &format!("http://127.0.0.1:{closed}"),
    )?;
    let e = api_error(
        sign(
            body,
            f.signer(DsmServer::SGX_KEY, DsmServer::API_KEY)?.as_ref(),
        )
        .await,
    )?;
    assert_eq!(e.error_type, ErrorType::SignerError, "{e}");
    assert!(!e.reason.contains(DsmServer::API_KEY), "{e}");
    Ok(())
}

fn sdkms_request(reg: &TestRegistry, tag: &str, name: &str, api_key: &str) -> ConvertRequest {
    ConvertRequest {
        input_image_name: format!("{}/app:1", reg.host()),
        output_image_name: format!("{}/app-sgx:{tag}", reg.host()),
        signing_key: Some(SigningKey::Sdkms(SdkmsKey {
            name: name.into(),
            api_key: api_key.into(),
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converts_with_a_dsm_key() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let dsm = DsmServer::start()?;
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    push_image(
        &client,
        "app",
        &shell_app_image("sdkms")?,
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
    env.sdkms = Some(Arc::new(factory(&dsm)?));

    let out = convert(
        sdkms_request(&reg, "1", DsmServer::SGX_KEY, DsmServer::API_KEY),
        &env,
    )
    .await?;
    let r = &out.response;
    assert_eq!(r.mrsigner, dsm.sgx_mrsigner_hex());
    assert_eq!(dsm.signatures(), 2, "SGX1 and EDMM enclaves");
    // The pipeline ends the DSM session once it has signed.
    let paths: Vec<String> = dsm.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths.last().map(String::as_str),
        Some("/sys/v1/session/terminate"),
        "{paths:?}"
    );
    // The pushed image verifies and says the same.
    {
        use kiln_engine::image::manifest::PlatformSpec;
        use kiln_engine::image::reference::Reference;
        use kiln_engine::verify::{read_image, verify, Expectations, RegistryBlobs};
        let reference = Reference::parse(&r.new_image)?;
        let resolved = client
            .resolve_image(&reference, &PlatformSpec::linux_amd64())
            .await?;
        let contents = read_image(
            &resolved,
            &RegistryBlobs::new(&client, reference.repository()),
        )
        .await?;
        let report = verify(
            &contents,
            &Expectations {
                mrenclave: Some(r.mrenclave.clone()),
                mrsigner: Some(dsm.sgx_mrsigner_hex()),
            },
        );
        assert!(report.passed, "{report:#?}");
    }
    // conversion.json in the image records no API key.
    let cfg = String::from_utf8_lossy(&out.config).into_owned();
    assert!(!cfg.contains(DsmServer::API_KEY));

    // A wrong API key: 401, nothing tagged, the key in no error text.
    let wrong = "d3JvbmctYXBwOndyb25nLXNlY3JldC00NTY=";
    let e = convert(sdkms_request(&reg, "2", DsmServer::SGX_KEY, wrong), &env)
        .await
        .err()
        .ok_or("converted with a wrong API key")?;
    assert_eq!(e.status, 401, "{e}");
    assert!(e.reason.contains("signingKey.sdkms.apiKey"), "{e}");
    assert!(!e.to_json().contains(wrong) && !e.to_string().contains(wrong));
    assert!(!tag_exists(&client, "app-sgx", "2").await);
    assert!(dsm.saw_bad_credentials());

    // An unknown key name: 400 naming the field; a key SGX cannot use: 400.
    let e = convert(
        sdkms_request(&reg, "3", "missing", DsmServer::API_KEY),
        &env,
    )
    .await
    .err()
    .ok_or("converted with a missing key")?;
    assert_eq!(e.status, 400, "{e}");
    assert!(e.reason.contains("signingKey.sdkms.name"), "{e}");
    let e = convert(
        sdkms_request(&reg, "3", DsmServer::WRONG_EXPONENT_KEY, DsmServer::API_KEY),
        &env,
    )
    .await
    .err()
    .ok_or("converted with an e = 65537 key")?;
    assert_eq!(e.status, 400, "{e}");
    assert!(e.reason.contains("65537"), "{e}");
    assert!(!tag_exists(&client, "app-sgx", "3").await);
    assert_eq!(dsm.signatures(), 2);
    Ok(())
}
