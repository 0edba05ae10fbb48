//! The fake Kinesis over real HTTP on 127.0.0.1, for hosts and agents the harness does not embed
//! (the real Fluent Bit with the plugin, `wasmtime serve`, `kinesis-ship`): the same SigV4 check,
//! limits and faults as in process. `GET /_fake/stored` lists what it stored, one JSON object a
//! line (`data` in base64, `partition_key`, `sequence_number`, `request`); `GET /_fake/seen`
//! what it did with each request (`records`, `status`, `fault`, `damaged`: whether the answer
//! lost news of stored records, the one way a client can store a record twice).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use serde_json::json;

use crate::fake_kinesis::{FakeKinesis, Reply};

/// A listening fake, served on its own thread until dropped.
pub struct Listener {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serve `fake` on `addr` (port 0: a free one).
pub fn serve(fake: Arc<FakeKinesis>, addr: SocketAddr) -> std::io::Result<Listener> {
    serve_with(fake, addr, None)
}

/// A test CA, and a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestCa {
    /// The CA's certificate, PEM: what a client must trust.
    pub ca_pem: String,
    /// The server's certificate and key, PEM (for servers the harness starts as programs).
    pub server_cert_pem: String,
    pub server_key_pem: String,
    server: Arc<rustls::ServerConfig>,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kinesis-output test CA");
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let key = KeyPair::generate().expect("a server key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("the server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("a key"),
            )
            .expect("a server configuration");
        TestCa {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
            server: Arc::new(server),
            ca,
            ca_key,
        }
    }

    /// A client certificate this CA signed, for mutual TLS: (certificate, key), PEM.
    pub fn client(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("a client key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("the client certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// The server side: the certificate for 127.0.0.1 and localhost, with its key.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// Serve `fake` over TLS with a certificate `ca` signed.
pub fn serve_tls(fake: Arc<FakeKinesis>, addr: SocketAddr, ca: &TestCa) -> std::io::Result<Listener> {
    serve_with(fake, addr, Some(ca.server.clone()))
}

fn serve_with(
    fake: Arc<FakeKinesis>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Listener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            loop {
                let accepted = tokio::select! {
                    _ = &mut rx => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let fake = fake.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(fake.clone(), req));
                    match tls {
                        Some(config) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return; // a client that does not trust us
                            };
                            let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                            let _ = http1::Builder::new().serve_connection(io, service).await;
                        }
                        None => {
                            let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                            let _ = http1::Builder::new().serve_connection(io, service).await;
                        }
                    }
                });
            }
        });
    });
    Ok(Listener {
        addr,
        connections,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

type Body = BoxBody<Bytes, std::io::Error>;

fn whole(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn answer(
    fake: Arc<FakeKinesis>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let path = parts.uri.path().to_string();
    if parts.method == hyper::Method::GET && path.starts_with("/_fake/") {
        return Ok(Response::new(whole(report(&fake, &path))));
    }
    let mut headers = crate::fake_kinesis::header_pairs(&parts.headers);
    // The client signed the host it connected to; the fake reads it like any header.
    if !headers.iter().any(|(k, _)| k == "host") {
        if let Some(a) = parts.uri.authority() {
            headers.push(("host".to_string(), a.to_string()));
        }
    }
    let reply = fake.handle(
        parts.method.as_str(),
        &path,
        parts.uri.query().unwrap_or(""),
        &headers,
        &body,
        None,
    );
    match reply {
        // No answer at all: the connection drops.
        Reply::ConnectionError | Reply::Timeout(_) => Err(std::io::Error::other("dropped by the fake")),
        Reply::Hang => std::future::pending().await,
        Reply::Response(answer) => {
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            let (status, length) = (answer.status, answer.body.len());
            let body: Body = answer
                .into_body(|| std::io::Error::other("the fake broke the body"))
                .boxed();
            Ok(Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.1")
                .header("content-length", length)
                .body(body)
                .expect("a valid response"))
        }
    }
}

fn report(fake: &FakeKinesis, path: &str) -> Vec<u8> {
    let mut out = String::new();
    if path == "/_fake/stored" {
        for s in fake.stored() {
            let line = json!({
                "data": base64::engine::general_purpose::STANDARD.encode(&s.data),
                "partition_key": s.partition_key,
                "sequence_number": s.sequence_number,
                "request": s.request,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    } else {
        for s in fake.seen() {
            let line = json!({
                "records": s.records,
                "status": s.status,
                "fault": s.fault.map(|f| format!("{f:?}")),
                "damaged": s.response_damaged_after_store,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// One HTTP/1.1 request over TLS to `addr` (127.0.0.1), trusting `ca_pem`, with a client
/// certificate when given: the status, the head (lower case) and the body. A handshake the
/// server refuses is an error.
pub fn https_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| other(&e))?).map_err(|e| other(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| other(&e))?,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| other(&e))?,
            )
            .map_err(|e| other(&e))?,
    };
    let name = ServerName::try_from("127.0.0.1").map_err(|e| other(&e))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| other(&e))?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(&mut tls, addr, method, path, headers, body)
}

/// One HTTP/1.1 request with `Connection: close` on `stream`, read to its end: the status, the
/// head (lower case) and the body. A stream that breaks after some of the answer came (a TLS
/// close without close_notify) still gives what came.
pub fn exchange(
    stream: &mut (impl std::io::Read + std::io::Write),
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response) {
        if response.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((status, head.to_ascii_lowercase(), body.to_string()))
}

/// A free port on 127.0.0.1 (released for the program under test to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
