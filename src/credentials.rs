//! Where AWS credentials come from, and keeping them fresh.
//!
//! A [`Provider`] wraps one [`Source`] and caches what it returns. Credentials with an expiry
//! are refreshed [`REFRESH_MARGIN`] before they expire; a forced refresh (after an
//! `ExpiredTokenException`) fetches anew. A failed refresh keeps using cached credentials that
//! have not yet expired. Every fetch goes through [`Platform`]: HTTP for STS, IMDS and container
//! endpoints, files for tokens and shared config, and the host's process runner.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::{
    env_nonempty, parse_endpoint, Config, ConfigError, CredentialConfig, Environment, Secret,
};
use crate::platform::{HttpRequest, HttpResponse, Platform};
use crate::sign::Signer;

/// Refresh credentials this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The code of records that failed because no credentials could be had.
pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
/// The EC2 instance metadata service.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The ECS container credentials endpoint (for relative URIs).
pub const ECS_CONTAINER_HOST: &str = "http://169.254.170.2";
/// How long an IMDSv2 session token lives.
const IMDS_TOKEN_TTL_SECONDS: &str = "21600";
/// Timeout of one credential request.
const CREDENTIAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub expiration: Option<SystemTime>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be had. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    pub message: String,
}

fn fail<T>(message: impl Into<String>) -> Result<T, CredentialError> {
    Err(CredentialError {
        message: message.into(),
    })
}

/// An STS endpoint and the region to sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sts {
    pub endpoint: String,
    pub region: String,
}

impl Sts {
    /// The regional STS endpoint of `region`.
    pub fn regional(region: &str) -> Sts {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Sts {
            endpoint: format!("https://sts.{region}.{suffix}"),
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
        base_delay: Duration,
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
            Source::Container { url, .. } => format!("container credentials ({url})"),
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
}

impl Provider {
    pub fn new(source: Source) -> Provider {
        Provider { source, cached: None }
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
            } => {
                let (endpoint, retries, allow_v1, base_delay) =
                    (endpoint.clone(), *retries, *allow_v1, *base_delay);
                let mut last = CredentialError {
                    message: String::new(),
                };
                for attempt in 0..=retries {
                    if attempt > 0 {
                        let factor = 2f64.powi((attempt - 1).min(30) as i32);
                        platform.sleep(base_delay.mul_f64(factor));
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
            message: format!("{url}: {}: {}", e.code, e.message),
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

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.trim().chars().take(200).collect();
    if cut.is_empty() {
        "(empty body)".to_string()
    } else {
        cut
    }
}

/// The text of the first `<tag>…</tag>` in `xml`, with XML entities decoded.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Parse an STS `AssumeRole`/`AssumeRoleWithWebIdentity` response, or its error.
pub fn parse_sts_response(response: &HttpResponse) -> Result<Credentials, CredentialError> {
    let xml = String::from_utf8_lossy(&response.body);
    if response.status != 200 {
        return match (xml_text(&xml, "Code"), xml_text(&xml, "Message")) {
            (Some(code), message) => fail(format!(
                "STS refused: {code}: {} (HTTP {})",
                message.unwrap_or_default(),
                response.status
            )),
            _ => fail(format!(
                "STS answered HTTP {}: {}",
                response.status,
                excerpt(&response.body)
            )),
        };
    }
    let Some(block) = xml_text(&xml, "Credentials") else {
        return fail("the STS response has no Credentials");
    };
    let field = |name: &str| xml_text(&block, name).filter(|v| !v.is_empty());
    match (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
        field("Expiration"),
    ) {
        (Some(id), Some(secret), Some(token), Some(expiration)) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: Some(Secret::new(token)),
            expiration: Some(parse_timestamp(&expiration).ok_or_else(|| CredentialError {
                message: format!("the STS Expiration {expiration:?} is not a timestamp"),
            })?),
        }),
        _ => fail("the STS response lacks AccessKeyId, SecretAccessKey, SessionToken or Expiration"),
    }
}

#[derive(Deserialize)]
struct CredentialsJson {
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "SessionToken")]
    session_token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Version")]
    version: Option<u32>,
}

/// IMDS and container endpoints answer the same JSON (`Token` for the session token).
pub fn parse_credentials_json(body: &[u8], from: &str) -> Result<Credentials, CredentialError> {
    let parsed: CredentialsJson = serde_json::from_slice(body).map_err(|e| CredentialError {
        message: format!("the {from} answer is not credentials JSON: {e}"),
    })?;
    if let Some(code) = parsed.code.as_deref().filter(|c| *c != "Success") {
        return fail(format!(
            "the {from} answered {code}: {}",
            parsed.message.unwrap_or_default()
        ));
    }
    credentials_from(parsed, from)
}

fn credentials_from(parsed: CredentialsJson, from: &str) -> Result<Credentials, CredentialError> {
    let (Some(id), Some(secret)) = (
        parsed.access_key_id.filter(|v| !v.is_empty()),
        parsed.secret_access_key.filter(|v| !v.is_empty()),
    ) else {
        return fail(format!("the {from} answer lacks AccessKeyId or SecretAccessKey"));
    };
    let expiration = match parsed.expiration {
        None => None,
        Some(text) => Some(parse_timestamp(&text).ok_or_else(|| CredentialError {
            message: format!("the {from} Expiration {text:?} is not a timestamp"),
        })?),
    };
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
        session_token: parsed
            .token
            .or(parsed.session_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        expiration,
    })
}

