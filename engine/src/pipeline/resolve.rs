//! Registry clients for the three images (input, output, runtime) and the input
//! image resolved to linux/amd64.

use std::sync::Arc;

use crate::api::ApiError;
use crate::gramine::validate::{Credentials as ReqCredentials, ValidRequest};
use crate::image::manifest::PlatformSpec;
use crate::image::reference::Reference;
use crate::image::registry::{
    Credentials, RegistryClient, ResolvedImage, Retry, RetryNotice, RetryObserver,
};

use super::env::PipelineEnv;
use super::errors::{self, Side};
use super::progress::{Event, Progress};

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
    let retry = env.timer.clone().map(|timer| Retry {
        policy: env.retry,
        timer,
        observer: Some(Arc::new(RetryEvents(env.progress.clone())) as Arc<dyn RetryObserver>),
    });
    let make = |r: Reference, c: Option<Credentials>| {
        let client = RegistryClient::for_reference(env.transport.clone(), &r, &env.registry, c)
            .with_limits(env.limits);
        let client = match &retry {
            Some(retry) => client.with_retry(retry.clone()),
            None => client,
        };
        Endpoint {
            client: Arc::new(client),
            reference: r,
        }
    };
    Ok(Endpoints {
        input: make(input_ref, input_creds),
        output: make(output_ref, output_creds),
        runtime: make(runtime_ref, runtime_creds),
    })
}

/// Reports each registry retry as a progress event.
struct RetryEvents(Arc<dyn Progress>);

impl RetryObserver for RetryEvents {
    fn retrying(&self, n: &RetryNotice) {
        self.0.event(Event::Retry {
            operation: n.operation.clone(),
            attempt: n.attempt,
            delay_ms: n.delay_ms,
            reason: n.reason.clone(),
        });
    }
}

/// Fetches the input image (an index narrows to linux/amd64) with its config.
pub async fn resolve_input(input: &Endpoint) -> Result<ResolvedImage, ApiError> {
    input
        .client
        .resolve_image(&input.reference, &PlatformSpec::linux_amd64())
        .await
        .map_err(|e| errors::registry(Side::Input, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::progress::RecordingProgress;

    #[test]
    fn retries_become_progress_events() {
        let rec = Arc::new(RecordingProgress::default());
        let obs = RetryEvents(rec.clone());
        obs.retrying(&RetryNotice {
            operation: "GET blob a@sha256:1".into(),
            attempt: 2,
            delay_ms: 750,
            reason: "HTTP 503".into(),
        });
        assert_eq!(
            rec.events(),
            vec![Event::Retry {
                operation: "GET blob a@sha256:1".into(),
                attempt: 2,
                delay_ms: 750,
                reason: "HTTP 503".into(),
            }]
        );
    }
}
