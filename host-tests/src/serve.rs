//! `kinesis-ship serve`: host the `proxy` world over HTTP with this crate's wasmtime harness, for
//! users without a wasmtime CLI. One fresh instance per request, as `wasmtime serve` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use hyper::server::conn::http1;
use serde_json::Value;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

use crate::runtime::{proxy_component_path, InstanceOptions, ProxyRuntime, Upstream};
use crate::ship::{component_env, egress_policy, granted_dirs, read_config, usage};

pub const SERVE_USAGE: &str = "usage: kinesis-ship serve --listen 127.0.0.1:PORT [--config FILE] [--component FILE] [--allow-dir DIR]... [--allow-authority HOST:PORT]... [--max-memory MIB]

Hosts the kinesis-output proxy world: POST NDJSON or a JSON array to /, GET /health.
  --listen ADDR     where to listen (port 0 picks a free one; the address is printed)
  --config FILE     JSON or YAML configuration, a logging-operator Output included; without it
                    the component reads KINESIS_OUTPUT_CONFIG / KINESIS_OUTPUT_<SETTING> from the
                    environment
  --component FILE  the proxy component (default: $KINESIS_OUTPUT_PROXY_WASM, or
                    kinesis_output_proxy.wasm beside this program)
  --allow-dir DIR   a folder the component may read (repeatable)
  --allow-authority HOST:PORT
                    another address the component may connect to (repeatable); by itself it
                    reaches only the Kinesis endpoint and the credential endpoints it needs
  --max-memory MIB  the most linear memory one request's instance may use (past it: a 500)";

/// `serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub allow_dirs: Vec<PathBuf>,
    pub allow_authorities: Vec<String>,
    pub max_memory_mib: Option<usize>,
}

pub fn parse_serve_args(args: impl IntoIterator<Item = String>) -> Result<ServeOptions> {
    let mut listen = None;
    let mut config = None;
    let mut component = None;
    let mut allow_dirs = Vec::new();
    let mut allow_authorities = Vec::new();
    let mut max_memory_mib = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let text = value("--listen")?;
                listen = Some(
                    text.parse::<SocketAddr>()
                        .map_err(|_| anyhow!("--listen {text:?} is not an address like 127.0.0.1:8080"))?,
                )
            }
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--component" => component = Some(PathBuf::from(value("--component")?)),
            "--allow-dir" => allow_dirs.push(PathBuf::from(value("--allow-dir")?)),
            "--allow-authority" => allow_authorities.push(value("--allow-authority")?.to_ascii_lowercase()),
            "--max-memory" => max_memory_mib = Some(crate::ship::parse_max_memory(&value("--max-memory")?)?),
            "-h" | "--help" => bail!("help"),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(ServeOptions {
        listen: listen.ok_or_else(|| anyhow!("--listen is required"))?,
        config,
        component,
        allow_dirs,
        allow_authorities,
        max_memory_mib,
    })
}

/// The component's environment: the AWS variables and `HOME`, every `KINESIS_OUTPUT_*`
/// variable, and the configuration file's content as `KINESIS_OUTPUT_CONFIG`.
pub fn proxy_env(config: Option<&Value>) -> Vec<(String, String)> {
    let mut env = component_env();
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with(kinesis_output::envconfig::PREFIX)));
    if let Some(config) = config {
        env.retain(|(k, _)| k != kinesis_output::envconfig::CONFIG_VAR);
        env.push((
            kinesis_output::envconfig::CONFIG_VAR.to_string(),
            config.to_string(),
        ));
    }
    env
}

/// The egress policy for the proxy world: its configuration is read from the environment
/// it is given, as the component reads it (see [`crate::ship::egress_policy`]).
fn egress_for_env(env: &[(String, String)], extra: &[String]) -> Vec<String> {
    match kinesis_output::envconfig::from_env(&mut crate::ship::NativeEnv(env)) {
        Ok(Some(json)) => egress_policy(&kinesis_output::ingest::proxy_sink_config(&json), env, extra),
        _ => extra.to_vec(),
    }
}

/// Listen and serve until the process is stopped. `ready` gets the bound address.
pub async fn serve(opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let config = match &opts.config {
        Some(path) => Some(read_config(path).map_err(usage)?),
        None => None,
    };
    let path = opts.component.clone().unwrap_or_else(proxy_component_path);
    let runtime = ProxyRuntime::load(&path).map_err(usage)?;
    let env = proxy_env(config.as_ref());
    let mut options = InstanceOptions::new(Upstream::Network);
    options.env = env.clone();
    options.inherit_stderr = true;
    options.egress = Some(egress_for_env(&env, &opts.allow_authorities));
    options.max_memory = opts.max_memory_mib.map(|m| m * 1024 * 1024);
    let empty = Value::Object(Default::default());
    for dir in granted_dirs(config.as_ref().unwrap_or(&empty), &env, &opts.allow_dirs) {
        let guest = dir.to_string_lossy().into_owned();
        options = options.dir(dir, &guest);
    }
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))
        .map_err(usage)?;
    ready(listener.local_addr()?);
    let shared = Arc::new((runtime, options));
    loop {
        let (client, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { shared.0.handle(&shared.1, req).await }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), service)
                .await
            {
                eprintln!("kinesis-ship: connection: {e}");
            }
        });
    }
}