/// Parse the standard `credential_process` output (`Version` 1).
pub fn parse_process_output(body: &[u8]) -> Result<Credentials, CredentialError> {
    let parsed: CredentialsJson = serde_json::from_slice(body).map_err(|e| CredentialError {
        message: format!("the credential process printed no credentials JSON: {e}"),
    })?;
    if parsed.version != Some(1) {
        return fail("the credential process output must have \"Version\": 1");
    }
    credentials_from(parsed, "credential process")
}

/// Parse an RFC 3339 UTC timestamp (`2026-11-25T23:00:00Z`, fractions and offsets allowed).
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    let (date, time) = t.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    // Four-digit years only: the arithmetic below then cannot overflow.
    if d.next().is_some()
        || !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    // Split off the zone: Z, or ±HH:MM.
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, zone) = time.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        (c, sign * (h * 3600 + m * 60))
    } else {
        (time, 0)
    };
    let mut parts = clock.split(':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let sec_text = parts.next().unwrap_or("0");
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let second: i64 = whole.parse().ok()?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        format!("{digits:0<9}").parse().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests;

/// Resolve the configured credentials into a provider, reading the environment and shared files
/// as the AWS SDKs do. Order when nothing is configured: environment keys, web identity, shared
/// files, container credentials, the EC2 instance profile. `assume_role_credentials` wraps the
/// result.
pub fn resolve(config: &Config, env: &mut dyn Environment) -> Result<Provider, ConfigError> {
    let base = match &config.credentials {
        CredentialConfig::Static(c) => Source::Static {
            credentials: c.clone(),
            origin: "static keys from the configuration".to_string(),
        },
        CredentialConfig::Process(command) => Source::Process {
            command: command.clone(),
        },
        CredentialConfig::DefaultChain => default_chain(config, env)?,
    };
    let base = Provider::new(base);
    Ok(match &config.assume_role {
        Some(role) => Provider::new(Source::AssumeRole {
            base: Box::new(base),
            role: role.clone(),
        }),
        None => base,
    })
}

fn default_chain(config: &Config, env: &mut dyn Environment) -> Result<Source, ConfigError> {
    // 1. Environment keys.
    if let (Some(id), Some(secret)) = (
        env_nonempty(env, "AWS_ACCESS_KEY_ID"),
        env_nonempty(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Source::Static {
            credentials: Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: env_nonempty(env, "AWS_SESSION_TOKEN").map(Secret::new),
                expiration: None,
            },
            origin: "environment (AWS_ACCESS_KEY_ID)".to_string(),
        });
    }
    let sts = match env_nonempty(env, "AWS_ENDPOINT_URL_STS") {
        Some(url) => Sts {
            endpoint: parse_endpoint(&url)
                .map_err(|e| ConfigError::new("AWS_ENDPOINT_URL_STS", e.message))?,
            region: config.region.clone(),
        },
        None => Sts::regional(&config.region),
    };
    // 2. Web identity (EKS IRSA).
    if let Some(token_file) = env_nonempty(env, "AWS_WEB_IDENTITY_TOKEN_FILE") {
        let role_arn = env_nonempty(env, "AWS_ROLE_ARN").ok_or_else(|| {
            ConfigError::new(
                "AWS_ROLE_ARN",
                "is required when AWS_WEB_IDENTITY_TOKEN_FILE is set",
            )
        })?;
        let session_name =
            env_nonempty(env, "AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "kinesis-output".to_string());
        return Ok(Source::WebIdentity {
            token_file,
            role_arn,
            session_name,
            sts,
        });
    }
    // 3. Shared credentials and config files.
    if let Some(source) = profile::source(env, config, &sts)? {
        return Ok(source);
    }
    // 4. Container credentials (ECS, EKS Pod Identity).
    let auth = match (
        env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => ContainerAuth::TokenFile(file),
        (None, Some(token)) => ContainerAuth::Token(Secret::new(token)),
        (None, None) => ContainerAuth::None,
    };
    if let Some(relative) = env_nonempty(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let path = if relative.starts_with('/') {
            relative
        } else {
            format!("/{relative}")
        };
        return Ok(Source::Container {
            url: format!("{ECS_CONTAINER_HOST}{path}"),
            auth,
        });
    }
    if let Some(full) = env_nonempty(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        check_container_uri(&full)?;
        return Ok(Source::Container { url: full, auth });
    }
    // 5. The EC2 instance profile.
    if env_nonempty(env, "AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ConfigError::new(
            "aws_key_id",
            "no credentials: set aws_key_id and aws_sec_key, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, web identity, a shared profile or container credentials (the instance profile is off: AWS_EC2_METADATA_DISABLED)",
        ));
    }
    let endpoint = match env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        Some(url) => parse_endpoint(&url)
            .map_err(|e| ConfigError::new("AWS_EC2_METADATA_SERVICE_ENDPOINT", e.message))?,
        None => DEFAULT_IMDS_ENDPOINT.to_string(),
    };
    Ok(Source::Imds {
        endpoint,
        retries: config.aws_iam_retries,
        allow_v1: config.imds_v1_fallback,
        base_delay: config.retry_base_delay,
    })
}

