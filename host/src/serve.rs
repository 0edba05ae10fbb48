//! `kinesis-ship serve`: host the `proxy` world over HTTP, for users without a wasmtime CLI. One
//! fresh instance per request, as `wasmtime serve` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use hyper::server::conn::http1;
use serde_json::Value;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

use crate::engine::proxy_component_path;
use crate::proxy::ProxyRuntime;
use crate::room::Room;
use crate::setup::{egress_policy, proxy_document, proxy_env, proxy_settings, read_config, Sandbox};
use crate::ship::usage;
use kinesis_output::config::env as envconfig;

/// What `kinesis-ship serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub sandbox: Sandbox,
}

/// Listen and serve until the process is stopped. `ready` gets the bound address.
pub async fn serve(opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let config = match &opts.config {
        Some(path) => Some(read_config(path).map_err(usage)?),
        None => None,
    };
    let path = opts.component.clone().unwrap_or_else(proxy_component_path);
    let runtime = ProxyRuntime::load(&path).map_err(usage)?;
    let mut env = proxy_env(config.as_ref());
    // `--secrets-dir` as the setting's own variable, which the proxy world reads over the file.
    if let Some(dir) = &opts.sandbox.secrets_dir {
        let variable = envconfig::variable_name("secrets_dir");
        env.retain(|(k, _)| *k != variable);
        env.push((variable, dir.to_string_lossy().into_owned()));
    }
    // The document the component will read (the file and the variables merged), read natively
    // as it reads it: the folders it needs, the egress policy and the buffer limit. (One that
    // does not parse reaches nothing; the component answers its error.)
    let document = proxy_document(&env);
    let settings = document.as_deref().and_then(|d| proxy_settings(d, &env));
    let egress = egress_policy(settings.as_ref().map(|s| &s.sink), &env);
    let room = Room::new(&settings.map(|s| s.buffer).unwrap_or_default());
    let granted = document
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut options = opts.sandbox.options(env, &granted, egress);
    options.inherit_stderr = true;
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))
        .map_err(usage)?;
    ready(listener.local_addr().map_err(|e| anyhow!("{e}"))?);
    let shared = Arc::new((runtime, options, room));
    loop {
        let (client, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move {
                    let (runtime, options, room) = &*shared;
                    match room.admit(req).await {
                        // The room is held until the component has answered.
                        Ok(admitted) => runtime.handle(options, admitted.request).await,
                        Err(answer) => Ok(answer),
                    }
                }
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
