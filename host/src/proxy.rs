//! The `proxy` world in wasmtime: one fresh instance per request, as `wasmtime serve` does. A
//! trap is answered by what the service had stored of the body (see [`ProxyRuntime::handle`])
//! and the host keeps serving.

use std::path::Path;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;

use crate::engine::{compile, ComponentSource};
use crate::sink::{new_ctx, Ctx, InstanceOptions};

/// The `proxy` world compiled and pre-linked: one fresh instance per request, as
/// `wasmtime serve` does.
#[derive(Clone)]
pub struct ProxyRuntime {
    pre: wasmtime_wasi_http::p2::bindings::ProxyPre<Ctx>,
}

/// A response body as wasmtime-wasi-http produces it.
pub type ProxyBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

impl ProxyRuntime {
    /// Compile the proxy component at `path` and link it against WASI and wasi:http.
    pub fn load(path: &Path) -> Result<ProxyRuntime> {
        ProxyRuntime::load_from(&ComponentSource::File(path.to_path_buf()))
    }

    /// Compile the proxy component from `source` (a file or the copy built in) and link it.
    pub fn load_from(source: &ComponentSource) -> Result<ProxyRuntime> {
        let (_, component, linker) = compile(&source.bytes()?)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("linking: {e}"))?;
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(|e| anyhow!("{} is not a wasi:http proxy component: {e}", source.place()))?;
        Ok(ProxyRuntime { pre })
    }

    /// Answer one request with a fresh instance set up by `options`. A trap is answered 503
    /// (send it again: nothing is lost) with the count the service stored before it (those may
    /// be stored twice; `kinesis-ship serve` tells them apart and answers itself); with
    /// `track_accepted` off, where the host cannot know, 500.
    pub async fn handle<B>(
        &self,
        options: &InstanceOptions,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<ProxyBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        Ok(self.handle_traps(options, request).await?.response)
    }

    /// [`ProxyRuntime::handle`], telling a trap apart: its message and the `Data` of every
    /// record the service answered as stored before it (with `track_accepted`), for a host that
    /// answers a trap itself.
    pub async fn handle_traps<B>(
        &self,
        options: &InstanceOptions,
        request: hyper::Request<B>,
    ) -> Result<Handled>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
        let (ctx, stderr) = new_ctx(options.clone(), Some(self.pre.engine()))?;
        let stored = crate::sink::ExchangeWatch::of(&ctx);
        let mut store = Store::new(self.pre.engine(), ctx);
        // --max-memory holds here too: past it the request traps.
        crate::sink::limit_memory(&mut store);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| anyhow!("{e}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| anyhow!("{e}"))?;
        let pre = self.pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(answer) => {
                if !options.inherit_stderr {
                    // What the component wrote, as log lines once it is done (JSON logs).
                    tokio::spawn(async move {
                        let _ = task.await;
                        crate::log::component(&String::from_utf8_lossy(&stderr.contents()));
                    });
                }
                let response = match answer {
                    Ok(response) => response,
                    Err(code) => error_response(&format!("the component answered an error: {code:?}")),
                };
                Ok(Handled { response, trap: None })
            }
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => "the component never answered".to_string(),
                    Ok(Err(e)) => {
                        if let Some(metrics) = &options.metrics {
                            metrics.trapped();
                        }
                        format!("the component trapped: {e:?}")
                    }
                    Err(e) => format!("the component's task failed: {e}"),
                };
                crate::log::error(&why);
                // (Empty when the component's stderr is this process's.)
                crate::log::component(&String::from_utf8_lossy(&stderr.contents()));
                let accepted = match &stored {
                    Some(watch) => Some(watch.stored_data().await),
                    None => None,
                };
                let trap = Trapped {
                    message: why.clone(),
                    accepted: accepted.clone().unwrap_or_default(),
                };
                // The answer names the trap by its first line; the rest is in the log.
                let named = why.lines().next().unwrap_or_default();
                let response = match accepted.map(|a| a.len()) {
                    None => error_response(named),
                    // A trap is no fault of the records: send the body again. Records stored
                    // before it may then be stored twice (a host that remembers the body tells
                    // them apart first, as kinesis-ship serve does); none is lost.
                    Some(n) => crate::room::answer_json(
                        503,
                        serde_json::json!({
                            "error": named,
                            "stored_before_the_trap": n,
                            "note": if n == 0 {
                                "no record of this body was stored; re-sending it creates no duplicates".to_string()
                            } else {
                                format!("the service stored {n} records of this body before the component trapped; re-sending it may store them twice")
                            },
                        }),
                        Some(crate::proxy::RETRY_AFTER_TRAP),
                    ),
                };
                Ok(Handled {
                    response,
                    trap: Some(trap),
                })
            }
        }
    }
}

/// What [`ProxyRuntime::handle_traps`] came to.
pub struct Handled {
    pub response: hyper::Response<ProxyBody>,
    pub trap: Option<Trapped>,
}

/// An instance that trapped while answering.
pub struct Trapped {
    pub message: String,
    /// The base64 `Data` of every record the service answered as stored.
    pub accepted: Vec<String>,
}

/// Seconds a body whose instance trapped with nothing stored waits before it is sent again.
pub const RETRY_AFTER_TRAP: u32 = 5;

/// A 500 with a JSON error.
fn error_response(message: &str) -> hyper::Response<ProxyBody> {
    crate::room::answer(500, message, false)
}
