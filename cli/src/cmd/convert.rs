//! `kiln convert`: converts an image registry to registry through the engine's
//! pipeline (the same code the app and the worker run) and prints the convert-image
//! API response JSON on stdout. Every API field has a flag; `--request FILE.json` takes
//! the API body (flags override it). Progress goes to stderr (bars on a terminal).
//!
//! Credentials never come from argv: `--input-user`/`--output-user`/`--user` with the
//! password from `$KILN_INPUT_PASSWORD`/`$KILN_OUTPUT_PASSWORD`/`$KILN_PASSWORD` or
//! `--password-stdin`; without a user, ~/.docker/config.json.
//!
//! `signingKey.sdkms` (a Fortanix DSM key): `--sdkms-key NAME` with the API key from
//! `$KILN_SDKMS_API_KEY` (or a `--request` file naming it), and the DSM at `--kms-url`
//! (`$KILN_KMS_URL`).
//!
//! `--input` and `--output` may also be OCI image layouts, `oci:DIR[:TAG]` (created when
//! missing; the tag defaults to `latest` for the output, to the layout's only image for
//! the input). The pipeline sees them as pseudo registries served from the directory by
//! `kiln_native::LayoutTransport`; the JSON printed names them as `oci:DIR...` again.
//!
//! The offline two-step: `--prepare FILE.json` runs up to the two SIGSTRUCTs and writes
//! the payloads to sign (also `FILE.json.sgx1.bin`, `FILE.json.edmm.bin`) and the state;
//! `--complete FILE.json --sgx1-signature S1 --edmm-signature S2 --public-key PUB.pem`
//! verifies the signatures over the same bodies and pushes (credentials given again).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use kiln_engine::api::{parse_request, AuthConfig, ConvertRequest, SdkmsKey, SigningKey};
use kiln_engine::image::reference::{ImageSource, Reference};
use kiln_engine::kms::sdkms::SdkmsFactory;
use kiln_engine::pipeline::{
    complete, convert, prepare, ExternalSignatures, PipelineEnv, PreparedState,
};
use kiln_engine::sgx::signer::{PrivateKeySigner, Signer, SignerPublicKey};
use kiln_native::oci_registry::LAYOUT_REPOSITORY;
use kiln_native::{DefaultKeySigner, LayoutTransport, OciLayout, ThreadedScans};

use super::external_packages::stage_runtime;
use super::progress::CliProgress;
use super::registry_args::{ConvertEnvArgs, RegistryArgs};

