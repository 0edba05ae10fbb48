// The Cloudflare Worker (workerd, wrangler): the proxy world behind `fetch`, a fresh instance
// per request. Its configuration and credentials are the Worker's bindings: vars
// (KINESIS_OUTPUT_CONFIG, or KINESIS_OUTPUT_<SETTING>) and secrets (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or any name the configuration reads with
// {"env": NAME}). The core modules are declared as wasm modules (workerd compiles no code at
// run time), listed in core-modules.mjs, which `make edge` writes.
import modules from "./core-modules.mjs";
import { createHandler } from "./handler.mjs";

// An isolate has 128 MB, and a body is held several times over (the request, the component's
// copy, its records and calls): the Worker takes bodies up to 8 MiB unless the configuration's
// `proxy.max_body_size` says otherwise (a server's default is 16 MiB).
const PROXY_DEFAULTS = { max_body_size: 8 << 20 };

let handler;

export default {
  fetch(request, env, ctx) {
    handler ??= createHandler({ modules, bindings: env, proxyDefaults: PROXY_DEFAULTS });
    const answered = handler(request);
    // A client that goes away does not stop a put half-way (what it stored would not be
    // remembered): the Worker runs on until the answer is made.
    ctx?.waitUntil?.(answered.catch(() => {}));
    return answered;
  },
};
