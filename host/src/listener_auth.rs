//! Who may send to `kinesis-ship serve`: a bearer token (`--auth-token-file`) and HTTP basic
//! credentials (`--basic-auth-file`, `user:password` lines), compared in constant time. A
//! request without them, or with wrong ones, gets 401 with `WWW-Authenticate`; nothing of what
//! it presented is kept or logged. `GET /health` and `GET /metrics` need no credentials from
//! loopback only.
//!
//! Listening on an address other than loopback without any authentication (a token, basic
//! credentials, or client certificates with `--tls-client-ca`) is refused at start unless
//! `--insecure-no-auth` says the operator means it: otherwise anyone who reaches the port writes
//! into Kinesis with the operator's credentials.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;

/// What the listener accepts. Secrets are kept as SHA-256 digests, compared in constant time.
#[derive(Default)]
pub struct ListenerAuth {
    token: Option<[u8; 32]>,
    /// (user, digest of the password)
    users: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ListenerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerAuth")
            .field("token", &self.token.is_some())
            .field("users", &self.users.iter().map(|(u, _)| u).collect::<Vec<_>>())
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal digests, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ListenerAuth {
    /// Read `--auth-token-file` (the token, surrounding whitespace ignored) and
    /// `--basic-auth-file` (`user:password` a line; blank lines and `#` comments skipped).
    pub fn load(token_file: Option<&Path>, basic_file: Option<&Path>) -> Result<ListenerAuth> {
        let mut auth = ListenerAuth::default();
        if let Some(path) = token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--auth-token-file {}", path.display()))?;
            let token = text.trim();
            if token.len() < 16 {
                bail!(
                    "--auth-token-file {}: the token must be at least 16 characters",
                    path.display()
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "--auth-token-file {}: the token must be one word, without spaces or line breaks",
                    path.display()
                );
            }
            auth.token = Some(digest(token.as_bytes()));
        }
        if let Some(path) = basic_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--basic-auth-file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (user, password) = line.split_once(':').ok_or_else(|| {
                    anyhow!(
                        "--basic-auth-file {} line {}: expected user:password",
                        path.display(),
                        n + 1
                    )
                })?;
                if user.is_empty() || password.is_empty() {
                    bail!(
                        "--basic-auth-file {} line {}: the user and the password must not be empty",
                        path.display(),
                        n + 1
                    );
                }
                auth.users.push((user.to_string(), digest(password.as_bytes())));
            }
            if auth.users.is_empty() {
                bail!("--basic-auth-file {}: no user:password line", path.display());
            }
        }
        Ok(auth)
    }

    /// Whether credentials are asked for at all.
    pub fn required(&self) -> bool {
        self.token.is_some() || !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries accepted credentials.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.token.is_some_and(|t| same(&t, &digest(rest.as_bytes())));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return false;
            };
            let Some(colon) = decoded.iter().position(|b| *b == b':') else {
                return false;
            };
            let (user, password) = (&decoded[..colon], digest(&decoded[colon + 1..]));
            // Every user's password is compared, whichever matches.
            return self.users.iter().fold(false, |ok, (u, p)| {
                ok | (u.as_bytes() == user && same(p, &password))
            });
        }
        false
    }

    /// The `WWW-Authenticate` challenges of a 401.
    pub fn challenges(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.token.is_some() {
            c.push("Bearer realm=\"kinesis-ship\"");
        }
        if !self.users.is_empty() {
            c.push("Basic realm=\"kinesis-ship\", charset=\"UTF-8\"");
        }
        c
    }
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, or an IPv4-mapped loopback).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Refuse to listen beyond loopback with nobody asked who they are, unless the operator says so.
pub fn check_exposure(listen: SocketAddr, authenticated: bool, insecure_no_auth: bool) -> Result<()> {
    if is_loopback(listen.ip()) || authenticated || insecure_no_auth {
        return Ok(());
    }
    bail!(
        "refusing to listen on {listen} without authentication: anyone who reaches it could write into Kinesis with these credentials. Give --auth-token-file FILE or --basic-auth-file FILE (or --tls-client-ca FILE for client certificates), or --insecure-no-auth if this is meant"
    )
}

