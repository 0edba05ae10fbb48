//! Where AWS credentials come from, and keeping them fresh.
//!
//! A [`Provider`] wraps one [`Source`] and caches what it returns. Credentials with an expiry
//! are refreshed [`REFRESH_MARGIN`] before they expire; a forced refresh (after an
//! `ExpiredTokenException`) fetches anew. A failed refresh keeps using cached credentials that
//! have not yet expired. Every fetch goes through [`Platform`]: HTTP for STS, IMDS and container
//! endpoints, files for tokens and shared config, and the host's process runner.

use std::time::Duration;

use super::credentials::{
    excerpt, fail, parse_credentials_json, parse_process_output, parse_sts_response, CredentialError,
    Credentials, Secret,
};
use super::sign::Signer;
use crate::kinesis::region;
use crate::platform::{HttpRequest, HttpResponse, Platform};

/// Refresh credentials this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The EC2 instance metadata service.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The ECS container credentials endpoint (for relative URIs).
pub const ECS_CONTAINER_HOST: &str = "http://169.254.170.2";
/// How long an IMDSv2 session token lives.
const IMDS_TOKEN_TTL_SECONDS: &str = "21600";
/// Timeout of one credential request.
const CREDENTIAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An STS endpoint and the region to sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sts {
    pub endpoint: String,
    pub region: String,
}

impl Sts {
    /// The regional STS endpoint of `region`.
    pub fn regional(region: &str) -> Sts {
        Sts {
            endpoint: region::sts_endpoint(region),
            region: region.to_string(),
        }
    }
}

/// The AssumeRole parameters of `assume_role_credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub role_session_name: String,
    pub policy: Option<String>,
    pub duration_seconds: u32,
    pub external_id: Option<String>,
    pub sts: Sts,
}

/// How a container endpoint is authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerAuth {
    None,
    Token(Secret),
    /// Read at every fetch: EKS Pod Identity rotates it.
    TokenFile(String),
}

/// One place credentials come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Keys given directly: from the config, the environment or a shared credentials file.
    Static {
        credentials: Credentials,
        origin: String,
    },
    /// EKS IRSA: a token file exchanged with STS `AssumeRoleWithWebIdentity`.
    WebIdentity {
        token_file: String,
        role_arn: String,
        session_name: String,
        sts: Sts,
    },
    /// ECS task roles and EKS Pod Identity.
    Container { url: String, auth: ContainerAuth },
    /// The EC2 instance profile, through IMDSv2.
    Imds {
        endpoint: String,
        retries: u32,
        allow_v1: bool,
        /// Waits between attempts: `base_delay × 2^(n-1)`, at most `max_delay`.
        base_delay: Duration,
        max_delay: Duration,
    },
    /// A `credential_process` command, run by the host.
    Process { command: String },
    /// STS `AssumeRole`, signed with the credentials of `base`.
    AssumeRole { base: Box<Provider>, role: AssumeRole },
}

impl Source {
    /// The endpoints (URLs) this source fetches credentials from, for egress policies.
    pub fn endpoints(&self) -> Vec<&str> {
        match self {
            Source::Static { .. } | Source::Process { .. } => Vec::new(),
            Source::WebIdentity { sts, .. } => vec![sts.endpoint.as_str()],
            Source::Container { url, .. } => vec![url.as_str()],
            Source::Imds { endpoint, .. } => vec![endpoint.as_str()],
            Source::AssumeRole { base, role } => {
                let mut out = base.source.endpoints();
                out.push(role.sts.endpoint.as_str());
                out
            }
        }
    }

    /// A short description for reports, without secrets.
    pub fn describe(&self) -> String {
        match self {
            Source::Static { origin, .. } => origin.clone(),
            Source::WebIdentity { role_arn, .. } => format!("web identity ({role_arn})"),
            Source::Container { url, .. } => {
                format!("container credentials ({})", crate::platform::shown_url(url))
            }
            Source::Imds { .. } => "EC2 instance profile (IMDSv2)".to_string(),
            Source::Process { .. } => "credential process".to_string(),
            Source::AssumeRole { base, role } => {
                format!("assume role {} from {}", role.role_arn, base.source.describe())
            }
        }
    }
}

/// A source with a cache.
#[derive(Debug, Clone)]
pub struct Provider {
    pub source: Source,
    cached: Option<Credentials>,
    /// Fetches from a source that is not static keys, successful or not.
    refreshes: u64,
}

impl Provider {
    pub fn new(source: Source) -> Provider {
        Provider {
            source,
            cached: None,
            refreshes: 0,
        }
    }

