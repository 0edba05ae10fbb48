// Writes a deterministic sample of Kubernetes container logs as the logging-operator forwards
// them (Fluentd records after the kubernetes metadata filter), one JSON object a line, plus a few
// plain-text lines as agents sometimes pass through.
//
//   node scripts/gen-logs.mjs [COUNT] > examples/logs/kubernetes.ndjson
const count = Number(process.argv[2] || 10000);

// mulberry32: a small seeded PRNG, so the file is the same on every machine.
let seed = 0x5eed1234;
function random() {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const hex = (n) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');

const apps = [
  { app: 'checkout', ns: 'shop', image: 'registry.example.com/shop/checkout:2.14.1' },
  { app: 'catalog', ns: 'shop', image: 'registry.example.com/shop/catalog:1.9.0' },
  { app: 'ingress-nginx', ns: 'ingress-nginx', image: 'registry.k8s.io/ingress-nginx/controller:v1.10.1' },
  { app: 'payments', ns: 'payments', image: 'registry.example.com/payments/api:5.2.3' },
  { app: 'coredns', ns: 'kube-system', image: 'registry.k8s.io/coredns/coredns:v1.11.1' },
];
const pods = apps.flatMap((a) =>
  [0, 1, 2].map(() => ({ ...a, pod: `${a.app}-${hex(9)}-${hex(5)}`, uid: `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`, docker: hex(64) })),
);
const nodes = ['ip-10-0-1-23.eu-west-1.compute.internal', 'ip-10-0-2-57.eu-west-1.compute.internal', 'ip-10-0-3-91.eu-west-1.compute.internal'];
const paths = ['/api/v1/cart', '/api/v1/items?page=2', '/healthz', '/api/v1/orders/8812', '/api/v1/pay', '/metrics'];
const levels = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];

let t = Date.UTC(2026, 10, 1, 12, 0, 0);
const out = [];
for (let i = 0; i < count; i++) {
  t += Math.floor(random() * 40);
  const p = pick(pods);
  const ts = new Date(t).toISOString();
  if (i % 997 === 13) {
    out.push(`${ts} plain text line from a sidecar: rotated log file ${hex(6)}`);
    continue;
  }
  let log;
  if (p.app === 'ingress-nginx') {
    log = `10.0.${Math.floor(random() * 255)}.${Math.floor(random() * 255)} - - [${ts}] "GET ${pick(paths)} HTTP/1.1" ${pick([200, 200, 200, 304, 404, 502])} ${Math.floor(random() * 5000)} "-" "Mozilla/5.0 (X11; Linux x86_64)" ${(random() / 10).toFixed(3)}`;
  } else if (random() < 0.3) {
    log = JSON.stringify({ level: pick(levels).toLowerCase(), ts, msg: 'request handled', path: pick(paths), status: pick([200, 201, 400, 500]), duration_ms: Math.floor(random() * 900), user: `u-${hex(6)}`, note: 'naïve café ✓' });
  } else {
    log = `${ts} ${pick(levels)} [${p.app}] ${pick(['request handled', 'cache miss', 'retrying upstream', 'connection reset by peer', 'order placed'])} path=${pick(paths)} trace_id=${hex(32)}`;
  }
  if (i % 1500 === 7) {
    log += '\n\tat com.example.Service.handle(Service.java:42)\n\tat com.example.Main.run(Main.java:7)';
  }
  out.push(
    JSON.stringify({
      log: log + '\n',
      stream: random() < 0.9 ? 'stdout' : 'stderr',
      time: ts.replace('Z', `${String(Math.floor(random() * 1e6)).padStart(6, '0')}Z`),
      kubernetes: {
        pod_name: p.pod,
        namespace_name: p.ns,
        pod_id: p.uid,
        labels: { app: p.app, 'app.kubernetes.io/managed-by': 'helm' },
        annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-10-30T08:00:00Z' },
        host: pick(nodes),
        container_name: p.app,
        docker_id: p.docker,
        container_hash: `${p.image.split(':')[0]}@sha256:${p.docker}`,
        container_image: p.image,
      },
    }),
  );
}
process.stdout.write(out.join('\n') + '\n');
