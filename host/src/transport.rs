//! Sending the component's requests over the network: TLS with the public CAs, or with more
//! when the host trusts more (an extra CA file: private CAs, VPC endpoints behind inspecting
//! proxies; or no verification at all, `tls.verify off`, for tests), through an HTTP proxy where
//! one applies ([`crate::network`]), on HTTP/1.1 connections kept open between requests (a
//! pool; wasmtime-wasi-http's own client opens one a request). The egress policy has judged a
//! request before it gets here.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use crate::network::{Proxies, Proxy};
use crate::sink::Answered;

/// What the host's TLS client trusts.
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// The public CAs and every certificate in each of `ca_files` (`--ca-file`, `SSL_CERT_FILE`).
pub fn tls_config_files(ca_files: &[std::path::PathBuf]) -> Result<TlsConfig> {
    let mut roots = public_roots();
    for path in ca_files {
        add_pem_roots(&mut roots, path)?;
    }
    client_config(roots)
}

fn public_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    }
}

fn client_config(roots: rustls::RootCertStore) -> Result<TlsConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Trust every certificate of the PEM file at `path`: an error names the file when it cannot
/// be read, holds no certificate, or holds one that cannot be a trust anchor.
pub(crate) fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", path.display());
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| anyhow!("{}: a certificate cannot be trusted: {e}", path.display()))?;
    }
    Ok(())
}

/// The public CAs (as wasmtime-wasi-http trusts them) and every certificate in `ca_file`; with
/// `verify` off, any certificate at all.
pub fn tls_config(ca_file: Option<&Path>, verify: bool) -> Result<TlsConfig> {
    if verify {
        let ca_files: Vec<std::path::PathBuf> = ca_file.map(Path::to_path_buf).into_iter().collect();
        return tls_config_files(&ca_files);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    ))
}

/// The public CAs alone: what a host that was given no CA file trusts.
pub fn public_tls() -> TlsConfig {
    static PUBLIC: OnceLock<TlsConfig> = OnceLock::new();
    PUBLIC
        .get_or_init(|| tls_config(None, true).expect("the public roots make a TLS configuration"))
        .clone()
}

type Signed = rustls::DigitallySignedStruct;
type SignatureValid = Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>;

/// Accepts any server certificate (`tls.verify off`), still checking the handshake's signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Signed) -> SignatureValid {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Signed) -> SignatureValid {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Ten minutes: wasmtime-wasi-http's own default for each timeout the guest leaves unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Send `request` with `tls` for https, through `proxies` where they apply, keeping the guest's
/// connect, first-byte and between-bytes timeouts.
pub async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: TlsConfig,
    proxies: Option<Arc<Proxies>>,
) -> Answered {
    use wasmtime_wasi_http::Error;
    let uri = request.uri().clone();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(Duration::from_nanos(1));

    let proxy = proxies
        .as_deref()
        .and_then(|p| p.for_request(https, &host, port))
        .cloned();
    let key = PoolKey {
        https,
        host: host.clone(),
        port,
        proxy: proxy.as_ref().map(|p| {
            (
                p.tls,
                p.host.clone(),
                p.port,
                p.authorization.clone().unwrap_or_default(),
            )
        }),
        tls: SameConfig(tls.clone()),
    };
    let (mut sender, mut reused) = match pool().take(&key) {
        Some(sender) => (sender, true),
        None => (
            connect(&host, port, https, proxy.as_ref(), tls.clone(), connect_timeout).await?,
            false,
        ),
    };

    // The request line carries the path only (the whole URL to a proxy for plain http); the
    // host header came from the guest's authority.
    let (mut parts, body) = request.into_parts();
    match &proxy {
        Some(proxy) if !https => {
            if let Some(auth) = &proxy.authorization {
                parts.headers.insert(
                    http::header::PROXY_AUTHORIZATION,
                    http::HeaderValue::from_str(auth).map_err(|_| Error::HttpRequestUriInvalid)?,
                );
            }
        }
        _ => {
            parts.uri = http::Uri::builder()
                .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
                .build()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
        }
    }
    let mut request = http::Request::from_parts(parts, body);
    let response = loop {
        let sent = tokio::time::timeout(first_byte, sender.try_send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?;
        match sent {
            Ok(response) => break response,
            Err(mut e) => match e.take_message() {
                // The request never went out on the kept connection (the server had closed
                // it meanwhile): nothing of it was read, so it goes once more, on a new one.
                Some(unsent) if reused => {
                    request = unsent;
                    reused = false;
                    sender =
                        connect(&host, port, https, proxy.as_ref(), tls.clone(), connect_timeout).await?;
                }
                _ => return Err(e.into_error().into()),
            },
        }
    };
    // The connection goes back to the pool now; it is taken again only once this answer's
    // body has been read to its end (hyper's sender is ready only then) and the server kept
    // the connection open.
    pool().give(key, sender);
    let (parts, incoming) = response.into_parts();
    let body = TimedBody {
        incoming,
        between_bytes,
        sleep: Box::pin(tokio::time::sleep(between_bytes)),
    };
    Ok((
        http::Response::from_parts(parts, body.boxed_unsync()),
        // The connection runs as a task of its own, for as long as it is open.
        Box::new(async { Ok(()) }) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ))
}

/// Idle connections to one place, reached one way, with one TLS configuration.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
    /// The proxy the connection goes through: over TLS or not, where, with which credentials
    /// (a tunnel opened with one proxy login is not lent to another). Never shown.
    proxy: Option<(bool, String, u16, String)>,
    /// The TLS configuration that checked the server.
    tls: SameConfig,
}

/// A TLS configuration compared by identity (configurations are made once and shared); kept
/// alive by the key, so that no other configuration can take its place.
#[derive(Clone)]
struct SameConfig(TlsConfig);