/// Arguments of `kiln convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The API request body (JSON); flags given as well override its fields.
    #[arg(long, value_name = "FILE.json")]
    request: Option<PathBuf>,
    /// inputImageName: the image to convert (a registry reference, or an OCI layout
    /// `oci:DIR[:TAG]`).
    #[arg(long, value_name = "REF")]
    input: Option<String>,
    /// outputImageName: where the converted image is pushed (a registry reference, or an
    /// OCI layout `oci:DIR[:TAG]`, created when missing; tag default `latest`).
    #[arg(long, value_name = "REF")]
    output: Option<String>,
    /// isvprodid (0..=65535).
    #[arg(long)]
    isvprodid: Option<i64>,
    /// isvsvn (0..=65535).
    #[arg(long)]
    isvsvn: Option<i64>,
    /// memSize, e.g. 2048M (rounded up to a power of two).
    #[arg(long, value_name = "SIZE")]
    mem_size: Option<String>,
    /// threads: enclave threads.
    #[arg(long)]
    threads: Option<i64>,
    /// debug: a debug enclave.
    #[arg(long)]
    debug: bool,
    /// entrypoint (repeatable: program, then its own arguments); replaces ENTRYPOINT.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// entrypointArgs (repeatable); replaces CMD.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// encryptedDirs (repeatable).
    #[arg(long, value_name = "DIR")]
    encrypted_dir: Vec<String>,
    /// roDirs (repeatable).
    #[arg(long, value_name = "DIR")]
    ro_dir: Vec<String>,
    /// rwDirs (repeatable).
    #[arg(long, value_name = "DIR")]
    rw_dir: Vec<String>,
    /// allowCmdlineArgs: let `docker run` arguments reach the app.
    #[arg(long)]
    allow_cmdline_args: bool,
    /// manifestEnv entry KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// manifestOptions entry KEY=JSONVALUE (repeatable), e.g. `sys.stack.size="2M"`.
    #[arg(long, value_name = "KEY=JSON")]
    manifest_option: Vec<String>,
    /// javaMode: JAVA-ORACLE, OPENJDK, OPENJ9 or LIBERTY-JRE.
    #[arg(long, value_name = "MODE")]
    java_mode: Option<String>,
    /// logFilePath (`stderr` or an absolute path).
    #[arg(long, value_name = "PATH")]
    log_file_path: Option<String>,
    /// coreDumpPattern.
    #[arg(long, value_name = "PATTERN")]
    core_dump_pattern: Option<String>,
    /// externalPackages.
    #[arg(long, value_name = "DIR")]
    external_packages: Option<String>,
    /// Signing key (RSA-3072, e = 3, PEM); default: the state dir's default key
    /// (generated on first use).
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// signingKey.sdkms.name: sign with this Fortanix DSM key instead (API key from
    /// $KILN_SDKMS_API_KEY, never argv; needs --kms-url).
    #[arg(long, value_name = "NAME")]
    sdkms_key: Option<String>,
    /// Fortanix DSM base URL for signingKey.sdkms, e.g. https://api.amer.smartkey.io
    /// (--registry-ca applies to it too).
    // The text is clap's --help, where a bare URL reads best.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, value_name = "URL", env = "KILN_KMS_URL")]
    kms_url: Option<String>,
    /// MANAGER_CA: the manager's base URL (e.g. the kiln worker's origin). Measured into
    /// the enclave's init.json: kiln-init then has each MANAGER_CA certificate issued by
    /// POST URL/certificates/issue at start-up instead of self-signing it. Pass the same
    /// value to --prepare and --complete.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, value_name = "URL")]
    manager_url: Option<String>,
    /// Pull user (password from $KILN_INPUT_PASSWORD or --password-stdin).
    #[arg(long, value_name = "USER")]
    input_user: Option<String>,
    /// Push user (password from $KILN_OUTPUT_PASSWORD or --password-stdin).
    #[arg(long, value_name = "USER")]
    output_user: Option<String>,
    /// User for both sides (password from $KILN_PASSWORD or --password-stdin).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Read the password of the user given (one line) from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    no_bars: bool,
    /// Offline two-step, step 1: write the payloads to sign and the state to FILE.json
    /// (payloads also as FILE.json.sgx1.bin and FILE.json.edmm.bin); nothing is tagged.
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["complete", "key"])]
    prepare: Option<PathBuf>,
    /// Offline two-step, step 2: the FILE.json of --prepare, with --sgx1-signature,
    /// --edmm-signature and --public-key; credentials are given again.
    #[arg(long, value_name = "FILE.json", conflicts_with = "key",
          requires_all = ["sgx1_signature", "edmm_signature", "public_key"])]
    complete: Option<PathBuf>,
    /// Signature over the SGX1 payload: 384 raw bytes (as `openssl dgst -sign` writes).
    #[arg(long, value_name = "FILE", requires = "complete")]
    sgx1_signature: Option<PathBuf>,
    /// Signature over the EDMM payload: 384 raw bytes.
    #[arg(long, value_name = "FILE", requires = "complete")]
    edmm_signature: Option<PathBuf>,
    /// The signer's public key (PEM: PUBLIC KEY or RSA PUBLIC KEY).
    #[arg(long, value_name = "PEM", requires = "complete")]
    public_key: Option<PathBuf>,
    #[command(flatten)]
    convert_env: ConvertEnvArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

