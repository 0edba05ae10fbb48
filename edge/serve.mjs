// dist/edge/serve (a shell wrapper running this file with node): run the edge bundle locally,
// on 127.0.0.1, with a configuration file.
//
//   serve workerd|deno --config FILE --port N [--host ADDRESS]
//
// FILE is the proxy's configuration as JSON (what KINESIS_OUTPUT_CONFIG holds) or as
// KEY=VALUE lines (what `kinesis-ship env --config operator.yaml` prints). It becomes the
// Worker's text bindings / Deno's environment. Secrets are never written anywhere: the AWS_*
// credential variables and every variable the configuration names with {"env": NAME} are taken
// from this process's environment (workerd's `fromEnvironment` bindings, Deno's environment).
// Settings given in the file itself (a secret written there too) go into workerd's configuration,
// a file of this user's only (0600), removed as soon as workerd listens.
//
// workerd and deno are found in $WORKERD / $DENO, next to this bundle's build tools
// (.tools/node/node_modules/.bin of the source tree), or on the PATH (`npm install workerd deno`).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const USAGE = "usage: serve workerd|deno --config FILE --port N [--host ADDRESS]";
const CREDENTIALS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
const PLAIN = ["AWS_REGION", "AWS_DEFAULT_REGION"];

function fail(message, code = 2) {
  console.error(`serve: ${message}`);
  process.exit(code);
}

function parseArgs(argv) {
  const [runtime, ...rest] = argv;
  if (runtime === "-h" || runtime === "--help") {
    console.log(USAGE);
    process.exit(0);
  }
  if (runtime !== "workerd" && runtime !== "deno") fail(`the runtime must be workerd or deno\n${USAGE}`);
  const options = { runtime, host: "127.0.0.1" };
  for (let i = 0; i < rest.length; i += 2) {
    const [name, value] = [rest[i], rest[i + 1]];
    if (value === undefined) fail(`${name} needs a value\n${USAGE}`);
    if (name === "--config") options.config = value;
    else if (name === "--port") options.port = value;
    else if (name === "--host") options.host = value;
    else fail(`unknown option ${name}\n${USAGE}`);
  }
  if (!options.config) fail(`--config is required\n${USAGE}`);
  if (!/^\d+$/.test(options.port ?? "") || Number(options.port) > 65535) fail(`--port must be a port number (0 to 65535)\n${USAGE}`);
  options.host = options.host.replace(/^\[(.*)\]$/, "$1");
  if (!/^[0-9A-Za-z.:\-]+$/.test(options.host)) fail(`--host must be an address, such as 127.0.0.1`);
  return options;
}

/// The variables a configuration file stands for, and the names of the secrets it reads.
function readConfig(path) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    fail(`--config: cannot read ${path}: ${e.code ?? e.message}`);
  }
  const vars = {};
  const secrets = new Set(CREDENTIALS);
  const collect = (value) => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (value && typeof value === "object") {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "env" && typeof value.env === "string") secrets.add(value.env);
      else Object.values(value).forEach(collect);
    }
  };
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    let doc;
    try {
      doc = JSON.parse(trimmed);
    } catch (e) {
      fail(`--config: ${path} starts like JSON but does not parse: ${e.message}`);
    }
    collect(doc);
    vars.KINESIS_OUTPUT_CONFIG = JSON.stringify(doc);
  } else {
    for (const [n, line] of text.split(/\r?\n/).entries()) {
      if (!line.trim() || line.trimStart().startsWith("#")) continue;
      const at = line.indexOf("=");
      const name = at > 0 ? line.slice(0, at).trim() : "";
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        fail(`--config: ${path} line ${n + 1} is neither JSON nor NAME=VALUE (a logging-operator YAML file converts with \`kinesis-ship env --config FILE\`)`);
      }
      const value = line.slice(at + 1);
      vars[name] = value;
      if (value.trim().startsWith("{") || value.trim().startsWith("[")) {
        try {
          collect(JSON.parse(value));
        } catch {
          // The component names a variable that does not parse.
        }
      }
    }
  }
  for (const name of PLAIN) if (process.env[name] && !(name in vars)) vars[name] = process.env[name];
  for (const name of Object.keys(vars)) secrets.delete(name);
  return { vars, secrets: [...secrets].filter((name) => process.env[name] !== undefined) };
}

