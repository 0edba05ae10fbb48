//! The networks users run in: an HTTP proxy from `HTTPS_PROXY` / `HTTP_PROXY` (upper or lower
//! case; `http://` or `https://`, TLS to the proxy itself), with `NO_PROXY` exceptions, for every
//! request the component makes. The proxy is the
//! host's transport: the egress policy has already judged the request's own authority, and the
//! proxy's address needs no place in it. https goes through a `CONNECT` tunnel (TLS is still
//! between the component's request and its endpoint); plain http is sent to the proxy in
//! absolute form.

use anyhow::{anyhow, bail, Result};
use base64::Engine as _;

/// A proxy: where to connect, whether over TLS, and the `Proxy-Authorization` its URL's user
/// info gives.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `https://`: the connection to the proxy itself is TLS (its certificate checked against
    /// the same CAs as the endpoints': the public ones, `--ca-file`, `SSL_CERT_FILE`).
    pub tls: bool,
    /// `Basic …`, from `http://user:password@host:port`.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "{}", self.shown())
    }
}

impl Proxy {
    /// `http://host:port` (or `https://`), without credentials, for logs and errors.
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// Read a proxy URL: `http://[user:password@]host[:port]`, `https://…` (TLS to the proxy),
    /// or `host:port` alone.
    pub fn parse(name: &str, text: &str) -> Result<Proxy> {
        let text = text.trim();
        let (tls, rest) = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => bail!(
                "{name}: a proxy URL with scheme {scheme:?}; use http:// or https:// (https requests go through either in a CONNECT tunnel)"
            ),
            None => (false, text),
        };
        // The user information runs to the last `@`: a password may hold `/`, `?` or `#`,
        // and nothing of it is ever shown in an error.
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport = after.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| anyhow!("{name}: no proxy host in the URL (expected http://host:port)"))?;
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| anyhow!("{name}: the proxy port {p:?} is not a port number"))?,
            None if tls => 443,
            None => 80,
        };
        let authorization = userinfo.map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        Ok(Proxy {
            host: host.to_ascii_lowercase(),
            port,
            tls,
            authorization,
        })
    }
}

/// `host:port`, `[v6]:port` or a host alone; `None` for an empty host.
fn split_host_port(text: &str) -> Option<(String, Option<&str>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxies of an environment and their exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    pub http: Option<Proxy>,
    pub https: Option<Proxy>,
    /// `NO_PROXY`: hosts (and their subdomains), IP addresses, `host:port`, or `*`.
    pub no_proxy: Vec<String>,
}

