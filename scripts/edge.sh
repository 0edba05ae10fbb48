#!/usr/bin/env bash
# dist/edge/: the proxy world for edge runtimes (see docs/edge.md). jco transpiles
# dist/kinesis_output_proxy.wasm to JavaScript with JSPI (the guest's blocking calls suspend
# on promises), its core modules kept as separate .wasm files (-b 0: workerd compiles no wasm
# at run time, so they are declared as modules); esbuild bundles our entries with the browser
# build of the WASI shim (outgoing HTTP through fetch).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.tools/node/node_modules/.bin
work=target/edge
out=dist/edge
rm -rf "$work" "$out"
mkdir -p "$work" "$out"

"$bin/jco" transpile dist/kinesis_output_proxy.wasm -o "$work" --name kinesis -q \
  --instantiation async --async-mode jspi --async-wasi-imports --async-wasi-exports -b 0
cp edge/handler.mjs edge/worker.mjs edge/deno.mjs "$work/"

mapfile -t cores < <(cd "$work" && ls kinesis.core*.wasm | sort -V)
{
  echo "// The core modules jco split the component into, as workerd/wrangler hand them over."
  for i in "${!cores[@]}"; do echo "import m$i from \"./${cores[$i]}\";"; done
  echo "export default {"
  for i in "${!cores[@]}"; do echo "  \"${cores[$i]}\": m$i,"; done
  echo "};"
} > "$work/core-modules.mjs"
{
  echo "// The core modules jco split the component into, compiled at start-up."
  printf 'export default %s;\n' "$(printf '%s\n' "${cores[@]}" | node -e 'console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").trim().split("\n")))')"
} > "$work/core-names.mjs"

for entry in worker deno; do
  NODE_PATH=.tools/node/node_modules "$bin/esbuild" "$work/$entry.mjs" --bundle --format=esm \
    --platform=browser --target=es2022 --minify --legal-comments=none --log-level=warning \
    --external:'*.wasm' --external:'node:*' --outfile="$out/$entry.js"
done
cp "${cores[@]/#/$work/}" "$out/"
printf '%s\n' "${cores[@]}" | node -e 'console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").trim().split("\n")))' > "$out/core-modules.json"
cp edge/wrangler.toml "$out/wrangler.toml"
cp edge/serve.mjs "$out/serve.mjs"
# `serve` runs serve.mjs with the node on the PATH (an .mjs file is a module on every Node).
printf '#!/bin/sh\n# Run the edge bundle locally: serve workerd|deno --config FILE --port N (see serve.mjs).\nexec node "$(dirname "$0")/serve.mjs" "$@"\n' > "$out/serve"
chmod 755 "$out/serve"
# The workerd configuration a user edits: the modules, the bindings to fill in.
{
  echo '# workerd serve workerd.capnp: the Worker on 127.0.0.1:8080 (see docs/edge.md).'
  echo 'using Workerd = import "/workerd/workerd.capnp";'
  echo 'const config :Workerd.Config = ('
  echo '  services = ['
  echo '    (name = "kinesis-output", worker = .worker),'
  echo '    (name = "outbound", network = (allow = ["public"])),'
  echo '  ],'
  echo '  sockets = [(name = "http", address = "127.0.0.1:8080", http = (), service = "kinesis-output")],'
  echo ');'
  echo 'const worker :Workerd.Worker = ('
  echo '  modules = ['
  echo '    (name = "worker.js", esModule = embed "worker.js"),'
  for c in "${cores[@]}"; do echo "    (name = \"$c\", wasm = embed \"$c\"),"; done
  echo '  ],'
  echo '  compatibilityDate = "2026-11-01",'
  echo '  bindings = ['
  echo '    (name = "KINESIS_OUTPUT_CONFIG", text = "{\"stream_name\": \"my-stream\", \"region\": \"us-east-1\"}"),'
  echo '    (name = "AWS_ACCESS_KEY_ID", fromEnvironment = "AWS_ACCESS_KEY_ID"),'
  echo '    (name = "AWS_SECRET_ACCESS_KEY", fromEnvironment = "AWS_SECRET_ACCESS_KEY"),'
  echo '    (name = "AWS_SESSION_TOKEN", fromEnvironment = "AWS_SESSION_TOKEN"),'
  echo '  ],'
  echo '  globalOutbound = "outbound",'
  echo ');'
} > "$out/workerd.capnp"

for f in worker.js deno.js "${cores[@]}"; do
  printf 'edge: dist/edge/%s (%s bytes, %s gzipped)\n' "$f" "$(stat -c %s "$out/$f")" "$(gzip -9c "$out/$f" | wc -c)"
done