fn set_list(slot: &mut Option<Vec<String>>, v: &[String]) {
    if !v.is_empty() {
        *slot = Some(v.to_vec());
    }
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn auth(user: &str, var: &str, stdin: &mut Option<String>) -> anyhow::Result<AuthConfig> {
    let password = match stdin.take() {
        Some(p) => Some(p),
        None => std::env::var(var).ok(),
    };
    Ok(AuthConfig {
        username: user.to_string(),
        password,
    })
}

fn docker_auth(reference: &str) -> Option<AuthConfig> {
    let r = Reference::parse(reference).ok()?;
    RegistryArgs::docker_credentials(r.domain()).map(|c| AuthConfig {
        username: c.username,
        password: Some(c.password),
    })
}

/// Builds the API request from `--request` and the flags.
#[cfg(test)]
fn build_request(a: &Args) -> anyhow::Result<ConvertRequest> {
    build_request_on(a, None)
}

/// `build_request` on top of `base` (the prepared request of `--complete`).
fn build_request_on(a: &Args, base: Option<ConvertRequest>) -> anyhow::Result<ConvertRequest> {
    let mut r = match &a.request {
        _ if base.is_some() => base.unwrap_or_default(),
        Some(p) => {
            let body = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            parse_request(&body).map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.reason))?
        }
        None => ConvertRequest::default(),
    };
    if let Some(i) = &a.input {
        r.input_image_name = i.clone();
    }
    if let Some(o) = &a.output {
        r.output_image_name = o.clone();
    }
    if r.input_image_name.is_empty() || r.output_image_name.is_empty() {
        bail!("--input and --output (or a --request file naming both) are required");
    }
    set(&mut r.isvprodid, a.isvprodid);
    set(&mut r.isvsvn, a.isvsvn);
    set(&mut r.mem_size, a.mem_size.clone());
    set(&mut r.threads, a.threads);
    if a.debug {
        r.debug = Some(true);
    }
    set_list(&mut r.entrypoint, &a.entrypoint);
    set_list(&mut r.entrypoint_args, &a.args);
    set_list(&mut r.encrypted_dirs, &a.encrypted_dir);
    set_list(&mut r.ro_dirs, &a.ro_dir);
    set_list(&mut r.rw_dirs, &a.rw_dir);
    if a.allow_cmdline_args {
        r.allow_cmdline_args = Some(true);
    }
    set_list(&mut r.manifest_env, &a.env);
    if !a.manifest_option.is_empty() {
        let opts = r.manifest_options.get_or_insert_with(Default::default);
        for o in &a.manifest_option {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("--manifest-option {o:?}: expected KEY=JSONVALUE"))?;
            let v: serde_json::Value = serde_json::from_str(v).with_context(|| {
                format!(
                    "--manifest-option {k}: the value must be JSON (quote strings: {k}='\"...\"')"
                )
            })?;
            opts.insert(k.to_string(), v);
        }
    }
    set(&mut r.java_mode, a.java_mode.clone());
    set(&mut r.log_file_path, a.log_file_path.clone());
    set(&mut r.core_dump_pattern, a.core_dump_pattern.clone());
    set(&mut r.external_packages, a.external_packages.clone());
    if let Some(name) = &a.sdkms_key {
        let api_key = std::env::var("KILN_SDKMS_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .context("--sdkms-key needs the DSM API key in $KILN_SDKMS_API_KEY")?;
        r.signing_key = Some(SigningKey::Sdkms(SdkmsKey {
            name: name.clone(),
            api_key,
        }));
    }

    // Credentials: flags + env/stdin, else docker config.
    let users = [&a.input_user, &a.output_user, &a.user]
        .iter()
        .filter(|u| u.is_some())
        .count();
    if a.password_stdin && users != 1 {
        bail!("--password-stdin needs exactly one of --input-user, --output-user, --user");
    }
    let mut stdin = if a.password_stdin {
        Some(read_stdin_line()?)
    } else {
        None
    };
    if let Some(u) = &a.user {
        r.auth_config = Some(auth(u, "KILN_PASSWORD", &mut stdin)?);
    }
    if let Some(u) = &a.input_user {
        r.input_auth_config = Some(auth(u, "KILN_INPUT_PASSWORD", &mut stdin)?);
    }
    if let Some(u) = &a.output_user {
        r.output_auth_config = Some(auth(u, "KILN_OUTPUT_PASSWORD", &mut stdin)?);
    }
    if r.input_auth_config.is_none() && r.auth_config.is_none() {
        r.input_auth_config = docker_auth(&r.input_image_name);
    }
    if r.output_auth_config.is_none() && r.auth_config.is_none() {
        r.output_auth_config = docker_auth(&r.output_image_name);
    }
    Ok(r)
}

