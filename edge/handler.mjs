// The edge runtimes' host for the proxy world (Cloudflare Workers / workerd, Deno): a fetch
// handler that runs each request in a fresh instance of the component, transpiled by jco with
// JSPI and fed the browser build of the WASI shim (outgoing HTTP through `fetch`).
//
// It plays the part `kinesis-ship serve` plays for the delivery rule: a body answered 503 (records
// not yet stored) is remembered here, keyed by its sender, tag, type, encoding and bytes, and its
// entry is handed to the component with the re-post (the `kinesis-output-ledger` header), which
// then ships only the records not settled. A re-post arriving while the same body is shipped
// waits for it and gets its answer when that one settled the body. The memory is this
// isolate's: a re-post that reaches another isolate ships the whole body again (at worst a
// second copy, never a loss).

import { instantiate } from "./kinesis.js";
import { cli, clocks, filesystem, http, io, random } from "@bytecodealliance/preview2-shim";

const LEDGER_HEADER = "kinesis-output-ledger";
// What the agent gets of the problems unless it asks for all (`?problems=all`); the
// component's front::reply::trim_for_agent, word for word.
const PROBLEMS_SHOWN = 5;
const CODE_SHOWN = 64;
const MESSAGE_SHOWN = 200;
// Bodies remembered at most, and the bytes their entries may take (the component's own).
const MEMORY_CAPACITY = 10_000;
const MEMORY_BYTES = 8 << 20;
// The proxy's own defaults for `proxy.max_body_size` and `put_deadline` (seconds).
const DEFAULT_MAX_BODY_SIZE = 16 << 20;
const DEFAULT_PUT_DEADLINE = 50;
// A re-post waits for its body's turn at most the put's deadline and this: past it the turn is
// taken as abandoned (a runtime that cancelled the request holding it).
const TURN_GRACE_MS = 15_000;
// Traps in a row on one body after which it is given up, as kinesis-ship serve does.
const TRAPS_GIVEN_UP = 2;
// The request headers that describe the body as it came, not the bytes handed on.
const BODY_HEADERS = ["content-length", "transfer-encoding", "connection", "keep-alive", "expect", "upgrade"];
// Problems logged per answer.
const PROBLEMS_LOGGED = 20;

/// The environment the component sees: the string bindings (Workers' vars and secrets, Deno's
/// environment), other values as JSON (a wrangler `[vars]` table becomes an object).
export function environmentOf(bindings) {
  const out = {};
  for (const [name, value] of Object.entries(bindings ?? {})) {
    if (typeof value === "string") out[name] = value;
    else if (value !== null && typeof value === "object" && value.constructor === Object) out[name] = JSON.stringify(value);
    else if (typeof value === "number" || typeof value === "boolean") out[name] = String(value);
  }
  return out;
}

