// The Deno entry: the proxy world behind `Deno.serve`, a fresh instance per request, configured
// by the process environment (KINESIS_OUTPUT_CONFIG or KINESIS_OUTPUT_<SETTING>, credentials in
// AWS_*). Run it from dist/edge/:
//   deno run --allow-net --allow-env --allow-read=. deno.js --port 8080 [--hostname 127.0.0.1]
import names from "./core-names.mjs";
import { createHandler } from "./handler.mjs";

function option(name, fallback) {
  const at = Deno.args.indexOf(name);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}

const port = Number(option("--port", "8080"));
const hostname = option("--hostname", "127.0.0.1");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`kinesis-output: --port must be a port number (0 to 65535), not ${option("--port")}`);
  Deno.exit(2);
}

const modules = {};
for (const name of names) {
  modules[name] = await WebAssembly.compile(await Deno.readFile(new URL(`./${name}`, import.meta.url)));
}
const handle = createHandler({ modules, bindings: Deno.env.toObject() });

const server = Deno.serve({
  port,
  hostname,
  onListen: ({ hostname, port }) => console.error(`kinesis-output: listening on http://${hostname}:${port}`),
}, handle);

for (const signal of ["SIGTERM", "SIGINT"]) {
  Deno.addSignalListener(signal, () => server.shutdown());
}
await server.finished;