/// A full container-credentials URI must be https, or http to a loopback or the ECS/EKS hosts.
fn check_container_uri(url: &str) -> Result<(), ConfigError> {
    let field = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(field, format!("{url:?} is not a URL")))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let allowed_http = host == "localhost"
        || host.starts_with("127.")
        || matches!(host, "::1" | "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23");
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allowed_http => Ok(()),
        Some("http") => Err(ConfigError::new(
            field,
            format!("http is allowed only to loopback, 169.254.170.2 or 169.254.170.23, not {host:?}"),
        )),
        _ => Err(ConfigError::new(field, "must be an http or https URL")),
    }
}

/// The shared `~/.aws/credentials` and `~/.aws/config` files.
mod profile {
    use std::collections::HashMap;

    use super::{AssumeRole, Credentials, Source, Sts};
    use crate::config::{env_nonempty, Config, ConfigError, Environment, Secret};

    type Sections = HashMap<String, HashMap<String, String>>;

    /// Parse an INI file: `[section]` headers and `key = value` lines; `#`/`;` comments.
    pub fn parse_ini(text: &str, config_file: bool) -> Sections {
        let mut sections = Sections::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                // In the config file, profiles other than default are `[profile NAME]`.
                let name = match (config_file, name.strip_prefix("profile ")) {
                    (true, Some(n)) => n.trim().to_string(),
                    (true, None) if name != "default" => {
                        current = None;
                        continue;
                    }
                    _ => name.to_string(),
                };
                sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
                sections
                    .get_mut(section)
                    .expect("section exists")
                    .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        sections
    }