/// The listener's TLS (`--tls-cert`, `--tls-key`, PEM; rustls), asking clients for a
/// certificate signed by `client_ca` when given (mutual TLS).
pub fn server_tls(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--tls-cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("--tls-cert {}: not PEM certificates: {e}", cert.display()))?;
    if chain.is_empty() {
        bail!("--tls-cert {}: no certificate in the file", cert.display());
    }
    // The key's own error would not name the file; and never its content.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow!(
            "--tls-key {}: no PEM private key could be read ({e})",
            key.display()
        )
    })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            crate::transport::add_pem_roots(&mut roots, path).context("--tls-client-ca")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| anyhow!("--tls-client-ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("--tls-cert and --tls-key do not make a pair: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("listener-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn basic(pair: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)).into_bytes()
    }

    #[test]
    fn tokens_and_basic_credentials() {
        let token = file("token", "  s3cr3t-token-0123456789\n");
        let users = file(
            "users",
            "# who may send\nfluent:bit-password\n\nvector:other:with-colon\n",
        );
        let auth = ListenerAuth::load(Some(&token), Some(&users)).unwrap();
        assert!(auth.required());
        assert!(auth.accepts(Some(b"Bearer s3cr3t-token-0123456789")));
        assert!(auth.accepts(Some(b"bearer  s3cr3t-token-0123456789 ")));
        assert!(!auth.accepts(Some(b"Bearer s3cr3t-token-012345678")));
        assert!(!auth.accepts(Some(b"Bearer")));
        assert!(!auth.accepts(None));
        assert!(auth.accepts(Some(&basic("fluent:bit-password"))));
        assert!(
            auth.accepts(Some(&basic("vector:other:with-colon"))),
            "a password may hold ':'"
        );
        assert!(
            !auth.accepts(Some(&basic("fluent:other:with-colon"))),
            "another user's password"
        );
        assert!(!auth.accepts(Some(&basic("nobody:bit-password"))));
        assert!(!auth.accepts(Some(b"Basic !!!")));
        assert!(!auth.accepts(Some(b"Digest x")));
        assert_eq!(auth.challenges().len(), 2);
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("bit-password"),
            "{shown}"
        );

        let only_token = ListenerAuth::load(Some(&token), None).unwrap();
        assert!(!only_token.accepts(Some(&basic("fluent:bit-password"))));
        assert!(!ListenerAuth::default().required());

        for (text, want) in [("short", "at least 16"), ("two words here!!!!", "one word")] {
            let e = ListenerAuth::load(Some(&file("bad-token", text)), None).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(!e.to_string().contains(text), "never the token: {e}");
        }
        let e = ListenerAuth::load(None, Some(&file("bad-users", "fluent\n"))).unwrap_err();
        assert!(e.to_string().contains("line 1: expected user:password"), "{e}");
        let e = ListenerAuth::load(None, Some(&file("empty-users", "# none\n"))).unwrap_err();
        assert!(e.to_string().contains("no user:password line"), "{e}");
    }

    #[test]
    fn listening_beyond_loopback_needs_authentication_or_the_insecure_flag() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let all: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        assert!(check_exposure(local, false, false).is_ok());
        assert!(check_exposure(v6, false, false).is_ok());
        for addr in [all, lan] {
            let e = check_exposure(addr, false, false).unwrap_err().to_string();
            for flag in ["--auth-token-file", "--basic-auth-file", "--insecure-no-auth"] {
                assert!(e.contains(flag), "{e}");
            }
            assert!(check_exposure(addr, true, false).is_ok());
            assert!(check_exposure(addr, false, true).is_ok());
        }
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }
}
