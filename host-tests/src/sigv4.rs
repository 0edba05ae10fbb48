//! An independent SigV4 verifier, written from AWS's specification and not sharing code with the
//! `aws-sigv4` signer the component uses. The fake Kinesis recomputes every signature with it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What the verifier needs of a request: method, path, query, headers as received, body.
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Why a signature was refused, in AWS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigError {
    /// `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
    /// `UnrecognizedClientException` or `InvalidSignatureException`.
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> SigError {
    SigError {
        code,
        message: message.into(),
    }
}

/// The parsed `Authorization` header.
#[derive(Debug)]
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        err(
            "IncompleteSignatureException",
            "Authorization header must use AWS4-HMAC-SHA256",
        )
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(err(
            "IncompleteSignatureException",
            "Authorization header lacks Credential, SignedHeaders or Signature",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(err(
            "IncompleteSignatureException",
            "Credential scope is malformed",
        ));
    }
    Ok(Authorization {
        access_key: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k, false), uri_encode(v, false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Verify a request's SigV4 signature: recompute it from the raw request and the secret that
/// `lookup_secret` gives for the request's access key, and compare.
pub fn verify(
    req: &RawRequest<'_>,
    lookup_secret: impl Fn(&str) -> Option<String>,
    expected_region: &str,
    expected_service: &str,
) -> Result<(), SigError> {
    let auth_values = header(req.headers, "authorization");
    let Some(auth) = auth_values.first() else {
        return Err(err(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(auth)?;
    let Some(secret) = lookup_secret(&auth.access_key) else {
        return Err(err(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    if auth.region != expected_region || auth.service != expected_service {
        return Err(err(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region/service, not '{}/{}'.",
                auth.region, auth.service
            ),
        ));
    }
    let amz_date = header(req.headers, "x-amz-date");
    let Some(amz_date) = amz_date.first().copied() else {
        return Err(err("IncompleteSignatureException", "X-Amz-Date is missing"));
    };
    if !amz_date.starts_with(&auth.date) {
        return Err(err(
            "InvalidSignatureException",
            "Credential date does not match X-Amz-Date",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(err(
                "InvalidSignatureException",
                format!("'{required}' must be a signed header"),
            ));
        }
    }
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    if sorted != auth.signed_headers {
        return Err(err("InvalidSignatureException", "SignedHeaders must be sorted"));
    }

    let mut canonical = String::new();
    canonical.push_str(req.method);
    canonical.push('\n');
    canonical.push_str(&uri_encode(
        if req.path.is_empty() { "/" } else { req.path },
        true,
    ));
    canonical.push('\n');
    canonical.push_str(&canonical_query(req.query));
    canonical.push('\n');
    for name in &auth.signed_headers {
        let values = header(req.headers, name);
        if values.is_empty() {
            return Err(err(
                "InvalidSignatureException",
                format!("signed header '{name}' is missing"),
            ));
        }
        let joined = values
            .iter()
            .map(|v| collapse_spaces(v))
            .collect::<Vec<_>>()
            .join(",");
        canonical.push_str(&format!("{name}:{joined}\n"));
    }
    canonical.push('\n');
    canonical.push_str(&auth.signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(req.body)));

    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if expected != auth.signature {
        return Err(err(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get-vanilla` from the AWS SigV4 test suite.
    #[test]
    fn accepts_the_aws_suite_vanilla_request() {
        let headers = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
            (
                "Authorization".to_string(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".to_string(),
            ),
        ];
        let req = RawRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let secret =
            |k: &str| (k == "AKIDEXAMPLE").then(|| "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string());
        assert_eq!(verify(&req, secret, "us-east-1", "service"), Ok(()));
        let wrong = |_: &str| Some("not-the-secret".to_string());
        assert_eq!(
            verify(&req, wrong, "us-east-1", "service").unwrap_err().code,
            "InvalidSignatureException"
        );
        let tampered = RawRequest {
            method: "POST",
            ..req
        };
        assert_eq!(
            verify(&tampered, secret, "us-east-1", "service")
                .unwrap_err()
                .code,
            "InvalidSignatureException"
        );
        let unknown = |_: &str| None;
        assert_eq!(
            verify(&req, unknown, "us-east-1", "service").unwrap_err().code,
            "UnrecognizedClientException"
        );
    }
}