    /// Credentials that are valid now: the cached ones unless they are within the refresh margin
    /// of expiring or `force` is set, otherwise fresh ones.
    pub fn get(&mut self, platform: &mut dyn Platform, force: bool) -> Result<Credentials, CredentialError> {
        let now = platform.wall_clock();
        if let Some(c) = &self.cached {
            let fresh = c.expiration.is_none_or(|exp| exp > now + REFRESH_MARGIN);
            if fresh && !force {
                return Ok(c.clone());
            }
        }
        if !matches!(self.source, Source::Static { .. }) {
            self.refreshes += 1;
        }
        match self.fetch(platform) {
            Ok(c) => {
                self.cached = Some(c.clone());
                Ok(c)
            }
            Err(e) => match &self.cached {
                // A failed early refresh keeps credentials that still work.
                Some(c) if !force && c.expiration.is_some_and(|exp| exp > now) => Ok(c.clone()),
                _ => Err(CredentialError {
                    message: format!("{}: {}", self.source.describe(), e.message),
                }),
            },
        }
    }

    /// How many times credentials were fetched from the source (static keys never are).
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    fn fetch(&mut self, platform: &mut dyn Platform) -> Result<Credentials, CredentialError> {
        match &mut self.source {
            Source::Static { credentials, .. } => Ok(credentials.clone()),
            Source::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts,
            } => {
                let token = platform.read_file(token_file).map_err(|e| CredentialError {
                    message: format!("reading the web identity token file {token_file}: {e}"),
                })?;
                let token = String::from_utf8_lossy(&token).trim().to_string();
                if token.is_empty() {
                    return fail(format!("the web identity token file {token_file} is empty"));
                }
                let body = form(&[
                    ("Action", "AssumeRoleWithWebIdentity"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", role_arn),
                    ("RoleSessionName", session_name),
                    ("WebIdentityToken", &token),
                ]);
                let request = sts_request(&sts.endpoint, body);
                let response = send_one(platform, request)?;
                parse_sts_response(&response)
            }
            Source::Container { url, auth } => {
                let mut headers = vec![("accept".to_string(), "application/json".to_string())];
                match auth {
                    ContainerAuth::None => {}
                    ContainerAuth::Token(t) => {
                        headers.push(("authorization".to_string(), t.expose().to_string()))
                    }
                    ContainerAuth::TokenFile(path) => {
                        let token = platform.read_file(path).map_err(|e| CredentialError {
                            message: format!("reading the container authorization token file {path}: {e}"),
                        })?;
                        let token = String::from_utf8_lossy(&token).trim().to_string();
                        if token.contains(['\r', '\n']) {
                            return fail(format!("the authorization token in {path} spans several lines"));
                        }
                        headers.push(("authorization".to_string(), token));
                    }
                }
                let request = HttpRequest {
                    method: "GET",
                    url: url.clone(),
                    headers,
                    body: Vec::new(),
                    timeout: CREDENTIAL_REQUEST_TIMEOUT,
                    within: HttpRequest::unbounded_within(CREDENTIAL_REQUEST_TIMEOUT),
                };
                let response = send_one(platform, request)?;
                if response.status != 200 {
                    return fail(format!(
                        "the container endpoint answered HTTP {}: {}",
                        response.status,
                        excerpt(&response.body)
                    ));
                }
                parse_credentials_json(&response.body, "container endpoint")
            }
            Source::Imds {
                endpoint,
                retries,
                allow_v1,
                base_delay,
                max_delay,
            } => {
                let (endpoint, retries, allow_v1, base_delay, max_delay) =
                    (endpoint.clone(), *retries, *allow_v1, *base_delay, *max_delay);
                let mut last = CredentialError {
                    message: String::new(),
                };
                for attempt in 0..=retries {
                    if attempt > 0 {
                        let factor = 2f64.powi((attempt - 1).min(30) as i32);
                        platform.sleep(base_delay.mul_f64(factor).min(max_delay));
                    }
                    match imds_fetch(platform, &endpoint, allow_v1) {
                        Ok(c) => return Ok(c),
                        Err(ImdsError::Final(e)) => return Err(e),
                        Err(ImdsError::Retry(e)) => last = e,
                    }
                }
                fail(format!("{} (after {} attempts)", last.message, retries + 1))
            }
            Source::Process { command } => {
                let output = platform.run_process(command).map_err(|e| CredentialError {
                    message: format!("the credential process failed: {e}"),
                })?;
                parse_process_output(output.as_bytes())
            }
            Source::AssumeRole { base, role } => {
                let base_credentials = base.get(platform, false)?;
                let duration = role.duration_seconds.to_string();
                let mut params = vec![
                    ("Action", "AssumeRole"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", role.role_arn.as_str()),
                    ("RoleSessionName", role.role_session_name.as_str()),
                    ("DurationSeconds", duration.as_str()),
                ];
                if let Some(p) = &role.policy {
                    params.push(("Policy", p));
                }
                if let Some(e) = &role.external_id {
                    params.push(("ExternalId", e));
                }
                let mut request = sts_request(&role.sts.endpoint, form(&params));
                let signer = Signer::with_service(&base_credentials, &role.sts.region, "sts");
                let signed = signer
                    .sign(
                        request.method,
                        &request.url,
                        &request.headers,
                        &request.body,
                        None,
                        platform.wall_clock(),
                    )
                    .map_err(|message| CredentialError { message })?;
                request.headers.extend(signed);
                let response = send_one(platform, request)?;
                parse_sts_response(&response)
            }
        }
    }
}

enum ImdsError {
    Retry(CredentialError),
    Final(CredentialError),
}

fn imds_fetch(platform: &mut dyn Platform, endpoint: &str, allow_v1: bool) -> Result<Credentials, ImdsError> {
    let retry = |m: String| ImdsError::Retry(CredentialError { message: m });
    let token_request = HttpRequest {
        method: "PUT",
        url: format!("{endpoint}/latest/api/token"),
        headers: vec![(
            "x-aws-ec2-metadata-token-ttl-seconds".to_string(),
            IMDS_TOKEN_TTL_SECONDS.to_string(),
        )],
        body: Vec::new(),
        timeout: CREDENTIAL_REQUEST_TIMEOUT,
        within: HttpRequest::unbounded_within(CREDENTIAL_REQUEST_TIMEOUT),
    };
    let token = match send_one(platform, token_request) {
        Ok(r) if r.status == 200 => Some(String::from_utf8_lossy(&r.body).trim().to_string()),
        Ok(r) if allow_v1 && (403..=405).contains(&r.status) => None,
        Ok(r) if (403..=405).contains(&r.status) => {
            return Err(ImdsError::Final(CredentialError {
                message: format!(
                    "IMDSv2 is not available (HTTP {} for a session token) and IMDSv1 fallback is off (imds_v1_fallback)",
                    r.status
                ),
            }))
        }
        Ok(r) => return Err(retry(format!("IMDS answered HTTP {} for a session token", r.status))),
        Err(e) => return Err(retry(e.message)),
    };
    let headers: Vec<(String, String)> = token
        .iter()
        .map(|t| ("x-aws-ec2-metadata-token".to_string(), t.clone()))
        .collect();
    let get = |platform: &mut dyn Platform, path: &str| -> Result<HttpResponse, ImdsError> {
        let r = send_one(
            platform,
            HttpRequest {
                method: "GET",
                url: format!("{endpoint}{path}"),
                headers: headers.clone(),
                body: Vec::new(),
                timeout: CREDENTIAL_REQUEST_TIMEOUT,
                within: HttpRequest::unbounded_within(CREDENTIAL_REQUEST_TIMEOUT),
            },
        )
        .map_err(ImdsError::Retry)?;
        match r.status {
            200 => Ok(r),
            404 => Err(ImdsError::Final(CredentialError {
                message: format!("IMDS has no {path}: is an instance profile attached?"),
            })),
            s => Err(ImdsError::Retry(CredentialError {
                message: format!("IMDS answered HTTP {s} for {path}"),
            })),
        }
    };
    let roles = get(platform, "/latest/meta-data/iam/security-credentials/")?;
    let role = String::from_utf8_lossy(&roles.body)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| retry("IMDS listed no instance profile role".to_string()))?;
    let creds = get(
        platform,
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
    )?;
    parse_credentials_json(&creds.body, "IMDS").map_err(ImdsError::Retry)
}

fn send_one(platform: &mut dyn Platform, request: HttpRequest) -> Result<HttpResponse, CredentialError> {
    let url = request.url.clone();
    platform
        .send_all(vec![request])
        .pop()
        .expect("one response per request")
        .map_err(|e| CredentialError {
            message: format!("{}: {}: {}", crate::platform::shown_url(&url), e.code, e.message),
        })
}

fn sts_request(endpoint: &str, body: String) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: format!("{endpoint}/"),
        headers: vec![(
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        )],
        body: body.into_bytes(),
        timeout: CREDENTIAL_REQUEST_TIMEOUT,
        within: HttpRequest::unbounded_within(CREDENTIAL_REQUEST_TIMEOUT),
    }
}

/// `application/x-www-form-urlencoded`, as STS's query protocol wants it.
fn form(params: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