/// A JSON object's text as an object, or `undefined` (not JSON, or not an object).
function objectOf(text) {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/// `environment` with `defaults` for the `proxy` section's settings the configuration leaves
/// unset (the Worker's limits are not a server's): into `KINESIS_OUTPUT_PROXY` when the section
/// is given that way (it replaces the document's), else into the JSON document, else as that
/// variable when the configuration is given one variable per setting. A configuration that does
/// not parse is left for the component to name.
export function withProxyDefaults(environment, defaults) {
  if (!defaults || Object.keys(defaults).length === 0) return environment;
  const out = { ...environment };
  if (out.KINESIS_OUTPUT_PROXY !== undefined) {
    const section = objectOf(out.KINESIS_OUTPUT_PROXY);
    if (section) out.KINESIS_OUTPUT_PROXY = JSON.stringify({ ...defaults, ...section });
  } else if (out.KINESIS_OUTPUT_CONFIG !== undefined) {
    const doc = objectOf(out.KINESIS_OUTPUT_CONFIG);
    if (!doc) return out;
    if (doc.proxy === undefined) doc.proxy = { ...defaults };
    else if (doc.proxy !== null && typeof doc.proxy === "object" && !Array.isArray(doc.proxy)) doc.proxy = { ...defaults, ...doc.proxy };
    else return out;
    out.KINESIS_OUTPUT_CONFIG = JSON.stringify(doc);
  } else if (Object.keys(out).some((name) => name.startsWith("KINESIS_OUTPUT_"))) {
    out.KINESIS_OUTPUT_PROXY = JSON.stringify(defaults);
  }
  return out;
}

/// A setting as the component reads it: its own variable (`KINESIS_OUTPUT_<NAME>`) over the JSON
/// document's. `section` names the section it sits in (`proxy`), whose variable replaces the
/// document's section.
function settingOf(environment, name, section) {
  if (section) {
    const variable = environment[`KINESIS_OUTPUT_${section.toUpperCase()}`];
    const holder = variable !== undefined ? objectOf(variable) : objectOf(environment.KINESIS_OUTPUT_CONFIG ?? "{}")?.[section];
    return holder !== null && typeof holder === "object" ? holder[name] : undefined;
  }
  const variable = environment[`KINESIS_OUTPUT_${name.toUpperCase()}`];
  return variable !== undefined ? variable : objectOf(environment.KINESIS_OUTPUT_CONFIG ?? "{}")?.[name];
}

/// The header naming a body's tag (`proxy.tag_header`, `x-tag` by default): part of a body's key.
function tagHeaderOf(environment) {
  const value = settingOf(environment, "tag_header", "proxy");
  return typeof value === "string" && value.trim() ? value.trim().toLowerCase() : "x-tag";
}

/// The largest body the configuration takes (`proxy.max_body_size`, 16 MiB by default): the
/// entry reads no further than the read that passes it, and the component answers 413.
function maxBodyOf(environment) {
  const value = Number(settingOf(environment, "max_body_size", "proxy"));
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MAX_BODY_SIZE;
}

/// How long a put may take (`put_deadline`, 50 s in the proxy world), in milliseconds.
function putDeadlineOf(environment) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(String(settingOf(environment, "put_deadline") ?? ""));
  if (!match) return DEFAULT_PUT_DEADLINE * 1000;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"];
  return Number(match[1]) * unit;
}

