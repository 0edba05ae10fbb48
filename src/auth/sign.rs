//! SigV4 signing of Kinesis requests with the AWS SDK's own signer, `aws-sigv4`.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::credentials::Credentials;

/// The SigV4 service name of Kinesis Data Streams.
pub const SERVICE: &str = "kinesis";

/// A signer for one set of credentials and one region.
pub struct Signer {
    identity: Identity,
    region: String,
    service: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for Kinesis.
    pub fn new(credentials: &Credentials, region: &str) -> Self {
        Signer::with_service(credentials, region, SERVICE)
    }

    /// A signer for another service (`sts`).
    pub fn with_service(credentials: &Credentials, region: &str, service: &'static str) -> Self {
        let creds = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose().to_string(),
            credentials.session_token.as_ref().map(|t| t.expose().to_string()),
            credentials.expiration,
            "kinesis-output",
        );
        Signer {
            identity: creds.into(),
            region: region.to_string(),
            service,
        }
    }

    /// The headers to add to a request (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` with temporary credentials). `headers` are the request's own
    /// headers, all of which are signed; the `host` header is derived from `url`. `body_sha256`
    /// is the body's SHA-256 in hex when it is already known (hashed by the host).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        body_sha256: Option<String>,
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing parameters: {e}"))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            match body_sha256 {
                Some(hex) => SignableBody::Precomputed(hex),
                None => SignableBody::Bytes(body),
            },
        )
        .map_err(|e| format!("request cannot be signed: {e}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("signing failed: {e}"))?
            .into_parts();
        let (signed_headers, _params) = instructions.into_parts();
        Ok(signed_headers
            .into_iter()
            .map(|h| (h.name().to_ascii_lowercase(), h.value().to_string()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
            expiration: None,
        }
    }

    /// 2015-08-30T12:36:00Z, the AWS test suite's time.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    #[test]
    fn signs_like_the_aws_test_suite() {
        // get-vanilla from the AWS SigV4 test suite (service "service"): checks that our use of the
        // signer gives the suite's signature.
        let signer = Signer::with_service(&creds(None), "us-east-1", "service");
        let added = signer
            .sign(
                "GET",
                "https://example.amazonaws.com/",
                &[],
                b"",
                None,
                suite_time(),
            )
            .unwrap();
        let auth = &added.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn signs_kinesis_headers_and_token() {
        let signer = Signer::new(&creds(Some("TOKEN")), "us-east-1");
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            (
                "x-amz-target".to_string(),
                "Kinesis_20131202.PutRecords".to_string(),
            ),
        ];
        let sign = |body: &[u8], hash: Option<String>| {
            signer
                .sign(
                    "POST",
                    "http://127.0.0.1:4567/",
                    &headers,
                    body,
                    hash,
                    suite_time(),
                )
                .unwrap()
        };
        let added = sign(b"{}", None);
        let get = |n: &str| added.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token"), Some("TOKEN"));
        let auth = get("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="), "{auth}");
        // Same input, same signature; another body, another one; the body's hash given by the
        // host (SHA-256 of `{}`), the same signature as hashing it here.
        assert_eq!(added, sign(b"{}", None));
        assert_ne!(added, sign(b"{ }", None));
        let hash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".to_string();
        assert_eq!(added, sign(b"{}", Some(hash)));
        assert!(!format!("{signer:?}").contains("wJalr"));
    }
}
