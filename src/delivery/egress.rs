//! Where the component may connect, for hosts that enforce an egress policy: the service's
//! endpoint (Kinesis or Firehose) and the endpoints its credential source needs, each as `host:port`. A host that
//! refuses every other authority turns a request elsewhere into a clear `HttpRequestDenied`
//! failure instead of a connection.

use crate::config::{resolve, Config, ConfigError};
use crate::platform::Environment;

/// The authorities (`host:port`) a sink opened with `config` in `env` may reach. The credential
/// source is resolved the way `Sink::open` resolves it, so both must see the same environment
/// and files.
pub fn authorities(config: &Config, env: &mut dyn Environment) -> Result<Vec<String>, ConfigError> {
    let provider = resolve(config, env)?;
    let mut out = Vec::new();
    for url in std::iter::once(config.endpoint.as_str()).chain(provider.source.endpoints()) {
        if let Some(authority) = host_port(url) {
            if !out.contains(&authority) {
                out.push(authority);
            }
        }
    }
    Ok(out)
}

/// `host:port` of an `http(s)://` URL, the port made explicit (80, 443 by scheme); the host
/// lowercased. `None` for anything else, user information included.
pub fn host_port(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority().filter(|a| !a.as_str().contains('@'))?;
    let host = authority.host().to_ascii_lowercase();
    Some(format!("{host}:{}", authority.port_u16().unwrap_or(default_port)))
}

/// Whether `authority` as a request carries it (with or without a port) is `allowed`.
pub fn is_allowed(allowed: &[String], scheme_is_https: bool, authority: &str) -> bool {
    let scheme = if scheme_is_https { "https" } else { "http" };
    host_port(&format!("{scheme}://{authority}")).is_some_and(|a| allowed.contains(&a))
}

/// A warning when `endpoint` sends in clear text to anything but this machine: `http://` is
/// for local emulators (kinesalite, LocalStack); TLS is the host's business otherwise.
pub fn plain_http_warning(endpoint: &str) -> Option<String> {
    let uri: http::Uri = endpoint.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "endpoint {endpoint} is plain http to another machine: records and signatures travel unencrypted (http:// is meant for local emulators)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn authorities_for(config: &str, vars: &[(&str, &str)]) -> Vec<String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut env = |name: &str| vars.get(name).cloned();
        let config = Config::from_json(config, &mut env).unwrap();
        authorities(&config, &mut env).unwrap()
    }

    #[test]
    fn static_keys_need_only_kinesis() {
        let a = authorities_for(
            r#"{"stream_name":"s","region":"eu-west-1","aws_key_id":"AKID","aws_sec_key":"x"}"#,
            &[],
        );
        assert_eq!(a, ["kinesis.eu-west-1.amazonaws.com:443"]);
        let a = authorities_for(
            r#"{"stream_name":"s","region":"eu-west-1","endpoint":"http://LocalHost:4567","aws_key_id":"AKID","aws_sec_key":"x"}"#,
            &[],
        );
        assert_eq!(a, ["localhost:4567"]);
    }

    #[test]
    fn credential_sources_add_their_endpoints() {
        let base = r#"{"stream_name":"s","region":"us-east-1"}"#;
        assert_eq!(
            authorities_for(base, &[]),
            ["kinesis.us-east-1.amazonaws.com:443", "169.254.169.254:80"],
            "the instance profile"
        );
        assert_eq!(
            authorities_for(
                base,
                &[(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://169.254.170.23/v1/credentials"
                )]
            ),
            ["kinesis.us-east-1.amazonaws.com:443", "169.254.170.23:80"]
        );
        assert_eq!(
            authorities_for(
                base,
                &[
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
                    ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
                ]
            ),
            [
                "kinesis.us-east-1.amazonaws.com:443",
                "sts.us-east-1.amazonaws.com:443"
            ]
        );
        let assume = r#"{"stream_name":"s","region":"us-east-1","aws_key_id":"AKID","aws_sec_key":"x",
            "assume_role_credentials":{"role_arn":"arn:aws:iam::1:role/r","role_session_name":"nm","sts_endpoint_url":"https://sts.example.test"}}"#;
        assert_eq!(
            authorities_for(assume, &[]),
            ["kinesis.us-east-1.amazonaws.com:443", "sts.example.test:443"]
        );
    }

    #[test]
    fn plain_http_is_flagged_unless_it_stays_on_this_machine() {
        assert!(plain_http_warning("https://kinesis.us-east-1.amazonaws.com").is_none());
        assert!(plain_http_warning("http://localhost:4567").is_none());
        assert!(plain_http_warning("http://127.0.0.1:4567").is_none());
        assert!(plain_http_warning("http://[::1]:4567").is_none());
        let w = plain_http_warning("http://kinesis.internal:4567").unwrap();
        assert!(
            w.contains("http://kinesis.internal:4567") && w.contains("unencrypted"),
            "{w}"
        );
        assert!(plain_http_warning("http://10.0.0.5").is_some());
    }

    #[test]
    fn requests_match_with_or_without_their_default_port() {
        let allowed = vec![
            "kinesis.us-east-1.amazonaws.com:443".to_string(),
            "localhost:4567".to_string(),
        ];
        assert!(is_allowed(&allowed, true, "kinesis.us-east-1.amazonaws.com"));
        assert!(is_allowed(&allowed, true, "Kinesis.us-east-1.amazonaws.com:443"));
        assert!(
            !is_allowed(&allowed, false, "kinesis.us-east-1.amazonaws.com"),
            "port 80 differs"
        );
        assert!(is_allowed(&allowed, false, "localhost:4567"));
        assert!(!is_allowed(&allowed, false, "localhost:4568"));
        assert!(!is_allowed(&allowed, true, "evil.example"));
        assert!(!is_allowed(&allowed, true, "user@localhost:4567"));
    }
}