impl Proxies {
    /// The proxies `var` names (`HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY`, `http_proxy`,
    /// `NO_PROXY`, `no_proxy`; the lower-case name first, as curl reads them); `None` when no
    /// proxy is set. A URL that cannot be read is an error naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Proxies>> {
        let read = |names: [&str; 2]| -> Result<Option<Proxy>> {
            for name in names {
                if let Some(value) = var(name).filter(|v| !v.trim().is_empty()) {
                    return Proxy::parse(name, &value).map(Some);
                }
            }
            Ok(None)
        };
        let https = read(["https_proxy", "HTTPS_PROXY"])?;
        let http = read(["http_proxy", "HTTP_PROXY"])?;
        if https.is_none() && http.is_none() {
            return Ok(None);
        }
        let no_proxy = var("no_proxy")
            .or_else(|| var("NO_PROXY"))
            .unwrap_or_default()
            .split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        Ok(Some(Proxies {
            http,
            https,
            no_proxy,
        }))
    }

    /// [`Proxies::from_env`] of this process's environment, shared by every request.
    pub fn from_process_env() -> Result<Option<std::sync::Arc<Proxies>>> {
        Ok(Proxies::from_env(|name| std::env::var(name).ok())?.map(std::sync::Arc::new))
    }

    /// The proxy for a request to `host:port` (`https` or not); `None`: connect directly.
    pub fn for_request(&self, https: bool, host: &str, port: u16) -> Option<&Proxy> {
        let proxy = if https { &self.https } else { &self.http };
        let proxy = proxy.as_ref()?;
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let excepted = self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = match split_host_port(entry) {
                // An IPv6 address without brackets splits wrongly: take it whole.
                Some((h, p)) if !h.contains(':') => (h, p.and_then(|p| p.parse::<u16>().ok())),
                _ => (entry.trim_matches(['[', ']']).to_string(), None),
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        });
        (!excepted).then_some(proxy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn proxies_come_from_the_environment_with_their_exceptions() {
        assert_eq!(Proxies::from_env(env(&[])).unwrap(), None);
        let p = Proxies::from_env(env(&[
            ("HTTPS_PROXY", "http://user:p%40ss@Proxy.corp:3128/"),
            ("http_proxy", "proxy.corp:8080"),
            ("NO_PROXY", "169.254.169.254, .internal,example.com:8443,[::1]"),
        ]))
        .unwrap()
        .unwrap();
        let https = p.https.clone().unwrap();
        assert_eq!((https.host.as_str(), https.port), ("proxy.corp", 3128));
        assert_eq!(
            https.authorization.as_deref(),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("user:p@ss")
                )
                .as_str()
            )
        );
        assert_eq!(
            format!("{https:?}"),
            "http://proxy.corp:3128",
            "never the password"
        );
        assert_eq!(p.http.as_ref().map(|h| h.port), Some(8080));

        let via = |https: bool, host: &str, port: u16| p.for_request(https, host, port).map(|p| p.port);
        assert_eq!(via(true, "kinesis.us-east-1.amazonaws.com", 443), Some(3128));
        assert_eq!(via(false, "kinesis.us-east-1.amazonaws.com", 80), Some(8080));
        assert_eq!(via(false, "169.254.169.254", 80), None, "IMDS excepted");
        assert_eq!(
            via(true, "sts.eu.internal", 443),
            None,
            "a domain and its subdomains"
        );
        assert_eq!(via(true, "internal", 443), None);
        assert_eq!(via(true, "notinternal", 443), Some(3128));
        assert_eq!(via(true, "example.com", 8443), None);
        assert_eq!(via(true, "example.com", 443), Some(3128), "another port");
        assert_eq!(via(false, "[::1]", 80), None);

        let all = Proxies::from_env(env(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")]))
            .unwrap()
            .unwrap();
        assert_eq!(all.for_request(true, "anything", 443), None);
        assert_eq!(all.for_request(false, "anything", 80), None, "no http proxy");

        let e = Proxies::from_env(env(&[("HTTPS_PROXY", "socks5://p:1")])).unwrap_err();
        assert!(
            e.to_string().contains("HTTPS_PROXY") && e.to_string().contains("http:// or https://"),
            "{e}"
        );
        // TLS to the proxy itself.
        let p = Proxy::parse("X", "https://u:pw@Proxy.corp").unwrap();
        assert_eq!(
            (p.tls, p.port, p.shown()),
            (true, 443, "https://proxy.corp:443".to_string())
        );
        let e = Proxies::from_env(env(&[("HTTP_PROXY", "http://u:secret@p:99999")])).unwrap_err();
        assert!(
            e.to_string().contains("HTTP_PROXY") && !e.to_string().contains("secret"),
            "{e}"
        );
        // A password with `/`, `?` or `#` in it: read whole, and never in an error.
        for password in ["s3c/ret", "s3c?ret", "s3c#ret"] {
            let p = Proxy::parse("X", &format!("http://u:{password}@proxy.corp:3128")).unwrap();
            assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
            let expected = base64::engine::general_purpose::STANDARD.encode(format!("u:{password}"));
            assert_eq!(p.authorization, Some(format!("Basic {expected}")));
            let e = Proxy::parse("X", &format!("http://u:{password}@proxy.corp:bad")).unwrap_err();
            assert!(
                !e.to_string().contains("s3c") && !e.to_string().contains("ret"),
                "{e}"
            );
        }
        assert_eq!(
            Proxy::parse("X", "http://[fd00::1]:3128").unwrap().host,
            "fd00::1"
        );
        assert_eq!(Proxy::parse("X", "http://p").unwrap().port, 80);
    }
}