/// The body's bytes, read until they pass `limit` (then the rest is not read: the component,
/// handed more than its limit, answers 413).
async function readBounded(request, limit) {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

function importsFor(environment) {
  const own = cli.createCli({ environment });
  return {
    "wasi:cli/environment": own.environment,
    "wasi:cli/exit": own.exit,
    "wasi:cli/stderr": own.stderr,
    "wasi:cli/stdin": own.stdin,
    "wasi:cli/stdout": own.stdout,
    "wasi:cli/terminal-input": own.terminalInput,
    "wasi:cli/terminal-output": own.terminalOutput,
    "wasi:cli/terminal-stderr": own.terminalStderr,
    "wasi:cli/terminal-stdin": own.terminalStdin,
    "wasi:cli/terminal-stdout": own.terminalStdout,
    "wasi:clocks/monotonic-clock": clocks.monotonicClock,
    "wasi:clocks/wall-clock": clocks.wallClock,
    "wasi:filesystem/preopens": filesystem.preopens,
    "wasi:filesystem/types": filesystem.types,
    "wasi:http/outgoing-handler": http.outgoingHandler,
    "wasi:http/types": http.types,
    "wasi:io/error": io.error,
    "wasi:io/poll": io.poll,
    "wasi:io/streams": io.streams,
    "wasi:random/insecure-seed": random.insecureSeed,
    "wasi:random/random": random.random,
  };
}

function cut(text, chars) {
  const points = Array.from(text);
  return points.length > chars ? points.slice(0, chars).join("") + "…" : text;
}

/// The component's answer as an agent gets it: the ledger taken out (and returned), the
/// problems cut short unless all were asked for.
function trimForAgent(fields, allProblems) {
  const ledger = typeof fields.ledger === "string" ? fields.ledger : undefined;
  delete fields.ledger;
  if (!allProblems && Array.isArray(fields.problems)) {
    const total = fields.problems.length;
    fields.problems = fields.problems.slice(0, PROBLEMS_SHOWN);
    for (const p of fields.problems) {
      if (typeof p.code === "string") p.code = cut(p.code, CODE_SHOWN);
      if (typeof p.message === "string") p.message = cut(p.message, MESSAGE_SHOWN);
    }
    if (total > PROBLEMS_SHOWN) fields.problems_total = total;
  }
  return ledger;
}

/// Entries of bodies with records not yet stored, oldest forgotten first past the bounds.
class Memory {
  #entries = new Map();
  #bytes = 0;
  recall(key) {
    return this.#entries.get(key);
  }
  keep(key, entry) {
    this.forget(key);
    this.#entries.set(key, entry);
    this.#bytes += entry.length + key.length;
    for (const [oldest, text] of this.#entries) {
      if (this.#entries.size <= MEMORY_CAPACITY && this.#bytes <= MEMORY_BYTES) break;
      this.#entries.delete(oldest);
      this.#bytes -= text.length + oldest.length;
    }
  }
  forget(key) {
    const text = this.#entries.get(key);
    if (text !== undefined) {
      this.#entries.delete(key);
      this.#bytes -= text.length + key.length;
    }
  }
}

async function keyOf(parts) {
  const encoder = new TextEncoder();
  const chunks = [];
  for (const part of parts) {
    const bytes = typeof part === "string" ? encoder.encode(part) : part;
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(bytes.byteLength));
    chunks.push(length, bytes);
  }
  const digest = await crypto.subtle.digest("SHA-256", await new Blob(chunks).arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function jsonResponse(status, value, headers = {}) {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/// A fetch handler for the proxy world. `modules` maps the core modules' names (as jco wrote
/// them) to compiled `WebAssembly.Module`s; `bindings` is the configuration and credentials
/// (strings); `proxyDefaults` are `proxy` settings used where the configuration sets none;
/// `log` takes one line.
export function createHandler({ modules, bindings, proxyDefaults, log = (line) => console.error(line) }) {
  const environment = withProxyDefaults(environmentOf(bindings), proxyDefaults);
  const tagHeader = tagHeaderOf(environment);
  const maxBody = maxBodyOf(environment);
  const memory = new Memory();
  // A body's turn: the answer it ended with when that settled it, and the tail of the queue.
  const turns = new Map();

  const putDeadline = putDeadlineOf(environment);
  // Traps in a row, by body.
  const traps = new Map();

  // One fresh instance answers a request for `url` with `headers` (the caller's own copy) and
  // `body` (bytes; none for GET and HEAD).
  async function run(url, method, headers, body) {
    const instance = await instantiate((name) => {
      const module = modules[name];
      if (!module) throw new Error(`core module ${name} is missing from the bundle`);
      return module;
    }, importsFor(environment));
    for (const name of BODY_HEADERS) headers.delete(name);
    const bodyless = method === "GET" || method === "HEAD";
    const inner = new Request(url, {
      method,
      headers,
      body: !bodyless && body.byteLength > 0 ? body : undefined,
    });
    return http.handleIncomingRequest(inner, instance.incomingHandler.handle);
  }

  // Wait for `before`, at most the put's deadline and a grace: a turn is never held longer
  // by a put that runs, so past that its holder is gone (a cancelled request).
  async function awaitTurn(before) {
    let timer;
    const abandoned = new Promise((resolve) => (timer = setTimeout(resolve, putDeadline + TURN_GRACE_MS)));
    try {
      await Promise.race([before, abandoned]);
    } finally {
      clearTimeout(timer);
    }
  }

  // The component failed on this body (a trap: nothing in it traps on input). The first time,
  // 503: what the attempt sent may be stored, so the re-post may store a second copy of it. Twice
  // in a row, the body is given up (ComponentTrap), as kinesis-ship serve gives it up.
  function failed(key, error) {
    const message = String(error?.message ?? error);
    log(`kinesis-output: the component failed: ${message}`);
    const count = (traps.get(key) ?? 0) + 1;
    if (count < TRAPS_GIVEN_UP) {
      traps.set(key, count);
      if (traps.size > MEMORY_CAPACITY) traps.delete(traps.keys().next().value);
      return jsonResponse(503, { error: "the component failed; re-send the body", code: "ComponentTrap", message }, { "retry-after": "5" });
    }
    traps.delete(key);
    const stored = memory.recall(key) !== undefined;
    memory.forget(key);
    log(`kinesis-output: a body failed the component ${count} times in a row: given up`);
    return jsonResponse(stored ? 202 : 422, {
      error: `the component failed on this body ${count} times in a row: given up`,
      code: "ComponentTrap",
      message,
    });
  }

  async function ship(request, url) {
    const body = await readBounded(request, maxBody);
    const header = (name) => request.headers.get(name) ?? "";
    const key = await keyOf([header("authorization"), header(tagHeader), header("content-type"), header("content-encoding"), body]);
    let turn = turns.get(key);
    if (!turn) {
      turn = { tail: Promise.resolve(), finished: undefined, waiting: 0 };
      turns.set(key, turn);
    }
    turn.waiting += 1;
    const before = turn.tail;
    let release;
    turn.tail = new Promise((resolve) => (release = resolve));
    try {
      await awaitTurn(before);
      if (turn.finished) return new Response(turn.finished.body, turn.finished.init);
      const headers = new Headers(request.headers);
      headers.set(LEDGER_HEADER, memory.recall(key) ?? "");
      let answer;
      try {
        answer = await run(request.url, "POST", headers, body);
      } catch (e) {
        return failed(key, e);
      }
      traps.delete(key);
      const status = answer.status;
      let text = await answer.text();
      const fields = objectOf(text);
      if (fields) {
        const problems = Array.isArray(fields.problems) ? fields.problems : [];
        for (const p of problems.slice(0, PROBLEMS_LOGGED)) {
          log(`kinesis-output: answered ${status}: line ${p.line}: ${p.outcome} ${p.code}: ${cut(String(p.message ?? ""), 300)}${p.records !== undefined ? ` (${p.records} records)` : ""}`);
        }
        if (problems.length > PROBLEMS_LOGGED) log(`kinesis-output: … and ${problems.length - PROBLEMS_LOGGED} more problems in that answer`);
        const allProblems = url.searchParams.getAll("problems").includes("all");
        const entry = trimForAgent(fields, allProblems);
        if (entry !== undefined) {
          // An entry goes back as a header: printable ASCII only.
          if (status === 503 && /^[\x20-\x7e]*$/.test(entry)) memory.keep(key, entry);
          else {
            if (status === 503) log("kinesis-output: the component's ledger is not readable; the body is not remembered");
            memory.forget(key);
          }
        }
        text = JSON.stringify(fields) + "\n";
      }
      const responseHeaders = new Headers(answer.headers);
      responseHeaders.delete("content-length");
      const init = { status, headers: responseHeaders };
      if (status !== 503) turn.finished = { body: text, init: { status, headers: [...responseHeaders] } };
      return new Response(text, init);
    } finally {
      release();
      turn.waiting -= 1;
      if (turn.waiting === 0 && turns.get(key) === turn) turns.delete(key);
    }
  }

  return async function handle(request) {
    const url = new URL(request.url);
    try {
      if (request.method === "POST" && url.pathname === "/") return await ship(request, url);
      const body = await readBounded(request, maxBody);
      const headers = new Headers(request.headers);
      headers.delete(LEDGER_HEADER);
      return await run(request.url, request.method, headers, body);
    } catch (e) {
      log(`kinesis-output: ${request.method} ${url.pathname}: ${e?.message ?? e}`);
      return jsonResponse(503, { error: "the request could not be handled; re-send it", message: String(e?.message ?? e) }, { "retry-after": "5" });
    }
  };
}
