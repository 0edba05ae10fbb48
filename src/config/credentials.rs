//! The explicit credential settings: `aws_key_id`/`aws_sec_key`/`aws_ses_token` (secrets in any
//! of their forms), `process_credentials` and `assume_role_credentials`. When nothing is
//! explicit, [`super::chain`] finds the credentials the way the AWS SDKs do.

use serde_json::{Map, Value};

use super::endpoint::{check_region, parse_endpoint};
use super::error::ConfigError;
use super::fields::Fields;
use super::secret::SecretSources;
use crate::auth::provider::{AssumeRole, Sts};
use crate::auth::Credentials;
use crate::platform::{env_nonempty, Environment};

/// AssumeRole session durations AWS accepts (the seed documents 900–3600).
const ASSUME_ROLE_SECONDS: (u64, u64) = (900, 43_200);

/// Where credentials come from, as configured. Sources that depend on the environment (the
/// default chain) are resolved when the sink opens, by [`resolve`].
#[derive(Debug, Clone)]
pub enum CredentialConfig {
    /// `aws_key_id`, `aws_sec_key` and optionally `aws_ses_token`.
    Static(Credentials),
    /// `process_credentials.process`, run by the host.
    Process(String),
    /// Nothing explicit: environment, web identity, shared files, container, instance profile.
    DefaultChain,
}

/// The explicit credentials. Both keys and `process_credentials` given: the keys, as the
/// Fluentd plugin takes them first, and `process_credentials` named in `warnings`.
pub(super) fn credentials(
    fields: &mut Fields,
    sources: &mut SecretSources,
    warnings: &mut Vec<String>,
) -> Result<CredentialConfig, ConfigError> {
    let key_id = fields.secret("aws_key_id", sources)?;
    let secret = fields.secret("aws_sec_key", sources)?;
    let token = fields.secret("aws_ses_token", sources)?;
    let process = match fields.object("process_credentials")? {
        Some(section) => {
            let mut f = Fields::new("process_credentials", section);
            let command = f
                .string("process")?
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| ConfigError::new("process_credentials.process", "is required"))?;
            f.finish()?;
            Some(command)
        }
        None => None,
    };
    match (key_id, secret) {
        (Some(access_key_id), Some(secret)) => {
            if process.is_some() {
                warnings.push(
                    "process_credentials is not used: aws_key_id and aws_sec_key come first, as in the Fluentd plugin"
                        .to_string(),
                );
            }
            Ok(CredentialConfig::Static(Credentials {
                // The key id is not secret, but it may be given in the same forms.
                access_key_id: access_key_id.expose().to_string(),
                secret_access_key: secret,
                session_token: token,
                expiration: None,
            }))
        }
        (Some(_), None) => Err(ConfigError::new(
            "aws_sec_key",
            "is required when aws_key_id is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "aws_key_id",
            "is required when aws_sec_key is set",
        )),
        (None, None) if token.is_some() => Err(ConfigError::new(
            "aws_ses_token",
            "needs aws_key_id and aws_sec_key beside it",
        )),
        (None, None) => Ok(process.map_or(CredentialConfig::DefaultChain, CredentialConfig::Process)),
    }
}

pub(super) fn assume_role(
    section: Map<String, Value>,
    region: &str,
    env: &mut dyn Environment,
) -> Result<AssumeRole, ConfigError> {
    let mut f = Fields::new("assume_role_credentials", section);
    let role_arn = f
        .string("role_arn")?
        .ok_or_else(|| ConfigError::new("assume_role_credentials.role_arn", "is required"))?;
    if !role_arn.starts_with("arn:") || role_arn.split(':').count() < 6 {
        return Err(ConfigError::new(
            "assume_role_credentials.role_arn",
            format!("{role_arn:?} is not a role ARN like arn:aws:iam::123456789012:role/name"),
        ));
    }
    let role_session_name = f
        .string("role_session_name")?
        .ok_or_else(|| ConfigError::new("assume_role_credentials.role_session_name", "is required"))?;
    let session_ok = (2..=64).contains(&role_session_name.len())
        && role_session_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=,.@-_".contains(&b));
    if !session_ok {
        return Err(ConfigError::new(
            "assume_role_credentials.role_session_name",
            "must be 2 to 64 characters of letters, digits and =,.@-_",
        ));
    }
    let policy = f.string("policy")?;
    if let Some(p) = &policy {
        if serde_json::from_str::<Value>(p)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return Err(ConfigError::new(
                "assume_role_credentials.policy",
                "must be an IAM policy document in JSON",
            ));
        }
    }
    let (min, max) = ASSUME_ROLE_SECONDS;
    let duration_seconds = f
        .integer("duration_seconds", min, max)?
        .map_or(3600, |v| v as u32);
    let external_id = f.string("external_id")?;
    let sts_region = f.string("sts_region")?.unwrap_or_else(|| region.to_string());
    check_region(&sts_region)
        .map_err(|e| ConfigError::new("assume_role_credentials.sts_region", e.message))?;
    let sts = match f.string("sts_endpoint_url")? {
        Some(url) => Sts {
            endpoint: parse_endpoint(&url)
                .map_err(|e| ConfigError::new("assume_role_credentials.sts_endpoint_url", e.message))?,
            region: sts_region,
        },
        None => match env_nonempty(env, "AWS_ENDPOINT_URL_STS") {
            Some(url) => Sts {
                endpoint: parse_endpoint(&url)
                    .map_err(|e| ConfigError::new("AWS_ENDPOINT_URL_STS", e.message))?,
                region: sts_region,
            },
            None => Sts::regional(&sts_region),
        },
    };
    f.finish()?;
    Ok(AssumeRole {
        role_arn,
        role_session_name,
        policy,
        duration_seconds,
        external_id,
        sts,
    })
}
