#!/usr/bin/env bash
# `make run`: start kinesalite on 127.0.0.1, ship examples/logs/kubernetes.ndjson through
# kinesis-ship and the component, read the stream back, stop the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."

stream=kubernetes-logs
work=target/demo
mkdir -p "$work"
rm -f "$work/kinesalite.out"

# kinesalite runs until its stdin closes: hold it open with a pipe we close on exit.
exec 3> >(node scripts/kinesalite.mjs serve --port 0 --stream "$stream" --shards 4 > "$work/kinesalite.out" 2>&1)
emulator=$!
cleanup() { exec 3>&-; kill "$emulator" 2>/dev/null || true; }
trap cleanup EXIT

port=""
for _ in $(seq 1 300); do
  if grep -q '^ready ' "$work/kinesalite.out" 2>/dev/null; then
    port=$(awk '/^ready /{print $2}' "$work/kinesalite.out")
    break
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "kinesalite did not start:" >&2
  cat "$work/kinesalite.out" >&2
  exit 1
fi
echo "kinesalite is listening on 127.0.0.1:$port with stream $stream"

sed "s#http://127.0.0.1:4567#http://127.0.0.1:$port#" examples/local-kinesalite.json > "$work/config.json"
status=0
dist/kinesis-ship --config "$work/config.json" --input examples/logs/kubernetes.ndjson --report "$work/report.json" || status=$?
echo "kinesis-ship exited with $status; report in $work/report.json"

node scripts/kinesalite.mjs read --port "$port" --stream "$stream" | node scripts/show-records.mjs 3
exit "$status"