/// Reads the state `--prepare` wrote.
fn read_prepared(p: &std::path::Path) -> anyhow::Result<PreparedState> {
    let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{}", p.display()))?;
    serde_json::from_value(v.get("state").cloned().unwrap_or_default())
        .with_context(|| format!("{}: state", p.display()))
}

/// The signatures and key of `--complete`.
fn read_signatures(a: &Args) -> anyhow::Result<ExternalSignatures> {
    let read = |p: &Option<PathBuf>, what: &str| -> anyhow::Result<Vec<u8>> {
        let p = p
            .as_ref()
            .with_context(|| format!("--{what} is required"))?;
        std::fs::read(p).with_context(|| format!("reading {}", p.display()))
    };
    let pem = String::from_utf8(read(&a.public_key, "public-key")?)
        .context("--public-key: not a PEM text file")?;
    let key = kiln_engine::sgx::pem_key::load_public_key_pem(&pem).context("--public-key")?;
    Ok(ExternalSignatures {
        public_key: SignerPublicKey::from(&key),
        sgx1: read(&a.sgx1_signature, "sgx1-signature")?,
        edmm: read(&a.edmm_signature, "edmm-signature")?,
    })
}

/// Writes the result of `--prepare`: FILE.json and the two payload files.
fn write_prepared(
    out: &std::path::Path,
    p: &kiln_engine::pipeline::Prepared,
) -> anyhow::Result<()> {
    let bin = |v: &str| PathBuf::from(format!("{}.{v}.bin", out.display()));
    let doc = serde_json::json!({
        "state": p.state,
        "payloadsHex": {"sgx1": hex::encode(p.sgx1_payload), "edmm": hex::encode(p.edmm_payload)},
    });
    std::fs::write(out, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", out.display()))?;
    for (v, payload) in [("sgx1", &p.sgx1_payload), ("edmm", &p.edmm_payload)] {
        std::fs::write(bin(v), payload).with_context(|| format!("writing {}", bin(v).display()))?;
    }
    let summary = serde_json::json!({
        "prepared": out,
        "mrenclave": p.state.mrenclave,
        "mrenclave2": p.state.mrenclave2,
        "payloads": {"sgx1": bin("sgx1"), "edmm": bin("edmm")},
        "signatureScheme": "RSASSA-PKCS1-v1_5 with SHA-256, RSA-3072, public exponent 3",
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The pseudo registry hosts of `oci:` input and output layouts.
const OCI_INPUT_HOST: &str = "oci-input.kiln.invalid";
const OCI_OUTPUT_HOST: &str = "oci-output.kiln.invalid";

/// The OCI layouts of a conversion: each pseudo host, its directory, and the
/// `oci:DIR` text the JSON output shows instead of `HOST/layout`.
#[derive(Debug, Default)]
struct Layouts {
    hosts: Vec<(&'static str, PathBuf, bool, String)>,
}

impl Layouts {
    /// Replaces `oci:DIR[:TAG]` input and output names of `r` by pseudo references.
    fn take_from(r: &mut ConvertRequest) -> anyhow::Result<Self> {
        let mut l = Layouts::default();
        let parse = |name: &str, flag: &str| -> anyhow::Result<Option<(String, Option<String>)>> {
            if !name.starts_with("oci:") {
                return Ok(None);
            }
            match ImageSource::parse(name).with_context(|| format!("{flag} {name:?}"))? {
                ImageSource::OciLayout { dir, tag } => Ok(Some((dir, tag))),
                ImageSource::Registry(_) => Ok(None),
            }
        };
        let input = parse(&r.input_image_name, "--input")?;
        let output = parse(&r.output_image_name, "--output")?;
        let same_dir = matches!((&input, &output), (Some((a, _)), Some((b, _))) if a == b);
        if let Some((dir, tag)) = input {
            let layout = OciLayout::open(std::path::Path::new(&dir))
                .with_context(|| format!("--input oci:{dir}"))?;
            let reference = match &tag {
                Some(t) => format!(":{t}"),
                None => {
                    let desc = layout
                        .find(None)
                        .with_context(|| format!("--input oci:{dir}"))?;
                    format!("@{}", desc.digest())
                }
            };
            let host = if same_dir {
                OCI_OUTPUT_HOST
            } else {
                OCI_INPUT_HOST
            };
            r.input_image_name = format!("{host}/{LAYOUT_REPOSITORY}{reference}");
            l.hosts
                .push((host, PathBuf::from(&dir), same_dir, format!("oci:{dir}")));
        }
        if let Some((dir, tag)) = output {
            let tag = tag.unwrap_or_else(|| "latest".into());
            r.output_image_name = format!("{OCI_OUTPUT_HOST}/{LAYOUT_REPOSITORY}:{tag}");
            if !same_dir {
                l.hosts.push((
                    OCI_OUTPUT_HOST,
                    PathBuf::from(&dir),
                    true,
                    format!("oci:{dir}"),
                ));
            }
        }
        Ok(l)
    }

    fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The transport serving the layouts, around `inner`.
    fn transport(
        &self,
        inner: Arc<dyn kiln_engine::image::transport::Transport>,
    ) -> anyhow::Result<Arc<dyn kiln_engine::image::transport::Transport>> {
        if self.is_empty() {
            return Ok(inner);
        }
        let mut t = LayoutTransport::new(inner);
        for (host, dir, create, shown) in &self.hosts {
            t = t
                .with_layout(host, dir, *create)
                .with_context(|| shown.clone())?;
        }
        Ok(Arc::new(t))
    }

    /// `text` with each pseudo `HOST/layout` shown as its `oci:DIR`.
    fn show(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (host, _, _, shown) in &self.hosts {
            out = out.replace(&format!("{host}/{LAYOUT_REPOSITORY}"), shown);
            out = out.replace(host, shown);
        }
        out
    }

    /// `v` with every string shown through [`Self::show`].
    fn show_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.show(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.show_json(x)).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, x)| (k, self.show_json(x))).collect())
            }
            other => other,
        }
    }
}

