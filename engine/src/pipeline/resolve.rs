//! Registry clients for the three images (input, output, runtime) and the input
//! image resolved to linux/amd64.

use std::sync::Arc;

use crate::api::ApiError;
use crate::gramine::validate::{Credentials as ReqCredentials, ValidRequest};
use crate::image::manifest::PlatformSpec;
use crate::image::reference::Reference;
use crate::image::registry::{Credentials, RegistryClient, ResolvedImage};

use super::env::PipelineEnv;
use super::errors::{self, Side};

/// One image's reference and the client for its registry.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The parsed reference.
    pub reference: Reference,
    /// A client for its registry (shared by concurrent tasks).
    pub client: Arc<RegistryClient>,
}

impl Endpoint {
    /// The repository path.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }
}

/// The input, output and runtime endpoints of one conversion.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `inputImageName`.
    pub input: Endpoint,
    /// `outputImageName`.
    pub output: Endpoint,
    /// The runtime image.
    pub runtime: Endpoint,
}

fn creds(c: &Option<ReqCredentials>) -> Option<Credentials> {
    c.as_ref().map(|c| {
        Credentials::new(
            c.0.username.clone(),
            c.0.password.clone().unwrap_or_default(),
        )
    })
}

/// Parses the references and builds one client per image. The runtime image's
/// registry uses the environment's runtime credentials, else the output's (when it is
/// the output registry), else the input's (when it is the input registry), else none.
pub fn endpoints(req: &ValidRequest, env: &PipelineEnv) -> Result<Endpoints, ApiError> {
    let input_ref =
        Reference::parse(&req.input_image).map_err(|e| errors::reference("inputImageName", e))?;
    let output_ref =
        Reference::parse(&req.output_image).map_err(|e| errors::reference("outputImageName", e))?;
    let runtime_ref = Reference::parse(&env.runtime_image)
        .map_err(|e| errors::runtime(format!("reference `{}`: {e}", env.runtime_image)))?;
    let input_creds = creds(&req.input_auth);
    let output_creds = creds(&req.output_auth);
    let runtime_creds = env.runtime_credentials.clone().or_else(|| {
        if runtime_ref.api_host() == output_ref.api_host() {
            output_creds.clone()
        } else if runtime_ref.api_host() == input_ref.api_host() {
            input_creds.clone()
        } else {
            None
        }
    });
    let make = |r: Reference, c: Option<Credentials>| Endpoint {
        client: Arc::new(
            RegistryClient::for_reference(env.transport.clone(), &r, &env.registry, c)
                .with_limits(env.limits),
        ),
        reference: r,
    };
    Ok(Endpoints {
        input: make(input_ref, input_creds),
        output: make(output_ref, output_creds),
        runtime: make(runtime_ref, runtime_creds),
    })
}

/// Fetches the input image (an index narrows to linux/amd64) with its config.
pub async fn resolve_input(input: &Endpoint) -> Result<ResolvedImage, ApiError> {
    input
        .client
        .resolve_image(&input.reference, &PlatformSpec::linux_amd64())
        .await
        .map_err(|e| errors::registry(Side::Input, &e))
}
