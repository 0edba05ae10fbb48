// The Cloudflare Worker (workerd, wrangler): the proxy world behind `fetch`, a fresh instance
// per request. Its configuration and credentials are the Worker's bindings: vars
// (KINESIS_OUTPUT_CONFIG, or KINESIS_OUTPUT_<SETTING>) and secrets (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or any name the configuration reads with
// {"env": NAME}). The core modules are declared as wasm modules (workerd compiles no code at
// run time), listed in core-modules.mjs, which `make edge` writes.
import modules from "./core-modules.mjs";
import { createHandler } from "./handler.mjs";

let handler;

export default {
  async fetch(request, env) {
    handler ??= createHandler({ modules, bindings: env });
    return handler(request);
  },
};
