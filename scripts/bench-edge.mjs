// The edge bundle's per-request cost, side by side with `kinesis-ship serve` in one run
// (`make bench-edge`): each host started on 127.0.0.1 against one kinesalite, then posts one
// after another, a small body (10 records) and a large one (10,000 records). Per request: the
// wall time the client waits (median, p90) and the CPU time of the host's process (its
// utime + stime from /proc, divided by the posts). Kinesalite's own time is in every latency
// alike; its CPU is not counted.
//
//   node scripts/bench-edge.mjs [--small N] [--large N]
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdtempSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};
const SMALL = arg("--small", 200);
const LARGE = arg("--large", 10);
const TICKS = 100; // USER_HZ on Linux

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A process and all its descendants (by each process's parent in /proc/PID/stat).
function family(pid) {
  const parents = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1].split(" ");
      parents.set(Number(entry), Number(fields[1]));
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [child, parent] of parents) if (parent === out[i]) out.push(child);
  }
  return out;
}

function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {}
  }
  return ticks / TICKS;
}

function peakRss(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/);
      if (m) kb = Math.max(kb, Number(m[1]));
    } catch {}
  }
  return kb / 1024;
}

async function waitHealthy(port) {
  for (let i = 0; i < 240; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return;
    } catch {}
    await sleep(250);
  }
  throw new Error(`no answer on ${port}`);
}

function body(records, from) {
  let text = "";
  for (let i = 0; i < records; i++) {
    text += JSON.stringify({ log: `GET /api/${from + i} 200 ${"x".repeat(120)}`, stream: "stdout", pod: `web-${i % 5}` }) + "\n";
  }
  return text;
}

async function measure(port, pids, posts, records) {
  const walls = [];
  const before = cpuSeconds(pids);
  for (let n = 0; n < posts; n++) {
    const payload = body(records, n * records);
    const started = performance.now();
    const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: payload });
    await r.text();
    walls.push(performance.now() - started);
    if (r.status !== 200) throw new Error(`answered ${r.status}`);
  }
  const cpu = (cpuSeconds(pids) - before) / posts;
  walls.sort((a, b) => a - b);
  return { median: walls[Math.floor(walls.length / 2)], p90: walls[Math.floor(walls.length * 0.9)], cpu: cpu * 1000 };
}

const kinesalite = spawn("node", [join(root, "scripts/kinesalite.mjs"), "serve", "--port", "0", "--stream", "bench-edge"], { stdio: ["pipe", "pipe", "inherit"] });
const kport = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("kinesalite did not start within 60 s")), 60_000);
  kinesalite.stdout.on("data", (d) => {
    const m = String(d).match(/ready (\d+)/);
    if (m) {
      clearTimeout(timer);
      resolve(Number(m[1]));
    }
  });
});
const dir = mkdtempSync(join(tmpdir(), "bench-edge-"));
const config = join(dir, "config.json");
writeFileSync(config, JSON.stringify({ stream_name: "bench-edge", region: "us-east-1", endpoint: `http://127.0.0.1:${kport}`, partition_key: "pod" }));
const env = { ...process.env, AWS_ACCESS_KEY_ID: "AKIDBENCH", AWS_SECRET_ACCESS_KEY: "bench-secret" };

const hosts = [
  ["kinesis-ship serve", (port) => [join(root, "dist/kinesis-ship"), ["serve", "--listen", `127.0.0.1:${port}`, "--config", config]]],
  ["workerd", (port) => [join(root, "dist/edge/serve"), ["workerd", "--config", config, "--port", String(port)]]],
  ["deno", (port) => [join(root, "dist/edge/serve"), ["deno", "--config", config, "--port", String(port)]]],
];
const results = [];
for (const [name, command] of hosts) {
  const port = await freePort();
  const [program, args] = command(port);
  const child = spawn(program, args, { env, stdio: ["ignore", "ignore", "ignore"], detached: true });
  try {
    await waitHealthy(port);
    await measure(port, [], 5, 10); // warm up: compile caches, connections
    const pids = family(child.pid);
    const small = await measure(port, pids, SMALL, 10);
    const large = await measure(port, pids, LARGE, 10_000);
    results.push({ name, small, large, rss: peakRss(pids) });
  } finally {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
  }
  // The next host starts once this one is gone (at most 10 s).
  for (let i = 0; i < 100 && family(child.pid).some((pid) => existsSync(`/proc/${pid}`)); i++) await sleep(100);
}
kinesalite.stdin.end();

const f = (x) => x.toFixed(1).padStart(7);
const largeBytes = body(10_000, 0).length;
console.log(`per request, ${SMALL} small posts (10 records, ${body(10, 0).length} B) and ${LARGE} large (10,000 records, ${(largeBytes / 1048576).toFixed(2)} MiB), one after another:`);
console.log("host                  small: wall median  p90   CPU ms | large: wall median   p90    CPU ms | peak RSS MiB");
const base = results[0];
for (const r of results) {
  console.log(`${r.name.padEnd(20)} ${f(r.small.median)} ${f(r.small.p90)} ${f(r.small.cpu)}   | ${f(r.large.median)} ${f(r.large.p90)} ${f(r.large.cpu)}   | ${f(r.rss)}`);
}
for (const r of results.slice(1)) {
  console.log(`${r.name} / ${base.name}: small wall ${(r.small.median / base.small.median).toFixed(2)}x, CPU ${(r.small.cpu / base.small.cpu).toFixed(2)}x; large wall ${(r.large.median / base.large.median).toFixed(2)}x, CPU ${(r.large.cpu / base.large.cpu).toFixed(2)}x`);
}
const edge = join(root, "dist/edge");
let total = 0;
for (const file of ["worker.js", ...readdirSync(edge).filter((n) => n.endsWith(".wasm"))]) {
  const bytes = readFileSync(join(edge, file));
  total += gzipSync(bytes, { level: 9 }).length;
  console.log(`dist/edge/${file}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
console.log(`the Worker's upload, gzipped: ${total} bytes (Cloudflare's limit: 3 MB Free, 10 MB Paid)`);
process.exit(0);