/// Runs `kiln convert`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if let Some(url) = &a.manager_url {
        kiln_engine::gramine::init::check_manager_url(url)
            .map_err(|why| anyhow::anyhow!("--manager-url: {why}"))?;
    }
    let prepared = a.complete.as_deref().map(read_prepared).transpose()?;
    let mut request = build_request_on(&a, prepared.as_ref().map(|s| s.request.clone()))?;
    let layouts = Layouts::take_from(&mut request)?;
    if !layouts.is_empty() && (a.prepare.is_some() || prepared.is_some()) {
        bail!(
            "--prepare/--complete need registry references: oci:DIR input or output is not \
             supported in the offline two-step (convert to a registry, or use a signing key)"
        );
    }
    let reg = &a.registry;
    let state = a.convert_env.state()?;
    let uses_sdkms = matches!(request.signing_key, Some(SigningKey::Sdkms(_)));
    if uses_sdkms && a.kms_url.is_none() {
        bail!("signingKey.sdkms needs the Fortanix DSM URL: pass --kms-url URL (or set $KILN_KMS_URL)");
    }
    let two_step = a.prepare.is_some() || prepared.is_some();
    // A default key that does not exist yet is generated while the conversion runs.
    let mut default_key: Option<Arc<DefaultKeySigner>> = None;
    let signer: Option<Arc<dyn Signer>> = match &a.key {
        _ if uses_sdkms || two_step => None,
        Some(p) => {
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            );
            Some(Arc::new(
                PrivateKeySigner::from_pem(&pem, None)
                    .with_context(|| format!("{}", p.display()))?,
            ))
        }
        None => {
            let key = Arc::new(DefaultKeySigner::open(&state)?);
            if key.generating() {
                eprintln!(
                    "kiln: first use of {}: generating the default signing key (RSA-3072) while converting",
                    state.root().display()
                );
            }
            default_key = Some(key.clone());
            Some(key)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let runtime = a.convert_env.runtime()?;
    let runtime_credentials = Reference::parse(&runtime)
        .ok()
        .and_then(|r| RegistryArgs::docker_credentials(r.domain()));
    let mut env = PipelineEnv::new(layouts.transport(reg.transport()?)?, runtime);
    env.runtime_credentials = runtime_credentials;
    env.registry = layouts
        .hosts
        .iter()
        .fold(reg.registry_config(), |c, (host, ..)| c.with_insecure(host));
    env.limits = reg.limits()?;
    env.timer = Some(Arc::new(kiln_native::TokioTimer));
    env.retry = reg.retry_policy()?;
    env.manager_url = a.manager_url.clone();
    if let Some(dir) = request.external_packages.clone() {
        // Validate first: a bad request must not push anything.
        let valid = match kiln_engine::gramine::validate::validate(&request) {
            Ok(v) => v,
            Err(e) => {
                let e = kiln_engine::pipeline::errors::validation(&e);
                println!("{}", e.to_json());
                bail!("{e}");
            }
        };
        // The output endpoint with the credentials the pipeline itself would use.
        let output = kiln_engine::pipeline::resolve::endpoints(&valid, &env)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .output;
        env.runtime_image = rt.block_on(stage_runtime(&dir, &env.runtime_image, &output))?;
        // The staged runtime lives in the output repository: its credentials apply.
        env.runtime_credentials = None;
        env.external_packages_staged = true;
    }
    env.cache = Arc::new(state.layer_cache());
    env.default_signer = signer;
    if let Some(url) = &a.kms_url {
        env.sdkms = Some(Arc::new(
            SdkmsFactory::new(reg.transport()?, url).context("--kms-url")?,
        ));
    }
    env.clock = Arc::new(SystemClock);
    env.scans = Arc::new(ThreadedScans::default());
    env.source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let bars = !a.no_bars && std::io::stderr().is_terminal();
    env.progress = Arc::new(CliProgress::new(bars));
    let result = if let Some(out) = &a.prepare {
        match rt.block_on(prepare(request, &env)) {
            Ok(p) => return write_prepared(out, &p),
            Err(e) => Err(e),
        }
    } else if let Some(st) = &prepared {
        let sigs = read_signatures(&a)?;
        rt.block_on(complete(request, st, &sigs, &env))
    } else {
        rt.block_on(convert(request, &env))
    };
    // A key still being generated (the conversion failed before signing) is stored
    // before the process exits, never left half-written.
    if let Some(key) = &default_key {
        key.settle();
    }
    match result {
        Ok(out) => {
            // Through a JSON value (whose keys serde_json sorts) only when a layout's
            // name must replace a pseudo host: otherwise the fields keep the API's order.
            let json = if layouts.is_empty() {
                serde_json::to_string_pretty(&out.response)?
            } else {
                let v = layouts.show_json(serde_json::to_value(&out.response)?);
                serde_json::to_string_pretty(&v)?
            };
            println!("{json}");
            Ok(())
        }
        Err(e) => {
            if layouts.is_empty() {
                println!("{}", e.to_json());
            } else {
                println!("{}", layouts.show_json(serde_json::to_value(&e)?));
            }
            bail!("{}", layouts.show(&e.to_string()))
        }
    }
}

