//! Regions and endpoint URLs, checked.

use super::error::ConfigError;
use crate::platform::shown_url;

/// A region name like `us-east-1`.
pub fn check_region(region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "region",
            format!("{region:?} is not a region name like us-east-1"),
        ))
    }
}

/// An endpoint as `scheme://authority`: http or https, a host, no path, query or user.
pub fn parse_endpoint(url: &str) -> Result<String, ConfigError> {
    // Never the user information: it may be a secret.
    let bad = |why: &str| ConfigError::new("endpoint", format!("{:?} {why}", shown_url(url)));
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("must not carry user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must have no path or query; Kinesis is served at /"));
    }
    Ok(format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        authority.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn an_endpoint_error_never_shows_its_user_information() {
        for url in [
            "https://alice:s3c/r3t?x@host:443",
            "https://alice:s3cr3t@host",
            "ftp://alice:s3cr3t@host",
        ] {
            let e = parse_endpoint(url).unwrap_err().to_string();
            assert!(
                !e.contains("alice") && !e.contains("s3c") && !e.contains("r3t"),
                "{e}"
            );
        }
    }
}
