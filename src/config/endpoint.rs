//! Regions and endpoint URLs, checked.

use super::error::ConfigError;

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
    let bad = |why: &str| ConfigError::new("endpoint", format!("{url:?} {why}"));
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