/// The system clock.
struct SystemClock;

impl kiln_engine::pipeline::env::Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn parse(args: &[&str]) -> Args {
        T::parse_from(std::iter::once("convert").chain(args.iter().copied())).a
    }

    #[test]
    fn flags_fill_the_api_body() {
        let a = parse(&[
            "--input",
            "r/a:1",
            "--output",
            "r/b:1",
            "--isvprodid",
            "7",
            "--isvsvn",
            "2",
            "--mem-size",
            "1G",
            "--threads",
            "8",
            "--debug",
            "--entrypoint",
            "/bin/app",
            "--entrypoint",
            "-v",
            "--arg",
            "--port",
            "--arg",
            "80",
            "--encrypted-dir",
            "/data",
            "--ro-dir",
            "/",
            "--rw-dir",
            "/etc/hosts",
            "--allow-cmdline-args",
            "--env",
            "A=1",
            "--manifest-option",
            "sys.stack.size=\"2M\"",
            "--java-mode",
            "OPENJDK",
            "--log-file-path",
            "stderr",
            "--core-dump-pattern",
            "/tmp/core.%p",
            "--external-packages",
            "/pkgs",
        ]);
        let r = build_request(&a).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["inputImageName"], "r/a:1");
        assert_eq!(v["isvprodid"], 7);
        assert_eq!(v["memSize"], "1G");
        assert_eq!(v["debug"], true);
        assert_eq!(v["entrypoint"], serde_json::json!(["/bin/app", "-v"]));
        assert_eq!(v["entrypointArgs"], serde_json::json!(["--port", "80"]));
        assert_eq!(v["manifestOptions"]["sys.stack.size"], "2M");
        assert_eq!(v["javaMode"], "OPENJDK");
        assert_eq!(v["allowCmdlineArgs"], true);
        assert_eq!(v["manifestEnv"], serde_json::json!(["A=1"]));
    }

    #[test]
    fn request_file_then_flags_override() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("req.json");
        std::fs::write(
            &f,
            r#"{"inputImageName":"r/a:1","outputImageName":"r/b:1","isvsvn":3,"threads":2}"#,
        )
        .unwrap();
        let a = parse(&["--request", f.to_str().unwrap(), "--threads", "16"]);
        let r = build_request(&a).unwrap();
        assert_eq!(r.isvsvn, Some(3));
        assert_eq!(r.threads, Some(16));
        assert_eq!(r.output_image_name, "r/b:1");
    }

    #[test]
    fn two_step_flags() {
        let t = |args: &[&str]| {
            T::try_parse_from(std::iter::once("convert").chain(args.iter().copied()))
        };
        assert!(t(&["--prepare", "p.json", "--key", "k.pem"]).is_err());
        assert!(t(&["--complete", "p.json"]).is_err());
        assert!(t(&["--sgx1-signature", "s"]).is_err());
        assert!(t(&[
            "--complete",
            "p.json",
            "--sgx1-signature",
            "a",
            "--edmm-signature",
            "b",
            "--public-key",
            "k"
        ])
        .is_ok());
    }

    #[test]
    fn bad_manifest_option_and_missing_names_refused() {
        let a = parse(&[
            "--input",
            "r/a:1",
            "--output",
            "r/b:1",
            "--manifest-option",
            "k=unquoted",
        ]);
        assert!(build_request(&a).is_err());
        let a = parse(&["--input", "r/a:1"]);
        assert!(build_request(&a).is_err());
    }
}
