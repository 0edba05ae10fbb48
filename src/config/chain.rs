//! Where the credentials come from when the configuration names no keys: the AWS SDKs' default
//! chain (environment keys, web identity, shared files, container credentials, the instance
//! profile), read from the environment when the sink opens. The result is an
//! [`auth::Provider`](crate::auth::Provider), which fetches and refreshes while the sink runs.

use super::credentials::CredentialConfig;
use super::endpoint::parse_endpoint;
use super::error::ConfigError;
use super::settings::Config;
use crate::auth::provider::{
    AssumeRole, ContainerAuth, Provider, Source, Sts, DEFAULT_IMDS_ENDPOINT, ECS_CONTAINER_HOST,
};
use crate::auth::{Credentials, Secret};
use crate::platform::{env_nonempty, Environment};

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
        max_delay: config.retry_max_delay,
    })
}

/// A full container-credentials URI must be https, or http to a loopback or the ECS/EKS hosts.
fn check_container_uri(url: &str) -> Result<(), ConfigError> {
    let field = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    let uri: http::Uri = url.parse().map_err(|_| {
        ConfigError::new(
            field,
            format!("{:?} is not a URL", crate::platform::shown_url(url)),
        )
    })?;
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

/// The selected profile's `region` in the shared config file (`AWS_CONFIG_FILE`, else
/// `~/.aws/config`; `AWS_PROFILE`, else `default`), as the AWS SDKs read it.
pub fn profile_region(env: &mut dyn Environment) -> Option<String> {
    profile::config_value(env, "region")
}

/// A key of the selected profile in the shared config file (`use_fips_endpoint`, …).
pub fn profile_value(env: &mut dyn Environment, key: &str) -> Option<String> {
    profile::config_value(env, key)
}

#[cfg(test)]
mod tests;

/// The shared `~/.aws/credentials` and `~/.aws/config` files.
mod profile {
    use std::collections::HashMap;

    use super::{env_nonempty, Config, ConfigError, Environment, Secret};
    use super::{AssumeRole, Credentials, Source, Sts};

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

    fn config_path(env: &mut dyn Environment) -> Option<String> {
        env_nonempty(env, "AWS_CONFIG_FILE")
            .or_else(|| env_nonempty(env, "HOME").map(|h| format!("{h}/.aws/config")))
    }

    /// A key of the selected profile (`region`, `use_fips_endpoint`, …), from the config file
    /// only (the SDKs do not read these from the credentials file).
    pub fn config_value(env: &mut dyn Environment, key: &str) -> Option<String> {
        let path = config_path(env)?;
        let name = env_nonempty(env, "AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        let sections = read(env, &path, true).ok().flatten()?;
        sections.get(&name)?.get(key).filter(|r| !r.is_empty()).cloned()
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
        let config_path = config_path(env);
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