    fn read(
        env: &mut dyn Environment,
        path: &str,
        config_file: bool,
    ) -> Result<Option<Sections>, ConfigError> {
        match env.read_file(path) {
            Ok(bytes) => Ok(Some(parse_ini(&String::from_utf8_lossy(&bytes), config_file))),
            // A missing file is no source; only an explicitly named one is an error.
            Err(_) => Ok(None),
        }
    }

    /// The credentials of the selected profile, if the shared files define any.
    pub fn source(
        env: &mut dyn Environment,
        config: &Config,
        sts: &Sts,
    ) -> Result<Option<Source>, ConfigError> {
        let home = env_nonempty(env, "HOME");
        let credentials_path = env_nonempty(env, "AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| home.as_ref().map(|h| format!("{h}/.aws/credentials")));
        let config_path = env_nonempty(env, "AWS_CONFIG_FILE")
            .or_else(|| home.as_ref().map(|h| format!("{h}/.aws/config")));
        let explicit = env_nonempty(env, "AWS_PROFILE");
        let name = explicit.clone().unwrap_or_else(|| "default".to_string());

        let mut merged = Sections::new();
        for (path, config_file) in [(config_path, true), (credentials_path, false)] {
            let Some(path) = path else { continue };
            if let Some(sections) = read(env, &path, config_file)? {
                for (section, values) in sections {
                    merged.entry(section).or_default().extend(values);
                }
            }
        }
        let Some(profile) = merged.get(&name) else {
            return match explicit {
                Some(p) => Err(ConfigError::new(
                    "AWS_PROFILE",
                    format!("profile {p:?} is not in the shared credentials or config file"),
                )),
                None => Ok(None),
            };
        };
        let origin = format!("shared profile {name:?}");
        if let Some(role_arn) = profile.get("role_arn") {
            let source_name = profile.get("source_profile").ok_or_else(|| {
                ConfigError::new(
                    "AWS_PROFILE",
                    format!("profile {name:?} has role_arn but no source_profile"),
                )
            })?;
            let source = merged.get(source_name).ok_or_else(|| {
                ConfigError::new(
                    "AWS_PROFILE",
                    format!("source_profile {source_name:?} does not exist"),
                )
            })?;
            let base = static_keys(source).ok_or_else(|| {
                ConfigError::new(
                    "AWS_PROFILE",
                    format!(
                        "source_profile {source_name:?} has no aws_access_key_id and aws_secret_access_key"
                    ),
                )
            })?;
            let duration_seconds = profile
                .get("duration_seconds")
                .and_then(|d| d.parse().ok())
                .unwrap_or(3600);
            return Ok(Some(Source::AssumeRole {
                base: Box::new(super::Provider::new(Source::Static {
                    credentials: base,
                    origin: format!("shared profile {source_name:?}"),
                })),
                role: AssumeRole {
                    role_arn: role_arn.clone(),
                    role_session_name: profile
                        .get("role_session_name")
                        .cloned()
                        .unwrap_or_else(|| "kinesis-output".to_string()),
                    policy: None,
                    duration_seconds,
                    external_id: profile.get("external_id").cloned(),
                    sts: sts.clone(),
                },
            }));
        }
        if let Some(credentials) = static_keys(profile) {
            return Ok(Some(Source::Static { credentials, origin }));
        }
        if let Some(command) = profile.get("credential_process") {
            return Ok(Some(Source::Process {
                command: command.clone(),
            }));
        }
        let _ = config;
        match explicit {
            Some(p) => Err(ConfigError::new(
                "AWS_PROFILE",
                format!(
                    "profile {p:?} has no credentials (aws_access_key_id, role_arn or credential_process)"
                ),
            )),
            None => Ok(None),
        }
    }

    fn static_keys(section: &HashMap<String, String>) -> Option<Credentials> {
        Some(Credentials {
            access_key_id: section
                .get("aws_access_key_id")
                .filter(|v| !v.is_empty())?
                .clone(),
            secret_access_key: Secret::new(
                section
                    .get("aws_secret_access_key")
                    .filter(|v| !v.is_empty())?
                    .clone(),
            ),
            session_token: section
                .get("aws_session_token")
                .filter(|v| !v.is_empty())
                .map(|t| Secret::new(t.clone())),
            expiration: None,
        })
    }
}
