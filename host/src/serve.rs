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
use crate::setup::{egress_policy, proxy_env, proxy_settings, read_config, Sandbox, SECRETS_DIR_VAR};
use crate::ship::usage;

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
        Some(path) => {
            let mut config = read_config(path).map_err(usage)?;
            opts.sandbox.configure(&mut config);
            Some(config)
        }
        None => None,
    };
    let path = opts.component.clone().unwrap_or_else(proxy_component_path);
    let runtime = ProxyRuntime::load(&path).map_err(usage)?;
    let mut env = proxy_env(config.as_ref());
    if let (None, Some(dir)) = (&config, &opts.sandbox.secrets_dir) {
        env.retain(|(k, _)| k != SECRETS_DIR_VAR);
        env.push((SECRETS_DIR_VAR.to_string(), dir.to_string_lossy().into_owned()));
    }
    // The configuration read natively, as the component reads it: the egress policy and the
    // buffer limit. (One that does not parse reaches nothing; the component answers its error.)
    let settings = proxy_settings(&env);
    let egress = egress_policy(settings.as_ref().map(|s| &s.sink), &env);
    let room = Room::new(&settings.map(|s| s.buffer).unwrap_or_default());
    let empty = Value::Object(Default::default());
    let mut options = opts
        .sandbox
        .options(env, config.as_ref().unwrap_or(&empty), egress);
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