function findTool(name, variable) {
  if (process.env[variable]) return process.env[variable];
  for (const folder of [join(here, "../../.tools/node/node_modules/.bin"), ...(process.env.PATH ?? "").split(delimiter)]) {
    if (folder && existsSync(join(folder, name))) return join(folder, name);
  }
  fail(`${name} is not installed: npm install ${name} (or name it in $${variable})`, 1);
}

// A Cap'n Proto text literal: quotes and backslashes escaped, control characters as \xHH,
// everything else as UTF-8.
const capnpText = (s) =>
  '"' +
  s.replace(/[\\"\x00-\x1f\x7f]/g, (c) => (c === "\\" || c === '"' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)) +
  '"';

// An address and port as workerd and Deno write them ([::1]:8080).
const hostPort = (host, port) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);

function workerdConfig({ host, port }, vars, secrets, folder) {
  // workerd reads embedded files relative to its configuration file.
  const embed = (name) => `embed ${capnpText(relative(folder, join(here, name)))}`;
  const modules = JSON.parse(readFileSync(join(here, "core-modules.json"), "utf8"));
  const lines = [
    'using Workerd = import "/workerd/workerd.capnp";',
    "const config :Workerd.Config = (",
    "  services = [",
    '    (name = "kinesis-output", worker = .worker),',
    '    (name = "outbound", network = (allow = ["public", "local"])),',
    "  ],",
    `  sockets = [(name = "http", address = ${capnpText(hostPort(host, port))}, http = (), service = "kinesis-output")],`,
    ");",
    "const worker :Workerd.Worker = (",
    "  modules = [",
    `    (name = "worker.js", esModule = ${embed("worker.js")}),`,
    ...modules.map((m) => `    (name = ${capnpText(m)}, wasm = ${embed(m)}),`),
    "  ],",
    '  compatibilityDate = "2026-11-01",',
    "  bindings = [",
    ...Object.entries(vars).map(([k, v]) => `    (name = ${capnpText(k)}, text = ${capnpText(v)}),`),
    ...secrets.map((k) => `    (name = ${capnpText(k)}, fromEnvironment = ${capnpText(k)}),`),
    "  ],",
    '  globalOutbound = "outbound",',
    ");",
  ];
  return lines.join("\n") + "\n";
}

// Try to connect until something listens on host:port (at most `ms`); whether it did.
async function listening(host, port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const up = await new Promise((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (up) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

const options = parseArgs(process.argv.slice(2));
const { vars, secrets } = readConfig(options.config);
let child;
let scratch;
const removeScratch = () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
};
if (options.runtime === "workerd") {
  const workerd = findTool("workerd", "WORKERD");
  scratch = mkdtempSync(join(tmpdir(), "kinesis-edge-"));
  const file = join(scratch, "config.capnp");
  writeFileSync(file, workerdConfig(options, vars, secrets, scratch), { mode: 0o600 });
  const env = { PATH: process.env.PATH ?? "" };
  for (const name of secrets) env[name] = process.env[name];
  child = spawn(workerd, ["serve", file], { stdio: ["ignore", "inherit", "inherit"], env });
  console.error(`serve: workerd on http://${hostPort(options.host, options.port)} (${secrets.length} secrets from the environment)`);
  // workerd has read its configuration once it listens.
  listening(options.host, Number(options.port), 60_000).then(removeScratch);
} else {
  const deno = findTool("deno", "DENO");
  const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...vars };
  if (process.env.DENO_DIR) env.DENO_DIR = process.env.DENO_DIR;
  for (const name of secrets) env[name] = process.env[name];
  child = spawn(deno, ["run", "--quiet", "--no-prompt", "--allow-net", "--allow-env", `--allow-read=${here}`, join(here, "deno.js"), "--port", String(options.port), "--hostname", options.host], {
    stdio: ["ignore", "inherit", "inherit"],
    env,
  });
}
let stopping = false;
const stop = (signal) => {
  stopping = true;
  child.kill(signal);
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGHUP", () => stop("SIGTERM"));
child.on("exit", (code, signal) => {
  removeScratch();
  // Stopped by us: done. Killed by anything else: a failure.
  process.exit(code ?? (stopping ? 0 : 1));
});
child.on("error", (e) => {
  removeScratch();
  fail(`${options.runtime} did not start: ${e.message}`, 1);
});
