//! Sending the component's requests over the network ourselves, when the host trusts more than
//! the public CAs: an extra CA file (private CAs, VPC endpoints behind inspecting proxies), or no
//! verification at all (`tls.verify off`, for tests). Otherwise wasmtime-wasi-http's own
//! client sends them. The egress policy has judged a request before it gets here.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use crate::sink::Answered;

/// What the host's TLS client trusts.
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// The public CAs (as wasmtime-wasi-http trusts them) and every certificate in `ca_file`; with
/// `verify` off, any certificate at all.
pub fn tls_config(ca_file: Option<&Path>, verify: bool) -> Result<TlsConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?;
    if !verify {
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
        ));
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    if let Some(path) = ca_file {
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
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
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

/// Send `request` with `tls` for https, keeping the guest's connect, first-byte and
/// between-bytes timeouts.
pub async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: TlsConfig,
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

    let connected = tokio::time::timeout(connect_timeout, async {
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(Error::Connect)?;
        let io: Box<dyn Io> = if https {
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(Error::Tls)?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let handshake = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await?;
        Ok::<_, Error>(handshake)
    })
    .await
    .map_err(|_| Error::ConnectionTimeout)?;
    let (mut sender, connection) = connected?;
    let connection = tokio::spawn(connection);

    // The request line carries the path only; the host header came from the guest's authority.
    let (mut parts, body) = request.into_parts();
    parts.uri = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let response = tokio::time::timeout(
        first_byte,
        sender.send_request(http::Request::from_parts(parts, body)),
    )
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    let (parts, incoming) = response.into_parts();
    let body = TimedBody {
        incoming,
        between_bytes,
        sleep: Box::pin(tokio::time::sleep(between_bytes)),
    };
    Ok((
        http::Response::from_parts(parts, body.boxed_unsync()),
        Box::new(async move { connection.await.unwrap_or(Ok(())).map_err(Into::into) })
            as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ))
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
