//! A forward HTTP proxy on 127.0.0.1 for the host's proxy support: `CONNECT host:port` opens a
//! tunnel (what https requests go through), an absolute-form request (`POST http://…`) is
//! forwarded to its origin. Every request it gets is logged (method and target, and whether it
//! carried the expected `Proxy-Authorization`), so a test can prove the tunnel was used (and
//! where to: a test of endpoint choice reads the `CONNECT` target); with `require` set, a
//! request without those credentials gets 407. A tunnel to anything but this machine is
//! refused with 403, as a proxy with an allow-list refuses it: tests never leave the machine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

/// One request the proxy got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// `CONNECT`, `POST`, …
    pub method: String,
    /// `host:port` for CONNECT, the whole URL otherwise.
    pub target: String,
    /// Whether it carried the expected `Proxy-Authorization` (always true without `require`).
    pub authorized: bool,
}

/// A running proxy; it stops when dropped.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
}

impl ConnectProxy {
    /// Start a proxy; with `require` (`user`, `password`), only requests carrying them in
    /// `Proxy-Authorization: Basic` are let through.
    pub fn start(require: Option<(&str, &str)>) -> std::io::Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = require.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (log, expected) = (log2.clone(), expected.clone());
                        std::thread::spawn(move || {
                            let _ = handle(client, &log, expected.as_deref());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(ConnectProxy { addr, log, stop })
    }

    /// Every request so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const FORBIDDEN: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// `127.0.0.1:port` or `localhost:port`: the only tunnels the test proxy opens.
fn local(target: &str) -> bool {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn handle(mut client: TcpStream, log: &Mutex<Vec<Asked>>, expected: Option<&str>) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The head, byte by byte: what follows belongs to the tunnel or the forwarded body.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8];
        if client.read(&mut b)? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let authorization = lines.clone().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| v.trim().to_string())
    });
    let authorized = expected.is_none_or(|e| authorization.as_deref() == Some(e));
    log.lock().unwrap().push(Asked {
        method: method.clone(),
        target: target.clone(),
        authorized,
    });
    if !authorized {
        client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    if method == "CONNECT" && !local(&target) {
        client.write_all(FORBIDDEN)?;
        return Ok(());
    }
    let upstream = if method == "CONNECT" {
        let upstream = TcpStream::connect(&target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        upstream
    } else {
        // `POST http://host:port/path HTTP/1.1`: to the origin, in origin form, without the
        // proxy's own header.
        let rest = target.strip_prefix("http://").unwrap_or(&target);
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut upstream = TcpStream::connect(authority)?;
        let mut forwarded = format!(
            "{method} {} {}\r\n",
            if path.is_empty() { "/" } else { path },
            parts.next().unwrap_or("HTTP/1.1")
        );
        for l in lines.filter(|l| !l.is_empty()) {
            if !l.to_ascii_lowercase().starts_with("proxy-authorization:") {
                forwarded.push_str(l);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("\r\n");
        upstream.write_all(forwarded.as_bytes())?;
        upstream
    };
    // Both ways until either side closes.
    let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Write);
    });
    let mut up_write = upstream;
    let _ = std::io::copy(&mut client, &mut up_write);
    let _ = up_write.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}

impl ConnectProxy {
    /// A proxy spoken to over TLS (an `https://` proxy), with a certificate `ca` signed for
    /// 127.0.0.1: it answers `CONNECT` only, each tunnel carried inside the TLS connection.
    pub fn start_tls(
        require: Option<(&str, &str)>,
        ca: &crate::listener::TestCa,
    ) -> std::io::Result<ConnectProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = require.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                while !stop2.load(Ordering::Relaxed) {
                    let Ok(Ok((client, _))) =
                        tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                    else {
                        continue;
                    };
                    let (acceptor, log, expected) = (acceptor.clone(), log2.clone(), expected.clone());
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(client).await {
                            let _ = handle_tls(tls, &log, expected.as_deref()).await;
                        }
                    });
                }
            });
        });
        Ok(ConnectProxy { addr, log, stop })
    }
}

async fn handle_tls<S>(mut client: S, log: &Mutex<Vec<Asked>>, expected: Option<&str>) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8];
        if client.read(&mut b).await? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let authorization = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| v.trim().to_string())
    });
    let authorized = expected.is_none_or(|e| authorization.as_deref() == Some(e));
    log.lock().unwrap().push(Asked {
        method: method.clone(),
        target: target.clone(),
        authorized,
    });
    if !authorized || method != "CONNECT" {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    if !local(&target) {
        client.write_all(FORBIDDEN).await?;
        return Ok(());
    }
    let mut upstream = tokio::net::TcpStream::connect(&target).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
