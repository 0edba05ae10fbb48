//! Credentials, the secrets they carry, and reading them from what STS, container endpoints,
//! IMDS and credential processes answer. Nothing here ever prints a secret.

use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;

use crate::platform::HttpResponse;
use crate::shaping::timefmt::parse_timestamp;

/// A secret string. Its `Debug` never shows the value, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(** redacted **)")
    }
}

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

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, CredentialError> {
    Err(CredentialError {
        message: message.into(),
    })
}

pub(crate) fn excerpt(body: &[u8]) -> String {
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