impl PartialEq for SameConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SameConfig {}

impl std::hash::Hash for SameConfig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// A connection not taken for longer than this is closed rather than reused: servers close
/// idle keep-alive connections on their own schedule, and a request sent as one does fails.
/// Below Node's default keep-alive timeout (5 s), the shortest common among servers.
const IDLE_LIMIT: Duration = Duration::from_secs(4);
/// At most this many connections kept for one key.
const POOL_PER_KEY: usize = 16;

/// HTTP/1.1 connections kept open between requests, so that each PutRecords does not pay for
/// a TCP and TLS handshake (measured: the handshakes' cryptography alone was 2.7% of Fluent
/// Bit's CPU with the plugin; docs/performance.md).
#[derive(Default)]
struct Pool {
    idle: std::sync::Mutex<std::collections::HashMap<PoolKey, Vec<(Sender, std::time::Instant)>>>,
}

/// One connection's side that sends requests.
type Sender = hyper::client::conn::http1::SendRequest<WasiBody>;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

impl Pool {
    /// A connection for `key` ready for a request, if one is kept; closed and stale ones are
    /// let go on the way.
    fn take(&self, key: &PoolKey) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("not poisoned");
        let kept = idle.get_mut(key)?;
        let now = std::time::Instant::now();
        kept.retain(|(sender, since)| !sender.is_closed() && now.duration_since(*since) < IDLE_LIMIT);
        let ready = kept.iter().position(|(sender, _)| sender.is_ready());
        ready.map(|i| kept.swap_remove(i).0)
    }

    /// Keep `sender` for the next request to `key`; connections closed or idle too long are
    /// let go, whatever their key (a key used once does not keep its entry).
    fn give(&self, key: PoolKey, sender: Sender) {
        let mut idle = self.idle.lock().expect("not poisoned");
        let now = std::time::Instant::now();
        idle.retain(|_, kept| {
            kept.retain(|(sender, since)| !sender.is_closed() && now.duration_since(*since) < IDLE_LIMIT);
            !kept.is_empty()
        });
        let kept = idle.entry(key).or_default();
        if kept.len() < POOL_PER_KEY {
            kept.push((sender, now));
        }
    }
}

/// A new connection to `host:port` (through `proxy`, over TLS for https), its task spawned.
async fn connect(
    host: &str,
    port: u16,
    https: bool,
    proxy: Option<&Proxy>,
    tls: TlsConfig,
    connect_timeout: Duration,
) -> Result<Sender, wasmtime_wasi_http::Error> {
    use wasmtime_wasi_http::Error;
    let connected = tokio::time::timeout(connect_timeout, async {
        let stream: Box<dyn Io> = match proxy {
            None => Box::new(
                TcpStream::connect((host.trim_matches(['[', ']']), port))
                    .await
                    .map_err(Error::Connect)?,
            ),
            Some(proxy) => {
                // wasi:http has no code that says which step failed: the host's log does.
                let through = async {
                    let tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
                        .await
                        .map_err(|e| {
                            std::io::Error::new(e.kind(), format!("proxy {}: {e}", proxy.shown()))
                        })?;
                    // An https:// proxy: TLS to the proxy first, checked against the same CAs.
                    let mut stream: Box<dyn Io> = if proxy.tls {
                        let name = ServerName::try_from(proxy.host.trim_matches(['[', ']']).to_string())
                            .map_err(|e| std::io::Error::other(format!("proxy {}: {e}", proxy.shown())))?;
                        let tls_stream = tokio_rustls::TlsConnector::from(tls.clone())
                            .connect(name, tcp)
                            .await
                            .map_err(|e| {
                                std::io::Error::new(e.kind(), format!("TLS to proxy {}: {e}", proxy.shown()))
                            })?;
                        Box::new(tls_stream)
                    } else {
                        Box::new(tcp)
                    };
                    if https {
                        tunnel(&mut stream, proxy, host, port).await?;
                    }
                    Ok::<_, std::io::Error>(stream)
                };
                through.await.map_err(|e| {
                    crate::log::warn(&format!("{e}"));
                    Error::Connect(e)
                })?
            }
        };
        let io: Box<dyn Io> = if https {
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string()).map_err(|_| {
                Error::DnsError {
                    rcode: Some("invalid dns name".to_string()),
                    info_code: None,
                }
            })?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(Error::Tls)?;
            Box::new(stream)
        } else {
            stream
        };
        let handshake = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        Ok::<_, Error>(handshake)
    })
    .await
    .map_err(|_| Error::ConnectionTimeout)?;
    let (sender, connection) = connected?;
    // The connection's task ends when the server closes it or every sender is gone.
    tokio::spawn(connection);
    Ok(sender)
}

/// Ask `proxy` (connected on `tcp`) for a tunnel to `host:port`; fails unless it answers 2xx.
async fn tunnel<S>(tcp: &mut S, proxy: &Proxy, host: &str, port: u16) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
{
    let target = format!("{host}:{port}");
    let mut ask = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        ask.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    ask.push_str("\r\n");
    tcp.write_all(ask.as_bytes()).await?;
    // The answer's head, byte by byte: nothing of the tunnel's own bytes may be read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(std::io::Error::other(format!(
                "proxy {}: an answer to CONNECT with a head over 16 KiB",
                proxy.shown()
            )));
        }
        let mut byte = [0u8];
        if tcp.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!(
                    "proxy {}: closed the connection before answering CONNECT",
                    proxy.shown()
                ),
            ));
        }
        head.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("proxy {} refused CONNECT {target}: {status_line}", proxy.shown()),
        )),
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// A response body that fails when the next bytes take longer than `between_bytes`.
struct TimedBody {
    incoming: hyper::body::Incoming,
    between_bytes: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.incoming)
    }
}
